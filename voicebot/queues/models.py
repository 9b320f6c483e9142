"""Agents and queues: YAML schema (sip_config/agents.yaml, sip_config/queues.yaml) and loading with file:line errors.

    agents = load_agents("sip_config/agents.yaml")     # -> AgentsConfig, raises yamlsrc.ConfigErrors
    queues = load_queues("sip_config/queues.yaml")     # -> QueuesConfig; overflow targets are checked
    check_queues_servable(queues, agents)              # every queue's skills are held by some agent

Skills on a call are plain names ("cards"), names with a minimum level ("cards>=3") or a language
("lang:en-US"); `parse_requirements` turns them into `Requirements`.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from voicebot.config import EnvName, Name, SipUri, _check_language
from voicebot.yamlsrc import ConfigErrors, LocatedValueError, YamlSourceError, load_yaml, validate

__all__ = [
    "AGENT_STATES",
    "AgentConfig",
    "AgentsConfig",
    "BusinessHours",
    "OverflowConfig",
    "QueueConfig",
    "QueuesConfig",
    "Requirements",
    "check_queues_servable",
    "language_matches",
    "load_agents",
    "load_queues",
    "parse_requirements",
]

AGENT_STATES = ("offline", "available", "reserved", "busy", "wrap_up")
AgentStateName = Literal["offline", "available", "reserved", "busy", "wrap_up"]

Language = Annotated[str, AfterValidator(_check_language)]
_SKILL = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,63}")
_REQUIREMENT = re.compile(r"(?P<skill>[a-z0-9_][a-z0-9_.-]{0,63})(?:>=(?P<level>[0-9]{1,2}))?")
_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SIP_USER = re.compile(r"[A-Za-z0-9._~+-]{1,64}")


def _check_skill(value: str) -> str:
    if not _SKILL.fullmatch(value):
        raise LocatedValueError(
            f"{value!r} is not a skill name", hint="use lower-case letters, digits, '_', '.', '-', e.g. cards"
        )
    return value


Skill = Annotated[str, AfterValidator(_check_skill)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---------------------------------------------------------------------------------------------- agents


class AgentConfig(_Section):
    """One human agent: reached by SIP URI or in the browser, one call at a time."""

    id: Name = Field(description="unique agent id, e.g. a1")
    name: str = Field(min_length=1, max_length=80, description="display name")
    sip_uri: SipUri | None = Field(default=None, description="where to ring the agent, e.g. sip:alice@127.0.0.1:5070")
    browser: bool = Field(default=False, description="the agent answers in the browser (WebRTC) instead of SIP")
    sip_user: str | None = Field(
        default=None, description="the agent's phone registers to voicebot with this digest user name and is rung "
        "at its registered Contact (sip_uri, if given, is the fallback while it is not registered)")
    sip_password_env: EnvName | None = Field(default=None, description="environment variable with the phone's password")
    sip_password_file: str | None = Field(default=None, description="owner-only (0600) file with the phone's password")
    skills: dict[Skill, Annotated[int, Field(ge=1, le=10)]] = Field(
        default_factory=dict, description="skill name -> level 1..10, e.g. {cards: 5}"
    )
    languages: list[Language] = Field(min_length=1, description="languages spoken, e.g. [en-US, zh-CN]")
    wrap_up_s: float = Field(default=30.0, ge=0, le=3600, description="after-call work before the next call")
    max_calls: Literal[1] = Field(default=1, description="calls at a time (only 1 is supported)")
    media_encryption: Literal["none", "optional", "required"] | None = Field(default=None, description=(
        "SRTP policy of the offer that rings this agent's phone: none, optional (RTP/AVP with a=crypto) or required "
        "(RTP/SAVP); default: the server's media_encryption"))
    max_no_answers: int = Field(default=3, ge=0, le=100, description=(
        "consecutive offers the agent leaves unanswered before the ACD sets them not-ready (offline, reason "
        "no_answer) so waiting callers go to others; 0 = never"))

    yaml_field_hints: ClassVar[dict[str, str]] = {
        "password": "passwords never go in the file: set sip_password_env (an environment variable) or "
        "sip_password_file (a 0600 file)",
        "sip_password": "passwords never go in the file: set sip_password_env (an environment variable) or "
        "sip_password_file (a 0600 file)",
    }

    @model_validator(mode="after")
    def _reachable(self) -> AgentConfig:
        if self.sip_uri is None and not self.browser and self.sip_user is None:
            raise LocatedValueError(
                f"agent {self.id!r} cannot be reached",
                hint="give a sip_uri (sip:user@host:port), a sip_user for a phone that registers, or browser: true",
            )
        return self

    @model_validator(mode="after")
    def _sip_account(self) -> AgentConfig:
        has_password = self.sip_password_env is not None or self.sip_password_file is not None
        if self.sip_user is not None and not _SIP_USER.fullmatch(self.sip_user):
            raise LocatedValueError(f"{self.sip_user!r} is not a SIP user name", loc=("sip_user",),
                                    hint="use letters, digits and . _ ~ + - (at most 64), e.g. alice")
        if self.sip_user is not None and not has_password:
            raise LocatedValueError(f"agent {self.id!r} has a sip_user but no password", loc=("sip_user",),
                                    hint="add sip_password_env: VARIABLE or sip_password_file: /path (mode 0600)")
        if self.sip_user is None and has_password:
            raise LocatedValueError(f"agent {self.id!r} has a SIP password but no sip_user",
                                    loc=("sip_password_env" if self.sip_password_env else "sip_password_file",),
                                    hint="add sip_user: <name the phone registers with>")
        return self


class AgentsConfig(_Section):
    agents: list[AgentConfig] = Field(min_length=1)

    @field_validator("agents")
    @classmethod
    def _unique_ids(cls, agents: list[AgentConfig]) -> list[AgentConfig]:
        seen: set[str] = set()
        users: set[str] = set()
        for index, agent in enumerate(agents):
            if agent.id in seen:
                raise LocatedValueError(f"agent id {agent.id!r} is used twice", loc=(index, "id"))
            seen.add(agent.id)
            if agent.sip_user is not None:
                if agent.sip_user in users:
                    raise LocatedValueError(f"sip_user {agent.sip_user!r} is used twice", loc=(index, "sip_user"))
                users.add(agent.sip_user)
        return agents

    def by_id(self) -> dict[str, AgentConfig]:
        return {agent.id: agent for agent in self.agents}


# ---------------------------------------------------------------------------------------------- queues


class OverflowConfig(_Section):
    queue: Name = Field(description="queue that also serves the caller after `after_s` seconds")
    after_s: float = Field(gt=0, le=86400)


class BusinessHours(_Section):
    """Weekly opening hours in a time zone, e.g. {timezone: Asia/Shanghai, weekly: {mon: ["09:00-18:00"]}}."""

    timezone: str = Field(description="IANA time zone, e.g. Europe/Berlin")
    weekly: dict[str, list[str]] = Field(description="mon..sun -> list of 'HH:MM-HH:MM'; missing days are closed")
    closed_dates: list[date] = Field(default_factory=list, description="holidays, e.g. 2025-12-25")

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise LocatedValueError(
                f"unknown time zone {value!r}", hint="use an IANA name such as Europe/Berlin or Asia/Shanghai"
            ) from None
        return value

    @field_validator("weekly")
    @classmethod
    def _ranges(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, ranges in value.items():
            if day not in _WEEKDAYS:
                raise LocatedValueError(f"{day!r} is not a weekday", loc=(day,), hint="use mon, tue, wed, thu, fri, sat, sun")
            for index, text in enumerate(ranges):
                match = _HOURS.fullmatch(text)
                if match is None or (match[3] == "24" and match[4] != "00"):
                    raise LocatedValueError(
                        f"{text!r} is not an opening range", loc=(day, index), hint="write 'HH:MM-HH:MM', e.g. '09:00-17:30'"
                    )
                if (match[1], match[2]) >= (match[3], match[4]):
                    raise LocatedValueError(f"{text!r} ends before it starts", loc=(day, index))
        return value

    def is_open(self, now: float) -> bool:
        """Whether the queue takes calls at epoch time `now`."""
        local = datetime.fromtimestamp(now, zoneinfo.ZoneInfo(self.timezone))
        if local.date() in self.closed_dates:
            return False
        minute = local.hour * 60 + local.minute
        for text in self.weekly.get(_WEEKDAYS[local.weekday()], []):
            match = _HOURS.fullmatch(text)
            assert match is not None
            start = int(match[1]) * 60 + int(match[2])
            end = int(match[3]) * 60 + int(match[4])
            if start <= minute < end:
                return True
        return False


class QueueConfig(_Section):
    """A queue: which skills serve it, how callers are prioritised, and what happens when it is too long."""

    name: Name
    skills: list[Skill | str] = Field(
        default_factory=list, description="requirements for every caller, e.g. [cards, 'cards>=3']"
    )
    priority_rules: dict[str, Annotated[int, Field(ge=0, le=1000)]] = Field(
        default_factory=dict, description="caller flag -> priority, e.g. {vip: 10, elderly: 5, emergency: 100}"
    )
    overflow: OverflowConfig | None = None
    max_size: int = Field(default=100, ge=1, le=100000, description="callers waiting at most; more are refused")
    max_wait_s: float | None = Field(default=None, gt=0, description="then offer a callback (or the message)")
    on_max_wait: Literal["callback", "message"] = "callback"
    service_level_s: float = Field(default=20.0, gt=0, description="answer target for the service-level metric")
    business_hours: BusinessHours | None = None
    live_transcript: bool = Field(
        default=False, description="bridged calls of this queue are transcribed live (both legs), pushed to the "
        "agent's desktop and the supervisors, quality-checked and kept in the call record; costs speech-worker CPU")
    assist: bool = Field(default=True, description="with live_transcript: knowledge cards for the agent from the "
                         "caller's words (never spoken)")
    assist_collection: str | None = Field(default=None, description="knowledge collection searched for assist "
                                          "cards, e.g. ecommerce (default: every collection)")
    assist_min_score: float = Field(default=0.3, ge=0, le=1, description="lowest retrieval score shown as a card")

    @field_validator("skills")
    @classmethod
    def _requirements(cls, values: list[str]) -> list[str]:
        for index, value in enumerate(values):
            if not _REQUIREMENT.fullmatch(value):
                raise LocatedValueError(
                    f"{value!r} is not a skill requirement", loc=(index,), hint="write 'skill' or 'skill>=LEVEL', e.g. cards>=3"
                )
        return values

    def priority_for(self, base: int, flags: Iterable[str] = ()) -> int:
        """The caller's priority: the highest of `base` and every rule matching one of `flags`."""
        return max([base, *(self.priority_rules[flag] for flag in flags if flag in self.priority_rules)])

    def is_open(self, now: float) -> bool:
        return self.business_hours is None or self.business_hours.is_open(now)


