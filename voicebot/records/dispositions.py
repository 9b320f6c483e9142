"""Disposition codes per industry (sip_config/dispositions.yaml): what an agent picks when a call ends.

    codes = load_dispositions("sip_config/dispositions.yaml")   # ConfigErrors with file:line on bad input
    codes.lookup("finance", "card_blocked")                     # the Disposition, or None when not offered there
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voicebot.yamlsrc import ConfigErrors, LocatedValueError, YamlSourceError, load_yaml, validate

__all__ = ["Disposition", "Dispositions", "load_dispositions"]

_CODE = r"^[a-z][a-z0-9_]{0,47}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Disposition(_Section):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    code: str = Field(pattern=_CODE, description="lower_snake_case code stored in the record")
    closes: bool = Field(True, description="true: choosing it closes the call's case; false: it stays open")
    en: str = Field(alias="en-US", min_length=1, max_length=80)
    zh: str = Field(alias="zh-CN", min_length=1, max_length=80)


class Dispositions(_Section):
    common: list[Disposition] = Field(default_factory=list)
    industries: dict[str, list[Disposition]] = Field(default_factory=dict)

    @field_validator("industries")
    @classmethod
    def _names(cls, value: dict[str, list[Disposition]]) -> dict[str, list[Disposition]]:
        for name in value:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise LocatedValueError(f"industry {name!r} is not a dialplan name", hint="e.g. finance")
        return value

    @model_validator(mode="after")
    def _unique(self) -> Dispositions:
        for name, codes in [("common", self.common), *self.industries.items()]:
            seen = {d.code for d in self.common} if name != "common" else set()
            for d in codes:
                if d.code in seen:
                    raise ValueError(f"disposition code {d.code!r} is listed twice for {name}")
                seen.add(d.code)
        return self

    def for_industry(self, industry: str) -> list[Disposition]:
        return [*self.common, *self.industries.get(industry, [])]

    def lookup(self, industry: str, code: str) -> Disposition | None:
        return next((d for d in self.for_industry(industry) if d.code == code), None)


def load_dispositions(path: str | Path) -> Dispositions:
    """Read and validate the disposition file; ConfigErrors naming file:line for each problem."""
    try:
        data, lines = load_yaml(path)
    except YamlSourceError as exc:
        raise ConfigErrors([exc]) from None
    loaded: Any = validate(Dispositions, data or {}, lines, path)
    return loaded  # type: ignore[no-any-return]
