"""The dialplan language as pydantic models: what a dialplan YAML file may contain.

Shape (see docs/dialplan.md for the full reference):

    dialplan: demo
    languages: [en-US, zh-CN]
    nlu: demo
    start: greet
    global: {intents: {agent: to_agent, repeat: {repeat: true}}, dtmf: {"0": to_agent}}
    nodes:
      greet: {say: "...", listen: {intents: {...}, dtmf: {...}, noinput: {...}, nomatch: {...}}}

A node runs its parts in a fixed order: set, say, ask, webhook, then exactly one exit
(listen, branch, goto, transfer, enqueue, call, return or hangup).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from voicebot.dialplan import slot_types
from voicebot.yamlsrc import LocatedValueError

__all__ = [
    "AnswerSpec",
    "AskSpec",
    "BranchCase",
    "CallSpec",
    "Dialplan",
    "EXIT_FIELDS",
    "GlobalHandlers",
    "HangupSpec",
    "LanguageOfferSpec",
    "ListenSpec",
    "Node",
    "PromptSpec",
    "QueueSpec",
    "RetryHandler",
    "TransferSpec",
    "TransitionSpec",
    "WebhookSpec",
    "export_json_schema",
    "prompt_list",
    "transition_spec",
]

NODE_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
SLOT_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
LANG_TAG = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
BargeIn = Literal["none", "dtmf", "speech"]
InputMode = Literal["speech", "dtmf", "both"]
DTMF_KEYS = re.compile(r"^[0-9*#A-D]+$")

EXIT_FIELDS = ("listen", "answer", "branch", "goto", "transfer", "enqueue", "call", "return_", "hangup")
"""Node fields that decide where a node goes; every node has exactly one."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _kind(value: Any) -> str:
    """Discriminator for "text or mapping" unions: picks the member by the YAML shape."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    return "mapping"


# ------------------------------------------------------------------------------------------- prompts

LangText = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[dict[str, str], Tag("mapping")]],
    Discriminator(_kind),
]
"""Plain text, or text per language: {en: "Hello", zh: "你好"} (keys: a language or its primary subtag)."""


class PromptSpec(_Model):
    """One prompt: text (SSML-lite `<break time="500ms"/>` allowed) and/or a recorded audio file."""

    text: LangText | None = Field(None, description="what to say; a string or {en: ..., zh: ...}")
    audio: LangText | None = Field(None, description="a WAV file to play instead of synthesising the text")
    barge_in: BargeIn | None = Field(
        None, description="may the caller interrupt: none, dtmf (keys only) or speech (keys and voice)"
    )

    @model_validator(mode="after")
    def _needs_content(self) -> PromptSpec:
        if self.text is None and self.audio is None:
            raise LocatedValueError("a prompt needs text or audio", hint='write say: "text to speak"')
        return self


def _prompt_kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict) and not set(value) & {"text", "audio", "barge_in"}:
        return "languages"
    return "spec"


Prompt = Annotated[
    Union[
        Annotated[str, Tag("text")],
        Annotated[dict[str, str], Tag("languages")],
        Annotated[PromptSpec, Tag("spec")],
    ],
    Discriminator(_prompt_kind),
]
"""A prompt: "text", {en: ..., zh: ...}, or {text: ..., audio: ..., barge_in: ...}."""

Prompts = Annotated[
    Union[Annotated[Prompt, Tag("one")], Annotated[list[Prompt], Tag("list")]],
    Discriminator(lambda v: "list" if isinstance(v, list) else "one"),
]
"""One prompt, or a list used by prompt count: the n-th time it is played uses entry n (the last repeats)."""


def prompt_spec(prompt: Any) -> PromptSpec:
    """Normalise any accepted prompt form to a PromptSpec."""
    if isinstance(prompt, PromptSpec):
        return prompt
    return PromptSpec(text=prompt)


def prompt_list(prompts: Any) -> list[PromptSpec]:
    """Normalise a `say` value (one prompt or a list) to a list of PromptSpecs."""
    if prompts is None:
        return []
    if isinstance(prompts, list):
        return [prompt_spec(p) for p in prompts]
    return [prompt_spec(prompts)]


# --------------------------------------------------------------------------------------- transitions

Target = Annotated[str, Field(min_length=1, description="a node name, or a template giving one")]


class TransitionSpec(_Model):
    """Where an input leads: goto a node, repeat the prompt, switch language, or hang up; optionally set vars."""

    goto: Target | None = None
    say: Prompts | None = Field(None, description="said before moving on")
    set: dict[str, Any] | None = Field(None, description="vars to assign (values may be templates)")
    repeat: bool = Field(False, description="replay the current prompt and listen again")
    lang: str | None = Field(None, description="switch the call's language, then repeat the prompt")
    hangup: bool = False

    @model_validator(mode="after")
    def _one_move(self) -> TransitionSpec:
        moves = [name for name in ("goto", "repeat", "hangup") if getattr(self, name)]
        if len(moves) > 1:
            raise LocatedValueError(
                f"choose one of goto, repeat, hangup (got {', '.join(moves)})", hint="keep only one"
            )
        if not moves and self.lang is None:
            raise LocatedValueError(
                "a transition needs goto, repeat, hangup or lang", hint="e.g. {goto: some_node}"
            )
        return self


Transition = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[TransitionSpec, Tag("mapping")]],
    Discriminator(_kind),
]
"""A node name (shorthand for {goto: name}) or a TransitionSpec."""


def transition_spec(transition: str | TransitionSpec) -> TransitionSpec:
    return TransitionSpec(goto=transition) if isinstance(transition, str) else transition


def _check_dtmf_keys(keys: dict[str, Any]) -> dict[str, Any]:
    for key in keys:
        if not DTMF_KEYS.match(key):
            raise LocatedValueError(
                f"{key!r} is not a DTMF key sequence",
                loc=(key,),
                hint='use digits 0-9, * and # (quote them: "1")',
            )
    return keys


class GlobalHandlers(_Model):
    """Handlers active in every state — the anti-maze rule: the caller can always reach a human or leave."""

    intents: dict[str, Transition] = Field(default_factory=dict, description="intent name -> transition")
    dtmf: dict[str, Transition] = Field(default_factory=dict, description='keys, e.g. "0" -> transition')
    min_confidence: float = Field(
        0.7, ge=0, le=1,
        description="NLU confidence a global intent needs to be taken (garbled speech, e.g. 'yes please' heard "
                    "'US please' at 0.58 for agent, must be a nomatch, not a jump); local routes use their own",
    )

    @field_validator("dtmf")
    @classmethod
    def _dtmf_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_dtmf_keys(value)


# ----------------------------------------------------------------------------------------- listening


class RetryHandler(_Model):
    """Counted noinput/nomatch handling: say and retry until the count reaches `max`, then take `then`."""

    max: int = Field(3, ge=1, description="the failure that reaches this count takes `then`")
    say: Prompts | None = Field(None, description="said on each retry; a list is indexed by the count")
    reprompt: bool = Field(True, description="replay the node's prompt after `say` on a retry")
    then: Transition | None = Field(None, description="where to go at `max`; default: the dialplan fallback")


class EarlyEndpointSpec(_Model):
    """Semantic endpointing: end the turn after a short silence when what was heard already answers the listen
    (an in-scope intent above `min_confidence`, or a slot value that is complete: digits of the required length,
    yes/no, a choice, a date or time, a pattern); otherwise the turn ends after the usual end_silence_ms."""

    enabled: bool = Field(True, description="false: always wait for end_silence_ms")
    silence_ms: int = Field(300, ge=100, le=5000, description="silence after which a complete answer ends the turn")
    min_confidence: float = Field(0.7, ge=0, le=1, description="NLU intent confidence needed to end the turn early")


class Endpointing(_Model):
    """Hints for the session's listener."""

    timeout_ms: int = Field(5000, ge=500, le=60000, description="silence before NoInput")
    end_silence_ms: int = Field(800, ge=100, le=5000, description="trailing silence that ends an utterance")
    max_digits: int | None = Field(None, ge=1, le=64, description="DTMF digits before the input completes")
    terminator: str | None = Field("#", description="DTMF key that ends digit entry")
    hints: list[str] = Field(default_factory=list, description="words/phrases to bias recognition")
    early_endpoint: EarlyEndpointSpec | bool | None = Field(
        None, description="override the dialplan's early_endpoint here: false turns it off, a mapping changes fields"
    )