class QueuesConfig(_Section):
    yaml_field_hints: ClassVar[dict[str, str]] = {"agents": "agents go in sip_config/agents.yaml"}
    queues: list[QueueConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> QueuesConfig:
        names = [queue.name for queue in self.queues]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise LocatedValueError(f"queue {name!r} is defined twice", loc=("queues", index, "name"))
        for index, queue in enumerate(self.queues):
            if queue.overflow is None:
                continue
            if queue.overflow.queue not in names:
                raise LocatedValueError(
                    f"overflow queue {queue.overflow.queue!r} is not defined",
                    loc=("queues", index, "overflow", "queue"),
                    hint=f"use one of: {', '.join(names)}",
                )
            if queue.overflow.queue == queue.name:
                raise LocatedValueError("a queue cannot overflow to itself", loc=("queues", index, "overflow", "queue"))
        return self

    def by_name(self) -> dict[str, QueueConfig]:
        return {queue.name: queue for queue in self.queues}


# --------------------------------------------------------------------------------------- requirements


@dataclass(frozen=True)
class Requirements:
    """What an agent needs to take a call: skills with minimum levels and one of the languages (if any)."""

    skills: dict[str, int] = field(default_factory=dict)
    languages: tuple[str, ...] = ()

    def met_by(self, agent: AgentConfig) -> bool:
        if any(agent.skills.get(skill, 0) < level for skill, level in self.skills.items()):
            return False
        return not self.languages or any(
            language_matches(spoken, wanted) for wanted in self.languages for spoken in agent.languages
        )


def language_matches(spoken: str, wanted: str) -> bool:
    """'en-US' serves 'en-US' and 'en'; 'en' serves any English."""
    spoken_l, wanted_l = spoken.lower(), wanted.lower()
    return spoken_l == wanted_l or spoken_l.split("-")[0] == wanted_l or wanted_l.split("-")[0] == spoken_l


def parse_requirements(items: Iterable[str]) -> Requirements:
    """Parse ["cards", "loans>=3", "lang:en-US"]; raises ValueError naming the bad item."""
    skills: dict[str, int] = {}
    languages: list[str] = []
    for item in items:
        text = str(item).strip()
        if text.startswith("lang:"):
            language = text[5:]
            _check_language(language)
            languages.append(language)
            continue
        match = _REQUIREMENT.fullmatch(text)
        if match is None:
            raise ValueError(f"{item!r} is not a skill requirement; write 'skill', 'skill>=LEVEL' or 'lang:xx-YY'")
        level = int(match["level"] or 1)
        skills[match["skill"]] = max(level, skills.get(match["skill"], 0))
    return Requirements(skills, tuple(languages))


# --------------------------------------------------------------------------------------------- loading


def load_agents(path: str | Path) -> AgentsConfig:
    data, lines = load_yaml(path)
    return validate(AgentsConfig, data, lines, path)


def load_queues(path: str | Path) -> QueuesConfig:
    data, lines = load_yaml(path)
    return validate(QueuesConfig, data, lines, path)


def check_queues_servable(queues: QueuesConfig, agents: AgentsConfig, path: str | Path = "queues.yaml") -> None:
    """Raise ConfigErrors for a queue no configured agent could ever serve (a caller would wait forever)."""
    errors = []
    data: Any
    try:
        data, lines = load_yaml(path)
    except YamlSourceError:
        lines = None
    for index, queue in enumerate(queues.queues):
        wanted = parse_requirements(queue.skills)
        if not any(wanted.met_by(agent) for agent in agents.agents):
            line, column = lines.line_for(("queues", index, "skills")) if lines is not None else (None, None)
            errors.append(
                YamlSourceError(
                    str(path), line, column, f"queues[{index}]: no agent has the skills {queue.skills} of queue {queue.name!r}",
                    "give an agent these skills in agents.yaml or lower the requirement",
                )
            )
    if errors:
        raise ConfigErrors(errors)
