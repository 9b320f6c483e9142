"""yamlsrc: YAML loading with positions, duplicate keys, syntax errors and pydantic errors rendered with file:line."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, model_validator

from voicebot.yamlsrc import (
    ConfigErrors,
    LineMap,
    LocatedValueError,
    YamlSourceError,
    format_loc,
    load_yaml,
    load_yaml_text,
    validate,
)


class Peer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    yaml_field_hints: ClassVar[dict[str, str]] = {"secret": "name an environment variable instead"}

    host: str = Field(description="the peer's host name")
    port: int = 5060
    weight: float = 1.0
    tags: list[str] = []

    @model_validator(mode="after")
    def _not_both_defaults(self) -> Peer:
        if self.host == "forbidden":
            raise LocatedValueError("this host is reserved", loc=("host",), hint="pick another host")
        return self


class Book(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: str
    peers: list[Peer] = []
    numbers: dict[str, str] = {}
    enabled: bool = True


def write(tmp_path: Path, text: str, name: str = "conf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def only_error(excinfo: pytest.ExceptionInfo[ConfigErrors]) -> YamlSourceError:
    assert len(excinfo.value.errors) == 1, str(excinfo.value)
    return excinfo.value.errors[0]


# ----------------------------------------------------------------------------------------- rendering


def test_error_renders_path_line_column_message_and_hint() -> None:
    error = YamlSourceError("a.yaml", 3, 5, "bad thing", "do this")
    assert str(error) == "a.yaml:3:5: bad thing — do this"
    assert str(YamlSourceError("a.yaml", 3, 5, "bad thing")) == "a.yaml:3:5: bad thing"
    assert str(YamlSourceError("a.yaml", None, None, "unreadable")) == "a.yaml: unreadable"
    assert (error.path, error.line, error.column, error.message, error.hint) == (
        "a.yaml",
        3,
        5,
        "bad thing",
        "do this",
    )


def test_config_errors_sorts_by_line_and_prints_one_per_line() -> None:
    errors = ConfigErrors([YamlSourceError("a.yaml", 9, 1, "second"), YamlSourceError("a.yaml", 2, 1, "first")])
    assert str(errors).splitlines() == ["a.yaml:2:1: first", "a.yaml:9:1: second"]


def test_errors_survive_pickling() -> None:
    errors = ConfigErrors([YamlSourceError("a.yaml", 2, 1, "first", "hint")])
    again = pickle.loads(pickle.dumps(errors))
    assert str(again) == str(errors)


def test_format_loc_reads_like_the_document() -> None:
    assert format_loc(("trunks", 0, "registrar")) == "trunks[0].registrar"
    assert format_loc(("routing", "dids", "+15551234")) == "routing.dids['+15551234']"
    assert format_loc(()) == "(top level)"


# ------------------------------------------------------------------------------------------- loading


def test_positions_of_keys_and_list_items_are_one_based(tmp_path: Path) -> None:
    path = write(tmp_path, "title: x\npeers:\n  - host: a\n    port: 1\n  - host: b\n")
    data, lines = load_yaml(path)
    assert data == {"title": "x", "peers": [{"host": "a", "port": 1}, {"host": "b"}]}
    assert lines.get(("title",)) == (1, 1)
    assert lines.get(("peers",)) == (2, 1)
    assert lines.get(("peers", 0)) == (3, 5)
    assert lines.get(("peers", 0, "port")) == (4, 5)
    assert lines.get(("peers", 1, "host")) == (5, 5)


def test_line_for_falls_back_to_nearest_ancestor() -> None:
    _, lines = load_yaml_text("a: 1\nb:\n  c:\n    d: 2\n", "x.yaml")
    assert lines.line_for(("b", "c", "missing", "deeper")) == (3, 3)
    assert lines.line_for(("nope",)) == lines.line_for(()) == (1, 1)
    assert LineMap().line_for(("anything",)) == (1, 1)


def test_duplicate_key_names_second_line_and_first(tmp_path: Path) -> None:
    path = write(tmp_path, "title: a\npeers:\n  - host: x\n    port: 1\n    port: 2\n")
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml(path)
    error = excinfo.value
    assert (error.path, error.line, error.column) == (str(path), 5, 5)
    assert "duplicate key 'port'" in error.message
    assert "line 4" in (error.hint or "")


def test_duplicate_top_level_key() -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml_text("title: a\nenabled: true\ntitle: b\n", "d.yaml")
    assert excinfo.value.line == 3
    assert "'title'" in excinfo.value.message


def test_syntax_error_points_at_problem_line(tmp_path: Path) -> None:
    path = write(tmp_path, "title: ok\npeers:\n  - host: a: b\n")
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml(path)
    assert excinfo.value.path == str(path)
    assert excinfo.value.line == 3
    assert excinfo.value.message.startswith("YAML syntax error")
    assert excinfo.value.hint is not None and "quoted" in excinfo.value.hint


def test_tab_indentation_gets_a_hint() -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml_text("title: ok\npeers:\n\t- host: a\n", "t.yaml")
    assert excinfo.value.line == 3
    assert excinfo.value.hint == "indent with spaces, not tabs"


def test_unclosed_flow_list_is_reported() -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml_text("tags: [a, b\ntitle: x\n", "u.yaml")
    assert excinfo.value.line == 2
    assert "line 1" in excinfo.value.message


def test_second_document_is_rejected() -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml_text("title: a\n---\ntitle: b\n", "m.yaml")
    assert excinfo.value.line == 2
    assert "more than one YAML document" in excinfo.value.message


@pytest.mark.parametrize("text", ["a: !!python/object:os.system ls\n", "a: !custom x\n", "a: !!set {x}\n"])
def test_unsafe_or_unknown_tags_are_rejected(text: str) -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml_text(text, "tag.yaml")
    assert excinfo.value.line == 1
    assert "tag" in excinfo.value.message


def test_recursive_alias_is_rejected() -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml_text("x: 1\na: &loop [1, *loop]\n", "r.yaml")
    assert excinfo.value.line == 2
    assert "recursive" in excinfo.value.message


def test_aliases_share_values_and_merge_keys_apply() -> None:
    text = "base: &b {host: h, port: 1}\nother:\n  <<: *b\n  port: 2\nagain: *b\n"
    data, lines = load_yaml_text(text, "a.yaml")
    assert data["other"] == {"host": "h", "port": 2}
    assert data["again"] == {"host": "h", "port": 1}
    assert lines.get(("other", "port")) == (4, 3)
    assert lines.get(("other", "host")) == (3, 3)  # merged key: reported at its '<<' line


def test_non_scalar_key_is_rejected() -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml_text("a: 1\n? [x, y]\n: 2\n", "k.yaml")
    assert excinfo.value.line == 2


def test_bad_date_shaped_scalar_names_its_line() -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml_text("title: x\nwhen: 2024-13-45\n", "d.yaml")
    assert excinfo.value.line == 2
    assert excinfo.value.hint == "quote it to keep it as text"


def test_empty_document_loads_as_none() -> None:
    data, lines = load_yaml_text("# nothing here\n", "e.yaml")
    assert data is None
    assert len(lines) == 0


def test_missing_file_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml(tmp_path / "absent.yaml")
    assert excinfo.value.line is None and "cannot read file" in excinfo.value.message
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"title: ok\nname: caf\xe9\n")
    with pytest.raises(YamlSourceError) as excinfo:
        load_yaml(bad)
    assert excinfo.value.line == 2 and "UTF-8" in excinfo.value.message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufefftitle: café\n".encode())
    data, _ = load_yaml(path)
    assert data == {"title": "café"}


# ---------------------------------------------------------------------------------------- validation


def load_and_validate(tmp_path: Path, text: str) -> Book:
    path = write(tmp_path, text)
    data, lines = load_yaml(path)
    return validate(Book, data, lines, path)


def test_valid_document_returns_model(tmp_path: Path) -> None:
    book = load_and_validate(tmp_path, "title: t\npeers:\n  - host: a\n    tags: [x]\n")
    assert isinstance(book, Book)
    assert book.peers[0].tags == ["x"]


def test_missing_field_reports_parent_item_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, "title: t\npeers:\n  - host: a\n  - port: 7\n    weight: 2.0\n")
    error = only_error(excinfo)
    assert (error.line, error.column) == (4, 5)
    assert error.message == "peers[1].host: field required"
    assert error.hint == "the peer's host name"
    assert error.path == str(tmp_path / "conf.yaml")


def test_missing_top_level_field_reports_line_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, "\n\nenabled: true\n")
    error = only_error(excinfo)
    assert error.message == "title: field required"
    assert error.line == 3  # the document starts at its first content line


def test_typo_gets_suggestion_with_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, "title: t\npeers:\n  - host: a\n    prot: 5061\n")
    error = only_error(excinfo)
    assert error.line == 4 and error.column == 5
    assert error.message == "peers[0]: unknown field 'prot' (did you mean 'port'?)"


def test_unknown_field_without_close_match_lists_allowed_fields(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, "title: t\nzzz: 1\n")
    error = only_error(excinfo)
    assert error.line == 2
    assert error.message == "unknown field 'zzz'"
    assert error.hint == "allowed fields here: title, peers, numbers, enabled"


def test_model_field_hint_replaces_generic_unknown_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, "title: t\npeers:\n  - host: a\n    secret: s3\n")
    error = only_error(excinfo)
    assert error.line == 4
    assert "'secret' is not allowed" in error.message
    assert error.hint == "name an environment variable instead"


def test_wrong_types_are_explained_with_their_lines(tmp_path: Path) -> None:
    text = "title: t\nenabled: 'yes'\npeers:\n  - host: a\n    port: '5060'\n    tags: x\n"
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, text)
    by_line = {error.line: error for error in excinfo.value.errors}
    assert set(by_line) == {2, 5, 6}
    assert by_line[2].message == "enabled: expected true or false, got 'yes'"
    assert by_line[5].message == "peers[0].port: expected a whole number, got '5060'"
    assert by_line[5].hint == "remove the quotes: 5060"
    assert by_line[6].message == "peers[0].tags: expected a list, got 'x'"


def test_numeric_mapping_key_asks_for_quotes(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, "title: t\nnumbers:\n  '100': a\n  0123: b\n")
    error = only_error(excinfo)
    assert error.line == 4
    assert error.message == "numbers[83]: key 83 must be text"  # YAML 1.1 reads 0123 as octal
    assert error.hint is not None and "quote" in error.hint


def test_located_value_error_points_below_the_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, "title: t\npeers:\n  - port: 1\n    host: forbidden\n")
    error = only_error(excinfo)
    assert (error.line, error.column) == (4, 5)
    assert error.message == "peers[0].host: this host is reserved"
    assert error.hint == "pick another host"


def test_every_error_is_collected_in_one_pass(tmp_path: Path) -> None:
    text = "title: 5\npeers:\n  - hots: a\n  - host: b\n    port: x\n"
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, text)
    lines = [error.line for error in excinfo.value.errors]
    assert lines == sorted(lines)
    assert set(lines) == {1, 3, 5}
    assert len(excinfo.value.errors) == 4  # title type, peers[0].host missing, 'hots' unknown, port type


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_and_validate(tmp_path, "- a\n- b\n")
    error = only_error(excinfo)
    assert error.line == 1
    assert error.message == "(top level): expected a mapping (key: value lines), got a list"


class Either(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: int | bool


def test_union_member_errors_fold_into_one() -> None:
    data, lines = load_yaml_text("value: abc\n", "u.yaml")
    with pytest.raises(ConfigErrors) as excinfo:
        validate(Either, data, lines, "u.yaml")
    error = only_error(excinfo)
    assert error.message == "value: expected a whole number or true or false, got 'abc'"
    assert error.line == 1


def test_non_text_field_name_is_reported_at_its_line() -> None:
    data, lines = load_yaml_text("title: t\n42: x\n", "k.yaml")
    with pytest.raises(ConfigErrors) as excinfo:
        validate(Book, data, lines, "k.yaml")
    error = only_error(excinfo)
    assert error.line == 2
    assert error.message == "(top level): field names must be text, got 42"


def test_validation_context_reaches_validators() -> None:
    class Named(BaseModel):
        name: str

        @model_validator(mode="after")
        def _known(self, info: object) -> Named:  # pydantic passes ValidationInfo
            known = getattr(info, "context", None) or {}
            if self.name not in known.get("names", ()):
                raise LocatedValueError(f"unknown name {self.name!r}", loc=("name",))
            return self

    data, lines = load_yaml_text("name: b\n", "n.yaml")
    assert validate(Named, data, lines, "n.yaml", context={"names": {"b"}}).name == "b"
    with pytest.raises(ConfigErrors, match=r"n\.yaml:1:1: name: unknown name 'b'"):
        validate(Named, data, lines, "n.yaml", context={"names": {"a"}})


YAML_ALPHABET = st.sampled_from(list("ab01 :-?[]{},'\"#&*!|>%@`\t\n") + ["\n  ", "\n- ", ": ", "<<: ", "&a ", "*a"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_ALPHABET, max_size=40).map("".join))
def test_any_text_loads_or_fails_with_a_located_error(text: str) -> None:
    try:
        _, lines = load_yaml_text(text, "fuzz.yaml")
    except YamlSourceError as error:
        assert error.path == "fuzz.yaml"
        assert error.line is None or 1 <= error.line <= text.count("\n") + 2
        return
    last_line = text.count("\n") + 1
    for _, (line, column) in lines.items():
        assert 1 <= line <= last_line and column >= 1
