"""Callers that measure what a phone meets: raw SIP over UDP on loopback, 20 ms G.711 RTP both ways, clocks read
at the caller.

Each call (a `CallPlan`) dials the server, sends one 20 ms PCMU packet every 20 ms from the answer — its script's
audio, then line noise, never digital silence — keys RFC 4733 digits when told, and hangs up after
`duration_s` (or answers the server's BYE). A plan with `srtp` offers RTP/SAVP with an SDES key
(AES_CM_128_HMAC_SHA1_80, RFC 4568): its packets are protected as they are sent; what arrives is timed on arrival
and decrypted (authenticated) after the call, so the decryption does not slow the caller's clock. What it sent (when each frame of its script left) and what it
received (arrival time, sequence number, level and high-band share of every packet) come back as a `CallTrace`.
Timestamps are `time.monotonic()`, one clock for every process on the machine. Calls run in one asyncio loop per
process; `run_calls` spreads many calls over several processes so the callers keep their 20 ms pace.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing as mp
import re
import secrets
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from voicebot.rtp.g711 import ulaw_decode, ulaw_encode
from voicebot.rtp.srtp import SrtpContext, SrtpDropped

RATE = 8000
FRAME = 160  # samples per 20 ms packet
FRAME_S = 0.02
PCMU, TELEPHONE_EVENT = 0, 101
RTP_HEADER = struct.Struct("!BBHII")
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"
HIGH_BAND_BIN = 20  # rfft bin of 1 kHz in a 160-sample frame (50 Hz per bin)


@dataclass(frozen=True)
class CallPlan:
    """One caller: what it says from the answer on, when it keys digits, when it hangs up."""

    audio: np.ndarray  # int16 at 8 kHz, sent from the answer on; afterwards line noise
    duration_s: float  # hang up this long after the answer
    dtmf: tuple[tuple[float, str], ...] = ()  # (seconds after the answer, digit), RFC 4733
    start_after_s: float = 0.0  # dial this long after the run starts
    noise_rms: float = 40.0  # line noise after the script (a real line is never digitally silent)
    seed: int = 0
    srtp: bool = False  # offer RTP/SAVP with an SDES key (SRTP_SUITE); the answer must carry a=crypto


@dataclass
class CallTrace:
    """What one caller saw; times are time.monotonic() seconds."""

    answered_at: float | None = None
    failure: str = ""
    ended_by: str = ""  # "caller" (BYE sent) or "server" (BYE received)
    invite_retransmissions: int = 0
    frame_sent_at: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per frame of plan.audio
    received_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    received_timestamp: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # RTP timestamps
    received_seq: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    received_rms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    received_high_band: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # energy share ≥ 1 kHz
    caller_max_lateness_ms: float = 0.0  # how far behind its 20 ms schedule this caller's process sent
    srtp_dropped: int = 0  # received packets that failed SRTP authentication or the replay check

    @property
    def ok(self) -> bool:
        return self.answered_at is not None and not self.failure


def line_noise(samples: int, rms: float, seed: int) -> np.ndarray:
    """Gaussian noise at `rms` (int16), what an open phone line carries between words."""
    noise = np.random.default_rng(seed).normal(0.0, rms, samples)
    return np.clip(noise, -32768, 32767).astype(np.int16)


def frame_levels(payloads: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Per 160-byte mu-law frame: RMS and the share of its energy at or above 1 kHz (speech has plenty there; the
    generated hold melody, all below 800 Hz, almost none)."""
    count = len(payloads) // FRAME
    if count == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    pcm = ulaw_decode(np.frombuffer(payloads[:count * FRAME], np.uint8).tobytes()).astype(np.float32)
    frames = pcm.reshape(count, FRAME)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    power = np.abs(np.fft.rfft(frames * np.hanning(FRAME).astype(np.float32), axis=1)) ** 2
    high = power[:, HIGH_BAND_BIN:].sum(axis=1) / np.maximum(power.sum(axis=1), 1e-9)
    return rms.astype(np.float32), high.astype(np.float32)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_datagram) -> None:  # type: ignore[no-untyped-def]
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


