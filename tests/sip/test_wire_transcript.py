"""Wire behaviour of the UA, locked: one scripted conversation (out-of-dialog methods with and without an
application or a registrar, a whole call with in-dialog OPTIONS, INFO DTMF and its errors, UPDATE, re-INVITEs, REFER
accepted/refused/malformed, NOTIFY, a stale CSeq, BYE, a late CANCEL) on a fake transport and a fake clock; every
datagram the UA sends, random tags/branches/CSeqs masked, must equal golden/ua_wire.txt. The golden transcript was
recorded from the UA before the handler table (main at 26ed786): the table, CallTransport and call events changed
nothing on the wire. A change meant to alter the wire (a new header, a new extension) re-records it with
``UPDATE_GOLDEN=1 pytest tests/sip/test_wire_transcript.py`` and shows the difference in its diff."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import pytest

from voicebot.sip.call import SipCall
from voicebot.sip.message import SipRequest
from voicebot.sip.ua import UserAgent

GOLDEN = Path(__file__).parent / "golden" / "ua_wire.txt"
PEER = ("127.0.0.1", 5070)
SDP = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
Reply = tuple[int, str, list[tuple[str, str]]]


class Recorder:
    """The UA's socket: keeps every datagram, masked."""

    local_addr = ("127.0.0.1", 5060)

    def __init__(self, out: list[str]) -> None:
        self.out = out

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode()
        text = re.sub(r"tag=[0-9a-f]+", "tag=X", text)
        text = re.sub(r"branch=z9hG4bK[^;\r\n]*", "branch=B", text)
        if not text.startswith("SIP/2.0"):
            text = re.sub(r"CSeq: \d+", "CSeq: N", text)
            text = re.sub(r"Call-ID: \S+", "Call-ID: C", text)
        self.out.append(f"--> {addr}\n{text}")

    def close(self) -> None:
        pass


def req(method: str, n: int, *, to_tag: str = "", cseq: int | None = None, body: bytes = b"", ctype: str = "",
        call_id: str = "w-1@h", extra: str = "") -> bytes:
    to = "<sip:bot@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    ct = f"Content-Type: {ctype}\r\n" if ctype else ""
    return (f"{method} sip:bot@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-w{n}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=alice\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq or n} {method}\r\nContact: <sip:alice@127.0.0.1:5070>\r\n{extra}{ct}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def make(out: list[str], app: Any = None, register: Any = None) -> UserAgent:
    ua = UserAgent("127.0.0.1", 5060)
    ua.transport = Recorder(out)  # type: ignore[assignment]
    if app is not None:
        ua.accept_calls(app)
    if register is not None:
        ua.handle("REGISTER", lambda inc: inc.respond(*register(inc.request, inc.source)))
    return ua


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def conversation() -> list[str]:
    out: list[str] = []
    ua = make(out)  # out of dialog, no application
    for i, m in enumerate(["OPTIONS", "MESSAGE", "FOO", "REGISTER", "BYE", "INFO", "REFER", "NOTIFY", "UPDATE",
                           "CANCEL", "SUBSCRIBE", "PRACK"], 1):
        out.append(f"== {m}")
        ua._on_datagram(req(m, i), PEER)
    out.append("== INVITE, no application")
    ua._on_datagram(req("INVITE", 20, body=SDP, ctype="application/sdp", call_id="w-2@h"), PEER)
    await settle()
    out.append("== OPTIONS with To tag, no dialog")
    ua._on_datagram(req("OPTIONS", 21, to_tag="zz"), PEER)
    out.append("== re-INVITE, no dialog")
    ua._on_datagram(req("INVITE", 22, to_tag="zz", body=SDP, ctype="application/sdp"), PEER)
    await settle()

    def challenge(_req: SipRequest, _src: tuple[str, int]) -> Reply:
        return 401, "Unauthorized", [("WWW-Authenticate", 'Digest realm="r"')]

    ua = make(out, register=challenge)
    for i, m in enumerate(["REGISTER", "OPTIONS", "MESSAGE"], 30):
        out.append(f"== registrar {m}")
        ua._on_datagram(req(m, i), PEER)
    out.append("== registrar REGISTER with To tag")
    ua._on_datagram(req("REGISTER", 33, to_tag="q"), PEER)

    events: list[tuple[object, ...]] = []

    async def app(call: SipCall) -> None:
        call.on_reinvite = lambda sdp: asyncio.sleep(0, result=SDP)
        call.on_refer = lambda target, _r: "1001" in target
        call.events.dtmf.subscribe(lambda d, s: events.append(("dtmf", d, s)))
        call.events.notify.subscribe(lambda s, _b: events.append(("notify", s)))
        call.events.ended.subscribe(lambda c: events.append(("ended", c.end_reason)))
        call.ringing()
        await call.answer(SDP)
        await call.ended.wait()

    ua = make(out, app)
    out.append("== INVITE answered")
    ua._on_datagram(req("INVITE", 40, body=SDP, ctype="application/sdp", call_id="w-3@h"), PEER)
    await settle()
    tag = next(iter(ua._dialogs))[1]
    ua._on_datagram(req("ACK", 40, to_tag=tag, call_id="w-3@h"), PEER)
    await settle()
    steps: list[tuple[str, dict[str, Any]]] = [
        ("OPTIONS", {}), ("INFO", dict(body=b"Signal=7\r\nDuration=100\r\n", ctype="application/dtmf-relay")),
        ("INFO", {}), ("INFO", dict(body=b"x", ctype="application/dtmf-bogus")),
        ("INFO", dict(body=b"Signal=Z\r\n", ctype="application/dtmf-relay")),
        ("INFO", dict(body=b"11", ctype="application/dtmf")),
        ("UPDATE", {}), ("INVITE", dict(body=SDP, ctype="application/sdp")), ("ACK", {}), ("INVITE", {}),
        ("ACK", {}), ("REFER", dict(extra="Refer-To: <sip:1001@127.0.0.1>\r\n")),
        ("REFER", dict(extra="Refer-To: <sip:666@127.0.0.1>\r\n")), ("REFER", {}),
        ("NOTIFY", dict(body=b"SIP/2.0 200 OK\r\n", ctype="message/sipfrag", extra="Event: refer\r\n")),
        ("MESSAGE", {})]
    for n, (method, kw) in enumerate(steps, 41):
        out.append(f"== in dialog {method} {kw.get('ctype', '')}")
        ua._on_datagram(req(method, n, to_tag=tag, cseq=n - 1 if method == "ACK" else n, call_id="w-3@h", **kw),
                        PEER)
        await settle()
    out.append("== stale CSeq")
    ua._on_datagram(req("INFO", 90, to_tag=tag, cseq=3, call_id="w-3@h"), PEER)
    out.append("== BYE")
    ua._on_datagram(req("BYE", 91, to_tag=tag, call_id="w-3@h"), PEER)
    await settle()
    out.append(f"events {events}")
    out.append("== CANCEL after end")
    ua._on_datagram(req("CANCEL", 40, call_id="w-3@h"), PEER)
    await ua.stop(0.1)
    return out


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_every_datagram_the_ua_sends_matches_the_golden_transcript() -> None:
    transcript = "\n".join(await conversation()) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(transcript)
    expected = GOLDEN.read_text()
    assert transcript.splitlines() == expected.splitlines()