class ListenSpec(Endpointing):
    """Wait for speech and/or keys and route them."""

    intents: dict[str, Transition] = Field(default_factory=dict, description="intent -> transition")
    dtmf: dict[str, Transition] = Field(default_factory=dict, description="keys -> transition")
    noinput: RetryHandler = Field(default_factory=RetryHandler)
    nomatch: RetryHandler = Field(default_factory=RetryHandler)
    mode: InputMode | None = Field(None, description="default: from what intents/dtmf are listed")
    min_confidence: float = Field(0.0, ge=0, le=1, description="intents below this count as nomatch")

    @field_validator("dtmf")
    @classmethod
    def _dtmf_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_dtmf_keys(value)

    @model_validator(mode="after")
    def _has_routes(self) -> ListenSpec:
        if not self.intents and not self.dtmf:
            raise LocatedValueError(
                "listen needs intents or dtmf to route the caller's answer",
                hint="add intents: {name: node} or dtmf: {\"1\": node}",
            )
        return self


class ChoiceOption(_Model):
    """One option of a choice slot: words that select it and an optional key."""

    say: list[str] = Field(default_factory=list, description="words or phrases that pick it")
    dtmf: str | None = None


class CandidatesSpec(_Model):
    """The caller's own records a code answer is matched against (their orders, bookings, appointments).

    An answer with the same letters and digits as one record's code takes it; a near miss (one character misheard,
    dropped or added, or only its last 4+ characters) is read back with `confirm` and taken on a yes. Keys work
    too: the digits of A12-3001 (123001) match it."""

    items: str = Field(description='template of the list of records, e.g. "{{ caller.profile.orders }}"')
    value: str = Field(description="the field of a record that holds the code, e.g. order_id")
    confirm: Prompt | None = Field(
        None, description='read-back of a near match; reads `item`, e.g. "Is that your order of {{ item.item }}?"'
    )