class _Call:
    """One SIP dialog and its RTP, driven by the process's shared 20 ms tick."""

    def __init__(self, plan: CallPlan, server: tuple[str, int], index: int) -> None:
        self.plan = plan
        self.server = server
        self.trace = CallTrace()
        self.call_id = f"{secrets.token_hex(8)}@bench-caller-{index}"
        self.tag = secrets.token_hex(4)
        self.cseq = 1
        self.to_header = ""
        self.remote_target = ""
        self.rtp_remote: tuple[str, int] | None = None
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.frames_sent = 0
        self.done = asyncio.Event()
        self.answered = asyncio.Event()
        self.final_status = 0
        self.bye_ok = asyncio.Event()
        self.received: list[tuple[float, bytes]] = []
        self.noise = ulaw_encode(line_noise(RATE * 10, plan.noise_rms, plan.seed))  # encoded once, sent in slices
        self.audio = ulaw_encode(plan.audio) if len(plan.audio) else b""
        self.audio_frames = len(plan.audio) // FRAME
        self.frame_sent_at = np.full(self.audio_frames, np.nan)
        self.dtmf_packets: dict[int, list[tuple[bytes, bool, int]]] = {}
        self.srtp_key = secrets.token_bytes(30) if plan.srtp else b""  # master key || salt, offered in a=crypto
        self.srtp: SrtpContext | None = None
        for at_s, digit in plan.dtmf:
            if digit not in DTMF_EVENTS:
                raise ValueError(f"DTMF digit must be one of {''.join(DTMF_EVENTS)}, got {digit!r}")
            first = round(at_s / FRAME_S)
            for offset, (payload, marker) in enumerate(_dtmf_payloads(DTMF_EVENTS[digit])):
                self.dtmf_packets[first + offset] = [(payload, marker, first)]

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sip, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self._on_sip),
                                                          local_addr=("127.0.0.1", 0))
        self.rtp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self._on_rtp),
                                                          local_addr=("127.0.0.1", 0))
        self.sip_port = self.sip.get_extra_info("sockname")[1]
        self.rtp_port = self.rtp.get_extra_info("sockname")[1]

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    # ------------------------------------------------------------------ SIP
    def _request(self, method: str, uri: str, cseq: int, body: str = "", branch: str | None = None) -> bytes:
        to = self.to_header or f"<{uri}>"
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        return (f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch={branch or 'z9hG4bK' + secrets.token_hex(6)};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1:{self.sip_port}>;tag={self.tag}\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:caller@127.0.0.1:{self.sip_port}>\r\n{ctype}"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()

    def _sdp(self) -> str:
        profile = "RTP/SAVP" if self.plan.srtp else "RTP/AVP"
        crypto = (f"a=crypto:1 {SRTP_SUITE} inline:{base64.b64encode(self.srtp_key).decode()}\r\n"
                  if self.plan.srtp else "")
        return (f"v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {self.rtp_port} {profile} {PCMU} {TELEPHONE_EVENT}\r\na=rtpmap:0 PCMU/8000\r\n"
                f"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n{crypto}")

    def _key_srtp(self, answer: str) -> str:
        """Key SRTP from the answer's a=crypto; the failure, or "" when keyed (or not asked for)."""
        if not self.plan.srtp:
            return ""
        match = re.search(rf"^a=crypto:\d+ {SRTP_SUITE} inline:([A-Za-z0-9+/=]+)", answer, re.MULTILINE)
        if match is None:
            return f"200 OK without a {SRTP_SUITE} a=crypto answer"
        self.srtp = SrtpContext(SRTP_SUITE, self.srtp_key, base64.b64decode(match.group(1)))
        return ""

    def _on_sip(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode("utf-8", "replace")
        head, _, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        if not lines[0].startswith("SIP/2.0 "):
            self._on_server_request(lines, head)
            return
        status = int(lines[0].split()[1])
        cseq = _header(lines, "cseq")
        if cseq.endswith("BYE"):
            if status >= 200:
                self.bye_ok.set()
            return
        if not cseq.endswith("INVITE") or status < 200:
            return
        self.final_status = status
        if status >= 300:
            self.trace.failure = f"INVITE answered {lines[0][8:]}"
            self.answered.set()
            return
        self.to_header = _header(lines, "to")
        contact = re.search(r"<([^>]+)>", _header(lines, "contact") or "")
        self.remote_target = contact.group(1) if contact else self.remote_target
        ack = self._request("ACK", self.remote_target, int(cseq.split()[0]))
        self.sip.sendto(ack, self.server)
        if self.trace.answered_at is None:
            host = re.search(r"^c=IN IP4 (\S+)", body, re.MULTILINE)
            port = re.search(r"^m=audio (\d+) ", body, re.MULTILINE)
            if not host or not port:
                self.trace.failure = "200 OK without a usable SDP answer"
            elif (failure := self._key_srtp(body)):
                self.trace.failure = failure
            else:
                self.rtp_remote = (host.group(1), int(port.group(1)))
                self.trace.answered_at = time.monotonic()
            self.answered.set()

    def _on_server_request(self, lines: list[str], head: str) -> None:
        method = lines[0].split(" ", 1)[0]
        keep = [line for line in lines[1:] if line.split(":")[0].strip().lower() in ("via", "from", "to", "call-id",
                                                                                     "cseq")]
        body = self._sdp() if method == "INVITE" else ""
        extra = "Content-Type: application/sdp\r\n" if body else ""
        self.sip.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + f"\r\n{extra}Content-Length: "
                         f"{len(body.encode())}\r\n\r\n{body}").encode(), self.server)
        if method == "BYE" and not self.done.is_set():
            self.trace.ended_by = "server"
            self.done.set()

    async def dial(self, uri: str) -> None:
        self.remote_target = uri
        invite = self._request("INVITE", uri, self.cseq, self._sdp(), branch="z9hG4bK" + secrets.token_hex(6))
        interval, waited = 0.5, 0.0
        while not self.answered.is_set() and waited < 32.0:
            self.sip.sendto(invite, self.server)
            try:
                await asyncio.wait_for(self.answered.wait(), interval)
            except TimeoutError:
                waited += interval
                if self.final_status == 0:
                    self.trace.invite_retransmissions += 1
                interval = min(interval * 2, 4.0)
        if not self.answered.is_set():
            self.trace.failure = "no final response to INVITE in 32 s"

    async def hang_up(self) -> None:
        self.cseq += 1
        bye = self._request("BYE", self.remote_target, self.cseq)
        for attempt in range(4):
            self.sip.sendto(bye, self.server)
            try:
                await asyncio.wait_for(self.bye_ok.wait(), 0.5 * 2 ** attempt)
                return
            except TimeoutError:
                continue
        self.trace.failure = self.trace.failure or "no answer to BYE"

    # ------------------------------------------------------------------ RTP
    def _on_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((time.monotonic(), data))

    def send_frame(self, now: float) -> None:
        """This call's packet for the current tick: script audio, a DTMF event packet, or line noise."""
        if self.rtp_remote is None:
            return
        index = self.frames_sent
        self.frames_sent += 1
        self.seq = (self.seq + 1) & 0xFFFF
        event = self.dtmf_packets.get(index)
        if event is not None:
            payload, marker, first = event[0]
            header = RTP_HEADER.pack(0x80, TELEPHONE_EVENT | (0x80 if marker else 0), self.seq,
                                     (self.timestamp + first * FRAME) & 0xFFFFFFFF, self.ssrc)
            self._send_rtp(header + payload)
            return
        if index < self.audio_frames:
            payload = self.audio[index * FRAME:(index + 1) * FRAME]
            self.frame_sent_at[index] = now
        else:
            start = (index * FRAME) % (len(self.noise) - FRAME)
            payload = self.noise[start:start + FRAME]
        header = RTP_HEADER.pack(0x80, PCMU, self.seq, (self.timestamp + index * FRAME) & 0xFFFFFFFF, self.ssrc)
        self._send_rtp(header + payload)

    def _send_rtp(self, packet: bytes) -> None:
        assert self.rtp_remote is not None
        self.rtp.sendto(self.srtp.protect(packet) if self.srtp is not None else packet, self.rtp_remote)

    def _decrypted(self) -> list[tuple[float, bytes]]:
        """What arrived, SRTP removed (RTCP from a neighbour's port and packets failing authentication dropped)."""
        if self.srtp is None:
            return self.received
        plain = []
        for at, data in self.received:
            if len(data) < 12 or 200 <= data[1] <= 204:  # (S)RTCP: the server's port+1 may be another caller's RTP
                continue
            try:
                plain.append((at, self.srtp.unprotect(data)))
            except SrtpDropped:
                self.trace.srtp_dropped += 1
        return plain

    def finish(self) -> CallTrace:
        """Turn what arrived into per-packet arrays (audio packets only; DTMF and comfort noise are skipped)."""
        audio = [(at, data) for at, data in self._decrypted() if len(data) == 12 + FRAME and data[1] & 0x7F == PCMU]
        self.trace.received_at = np.array([at for at, _ in audio])
        self.trace.received_seq = np.array([int.from_bytes(data[2:4], "big") for _, data in audio], np.int64)
        self.trace.received_timestamp = np.array([int.from_bytes(data[4:8], "big") for _, data in audio], np.int64)
        self.trace.received_rms, self.trace.received_high_band = frame_levels(b"".join(d[12:] for _, d in audio))
        self.trace.frame_sent_at = self.frame_sent_at
        self.received = []
        return self.trace


