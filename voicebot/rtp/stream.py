"""RtpStream: one call's media — a UDP socket pair, G.711 in/out, DTMF, symmetric RTP, basic RTCP, SRTP.

Sending and playout are driven by the process-wide MediaTicker (one callback per stream); the
socket callbacks only parse, decode and buffer. When nothing is queued, silence is sent.
With SRTP (``set_srtp``) packets are protected just before sending and unprotected first thing on arrival, so
latching, DTMF, the jitter buffer, recording and bridges only ever see authenticated, decrypted media.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import time
from collections import deque
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from .dtmf import DtmfPacket, DtmfReceiver, DtmfSender
from .g711 import Codec, get_codec
from .inband_dtmf import InbandDtmfDetector
from .jitter import JitterBuffer
from .packet import HEADER, RtpError, RtpPacket, is_rtcp
from .payloads import encode_shared
from .ports import PortAllocator, PortsExhausted
from .reception import ReceptionStats
from .srtp import SdesKeys, SrtpContext, SrtpDropped
from .rtcp import Bye, ReceiverReport, RtcpError, SenderReport, SourceDescription, build_compound, parse_compound
from .ticker import MediaTicker, get_ticker

__all__ = ["RtpStream", "PortAllocator", "PortsExhausted"]

log = logging.getLogger(__name__)

Pcm = npt.NDArray[np.int16]
Address = tuple[str, int]

FRAME_SAMPLES = 160  # 20 ms at 8 kHz
_HEADER_SIZE = HEADER.size
_PLAIN_HEADER = 0x80  # version 2, no padding, no extension, no CSRCs
RTCP_INTERVAL = 5.0  # seconds between sender reports
DTMF_GAP_TICKS = 3  # silence between sent digits
WARNING_INTERVAL = 10.0  # seconds between repeated warnings of one kind per stream
_NTP_EPOCH_OFFSET = 2208988800


def _ntp_now() -> int:
    now = time.time() + _NTP_EPOCH_OFFSET
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * (1 << 32))


def _host_port(addr: Any) -> Address:
    return (addr[0], addr[1])


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, Any], None]) -> None:
        self._handler = handler

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._handler(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        log.debug("RTP socket error: %s", exc)


class RtpStream:
    """Media for one call. Create with `await RtpStream.open(...)`."""

    def __init__(self, codec: Codec, payload_type: int, dtmf_payload_type: int | None, allocator: PortAllocator,
                 port: int, ticker: MediaTicker, jitter_depth: int, rtcp_interval: float) -> None:
        self.codec = codec
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.local_port = port
        self.ssrc = secrets.randbits(32)
        self.cname = f"voicebot-{self.ssrc:08x}"
        self._allocator = allocator
        self._ticker = ticker
        self._loop = asyncio.get_running_loop()
        self._rtp: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._closed = False
        # sending
        self._sequence = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._remote: Address | None = None
        self._remote_confirmed = True  # False: the SDP address is only a hint until the peer's RTP arrives
        self._latched: Address | None = None
        self._rtcp_remote: Address | None = None
        self._held = False
        self._marker = True
        self._silence = bytes([codec.silence_byte]) * FRAME_SAMPLES
        self._playback: deque[bytes] = deque()
        self._play_offset = 0
        self._dtmf_out: deque[DtmfPacket | None] = deque()  # None = one tick of audio gap
        self._dtmf_timestamp: int | None = None
        self._dtmf_sender = DtmfSender()
        self._rtcp_every = max(1, round(rtcp_interval / ticker.period))  # in ticks
        self._rtcp_phase = secrets.randbelow(self._rtcp_every)  # spread reports of many calls over time
        # receiving
        self._jitter = JitterBuffer(depth=jitter_depth, frame_samples=FRAME_SAMPLES)
        self._reception = ReceptionStats(codec.sample_rate)
        self._dtmf_in = DtmfReceiver()
        self._inband: InbandDtmfDetector | None = None  # tones in the audio, for peers without telephone-event
        self._dtmf_silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._dtmf_silence.setflags(write=False)
        self._on_audio: Callable[[Pcm], None] | None = None
        self._on_dtmf: Callable[[str], None] | None = None
        self._on_playback_done: Callable[[], None] | None = None
        self._on_tick_media: Callable[[Pcm | None, bytes | None], None] | None = None
        self._last_warning: dict[str, float] = {}
        self._counters: dict[str, int] = dict.fromkeys((
            "packets_sent", "octets_sent", "packets_received", "octets_received", "malformed",
            "wrong_source", "unexpected_payload_type", "dtmf_sent", "dtmf_received", "rtcp_sent",
            "rtcp_received", "rtcp_malformed", "callback_errors", "srtp_auth_failed", "srtp_replayed",
            "srtp_errors", "srtp_no_key", "srtp_rekeys", "dtmf_inband"), 0)
        self._srtp: SrtpContext | None = None
        self._srtp_previous: SrtpContext | None = None  # the peer's old key, still accepted until the new one works
        self._srtp_pending = False
        self._sdes_keys: SdesKeys | None = None
        self._remote_report: dict[str, float] = {}
        self._retired: set[Address] = set()  # media sources of a peer given up (reset_peer): dropped from then on

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    async def open(cls, local_host: str, allocator: PortAllocator, codec: str = "PCMU", payload_type: int = 0,
                   dtmf_payload_type: int | None = 101, *, ticker: MediaTicker | None = None,
                   jitter_depth: int = 3, rtcp_interval: float = RTCP_INTERVAL) -> RtpStream:
        """Bind an RTP/RTCP socket pair from the allocator's range and join the media ticker."""
        chosen = get_codec(codec)
        for value, what in ((payload_type, "payload type"), (dtmf_payload_type, "DTMF payload type")):
            if value is not None and not 0 <= value <= 127:
                raise ValueError(f"RTP {what} {value} outside 0..127")
        if dtmf_payload_type is not None and dtmf_payload_type == payload_type:
            raise ValueError(f"DTMF payload type {dtmf_payload_type} equals the audio payload type")
        loop = asyncio.get_running_loop()
        last_error: OSError | None = None
        for _ in range(allocator.capacity):
            port = allocator.acquire()
            stream = cls(chosen, payload_type, dtmf_payload_type, allocator, port, ticker or get_ticker(), jitter_depth,
                         rtcp_interval)
            try:
                stream._rtp, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(stream._on_rtp_datagram), local_addr=(local_host, port))
                stream._rtcp, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(stream._on_rtcp_datagram), local_addr=(local_host, port + 1))
            except OSError as exc:
                last_error = exc
                for transport in (stream._rtp, stream._rtcp):
                    if transport is not None:
                        transport.close()
                allocator.release(port)
                continue
            stream._ticker.add(stream._on_tick)
            return stream
        raise OSError(f"no bindable RTP port pair on {local_host} in [{allocator.start}, {allocator.end}): "
                      f"{last_error}")

    async def close(self) -> None:
        """Send RTCP BYE, leave the ticker, close the sockets and release the ports. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ticker.remove(self._on_tick)
        try:
            self._send_rtcp(bye=True)
        except OSError:
            pass
        for transport in (self._rtp, self._rtcp):
            if transport is not None:
                transport.close()
        self._allocator.release(self.local_port)
        await asyncio.sleep(0)  # let the transports finish closing

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- control
    def set_remote(self, host: str, port: int, *, confirmed: bool = True) -> None:
        """Where to send (from SDP). A changed address drops any latch so the new peer can be learnt.

        ``confirmed=False`` (an SDP address the signalling peer could have pointed at a third party): nothing is
        sent, RTCP included, until RTP from the peer arrives; then media goes to that source (latching), so a
        crafted offer cannot make this node stream to someone else (RTP reflection/amplification)."""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"remote RTP host must be an IP address, got {host!r}") from None
        if not 0 < port < 65536:
            raise ValueError(f"remote RTP port {port} outside 1..65535")
        remote = (host, port)
        if remote != self._remote or confirmed != self._remote_confirmed:
            self._remote = remote
            self._remote_confirmed = confirmed
            self._latched = None
            self._rtcp_remote = None

    def reset_peer(self, *, srtp_expected: bool = False) -> None:
        """Forget the media peer an early answer set up (a 183 from a trunk proxy whose INVITE then failed over
        to the next proxy): nothing is sent until the next answer; that peer's address and latched source are
        retired (their late packets dropped, not latched); SRTP keys dropped (``srtp_expected``: wait for new
        ones; the next answer keys afresh, not a rekey accepting the old key); the sequence, SSRC and jitter
        state of the old source, a DTMF event in progress and in-band detection all start over."""
        self._retired.update(a for a in (self._remote, self._latched) if a is not None)
        self._remote = self._latched = self._rtcp_remote = None
        self._remote_confirmed = True
        self._srtp = self._srtp_previous = None
        self._sdes_keys = None
        self._srtp_pending = srtp_expected
        self._jitter.reset()
        self._reception = ReceptionStats(self.codec.sample_rate)
        self._dtmf_in = DtmfReceiver()
        self._inband = None
        self._marker = True

    @property
    def remote(self) -> Address | None:
        """Where RTP is sent now: the latched source once RTP has arrived, else the confirmed SDP address."""
        return self._send_target()

    def _send_target(self) -> Address | None:
        if self._latched is not None:
            return self._latched
        return self._remote if self._remote_confirmed else None

    def set_hold(self, held: bool) -> None:
        """Stop (True) or resume (False) sending; queued audio waits while held."""
        if self._held and not held:
            self._marker = True
        self._held = held

    @property
    def held(self) -> bool:
        return self._held

    def expect_srtp(self) -> None:
        """SRTP was offered but the keys are not agreed yet: drop what arrives until ``set_srtp``."""
        if self._srtp is None:
            self._srtp_pending = True

    def set_srtp(self, context: SrtpContext | None) -> None:
        """Protect media with ``context`` from now on (None: plain RTP). A new context while one is active is a
        rekey: packets under the peer's previous key are still accepted until one under the new key arrives."""
        if context is not None and self._srtp is not None:
            self._counters["srtp_rekeys"] += 1
            self._srtp_previous = self._srtp
        else:
            self._srtp_previous = None
        self._srtp = context
        self._srtp_pending = False

    def apply_sdes(self, keys: SdesKeys | None) -> None:
        """Key SRTP from an SDES negotiation: new keys (first keying or a rekey) get a new context, the keys
        already in force keep it, None switches to plain RTP (also after ``expect_srtp``: the answer declined)."""
        if keys is None:
            self._srtp_pending = False
        if keys == self._sdes_keys and (keys is None) == (self._srtp is None):
            return
        self.set_srtp(SrtpContext.from_keys(keys) if keys is not None else None)
        self._sdes_keys = keys

    @property
    def srtp(self) -> bool:
        """Whether media on this stream is SRTP."""
        return self._srtp is not None

    def play(self, pcm8k: Pcm) -> None:
        """Queue 8 kHz int16 mono audio to send after whatever is already queued. A read-only array (a cached
        prompt, hold audio) is encoded once per codec and its payload shared by every stream playing it."""
        if not isinstance(pcm8k, np.ndarray) or pcm8k.dtype != np.int16 or pcm8k.ndim != 1:
            raise TypeError("play() needs a 1-D numpy int16 array of 8 kHz samples")
        if len(pcm8k):
            self._playback.append(encode_shared(self.codec, pcm8k))

    def play_live(self, pcm8k: Pcm, max_backlog: int) -> None:
        """Queue relayed live audio (a bridge): when more than `max_backlog` chunks wait, what waits is dropped
        first, so the delay stays bounded (latency beats completeness)."""
        if len(self._playback) > max_backlog:
            self.stop_playback()
        self.play(pcm8k)

    def set_codec(self, codec: str, payload_type: int) -> None:
        """Switch the audio codec (after the peer answered our multi-codec offer with another one)."""
        chosen = get_codec(codec)
        self.codec = chosen
        self.payload_type = payload_type
        self._silence = bytes([chosen.silence_byte]) * FRAME_SAMPLES
        self._playback.clear()
        self._play_offset = 0

    def stop_playback(self) -> None:
        """Drop all queued audio at once (barge-in)."""
        self._playback.clear()
        self._play_offset = 0

    @property
    def playing(self) -> bool:
        return bool(self._playback)

    def send_dtmf(self, digits: str, duration_ms: int = 100, volume: int = 10) -> None:
        """Queue RFC 4733 events for each digit; audio is muted while they are sent."""
        if self.dtmf_payload_type is None:
            raise RuntimeError("this stream has no telephone-event payload type negotiated")
        batches = [self._dtmf_sender.packets(digit, duration_ms, volume) for digit in digits]
        for batch in batches:
            self._dtmf_out.extend(batch)
            self._dtmf_out.extend([None] * DTMF_GAP_TICKS)

    def on_audio(self, callback: Callable[[Pcm], None] | None) -> None:
        """Receive one 160-sample int16 frame per 20 ms once the far end's audio has started
        (concealment frames fill losses and pauses). Frames are read-only or fresh arrays."""
        self._on_audio = callback

    def on_dtmf(self, callback: Callable[[str], None] | None) -> None:
        """Digits as they start: RFC 4733 events, and tones in the audio while in-band detection is on."""
        self._on_dtmf = callback

    def detect_inband_dtmf(self, enabled: bool = True) -> None:
        """Look for keypad tones in the received audio (the peer negotiated no telephone-event); the digits go to
        the ``on_dtmf`` callback like RFC 4733 ones."""
        if not enabled:
            self._inband = None
        elif self._inband is None:
            self._inband = InbandDtmfDetector()

    @property
    def inband_dtmf(self) -> bool:
        """Whether in-band DTMF detection is on."""
        return self._inband is not None

    def on_playback_done(self, callback: Callable[[], None] | None) -> None:
        """Called once each time the playback queue runs empty (not after stop_playback)."""
        self._on_playback_done = callback

    @property
    def stats(self) -> dict[str, Any]:
        jitter = self._jitter.stats
        result: dict[str, Any] = dict(self._counters)
        result.update(
            jitter_lost=jitter.lost, jitter_late=jitter.late, jitter_duplicate=jitter.duplicate,
            jitter_reordered=jitter.reordered, jitter_concealed=jitter.concealed, jitter_overflow=jitter.overflow,
            interarrival_jitter_ms=self._reception.jitter * 1000.0 / self.codec.sample_rate,
            cumulative_lost=self._reception.cumulative_lost,
            latched=self._latched,
            dtmf_malformed=self._dtmf_in.malformed,
            srtp=self._srtp.suite if self._srtp is not None else None,
        )
        result.update(self._remote_report)
        return result

    # ---------------------------------------------------------------- ticker
    def _on_tick(self, index: int) -> None:
        jitter = self._jitter
        if self._on_audio is None and self._on_tick_media is None and jitter.idle:
            frame = None  # nobody takes caller audio (e.g. waiting in a queue) and none is buffered: no concealment
        else:
            frame = jitter.pop()
        if frame is not None and self._on_audio is not None:
            self._call(self._on_audio, frame)
        if frame is not None and self._inband is not None:
            self._inband_digits(self._inband.feed(frame))
        sent = self._send_tick(index)
        if self._on_tick_media is not None:
            self._call(self._on_tick_media, frame, sent)

    def _inband_digits(self, digits: list[str]) -> None:
        for digit in digits:
            self._counters["dtmf_received"] += 1
            self._counters["dtmf_inband"] += 1
            if self._on_dtmf is not None:
                self._call(self._on_dtmf, digit)

    def _send_tick(self, index: int) -> bytes | None:
        """Send this tick's packet; returns the audio payload sent (None: nothing, or a DTMF event)."""
        self._timestamp = (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        target = self._send_target()
        if target is None or self._rtp is None:
            return None
        if index % self._rtcp_every == self._rtcp_phase:
            self._send_rtcp()  # RTCP continues while on hold
        if self._held:
            return None
        item = self._dtmf_out.popleft() if self._dtmf_out else None
        if item is not None:
            if self._dtmf_timestamp is None or item.marker:
                self._dtmf_timestamp = self._timestamp
            assert self.dtmf_payload_type is not None  # send_dtmf queues events only when it is negotiated
            self._send(self.dtmf_payload_type, item.payload, item.marker, self._dtmf_timestamp, target)
            self._counters["dtmf_sent"] += 1
            return None
        self._dtmf_timestamp = None
        payload = self._next_payload() if self._playback else self._silence
        self._send(self.payload_type, payload, self._marker, self._timestamp, target)
        self._marker = False
        return payload

    def on_tick_media(self, callback: Callable[[Pcm | None, bytes | None], None] | None) -> None:
        """Per tick, aligned: (caller frame or None, encoded audio payload sent or None) — for call recording."""
        self._on_tick_media = callback

    def _send(self, payload_type: int, payload: bytes, marker: bool, timestamp: int, target: Address) -> None:
        data = HEADER.pack(0x80, payload_type | (0x80 if marker else 0), self._sequence, timestamp, self.ssrc) + payload
        if self._srtp is not None:
            data = self._srtp.protect(data)
        self._sequence = (self._sequence + 1) & 0xFFFF
        assert self._rtp is not None  # _send_tick sends only with an open socket
        self._rtp.sendto(data, target)
        counters = self._counters
        counters["packets_sent"] += 1
        counters["octets_sent"] += len(payload)

    def _next_payload(self) -> bytes:
        chunk = self._playback[0]
        start = self._play_offset
        end = start + FRAME_SAMPLES
        if end < len(chunk):
            self._play_offset = end
            return chunk[start:end]
        parts = [chunk[start:]]
        self._playback.popleft()
        needed = end - len(chunk)
        while needed > 0 and self._playback:
            chunk = self._playback[0]
            if needed < len(chunk):
                parts.append(chunk[:needed])
                self._play_offset = needed
                return b"".join(parts)
            parts.append(chunk)
            self._playback.popleft()
            needed -= len(chunk)
        self._play_offset = 0
        if needed > 0:
            parts.append(self._silence[:needed])
        if not self._playback and self._on_playback_done is not None:
            self._call(self._on_playback_done)
        return b"".join(parts)

    # ---------------------------------------------------------------- receiving
    def _on_rtp_datagram(self, data: bytes, addr: Any) -> None:
        counters = self._counters
        if is_rtcp(data):  # rtcp-mux peers
            self._on_rtcp_datagram(data, addr)
            return
        source = _host_port(addr)
        latched = self._latched
        if latched is not None and source != latched:
            counters["wrong_source"] += 1
            self._warn("wrong_source", "RTP from unexpected source %s:%s dropped (latched to %s:%s)",
                       source[0], source[1], latched[0], latched[1])
            return
        if latched is None and self._retired and source in self._retired and source != self._remote:
            counters["wrong_source"] += 1  # the media of a peer given up (reset_peer) must not be latched
            return
        if self._srtp is not None or self._srtp_pending:
            plain = self._unprotect(data, source)
            if plain is None:
                return
            data = plain
        packet: RtpPacket | None = None
        if len(data) >= _HEADER_SIZE and data[0] == _PLAIN_HEADER:
            # fast path, the usual case: no padding, extension or CSRCs; no packet object built
            _, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
            payload_type = second & 0x7F
            payload: bytes | memoryview = memoryview(data)[_HEADER_SIZE:]
        else:
            try:
                packet = RtpPacket.parse(data)
            except RtpError as exc:
                counters["malformed"] += 1
                self._warn("malformed", "malformed RTP from %s:%s dropped: %s", source[0], source[1], exc)
                return
            payload_type, sequence, timestamp, ssrc = packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc
            payload = packet.payload
        is_audio = payload_type == self.payload_type
        if not is_audio and payload_type != self.dtmf_payload_type:
            counters["unexpected_payload_type"] += 1
            return
        if not payload:
            counters["malformed"] += 1
            self._warn("malformed", "RTP without payload from %s:%s dropped", source[0], source[1])
            return
        if latched is None:
            self._latched = source
            log.debug("RTP stream %d latched to %s:%s", self.local_port, source[0], source[1])
        counters["packets_received"] += 1
        counters["octets_received"] += len(payload)
        reception = self._reception
        if ssrc != reception.ssrc:
            reception.reset(ssrc)
        reception.update(sequence, timestamp if is_audio else None, self._loop.time())
        if is_audio:
            self._jitter.push(sequence, self.codec.decode(payload), ssrc)
            return
        self._jitter.push(sequence, self._dtmf_silence, ssrc)  # keep the sequence gapless
        if packet is None:
            packet = RtpPacket(payload_type, sequence, timestamp, ssrc, bytes(payload), bool(second & 0x80))
        digit = self._dtmf_in.feed(packet)
        if digit is not None:
            counters["dtmf_received"] += 1
            if self._on_dtmf is not None:
                self._call(self._on_dtmf, digit)

    def _unprotect(self, data: bytes, source: Address, rtcp: bool = False) -> bytes | None:
        """The authenticated plain packet, or None (dropped, counted, one warning per interval)."""
        srtp = self._srtp
        if srtp is None:
            self._counters["srtp_no_key"] += 1
            return None
        try:
            return self._unprotect_under_either_key(srtp, data, rtcp)
        except SrtpDropped as exc:
            counter = {"auth": "srtp_auth_failed", "replay": "srtp_replayed"}.get(exc.kind, "srtp_errors")
            self._counters[counter] += 1
            self._warn("srtp", "SRTP%s packet from %s:%s dropped (%s); %d auth failures, %d replays so far",
                       "C" if rtcp else "", source[0], source[1], exc.kind, self._counters["srtp_auth_failed"],
                       self._counters["srtp_replayed"])
            return None

    def _unprotect_under_either_key(self, srtp: SrtpContext, data: bytes, rtcp: bool) -> bytes:
        """RTP or RTCP under the current key or, during a rekey, the peer's previous one (an RTCP report sent
        before the peer switched is in flight like its RTP). The first RTP packet under the new key retires
        the old one."""
        previous = self._srtp_previous
        if previous is None:
            return srtp.unprotect_rtcp(data) if rtcp else srtp.unprotect(data)
        try:
            plain = srtp.unprotect_rtcp(data, count_drop=False) if rtcp else srtp.unprotect(data, count_drop=False)
        except SrtpDropped:
            return previous.unprotect_rtcp(data) if rtcp else previous.unprotect(data)
        if not rtcp:
            self._srtp_previous = None  # the new key works: the old one is retired
        return plain

    def _on_rtcp_datagram(self, data: bytes, addr: Any) -> None:
        if self._srtp is not None or self._srtp_pending:
            plain = self._unprotect(data, _host_port(addr), rtcp=True)
            if plain is None:
                return
            data = plain
        try:
            packets = parse_compound(data)
        except RtcpError as exc:
            self._counters["rtcp_malformed"] += 1
            self._warn("rtcp_malformed", "malformed RTCP from %s:%s dropped: %s", addr[0], addr[1], exc)
            return
        self._counters["rtcp_received"] += 1
        if self._rtcp_remote is None:
            self._rtcp_remote = _host_port(addr)
        now = self._loop.time()
        for packet in packets:
            if isinstance(packet, SenderReport):
                self._reception.on_sender_report(packet.ntp_timestamp, now)
            if isinstance(packet, (SenderReport, ReceiverReport)):
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self._remote_report = {
                            "remote_fraction_lost": block.fraction_lost / 256.0,
                            "remote_cumulative_lost": block.cumulative_lost,
                            "remote_jitter_ms": block.jitter * 1000.0 / self.codec.sample_rate,
                        }
                        if block.last_sr:
                            middle = (_ntp_now() >> 16) & 0xFFFFFFFF
                            rtt = ((middle - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF) / 65536.0
                            self._remote_report["round_trip_ms"] = rtt * 1000.0
            elif isinstance(packet, Bye):
                self._remote_report["remote_bye"] = True

    def _send_rtcp(self, bye: bool = False) -> None:
        base = self._send_target()
        if base is None:
            return  # no verified peer yet: send nothing at all
        target = self._rtcp_remote or (base[0], base[1] + 1)
        blocks = (self._reception.report_block(self._loop.time()),) if self._reception.received else ()
        counters = self._counters
        if counters["packets_sent"]:
            report: SenderReport | ReceiverReport = SenderReport(
                self.ssrc, _ntp_now(), self._timestamp, counters["packets_sent"], counters["octets_sent"], blocks)
        else:
            report = ReceiverReport(self.ssrc, blocks)
        parts: list[Any] = [report, SourceDescription(self.ssrc, self.cname)]
        if bye:
            parts.append(Bye((self.ssrc,)))
        if self._rtcp is not None:
            data = build_compound(*parts)
            self._rtcp.sendto(data if self._srtp is None else self._srtp.protect_rtcp(data), target)
            counters["rtcp_sent"] += 1

    # ---------------------------------------------------------------- helpers
    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            self._counters["callback_errors"] += 1
            if self._may_warn("callback"):
                log.exception("RTP stream %d: callback %r failed", self.local_port, callback)

    def _may_warn(self, kind: str) -> bool:
        now = self._loop.time()
        last = self._last_warning.get(kind)
        if last is not None and now - last < WARNING_INTERVAL:
            return False
        self._last_warning[kind] = now
        return True

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        if self._may_warn(kind):
            log.warning("RTP stream %d: " + message, self.local_port, *args)
