"""Drive a headless baresip (Debian 1.0.x) on loopback: config-dir builder and ctrl_tcp process driver.

baresip runs with no audio hardware: `aufile` plays a WAV as the microphone, the `sndfile` audio filter dumps the
decoded far-end audio (what the caller hears) to ``<dump_dir>/dump-*-dec.wav``, and `aubridge` stands in as the
(unused) player. Commands and call events go through the `ctrl_tcp` module (JSON in netstrings on a loopback port).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def _bindable(kind: int, port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_sip_port() -> int:
    """A port P free for baresip's SIP listeners: UDP and TCP on P, TLS (TCP) on P + 1."""
    for _ in range(100):
        port = free_tcp_port()
        if port < 65535 and _bindable(socket.SOCK_DGRAM, port) and _bindable(socket.SOCK_STREAM, port + 1):
            return port
    raise RuntimeError("no free SIP port (UDP+TCP on P, TCP on P+1) found on 127.0.0.1")


def free_baresip_ports() -> tuple[int, int]:
    """(sip_port, ctrl_port): a SIP port as in `free_sip_port` and a distinct free TCP port for ctrl_tcp."""
    sip_port = free_sip_port()
    for _ in range(100):
        ctrl_port = free_tcp_port()
        if ctrl_port not in (sip_port, sip_port + 1):
            return sip_port, ctrl_port
    raise RuntimeError("no free TCP port for baresip's ctrl_tcp found on 127.0.0.1")


@dataclass(frozen=True)
class BaresipConfig:
    """Everything that varies between baresip runs; the rest of the config is fixed (loopback, G.711 only)."""

    config_dir: Path
    sip_port: int
    ctrl_port: int
    source_wav: Path
    dump_dir: Path
    user: str = "caller"
    mediaenc: str | None = None  # "srtp" (best effort: RTP/AVP with a=crypto), "srtp-mand" (RTP/SAVP)
    transport: str | None = None  # "tls": the account's calls go over SIP/TLS (the dialled URI names the port)
    tls_certificate: Path | None = None  # PEM holding baresip's certificate and key (shown to a server asking one)
    tls_ca: Path | None = None  # CAs baresip adds to its TLS context (sip_cafile)


def write_baresip_config(cfg: BaresipConfig) -> None:
    """Write ``config``, ``accounts`` and ``contacts`` into ``cfg.config_dir`` (for `baresip -f DIR`)."""
    cfg.config_dir.mkdir(parents=True, exist_ok=True)
    cfg.dump_dir.mkdir(parents=True, exist_ok=True)
    (cfg.config_dir / "config").write_text(f"""\
poll_method		epoll
sip_listen		127.0.0.1:{cfg.sip_port}
net_interface		127.0.0.1
dns_server		127.0.0.1:53
call_local_timeout	20
call_max_calls		1
audio_source		aufile,{cfg.source_wav}
audio_player		aubridge,nil
audio_alert		aubridge,nil
ausrc_srate		8000
auplay_srate		8000
ausrc_channels		1
auplay_channels		1
ausrc_format		s16
auplay_format		s16
auenc_format		s16
audec_format		s16
jitter_buffer_delay	1-5
rtcp_mux		no
module_path		{BARESIP_MODULES}
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
{"module			srtp.so" if cfg.mediaenc else ""}
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{cfg.ctrl_port}
snd_path		{cfg.dump_dir}
{f"sip_certificate		{cfg.tls_certificate}" if cfg.tls_certificate else ""}
{f"sip_cafile		{cfg.tls_ca}" if cfg.tls_ca else ""}
""")
    # regint=0: no registrar; G.711 only (telephone-event is always offered by baresip for RFC 4733 DTMF).
    (cfg.config_dir / "accounts").write_text(
        f"<sip:{cfg.user}@127.0.0.1{';transport=' + cfg.transport if cfg.transport else ''}>;regint=0;"
        "audio_codecs=PCMU/8000/1,PCMA/8000/1"
        + (f";mediaenc={cfg.mediaenc}" if cfg.mediaenc else "") + "\n")
    (cfg.config_dir / "contacts").write_text("")


@dataclass(frozen=True)
class TracedSipMessage:
    """One SIP message from baresip's `-s` trace: UDP source, destination and the start line."""

    source: str
    destination: str
    start_line: str


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRACE_HEADER = re.compile(r"^#\n(?:UDP|TCP|TLS) (\S+) -> (\S+)\n([^\n]+)", re.MULTILINE)


def parse_sip_trace(log: str) -> list[TracedSipMessage]:
    """The SIP messages baresip traced (``#`` / ``UDP a -> b`` / start line blocks), in order."""
    plain = _ANSI.sub("", log).replace("\r\n", "\n")
    return [TracedSipMessage(m.group(1), m.group(2), m.group(3).strip()) for m in _TRACE_HEADER.finditer(plain)]


def voiced_seconds(samples: np.ndarray, rate: int, threshold: float = 300.0) -> float:
    """Seconds of 20 ms frames of int16 ``samples`` whose RMS exceeds ``threshold`` (speech, not silence)."""
    frame = rate // 50
    count = len(samples) // frame
    if count == 0:
        return 0.0
    frames = samples[: count * frame].astype(np.float64).reshape(count, frame)
    return float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > threshold)) * 0.02


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


