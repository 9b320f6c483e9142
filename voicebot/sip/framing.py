"""SIP message framing on stream transports (RFC 3261 §18.3) and CRLF keep-alives (RFC 5626 §4.4.1).

Pure: bytes in, events out. On a stream the Content-Length header is mandatory and says where a message ends;
a missing or malformed one leaves no way to find the next message, so the framer fails for good and the
connection must be closed (after a 400 when the head allows one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PING = b"\r\n\r\n"  # RFC 5626 §4.4.1: the client's keep-alive ping
PONG = b"\r\n"  # the server's answer

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Frame:
    """One whole SIP message: head, blank line and exactly Content-Length body bytes."""

    data: bytes


@dataclass(frozen=True)
class Ping:
    """A double-CRLF keep-alive; answer with PONG."""


@dataclass(frozen=True)
class FramingError:
    """The stream cannot be framed any further; ``head`` is the offending message head (may be empty)."""

    reason: str
    head: bytes


Event = Frame | Ping | FramingError


class StreamFramer:
    """Cuts a byte stream into SIP messages; feed it whatever the socket delivered, in any pieces."""

    def __init__(self, max_message_bytes: int = 65535, max_head_bytes: int = 16384) -> None:
        self.max_message = max_message_bytes
        self.max_head = min(max_head_bytes, max_message_bytes)
        self._buf = bytearray()
        self.failed: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a whole message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        """Events for the bytes so far; after a FramingError every later call returns []."""
        if self.failed is not None:
            return []
        self._buf += data
        events: list[Event] = []
        while self._buf:
            event = self._next()
            if event is None:
                break
            events.append(event)
            if isinstance(event, FramingError):
                self.failed = event
                self._buf.clear()
                break
        return events

    def _next(self) -> Event | None:
        buf = self._buf
        if buf[:1] == b"\r" or buf[:1] == b"\n":
            if buf.startswith(PING):
                del buf[:4]
                return Ping()
            if len(buf) < 4 and PING.startswith(bytes(buf)):
                return None  # maybe the start of a ping: wait
            stripped = bytes(buf).lstrip(b"\r\n")  # a pong or stray line ends: skip them
            del buf[:len(buf) - len(stripped)]
            return self._next() if buf else None
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.max_head:
                return FramingError(f"message head exceeds {self.max_head} bytes", bytes(buf[:self.max_head]))
            return None
        head = bytes(buf[:end])
        if end > self.max_head:
            return FramingError(f"message head exceeds {self.max_head} bytes", head)
        values = {m.group(1) for m in _CONTENT_LENGTH.finditer(head.replace(b"\r\n", b"\n"))}
        if not values:
            return FramingError("Content-Length required on stream transports", head)
        if len(values) > 1:
            return FramingError("conflicting Content-Length header fields", head)
        text = values.pop()
        if not text.isdigit() or len(text) > 9:
            return FramingError(f"malformed Content-Length {text[:20].decode('latin-1')!r}", head)
        length = int(text)
        total = end + 4 + length
        if total > self.max_message:
            return FramingError(f"message of {total} bytes exceeds the {self.max_message}-byte limit", head)
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        del buf[:total]
        return Frame(frame)