def _dtmf_payloads(event: int, packets: int = 6, volume: int = 10) -> list[tuple[bytes, bool]]:
    """RFC 4733 packets of one 120 ms key press: start (marker), continuations, then the end packet three times."""
    payloads = [(struct.pack("!BBH", event, volume, (n + 1) * FRAME), n == 0) for n in range(packets)]
    end = struct.pack("!BBH", event, 0x80 | volume, packets * FRAME)
    return payloads + [(end, False)] * 3


def _header(lines: list[str], name: str) -> str:
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


async def _run_here(server: tuple[str, int], plans: list[CallPlan], start_at: float, uri: str,
                    first_index: int) -> list[CallTrace]:
    loop = asyncio.get_running_loop()
    calls = [_Call(plan, server, first_index + i) for i, plan in enumerate(plans)]
    for call in calls:
        await call.start(loop)
    talking: list[_Call] = []
    stop = asyncio.Event()
    lateness = [0.0]

    async def ticker() -> None:
        tick = 0
        begin = time.monotonic()
        while not stop.is_set():
            tick += 1
            target = begin + tick * FRAME_S
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            lateness[0] = max(lateness[0], now - target)
            for call in talking:
                if not call.done.is_set():
                    call.send_frame(now)

    async def one(call: _Call) -> None:
        delay = start_at + call.plan.start_after_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await call.dial(uri)
        if not call.trace.ok:
            return
        talking.append(call)
        try:
            await asyncio.wait_for(call.done.wait(), call.plan.duration_s)
        except TimeoutError:
            call.trace.ended_by = "caller"
            call.done.set()
            await call.hang_up()
        finally:
            talking.remove(call)

    pacing = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(one(call) for call in calls))
    finally:
        stop.set()
        await pacing
        for call in calls:
            call.close()
    traces = [call.finish() for call in calls]
    for trace in traces:
        trace.caller_max_lateness_ms = lateness[0] * 1000
    return traces


