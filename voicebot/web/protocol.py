"""The JSON messages of the call page's data channel and of POST /webrtc/offer (pure: parse, validate, encode).

Page → server: ``{"type": "dtmf", "digit": "5"}``, ``{"type": "hangup"}``.
Server → page: ``{"type": "caption", "who": "bot"|"caller", "text": "..."}``, ``{"type": "hangup", "reason": "..."}``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from voicebot.api.jsonbody import JsonBodyError, loads_bounded

DTMF_DIGITS = frozenset("0123456789*#ABCD")
CAPTION_SPEAKERS = frozenset({"bot", "caller"})
MAX_MESSAGE_CHARS = 4096
MAX_SDP_CHARS = 32 * 1024


class ProtocolError(ValueError):
    """A malformed data-channel message or offer; the text says what was wrong."""


@dataclass(frozen=True)
class DtmfMessage:
    digit: str
    type: str = "dtmf"


@dataclass(frozen=True)
class HangupMessage:
    reason: str = ""
    type: str = "hangup"


@dataclass(frozen=True)
class CaptionMessage:
    who: str
    text: str
    type: str = "caption"


ControlMessage = DtmfMessage | HangupMessage | CaptionMessage


def parse_message(raw: str | bytes) -> ControlMessage:
    """Decode one data-channel message; raises ProtocolError naming the problem."""
    data = _json_object(raw, "data-channel message", MAX_MESSAGE_CHARS)
    kind = data.get("type")
    if kind == "dtmf":
        digit = data.get("digit")
        if not isinstance(digit, str) or digit.upper() not in DTMF_DIGITS or len(digit) != 1:
            raise ProtocolError(f"dtmf message needs one digit of 0-9 * # A-D, got {digit!r}")
        return DtmfMessage(digit=digit.upper())
    if kind == "hangup":
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            raise ProtocolError(f"hangup reason must be a string, got {type(reason).__name__}")
        return HangupMessage(reason=reason[:200])
    if kind == "caption":
        who, text = data.get("who"), data.get("text")
        if who not in CAPTION_SPEAKERS or not isinstance(text, str):
            raise ProtocolError(f"caption needs who in {sorted(CAPTION_SPEAKERS)} and a text string, got {data!r}")
        return CaptionMessage(who=who, text=text)
    raise ProtocolError(f"unknown message type {kind!r}; expected 'dtmf', 'hangup' or 'caption'")


def encode_message(message: ControlMessage) -> str:
    if isinstance(message, CaptionMessage) and message.who not in CAPTION_SPEAKERS:
        raise ProtocolError(f"caption speaker must be one of {sorted(CAPTION_SPEAKERS)}, got {message.who!r}")
    return json.dumps(asdict(message), ensure_ascii=False)


@dataclass(frozen=True)
class Offer:
    sdp: str


def parse_offer(raw: str | bytes) -> Offer:
    """Validate the body of POST /webrtc/offer: ``{"type": "offer", "sdp": "v=0..."}`` with an audio m-line."""
    data = _json_object(raw, "offer", MAX_SDP_CHARS)
    if data.get("type") != "offer":
        raise ProtocolError(f"offer body needs \"type\": \"offer\", got {data.get('type')!r}")
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ProtocolError("offer body needs \"sdp\": a session description starting with 'v=0'")
    if "\nm=audio " not in sdp.replace("\r\n", "\n"):
        raise ProtocolError("the offer has no audio m-line: call getUserMedia({audio: true}) and add the track "
                            "before createOffer()")
    return Offer(sdp=sdp)


def _json_object(raw: str | bytes, what: str, limit: int) -> dict[str, Any]:
    if len(raw) > limit:
        raise ProtocolError(f"{what} too long: {len(raw)} characters, at most {limit}")
    try:
        data = loads_bounded(raw)
    except JsonBodyError as exc:
        raise ProtocolError(f"{what} is not acceptable: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data
