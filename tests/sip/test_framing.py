"""Stream framing by Content-Length and CRLF keep-alives, without sockets."""

from __future__ import annotations

from voicebot.sip.framing import Frame, FramingError, Ping, StreamFramer


def message(body: bytes = b"", *, length: int | None = None, name: str = "Content-Length",
            call_id: str = "a@h") -> bytes:
    cl = len(body) if length is None else length
    return (f"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
            f"From: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
            f"{name}: {cl}\r\n\r\n").encode() + body


def frames(events: list) -> list[bytes]:  # type: ignore[type-arg]
    return [e.data for e in events if isinstance(e, Frame)]


def test_a_message_cut_anywhere_is_delivered_whole_once() -> None:
    msg = message(b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")
    for cut in range(1, len(msg)):
        framer = StreamFramer()
        first = framer.feed(msg[:cut])
        second = framer.feed(msg[cut:])
        assert first == [] and frames(second) == [msg], cut
        assert framer.buffered == 0


def test_byte_by_byte() -> None:
    msg = message(b"hello")
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(len(msg)):
        out += frames(framer.feed(msg[i:i + 1]))
    assert out == [msg]


def test_two_messages_in_one_segment_and_a_third_begun() -> None:
    one, two, three = message(b"1", call_id="1@h"), message(b"22", call_id="2@h"), message(b"333", call_id="3@h")
    framer = StreamFramer()
    assert frames(framer.feed(one + two + three[:10])) == [one, two]
    assert framer.buffered == 10
    assert frames(framer.feed(three[10:])) == [three]


def test_body_is_cut_at_content_length_and_the_rest_starts_the_next_message() -> None:
    framer = StreamFramer()
    msg = message(b"abc")
    events = framer.feed(msg + b"OPTIONS")  # the next message's first bytes
    assert frames(events) == [msg]
    assert framer.buffered == len(b"OPTIONS")


def test_compact_content_length_is_understood() -> None:
    msg = message(b"xyz", name="l")
    assert frames(StreamFramer().feed(msg)) == [msg]


def test_double_crlf_is_a_ping_single_crlf_is_skipped() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [Ping()]
    assert framer.feed(b"\r\n") == []  # could still become a ping
    msg = message()
    assert frames(framer.feed(msg)) == [msg]  # the lone CRLF (a pong) was skipped
    assert framer.feed(b"\r\n") == [] and framer.feed(b"\r\n") == [Ping()]


def test_ping_between_messages() -> None:
    msg = message()
    events = StreamFramer().feed(msg + b"\r\n\r\n" + msg)
    assert events == [Frame(msg), Ping(), Frame(msg)]


def test_missing_content_length_fails_the_stream() -> None:
    framer = StreamFramer()
    msg = message().replace(b"Content-Length: 0\r\n", b"")
    events = framer.feed(msg)
    assert len(events) == 1 and isinstance(events[0], FramingError)
    assert "Content-Length required" in events[0].reason
    assert events[0].head.startswith(b"OPTIONS sip:x@127.0.0.1")
    assert framer.feed(message()) == []  # no resynchronising after a framing error


def test_malformed_and_conflicting_content_length() -> None:
    bad = message().replace(b"Content-Length: 0", b"Content-Length: -5")
    assert "malformed Content-Length" in StreamFramer().feed(bad)[0].reason  # type: ignore[union-attr]
    both = message(b"ab").replace(b"Content-Length: 2\r\n", b"Content-Length: 2\r\nl: 3\r\n")
    assert "conflicting" in StreamFramer().feed(both)[0].reason  # type: ignore[union-attr]


def test_oversized_body_is_refused_before_it_is_buffered() -> None:
    framer = StreamFramer(max_message_bytes=2000)
    head = message(length=1_000_000)
    events = framer.feed(head + b"x" * 100)
    assert len(events) == 1 and isinstance(events[0], FramingError)
    assert "exceeds the 2000-byte limit" in events[0].reason
    assert framer.buffered == 0


def test_endless_head_is_refused() -> None:
    framer = StreamFramer(max_message_bytes=65535, max_head_bytes=4096)
    events = framer.feed(b"OPTIONS sip:x@h SIP/2.0\r\n" + b"X-Junk: y\r\n" * 500)
    assert len(events) == 1 and isinstance(events[0], FramingError)
    assert "head exceeds 4096" in events[0].reason


def test_long_message_over_many_segments() -> None:
    body = b"a=x-filler:" + b"z" * 3000 + b"\r\n"
    msg = message(body)
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(msg), 1460):
        out += frames(framer.feed(msg[i:i + 1460]))
    assert out == [msg] and len(msg) > 3000