def _child(server: tuple[str, int], plans: list[CallPlan], start_at: float, uri: str,
           first_index: int) -> list[CallTrace]:
    try:
        import uvloop
        return uvloop.run(_run_here(server, plans, start_at, uri, first_index))
    except ImportError:
        return asyncio.run(_run_here(server, plans, start_at, uri, first_index))


def run_calls(server: tuple[str, int], plans: list[CallPlan], *, processes: int = 1, uri: str | None = None,
              lead_s: float = 1.0) -> list[CallTrace]:
    """Place every call of `plans` (each `start_after_s` after a common start `lead_s` from now), spread round-robin
    over `processes` caller processes; returns their traces in plan order."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    uri = uri or f"sip:1000@{server[0]}:{server[1]}"
    start_at = time.monotonic() + lead_s
    if processes == 1:
        return _child(server, plans, start_at, uri, 0)
    groups = [list(range(p, len(plans), processes)) for p in range(processes)]
    with mp.get_context("spawn").Pool(processes) as pool:
        jobs = [pool.apply_async(_child, (server, [plans[i] for i in group], start_at, uri, group[0] if group else 0))
                for group in groups if group]
        results = [job.get() for job in jobs]
    traces: list[CallTrace | None] = [None] * len(plans)
    for group, group_traces in zip([g for g in groups if g], results):
        for index, trace in zip(group, group_traces):
            traces[index] = trace
    return [trace for trace in traces if trace is not None]