def _split_netstrings(buffer: bytearray) -> list[bytes]:
    """Remove and return every complete netstring at the start of ``buffer``."""
    out: list[bytes] = []
    while True:
        colon = buffer.find(b":")
        if colon < 0 or not buffer[:colon].isdigit():
            return out
        size = int(buffer[:colon])
        end = colon + 1 + size
        if len(buffer) < end + 1:
            return out
        out.append(bytes(buffer[colon + 1:end]))
        del buffer[:end + 1]


@dataclass
class BaresipProcess:
    """A running baresip with its ctrl_tcp connection; ``events`` and ``responses`` fill in from a reader thread."""

    proc: subprocess.Popen[bytes]
    config: BaresipConfig
    log_path: Path
    sock: socket.socket
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    _token: int = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _read_loop(self) -> None:
        buffer = bytearray()
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer.extend(chunk)
            for raw in _split_netstrings(buffer):
                message = json.loads(raw)
                (self.events if message.get("event") else self.responses).append(message)

    def command(self, name: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Run a baresip command (as typed after '/' in the console) and return its JSON response."""
        self._token += 1
        token = str(self._token)
        self.sock.sendall(_netstring(json.dumps({"command": name, "params": params, "token": token}).encode()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for response in list(self.responses):
                if response.get("token") == token:
                    return response
            time.sleep(0.02)
        raise AssertionError(f"baresip gave no response to {name!r} within {timeout}s; log tail:\n{self.log()[-3000:]}")

    def wait_event(self, event_type: str, timeout: float) -> dict[str, Any]:
        """The first event of ``event_type`` (e.g. CALL_ESTABLISHED, CALL_CLOSED), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if event.get("type") == event_type:
                    return event
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no baresip {event_type} event within {timeout}s; events: "
                             f"{[e.get('type') for e in self.events]}; log tail:\n{self.log()[-3000:]}")

    def send_digits(self, digits: str, gap_s: float = 0.3) -> None:
        """Send DTMF one key at a time (RFC 4733 via baresip's telephone-event), each followed by a key release."""
        for digit in digits:
            response = self.command("sndcode", digit)
            if not response.get("ok"):
                raise AssertionError(f"baresip refused DTMF {digit!r}: {response}")
            time.sleep(gap_s)

    def decoded_dumps(self) -> list[Path]:
        """WAV files the sndfile filter wrote with the decoded far-end audio."""
        return sorted(self.config.dump_dir.glob("dump-*-dec.wav"))

    def wait_heard(self, seconds: float, timeout: float) -> float:
        """Wait until the caller has heard ``seconds`` of voiced far-end audio (the decoded dump, read while
        baresip still writes it); the voiced seconds heard. Fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        heard = 0.0
        while time.monotonic() < deadline:
            dumps = self.decoded_dumps()
            heard = growing_wav_voiced_seconds(dumps[0]) if dumps else 0.0
            if heard >= seconds:
                return heard
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"the caller heard {heard:.2f}s of voiced audio, not {seconds}s, within {timeout}s")


def growing_wav_voiced_seconds(path: Path) -> float:
    """Voiced seconds in a 16-bit PCM WAV that may still be being written (its header's sizes not final yet):
    format from the fmt chunk, samples from whatever follows the data chunk's header."""
    raw = path.read_bytes()
    fmt, data = raw.find(b"fmt "), raw.find(b"data")
    if fmt < 0 or data < 0 or len(raw) < fmt + 24:
        return 0.0
    channels = int.from_bytes(raw[fmt + 10:fmt + 12], "little")
    rate = int.from_bytes(raw[fmt + 12:fmt + 16], "little")
    body = raw[data + 8:]
    samples = np.frombuffer(body[: len(body) // (2 * channels) * 2 * channels], dtype="<i2")
    return voiced_seconds(samples[::channels], rate) if channels and rate else 0.0


def start_baresip(cfg: BaresipConfig, timeout: float = 10.0) -> BaresipProcess:
    """Write the config dir, start baresip with SIP tracing (-s) and connect to its ctrl_tcp port."""
    binary = shutil.which("baresip")
    if binary is None:
        raise RuntimeError("baresip is not installed: apt-get install baresip")
    write_baresip_config(cfg)
    log_path = cfg.config_dir / "baresip.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([binary, "-f", str(cfg.config_dir), "-s", "-t", "80"], cwd=cfg.config_dir,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", cfg.ctrl_port), timeout=1.0)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"baresip did not open ctrl_tcp on {cfg.ctrl_port}:\n"
                                   f"{log_path.read_text(errors='replace')[-3000:]}") from None
            time.sleep(0.05)
    sock.settimeout(None)
    baresip = BaresipProcess(proc=proc, config=cfg, log_path=log_path, sock=sock)
    threading.Thread(target=baresip._read_loop, daemon=True).start()
    return baresip


def stop_baresip(baresip: BaresipProcess, timeout: float = 5.0) -> int:
    """Ask baresip to quit (SIGTERM), kill it if it lingers, and close the control socket."""
    if baresip.proc.poll() is None:
        baresip.proc.send_signal(signal.SIGTERM)
        try:
            baresip.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            baresip.proc.kill()
            baresip.proc.wait()
    try:
        baresip.sock.close()
    except OSError:
        pass
    return int(baresip.proc.returncode)
