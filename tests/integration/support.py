"""Helpers for integration tests: a real `voicebot serve` process on loopback, sipp runner, log reader."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "sipp"
SIPP_PCAPS = Path("/usr/share/sip-tester")


_HANDED_OUT: set[int] = set()
"""UDP ports this test process has handed out. A port is handed out once: the kernel may return a port that was
just probed and closed again, so two probes on one command line (sipp's -p and -mp) could get the same port."""


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A free UDP port, distinct from every port this process handed out before (see free_udp_ports)."""
    return free_udp_ports(1, host)[0]


def free_udp_ports(count: int, host: str = "127.0.0.1", *, span: int = 1, even: bool = False) -> list[int]:
    """`count` free UDP ports (or first ports of blocks of `span` consecutive free ports, each starting on an even
    port when `even`), all distinct from each other and from every port handed out before by this process, and
    outside this process's server RTP range (free_port_range). Candidates are held bound while they are chosen.
    """
    rtp_start, rtp_end = free_port_range()
    held: list[socket.socket] = []
    chosen: list[int] = []
    try:
        for _attempt in range(200 * count):
            if len(chosen) == count:
                break
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind((host, 0))
            first = probe.getsockname()[1] & ~1 if even else probe.getsockname()[1]
            block = range(first, first + span)
            if any(p in _HANDED_OUT or rtp_start <= p < rtp_end or p > 65535 for p in block):
                probe.close()
                continue
            sockets = [probe] if probe.getsockname()[1] == first and span == 1 else []
            if not sockets:
                probe.close()
                try:
                    for port in block:
                        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        sockets.append(sock)
                        sock.bind((host, port))
                except OSError:
                    for sock in sockets:
                        sock.close()
                    continue
            held += sockets
            _HANDED_OUT.update(block)
            chosen.append(first)
        if len(chosen) < count:
            raise RuntimeError(f"could not find {count} free UDP port block(s) of {span} on {host}")
        return chosen
    finally:
        for sock in held:
            sock.close()


def free_media_port(host: str = "127.0.0.1") -> int:
    """sipp's -mp: an even port P with P..P+3 free and reserved (sipp echoes audio on P, video on P+2; RTCP next to
    each), distinct from every other port this process hands out."""
    return free_udp_ports(1, host, span=4, even=True)[0]


def free_port_range(size: int = 200) -> tuple[int, int]:
    """An even-aligned range of UDP ports, picked from the process id so parallel runs rarely overlap."""
    base = 30000 + (os.getpid() * 397 % 300) * 100
    return base, base + size


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    host: str
    port: int
    workdir: Path
    lines: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)  # transport -> port, from the "listening on" line

    @property
    def uri(self) -> str:
        return f"sip:1000@{self.host}:{self.port}"

    def records(self, msg: str | None = None) -> list[dict]:
        out = []
        for line in list(self.lines):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if msg is None or entry.get("msg") == msg:
                out.append(entry)
        return out

    def wait_for(self, msg: str, count: int = 1, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.records(msg)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {count}x {msg!r} in server log within {timeout}s; last lines:\n"
                             + "\n".join(self.lines[-30:]))

    def wait_for_match(self, msg: str, timeout: float = 30.0, **fields: object) -> dict:
        """The first ``msg`` log record whose fields equal ``fields``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.records(msg):
                if all(entry.get(k) == v for k, v in fields.items()):
                    return entry
            time.sleep(0.05)
        raise AssertionError(f"no {msg!r} with {fields} in server log within {timeout}s")

    def recordings(self) -> list[Path]:
        return sorted((self.workdir / "recordings").glob("*.wav"))


DEMO_TODAY = "2026-11-10"
"""The date test servers' demo backends see: a quiet day (no repayment-day surge, 24th-26th) before the sample
appointments, orders and flights of late 2026, so dialogues do not change with the calendar."""