def _slot_type_schema(schema: dict[str, Any]) -> None:
    """The ask's JSON Schema from the slot type registry: the type names, and each type's own rules."""
    kinds = slot_types.registered()
    schema["properties"]["type"].update(
        enum=list(kinds), description="; ".join(f"{name}: {kind.summary}" if kind.summary else name
                                            for name, kind in kinds.items()))
    rules = []
    for name, kind in kinds.items():
        fragment = kind.json_schema()
        if fragment:
            rules.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]}, "then": fragment})
    if rules:
        schema["allOf"] = rules


class AskSpec(Endpointing):
    """Fill one slot: prompt, parse the answer by type, reprompt, optionally confirm.

    What a type means (its settings, parsing, read-back, grammar) is its module in voicebot.dialplan.slot_types."""

    model_config = ConfigDict(json_schema_extra=_slot_type_schema)
    yaml_field_hints: ClassVar[dict[str, str]] = {
        "prompt": "the question is written as say: \"...\"",
        "name": "the slot's name is written as slot: name",
    }

    slot: str = Field(pattern=SLOT_NAME, description="the slot name; read it in templates as slots.<name>")
    type: str = Field(description="a slot type (voicebot.dialplan.slot_types)")
    say: Prompts = Field(description="the question")
    reprompts: list[Prompt] = Field(default_factory=list, description="used on retries, by attempt number")
    length: int | None = Field(None, ge=1, le=64, description="exact length (digits, text, pattern)")
    min_length: int | None = Field(None, ge=1, le=64)
    max_length: int | None = Field(None, ge=1, le=64)
    options: dict[str, ChoiceOption | list[str]] | None = Field(None, description="choice: option -> words")
    pattern: str | None = Field(None, description="pattern: a regular expression the answer must match")
    input: InputMode | None = Field(None, description="default: by type (both; text: speech)")
    entity: str | None = Field(None, description="NLU entity type that fills this slot (default by type)")
    confirm: bool | Prompt = Field(False, description='true, or the question: "You said {{value}}, right?"')
    candidates: CandidatesSpec | None = Field(None, description="match a code against the caller's own records")
    sensitive: bool = Field(False, description="mask in transcripts and pause recording while collecting")
    max_attempts: int = Field(3, ge=1, le=10)
    on_fail: Transition | None = Field(None, description="after max_attempts; default: the dialplan fallback")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        slot_types.get(value)  # an unknown name is an error with the closest type as hint
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise LocatedValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _type_needs(self) -> AskSpec:
        slot_types.check_ask(self)  # the settings its type requires, none that belong to other types
        return self


