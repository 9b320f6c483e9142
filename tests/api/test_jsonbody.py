"""loads_bounded: depth is measured outside strings, and every bad input is a JsonBodyError with a reason."""

from __future__ import annotations

import pytest

from voicebot.api.jsonbody import JsonBodyError, loads_bounded, nesting_depth


def test_depth_ignores_brackets_inside_strings() -> None:
    assert nesting_depth('{"a": [1, {"b": "[[[[\\"{{{"}]}') == 3
    assert loads_bounded('{"text": "' + "[" * 500 + '"}') == {"text": "[" * 500}
    assert loads_bounded("[" * 32 + "]" * 32, max_depth=32) == loads_bounded("[" * 32 + "]" * 32)


@pytest.mark.parametrize(("raw", "reason"), [
    ("[" * 33 + "]" * 33, "nested deeper than 32 levels"),
    ("[" * 100_000, "nested deeper than 32 levels"),
    (b'{"a": "\xff"}', "not UTF-8"),
    ('{"a": ', "not valid JSON"),
])
def test_bad_input_is_refused_with_a_reason(raw: str | bytes, reason: str) -> None:
    with pytest.raises(JsonBodyError, match=reason):
        loads_bounded(raw)