def write_config(path: Path, *, port: int = 0, extra: str = "", dialplan: str = "keypad-demo",
                 dids: dict[str, str] | None = None, listen: str = "") -> None:
    """Write a loopback server config; ``dids`` (DID -> dialplan) goes into routing.dids when given; ``listen``
    adds flow-style fields to the listen section (e.g. ``transports: [udp, tcp]``)."""
    rtp_start, rtp_end = free_port_range()
    entries = ", ".join(f"'{did}': {name}" for did, name in (dids or {}).items())
    did_map = f", dids: {{{entries}}}" if dids else ""
    records = "" if "records:" in extra else f"records: {{path: {path.parent / 'records' / 'calls.sqlite3'}}}\n"
    path.write_text(f"""
listen: {{host: 127.0.0.1, port: {port}{", " + listen if listen else ""}}}
rtp: {{port_start: {rtp_start}, port_end: {rtp_end}}}
network: {{egress_allow: [127.0.0.0/8, "::1/128"]}}
recording: {{enabled: true, directory: {path.parent / 'recordings'}}}
prompts:
  greeting: "Welcome to voicebot. Please enter your account number followed by the hash key."
  digit_timeout_s: 3
transfer: {{allowed_targets: ["sip:agent@127.0.0.1:*"]}}
routing: {{default_dialplan: {dialplan}{did_map}}}
api: {{port: 0, tokens_file: {path.parent / 'tokens.json'}, audit_log: {path.parent / 'audit' / 'audit.jsonl'}}}
{records}dialplans_dir: {REPO / 'dialplans'}
nlu_dir: {REPO / 'nlu_models'}
knowledge_dir: {REPO / 'knowledge'}
shutdown_grace_s: 5
demo_backend: true
demo_today: {DEMO_TODAY}
{extra}
""")


def start_server(workdir: Path, extra_config: str = "", env: dict[str, str] | None = None,
                 dialplan: str = "keypad-demo", dids: dict[str, str] | None = None,
                 preexec_fn: Callable[[], None] | None = None, listen: str = "") -> ServerProcess:
    config = workdir / "voicebot.yaml"
    write_config(config, extra=extra_config, dialplan=dialplan, dids=dids, listen=listen)
    return launch_server(config, workdir, env=env, preexec_fn=preexec_fn)


def launch_server(config: Path, workdir: Path, env: dict[str, str] | None = None,
                  timeout: float = 180.0, preexec_fn: Callable[[], None] | None = None) -> ServerProcess:
    """`voicebot serve --config config` in a subprocess; returns once it listens (its log lines are collected).
    ``preexec_fn`` runs in the child before exec (e.g. a resource limit standing in for a full disk)."""
    proc = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "serve", "--config", str(config)],
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})},
                            preexec_fn=preexec_fn)  # noqa: PLW1509 - one syscall (setrlimit), no locks taken
    server = ServerProcess(proc=proc, host="127.0.0.1", port=0, workdir=workdir)
    ready = threading.Event()

    def reader() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            server.lines.append(line.rstrip("\n"))
            if line.startswith("voicebot: listening on "):
                bound = line.split("listening on ", 1)[1].split(" — ")[0]
                for kind, address in (part.split() for part in bound.split(" / ")):
                    server.ports[kind] = int(address.rsplit(":", 1)[1])
                server.port = server.ports.get("udp") or server.ports.get("tcp") or server.ports.get("tls", 0)
                ready.set()
        ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(timeout) or server.port == 0:
        proc.kill()
        raise RuntimeError(f"voicebot serve ({config}) did not start:\n" + "\n".join(server.lines[-40:]))
    return server


def stop_server(server: ServerProcess, timeout: float = 20.0) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    return server.proc.returncode


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/setup.sh (it installs the apt packages)")
    return path


def run_sipp(args: list[str], cwd: Path, timeout: float = 60.0) -> SippResult:
    """Run sipp in the foreground (it exits by itself: -m N and -timeout)."""
    require_tool("sipp")
    pcap_link = cwd / "pcap"
    if not pcap_link.exists():
        pcap_link.symlink_to(SIPP_PCAPS)
    cmd = ["sipp", *args, "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error", "-trace_err",
           "-error_file", str(cwd / "sipp_errors.log")]
    proc = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout + 15)
    errors = (cwd / "sipp_errors.log").read_text() if (cwd / "sipp_errors.log").exists() else ""
    return SippResult(proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:] + errors[-4000:])


def api_request(port: int, method: str, path: str, token: str | None, body: dict | None = None) -> tuple[int, dict]:
    """One JSON call to voicebot's HTTP API on loopback; (status, decoded body)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def write_callback_agent(directory: Path, agent_port: int) -> None:
    """agents.yaml with one English billing agent, a SIP phone on ``agent_port``, no wrap-up (the callback tests)."""
    (directory / "agents.yaml").write_text(f"""agents:
  - id: a1
    name: Test Agent
    sip_uri: sip:agent@127.0.0.1:{agent_port}
    skills: {{billing: 5}}
    languages: [en-US]
    wrap_up_s: 0
""")