class LanguageOfferSpec(_Model):
    """Offer the other language when the caller keeps failing in a first menu (a Mandarin caller who hears English).

    At the caller's `after`-th failed turn (no input or not understood, together) in one of `nodes`, once a call,
    the bot says the retry words, then each language's offer in that language (the call's own language last), e.g.
    "普通话请按2" / "For English, press 1". On the next turn a key of `dtmf`, a request for a language, or speech in
    another language switches (the call keeps its node, slots and vars; the menu's failure counts start again) and
    the menu is replayed; other answers go to the menu as usual."""

    nodes: list[Annotated[str, Field(pattern=NODE_NAME)]] = Field(
        min_length=1, description="the first menus (listen nodes) where the offer is made")
    after: int = Field(2, ge=1, le=10, description="the failed turn in the node that brings the offer")
    say: dict[str, str] = Field(description="each language's offer in that language: {zh: 普通话请按2。, en: ...}")
    dtmf: dict[str, str] = Field(default_factory=dict, description='keys -> language: {"1": en-US, "2": zh-CN}')

    @field_validator("dtmf")
    @classmethod
    def _dtmf_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_dtmf_keys(value)


class OutOfScopeSpec(_Model):
    """The explicit out-of-scope path of the first menus: a request the menu does not cover is told what the bot
    can do and offered a person, instead of being answered with the nearest intent or a bare "sorry?".

    In `nodes` an intent (menu or global) counts only at `min_confidence` or above (per dialplan: bench/oos.py calibrates it on
    held-out out-of-scope requests, bench/results/oos.json); the listen's own `min_confidence` wins when higher.
    Recognised speech that reaches no route there is a failed turn (counted with the menu's nomatch) answered with
    `say` — what the bot can do, and the offer of a person. On the next turn a yes takes `person`, a no replays the
    menu, and anything else is a menu answer as usual."""

    nodes: list[Annotated[str, Field(pattern=NODE_NAME)]] = Field(
        min_length=1, description="the first menus (listen nodes) the path serves")
    min_confidence: float = Field(0.0, ge=0, le=1, description="NLU confidence an intent needs in these nodes")
    say: Prompts = Field(description="what the bot can do, and the offer of a person (a yes takes `person`)")
    person: Transition = Field(description="where a yes to the offer goes, e.g. {goto: to_agent, set: {reason: ...}}")


# ------------------------------------------------------------------------------------------- actions


class WebhookSpec(_Model):
    """Call the company's systems. The session performs it; the node waits for the result."""

    yaml_field_hints: ClassVar[dict[str, str]] = {
        "call": "name a configured webhook with name: bank.verify (call: is the subflow exit)",
        "timeout": "write timeout_s: <seconds>",
    }

    name: str | None = Field(None, description="a webhook configured by name (or a built-in demo backend)")
    url: str | None = Field(None, description="an http(s) URL; may be a template")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    args: dict[str, Any] = Field(default_factory=dict, description="JSON body (query for GET); templates")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(3.0, gt=0, le=60)
    retries: int = Field(0, ge=0, le=5)
    result: dict[str, str] = Field(
        default_factory=dict, description="vars to set from the response: {var: '{{result.field}}'}"
    )
    on_error: Transition | None = Field(None, description="on timeout, HTTP error or bad JSON")

    @model_validator(mode="after")
    def _name_or_url(self) -> WebhookSpec:
        if (self.name is None) == (self.url is None):
            raise LocatedValueError("a webhook needs exactly one of name or url", hint="e.g. name: bank.verify")
        return self


class AnswerSpec(_Model):
    """Answer the caller's question from the knowledge base (knowledge/<dialplan knowledge:>/<lang>/*.md).

    The best article in the call's language carrying one of `tags` and valid today is looked up with what the
    caller last said (`query` overrides it; after a keypad choice `topic`, else the tags, is the question). At `min_score` or
    above the bot speaks its short answer, then (`offer`) offers more detail or an agent: "more"/yes/1 reads the
    article's body, then `then`; no/2/silence goes to `then`; global handlers (agent, 0) work as everywhere.
    Below `min_score` the call takes `nomatch`. The call record keeps the article's id and version."""

    yaml_field_hints: ClassVar[dict[str, str]] = {
        "threshold": "write min_score: 0.5",
        "on_nomatch": "write nomatch: <node>",
        "collection": "the collection is the dialplan's top-level knowledge: <name>",
    }

    from_: Literal["knowledge"] = Field("knowledge", alias="from", description="where answers come from")
    query: str | None = Field(None, description="the question (template); default: what the caller last said")
    topic: LangText | None = Field(
        None, description="the question when the caller said nothing (a keypad choice), e.g. {en: refund policy, "
                          "zh: 退费政策}; default: the tags")
    tags: list[str] = Field(default_factory=list, description="only articles with one of these tags (none: all); "
                                                              'templates allowed: "compensation_{{ slots.region }}"')
    min_score: float = Field(0.35, ge=0, le=1, description="the best article must score this much (0..1)")
    top_k: int = Field(3, ge=1, le=10, description="how many candidates to retrieve (logged for review)")
    offer: bool | Prompt = Field(
        True, description="after the short answer offer more detail or an agent: true (default words), false, or "
                          "the prompt to say")
    then: Transition = Field(description="after the answer (and its detail, when asked for)")
    nomatch: Transition | None = Field(None, description="no article scores min_score; default: the fallback")


