"""A raw UDP SIP peer for tests that must send exactly the bytes they want (malformed, crafted, out of order)."""

from __future__ import annotations

import re
import secrets
import socket
import time
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int
    reason: str
    raw: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: str = ""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def parse_reply(data: bytes) -> Reply | None:
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
    if not m:
        return None
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Reply(int(m.group(1)), m.group(2), text, headers, body)


class RawPeer:
    """One UDP socket on loopback speaking hand-written SIP."""

    def __init__(self, server: tuple[str, int], bind_host: str = "127.0.0.1") -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind_host, 0))
        self.host, self.port = self.sock.getsockname()
        self.call_id = secrets.token_hex(8) + "@rawpeer"
        self.tag = secrets.token_hex(4)
        self.cseq = 1
        self.requests: list[str] = []  # requests the server sent us (BYE, NOTIFY, ...)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes | str) -> None:
        self.sock.sendto(data.encode() if isinstance(data, str) else data, self.server)

    def recv(self, timeout: float = 2.0) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(70000)
            return data
        except socket.timeout:
            return None

    def wait_reply(self, cseq_method: str, timeout: float = 5.0, final: bool = True) -> Reply | None:
        """Next response for ``cseq_method`` (skipping 1xx when ``final``); requests from the server are kept."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.recv(max(0.05, deadline - time.monotonic()))
            if data is None:
                return None
            reply = parse_reply(data)
            if reply is None:
                text = data.decode("utf-8", "replace")
                self.requests.append(text)
                if text.startswith(("BYE ", "NOTIFY ")):
                    self.send(ok_for(text))
                continue
            cseq = reply.header("cseq") or ""
            if not cseq.endswith(cseq_method):
                continue
            if final and reply.status < 200:
                continue
            return reply
        return None

    def request(self, method: str, uri: str, *, to_tag: str | None = None, extra: str = "", body: str = "",
                content_type: str | None = None, branch: str | None = None, cseq: int | None = None) -> str:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
        ctype = f"Content-Type: {content_type}\r\n" if content_type else ""
        return (f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch or 'z9hG4bK' + secrets.token_hex(6)}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:raw@{self.host}:{self.port}>;tag={self.tag}\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:raw@{self.host}:{self.port}>\r\n"
                f"{extra}{ctype}Content-Length: {len(body.encode())}\r\n\r\n{body}")


def ok_for(request: str) -> str:
    """A 200 OK echoing the request's Via/From/To/Call-ID/CSeq."""
    keep = [line for line in request.split("\r\n\r\n")[0].split("\r\n")[1:]
            if line.split(":")[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")]
    return "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"


def sdp_offer(host: str, port: int, payloads: str = "0 101", direction: str = "sendrecv",
              extra: str = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n") -> str:
    return (f"v=0\r\no=raw 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {payloads}\r\n{extra}a={direction}\r\n")


def media_port(sdp: str) -> int:
    m = re.search(r"^m=audio (\d+) ", sdp, re.M)
    assert m, f"no audio m-line in {sdp!r}"
    return int(m.group(1))
