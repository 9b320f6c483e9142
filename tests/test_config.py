"""Server config: schema, semantic checks with file:line, password from the environment, the demo config."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from voicebot.config import (
    MissingSecretError,
    ServerConfig,
    TrunkConfig,
    load_server_config,
    resolve_trunk_password,
)
from voicebot.yamlsrc import ConfigErrors, YamlSourceError

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "sip_config" / "voicebot.yaml"

TRUNK = """\
trunks:
  - name: carrier_a
    registrar: sip:sip.carrier-a.example.com
    username: "15551230000"
    password_env: CARRIER_A_PASSWORD
    allow_from: [198.51.100.0/24]
    dids:
      "+15551230001": bank_hotline
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "voicebot.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str) -> list[YamlSourceError]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigErrors) as excinfo:
        load_server_config(path)
    for error in excinfo.value.errors:
        assert error.path == str(path)
    return excinfo.value.errors


def single_error(tmp_path: Path, text: str) -> YamlSourceError:
    errors = errors_of(tmp_path, text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


# ----------------------------------------------------------------------------------------- good input


def test_demo_config_loads_with_documented_defaults() -> None:
    config = load_server_config(DEMO_CONFIG)
    assert config.listen.host == "127.0.0.1" and config.listen.port == 5060
    assert config.listen.transports == ["udp"]
    assert config.trunks == []
    assert config.codecs.preference == ["PCMU", "PCMA"]
    assert config.acl.allows("127.0.0.1") and config.acl.allows("::1")
    assert not config.acl.allows("192.0.2.1")
    assert config.routing.default_dialplan == "demo"
    assert config.prompts.greeting.startswith("Welcome to voicebot.")


def test_demo_config_matches_model_defaults_where_it_restates_them() -> None:
    config = load_server_config(DEMO_CONFIG)
    defaults = ServerConfig()
    for section in ("listen", "rtp", "codecs", "acl", "limits", "prompts", "log"):
        assert getattr(config, section) == getattr(defaults, section), section
    assert config.shutdown_grace_s == defaults.shutdown_grace_s


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    config = load_server_config(write(tmp_path, "# nothing\n"))
    assert config == ServerConfig()
    assert config.limits.max_calls == 500
    assert config.rtp.port_start == 20000 and config.rtp.port_end == 30000
    assert config.log.json_lines is True


def test_trunk_is_parsed_and_routes(tmp_path: Path) -> None:
    config = load_server_config(write(tmp_path, TRUNK + "routing:\n  dids:\n    '1000': support\n"))
    trunk = config.trunks[0]
    assert trunk.register_enabled and trunk.expires == 3600
    assert trunk.allow_from == [ipaddress.ip_network("198.51.100.0/24")]
    assert config.trunk_for_source("198.51.100.7") is trunk
    assert config.trunk_for_source("::ffff:198.51.100.7") is trunk
    assert config.trunk_for_source("203.0.113.1") is None
    assert config.dialplan_for("+15551230001", trunk) == "bank_hotline"
    assert config.dialplan_for("1000") == "support"
    assert config.dialplan_for("999") == "demo"


def test_transfer_patterns_match_with_fnmatch(tmp_path: Path) -> None:
    config = load_server_config(
        write(tmp_path, "transfer:\n  allowed_targets: ['sip:*@agents.example.com', 'sip:+1555000@10.0.0.5']\n")
    )
    assert config.transfer.allows("sip:alice@agents.example.com")
    assert config.transfer.allows("sip:+1555000@10.0.0.5")
    assert not config.transfer.allows("sip:alice@evil.example.com")
    assert not ServerConfig().transfer.allows("sip:anyone@127.0.0.1")


def test_log_level_is_case_insensitive(tmp_path: Path) -> None:
    config = load_server_config(write(tmp_path, "log:\n  level: debug\n  json: false\n"))
    assert config.log.level == "DEBUG" and config.log.json_lines is False


# -------------------------------------------------------------------------------- errors with lines


def test_password_in_file_is_rejected_with_hint(tmp_path: Path) -> None:
    text = TRUNK.replace("    password_env: CARRIER_A_PASSWORD\n", "    password: hunter2\n")
    errors = errors_of(tmp_path, text)
    by_message = {error.message: error for error in errors}
    rejected = by_message["trunks[0]: field 'password' is not allowed here"]
    assert rejected.line == 5
    assert rejected.hint is not None and "password_env" in rejected.hint
    assert "hunter2" not in str(rejected)


def test_registrar_must_be_a_sip_uri(tmp_path: Path) -> None:
    error = single_error(tmp_path, TRUNK.replace("sip:sip.carrier-a.example.com", "http://carrier"))
    assert (error.line, error.column) == (3, 5)
    assert error.message == "trunks[0].registrar: 'http://carrier' is not a SIP URI"
    assert error.hint is not None and "sip:" in error.hint


@pytest.mark.parametrize(
    "uri",
    ["sip:[::1]:5070", "sips:trunk.example.com", "sip:user@192.0.2.1:5060;transport=tcp", "sip:host"],
)
def test_valid_sip_uris_are_accepted(uri: str) -> None:
    assert TrunkConfig(name="t", registrar=uri, register=False).registrar == uri


@pytest.mark.parametrize("uri", ["sip:", "sip:host:99999", "sip:[nothex]", "sip:bad_host!", "tel:+1555"])
def test_invalid_sip_uris_are_rejected(uri: str) -> None:
    with pytest.raises(ValueError):
        TrunkConfig(name="t", registrar=uri, register=False)


def test_typo_in_trunk_field_suggests_the_right_name(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, TRUNK.replace("    registrar:", "    regsitrar:"))
    unknown = [error for error in errors if "unknown field" in error.message]
    assert len(unknown) == 1
    assert unknown[0].message == "trunks[0]: unknown field 'regsitrar' (did you mean 'registrar'?)"
    assert unknown[0].line == 3
    missing = [error for error in errors if error.message == "trunks[0].registrar: field required"]
    assert missing and missing[0].line == 2  # the trunk's own line


def test_typo_in_section_name_suggests(tmp_path: Path) -> None:
    error = single_error(tmp_path, "listen:\n  port: 5070\nlimts:\n  max_calls: 5\n")
    assert error.line == 3
    assert error.message == "unknown field 'limts' (did you mean 'limits'?)"


def test_nested_list_item_line_accuracy(tmp_path: Path) -> None:
    text = TRUNK + (
        "  - name: carrier_b\n"
        "    registrar: sip:b.example.com\n"
        "    register: false\n"
        "    allow_from:\n"
        "      - 203.0.113.0/24\n"
        "      - 203.0.113.9/24\n"
    )
    error = single_error(tmp_path, text)
    assert (error.line, error.column) == (14, 9)
    assert error.message == "trunks[1].allow_from[1]: '203.0.113.9/24' has host bits set"
    assert error.hint == "did you mean '203.0.113.0/24'?"


def test_odd_rtp_port_is_reported_on_its_line(tmp_path: Path) -> None:
    error = single_error(tmp_path, "rtp:\n  port_start: 20001\n  port_end: 30000\n")
    assert error.line == 2
    assert error.message == "rtp.port_start: 20001 is odd"
    assert error.hint is not None and "20000" in error.hint


def test_rtp_range_must_be_ordered(tmp_path: Path) -> None:
    error = single_error(tmp_path, "rtp:\n  port_start: 30000\n  port_end: 20000\n")
    assert error.line == 3
    assert error.message.startswith("rtp.port_end: port_end 20000 must be above port_start 30000")


def test_duplicate_trunk_names_point_at_the_second(tmp_path: Path) -> None:
    text = TRUNK + "  - name: carrier_a\n    registrar: sip:other.example.com\n    register: false\n"
    error = single_error(tmp_path, text)
    assert error.line == 9
    assert error.message == "trunks[1].name: trunk name 'carrier_a' is used twice"
    assert error.hint is not None and "trunks[0]" in error.hint


def test_did_mapped_twice_points_at_the_second_mapping(tmp_path: Path) -> None:
    text = TRUNK + "routing:\n  dids:\n    '2000': demo\n    '+15551230001': other\n"
    error = single_error(tmp_path, text)
    assert error.line == 12
    assert error.message == "routing.dids['+15551230001']: DID '+15551230001' is mapped twice"
    assert error.hint is not None and "trunks[0].dids" in error.hint


def test_duplicate_did_key_in_one_mapping_is_a_yaml_error(tmp_path: Path) -> None:
    error = single_error(tmp_path, "routing:\n  dids:\n    '1000': a\n    '1000': b\n")
    assert error.line == 4
    assert "duplicate key '1000'" in error.message


def test_unquoted_did_asks_for_quotes(tmp_path: Path) -> None:
    error = single_error(tmp_path, "routing:\n  dids:\n    5551234: demo\n")
    assert error.line == 3
    assert error.message == "routing.dids[5551234]: key 5551234 must be text"


def test_did_must_be_a_number(tmp_path: Path) -> None:
    error = single_error(tmp_path, "routing:\n  dids:\n    'sales': demo\n")
    assert error.line == 3
    assert error.message == "routing.dids.sales: 'sales' is not a DID"


def test_registering_trunk_needs_credentials(tmp_path: Path) -> None:
    error = single_error(tmp_path, "trunks:\n  - name: t\n    registrar: sip:t.example.com\n    username: u\n")
    assert error.line == 2
    assert error.message == "trunks[0].password_env: password_env is required when register is true"
    assert error.hint is not None and "register: false" in error.hint


def test_out_of_range_and_bad_choices_are_reported_together(tmp_path: Path) -> None:
    text = """\
    listen:
      transports: [udp, sctp]
    codecs:
      preference: [PCMU, G729]
      dtmf_payload_type: 200
    limits:
      max_calls: 0
    prompts:
      language: english
    shutdown_grace_s: -5
    """
    errors = errors_of(tmp_path, text)
    got = {error.line: error.message for error in errors}
    assert got == {
        2: "listen.transports[1]: 'sctp' is not allowed; expected 'udp', 'tcp' or 'tls'",
        4: "codecs.preference[1]: 'G729' is not allowed; expected 'PCMU' or 'PCMA'",
        5: "codecs.dtmf_payload_type: 200 is above the maximum 127",
        7: "limits.max_calls: 0 is below the minimum 1",
        9: "prompts.language: 'english' is not a language tag",
        10: "shutdown_grace_s: -5 is below the minimum 0",
    }


def test_duplicate_codec_is_rejected(tmp_path: Path) -> None:
    error = single_error(tmp_path, "codecs:\n  preference:\n    - PCMA\n    - PCMA\n")
    assert error.line == 4
    assert error.message == "codecs.preference[1]: 'PCMA' is listed twice"


def test_per_source_limit_cannot_exceed_total(tmp_path: Path) -> None:
    error = single_error(tmp_path, "limits:\n  max_calls: 10\n  max_calls_per_source: 20\n")
    assert error.line == 3
    assert error.hint == "lower it to at most 10"


def test_bad_acl_entry(tmp_path: Path) -> None:
    error = single_error(tmp_path, "acl:\n  allow:\n    - 10.0.0.0/8\n    - not-a-network\n")
    assert (error.line, error.column) == (4, 7)
    assert error.message == "acl.allow[1]: 'not-a-network' is not an IP network"


def test_transfer_target_must_be_sip(tmp_path: Path) -> None:
    error = single_error(tmp_path, "transfer:\n  allowed_targets: ['*']\n")
    assert error.line == 2
    assert "is not a SIP URI or URI pattern" in error.message


def test_yaml_syntax_error_comes_back_as_config_errors(tmp_path: Path) -> None:
    error = single_error(tmp_path, "listen:\n  host: 127.0.0.1\n   port: 5060\n")
    assert error.line == 3
    assert error.message.startswith("YAML syntax error")


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as excinfo:
        load_server_config(tmp_path / "nope.yaml")
    assert "cannot read file" in str(excinfo.value)


def test_config_is_frozen() -> None:
    config = ServerConfig()
    with pytest.raises(ValueError):
        config.shutdown_grace_s = 1  # type: ignore[misc]


# ------------------------------------------------------------------------------------ trunk passwords


def make_trunk(**overrides: object) -> TrunkConfig:
    fields: dict[str, object] = {
        "name": "carrier_a",
        "registrar": "sip:sip.example.com",
        "username": "u",
        "password_env": "CARRIER_A_PASSWORD",
    }
    fields.update(overrides)
    return TrunkConfig.model_validate(fields)


def test_password_is_read_from_named_variable() -> None:
    assert resolve_trunk_password(make_trunk(), {"CARRIER_A_PASSWORD": "s3cret"}) == "s3cret"


def test_password_from_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_A_PASSWORD", "from-env")
    assert resolve_trunk_password(make_trunk()) == "from-env"


@pytest.mark.parametrize(("environ", "state"), [({}, "is not set"), ({"CARRIER_A_PASSWORD": ""}, "is empty")])
def test_missing_password_names_the_variable(environ: dict[str, str], state: str) -> None:
    with pytest.raises(MissingSecretError) as excinfo:
        resolve_trunk_password(make_trunk(), environ)
    message = str(excinfo.value)
    assert "CARRIER_A_PASSWORD" in message and state in message and "'carrier_a'" in message


def test_trunk_without_password_env_cannot_resolve() -> None:
    trunk = make_trunk(password_env=None, username=None, register=False)
    with pytest.raises(MissingSecretError, match="has no password_env"):
        resolve_trunk_password(trunk, {"CARRIER_A_PASSWORD": "x"})


def test_host_fields_reject_malformed_addresses(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "listen:\n  host: 'bad host!'\n  public_host: 10.0.0.300\n")
    assert [(error.line, error.message) for error in errors] == [
        (2, "listen.host: 'bad host!' is not an IP address or host name"),
        (3, "listen.public_host: '10.0.0.300' is not an IP address or host name"),
    ]


def test_login_lockout_defaults_and_a_ban_longer_than_the_maximum_is_refused(tmp_path: Path) -> None:
    config = load_server_config(write(tmp_path, "auth:\n  lockout: {failures_per_source: 5}\n"))
    assert (config.auth.lockout.failures_per_source, config.auth.lockout.failures_per_user) == (5, 30)
    error = single_error(tmp_path, "auth:\n  lockout: {ban_s: 7200, max_ban_s: 3600}\n")
    assert "ban_s 7200 exceeds max_ban_s 3600" in error.message and error.line == 2


def test_media_encryption_policy_global_and_per_trunk(tmp_path: Path) -> None:
    config = load_server_config(write(tmp_path, TRUNK + "    media_encryption: required\nmedia_encryption: none\n"))
    assert config.media_encryption_for(config.trunks[0]) == "required"
    assert config.media_encryption_for(None) == "none"
    assert load_server_config(write(tmp_path, "")).media_encryption == "optional"


def test_bad_media_encryption_is_reported_on_its_line(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, TRUNK + "    media_encryption: srtp\nmedia_encryption: mandatory\n")
    got = {error.line: error.message for error in errors}
    assert got == {
        9: "trunks[0].media_encryption: 'srtp' is not allowed; expected 'none', 'optional' or 'required'",
        10: "media_encryption: 'mandatory' is not allowed; expected 'none', 'optional' or 'required'",
    }