class BranchCase(_Model):
    """One case of a branch: `{if: expr, goto: node}` or the final `{else: node}`."""

    if_: str | None = Field(None, alias="if", description="a sandboxed Jinja expression")
    goto: Target | None = None
    else_: Target | None = Field(None, alias="else")
    set: dict[str, Any] | None = None
    say: Prompts | None = None

    @model_validator(mode="after")
    def _shape(self) -> BranchCase:
        if self.else_ is not None:
            if self.if_ is not None or self.goto is not None:
                raise LocatedValueError("an else case has no if/goto", hint="write {else: node}")
        elif self.if_ is None or self.goto is None:
            raise LocatedValueError("a case needs if and goto", hint='write {if: "slots.x > 1", goto: node}')
        return self

    @property
    def target(self) -> str:
        return self.else_ if self.else_ is not None else cast(str, self.goto)  # the validator requires goto without else


class QueueSpec(_Model):
    """Queue the caller for an agent (ACD): skills + priority routing, wait announcements, callback offer."""

    queue: str = Field(min_length=1)
    skills: list[str] = Field(default_factory=list, description='templates allowed, e.g. "lang:{{lang}}"')
    priority: int | str = Field(0, description="a number or a template giving one")
    context: dict[str, Any] = Field(default_factory=dict, description="extra data shown to the agent")
    announce_wait: bool = Field(False, description="tell the caller position and expected wait")
    wait_say: Prompt | None = Field(None, description="the announcement; {{position}}, {{minutes}}")
    offer_callback_after: int | None = Field(
        None, ge=0, description="offer a callback when the expected wait reaches this many seconds"
    )
    callback: Target | None = Field(None, description="where to go when the caller accepts the callback")
    on_failure: Transition | None = Field(None, description="when no agent can take the call")

    @model_validator(mode="after")
    def _callback_target(self) -> QueueSpec:
        if self.offer_callback_after is not None and self.callback is None:
            raise LocatedValueError(
                "offer_callback_after needs callback: <node> for the caller who accepts", loc=("offer_callback_after",)
            )
        return self


class TransferSpec(QueueSpec):
    """Hand the call over: to a SIP URI / number (`to`) or, with `queue`, into the ACD like enqueue."""

    queue: str | None = Field(None, min_length=1)  # type: ignore[assignment]  # optional here: `to` or `queue`
    to: str | None = Field(None, description="SIP URI or number; may be a template")

    @model_validator(mode="after")
    def _to_or_queue(self) -> TransferSpec:
        if (self.to is None) == (self.queue is None):
            raise LocatedValueError("transfer needs exactly one of to or queue", hint="e.g. queue: cards")
        if self.to is not None and (self.skills or self.announce_wait or self.offer_callback_after is not None):
            raise LocatedValueError("skills / announce_wait / offer_callback_after need queue, not to")
        return self


class CallSpec(_Model):
    """Run a subflow starting at `node`; its `return` comes back to `then`."""

    node: Target
    then: Target


class HangupSpec(_Model):
    reason: str = "completed"


# --------------------------------------------------------------------------------------------- nodes


class Node(_Model):
    """One step of the conversation. Parts run in order: set, say, ask, webhook, then the exit."""

    yaml_field_hints: ClassVar[dict[str, str]] = {
        "next": "write goto: <node>",
        "prompt": "write say: \"...\"",
        "if": "conditions go in branch: [{if: ..., goto: ...}, {else: ...}]",
    }

    set: dict[str, Any] | None = Field(None, description="vars to assign on entry (templates allowed)")
    recording: Literal["pause", "resume"] | None = Field(
        None, description="pause or resume the call recording on entry (e.g. around a card payment)")
    say: Prompts | None = None
    ask: AskSpec | None = None
    webhook: WebhookSpec | None = None
    listen: ListenSpec | None = None
    answer: AnswerSpec | None = Field(None, description="answer from the knowledge base (see AnswerSpec)")
    branch: list[BranchCase] | None = None
    goto: Target | None = None
    transfer: TransferSpec | None = None
    enqueue: QueueSpec | None = None
    call: CallSpec | None = None
    return_: bool | None = Field(None, alias="return", description="return: true ends a subflow")
    hangup: bool | str | HangupSpec | None = Field(None, description="true, a reason, or {reason: ...}")

    @model_validator(mode="after")
    def _one_exit(self) -> Node:
        exits = [name.rstrip("_") for name in EXIT_FIELDS if getattr(self, name) not in (None, False)]
        if len(exits) > 1:
            raise LocatedValueError(
                f"a node has one exit, this one has {len(exits)}: {', '.join(exits)}",
                hint="split it into two nodes joined by goto",
            )
        if not exits:
            raise LocatedValueError(
                "this node has no way forward",
                hint="add one of listen, answer, branch, goto, transfer, enqueue, call, return or hangup",
            )
        if self.branch is not None:
            if not self.branch:
                raise LocatedValueError("branch is empty", loc=("branch",))
            elses = [i for i, case in enumerate(self.branch) if case.else_ is not None]
            if elses != [len(self.branch) - 1]:
                raise LocatedValueError(
                    "branch must end with exactly one {else: node}",
                    loc=("branch",),
                    hint="add {else: node} as the last case so every call goes somewhere",
                )
        return self

    @property
    def exit_kind(self) -> str:
        return next(name.rstrip("_") for name in EXIT_FIELDS if getattr(self, name) not in (None, False))

    @property
    def hangup_reason(self) -> str:
        if isinstance(self.hangup, HangupSpec):
            return self.hangup.reason
        if isinstance(self.hangup, str):
            return self.hangup
        return "completed"

    @property
    def waits(self) -> bool:
        """Does the node stop for the caller or the outside world (so a cycle through it is no busy loop)?"""
        return bool(self.ask or self.webhook or self.listen or self.answer or self.transfer or self.enqueue)


class Dialplan(_Model):
    """A whole dialplan file."""

    yaml_field_hints: ClassVar[dict[str, str]] = {
        "name": "the dialplan's name is written as dialplan: <name>",
        "globals": "write global: (singular)",
    }

    dialplan: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the dialplan's name")
    description: str | None = None
    languages: list[Annotated[str, Field(pattern=LANG_TAG)]] = Field(
        default_factory=lambda: ["en-US"], min_length=1, description="the first is the default"
    )
    nlu: str | None = Field(None, description="NLU domain: nlu_models/<nlu>/{en,zh}/nlu.yml")
    knowledge: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$",
                                  description="knowledge collection answer: uses: knowledge/<knowledge>/{en,zh}/")
    start: str = Field(description="the first node")
    fallback: str | None = Field(None, description="where exhausted retries and errors go; default hang up")
    barge_in: BargeIn = Field("speech", description="default barge-in policy for prompts")
    auto_language: bool = Field(False, description="follow the language the recogniser hears")
    early_endpoint: EarlyEndpointSpec = Field(
        default_factory=EarlyEndpointSpec, description="semantic endpointing defaults for every listen and ask"
    )
    vars: dict[str, Any] = Field(default_factory=dict, description="initial vars")
    lookup: WebhookSpec | None = Field(None, description="caller profile lookup at call start: caller.profile")
    language_offer: LanguageOfferSpec | None = Field(
        None, description="offer the other language at the caller's second failure in the first menu")
    out_of_scope: OutOfScopeSpec | None = Field(
        None, description="the first menus' out-of-scope path: a calibrated threshold, what the bot can do, a person")
    global_: GlobalHandlers = Field(default_factory=GlobalHandlers, alias="global")
    nodes: dict[Annotated[str, Field(pattern=NODE_NAME)], Node] = Field(min_length=1)

    @model_validator(mode="after")
    def _knowledge_named(self) -> Dialplan:
        if self.knowledge is None:
            for name, node in self.nodes.items():
                if node.answer is not None:
                    raise LocatedValueError(
                        "answer: needs the dialplan's knowledge collection", loc=("nodes", name, "answer"),
                        hint=f"add knowledge: <collection> at the top (articles in knowledge/<collection>/), "
                             f"e.g. knowledge: {self.nlu or self.dialplan}")
        return self

    @property
    def default_lang(self) -> str:
        return self.languages[0]


def export_json_schema(path: str | Path | None = None) -> dict[str, Any]:
    """The JSON Schema of a dialplan file (for editor completion); written to `path` when given."""
    schema = Dialplan.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "voicebot dialplan"
    if path is not None:
        Path(path).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return schema
