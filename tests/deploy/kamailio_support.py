"""Kamailio (deploy/kamailio/kamailio.cfg) in front of `voicebot serve` nodes sharing one redis-server, on loopback.

Used by tests/deploy/test_kamailio.py and bench/kamailio_spread.py. Pure pieces (``dispatcher_list``,
``kamailio_command``, ``node_config``) are separate from the processes they configure.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.support import REPO, ServerProcess, free_media_port, free_udp_port, launch_server

KAMAILIO_CFG = REPO / "deploy" / "kamailio" / "kamailio.cfg"
KAMAILIO_TLS_CFG = REPO / "deploy" / "kamailio" / "tls.cfg"
SCENARIO = Path(__file__).resolve().parent / "sipp" / "keypad_via_proxy.xml"
QUEUE_SCENARIO = Path(__file__).resolve().parent / "sipp" / "queue_via_proxy.xml"
IDENTITY_SCENARIO = Path(__file__).resolve().parent / "sipp" / "asserted_identity_via_proxy.xml"
SIPP_PCAPS = Path("/usr/share/sip-tester")


# ------------------------------------------------------------------------------------------ pure config


def dispatcher_list(nodes: list[tuple[str, int]], set_id: int = 1, transport: str | None = None) -> str:
    """A dispatcher list file: one ``<set> sip:<host>:<port>`` line per voicebot node (``;transport=tls`` etc.
    when ``transport`` is given)."""
    if not nodes:
        raise ValueError("the dispatcher list needs at least one voicebot node")
    lines = []
    for host, port in nodes:
        if not 1 <= port <= 65535:
            raise ValueError(f"node port {port} is outside 1..65535")
        shown = f"[{host}]" if ":" in host else host
        lines.append(f"{set_id} sip:{shown}:{port}" + (f";transport={transport}" if transport else ""))
    return "\n".join(lines) + "\n"


def kamailio_command(config: Path, *, host: str, port: int, dispatcher_file: Path, allowed_sources: str,
                     ping_interval_s: int = 1, algorithm: int = 4, pike_density: int = 1000, children: int = 2,
                     invite_timeout_ms: int = 2000, tls_port: int | None = None,
                     tls_config: Path | None = None, trusted_identity_sources: str | None = None) -> list[str]:
    """The kamailio command line running ``config`` in the foreground, its defines set with -A; with
    ``tls_port`` and ``tls_config`` also WITH_TLS (a TLS socket on ``host``, the TLS profiles file); with
    ``trusted_identity_sources`` (CIDRs) TRUSTED_IDENTITY_SOURCES."""
    defines = {
        "LISTEN": f"udp:{host}:{port}",
        "DISPATCHER_LIST": f'"{dispatcher_file}"',
        "ALLOWED_SOURCES": f'"{allowed_sources}"',
        "DS_PING_INTERVAL": str(ping_interval_s),
        "DS_ALGORITHM": str(algorithm),
        "PIKE_DENSITY": str(pike_density),
        "CHILDREN": str(children),
        "INVITE_TIMEOUT_MS": str(invite_timeout_ms),
    }
    command = [kamailio_binary(), "-f", str(config), "-DD", "-E", "-m", "64", "-M", "8",
               "-Y", str(dispatcher_file.parent), "-P", str(dispatcher_file.parent / "kamailio.pid")]
    if tls_port is not None and tls_config is not None:
        defines |= {"TLS_LISTEN": f"tls:{host}:{tls_port}", "TLS_CONFIG": f'"{tls_config}"'}
        command += ["-A", "WITH_TLS"]
    if trusted_identity_sources is not None:
        defines["TRUSTED_IDENTITY_SOURCES"] = f'"{trusted_identity_sources}"'
    for name, value in defines.items():
        command += ["-A", f"{name}={value}"]
    return command


def tls_profiles(template: Path, directory: Path, *, cert: Path, key: Path, ca: Path) -> Path:
    """deploy/kamailio/tls.cfg with its /etc/kamailio/tls/ files replaced by ``cert``, ``key`` and ``ca``, written
    to ``directory``; the path of the rendered file."""
    text = template.read_text()
    for name, path in (("edge.crt", cert), ("edge.key", key), ("ca.crt", ca)):
        if f"/etc/kamailio/tls/{name}" not in text:
            raise ValueError(f"{template} names no /etc/kamailio/tls/{name}")
        text = text.replace(f"/etc/kamailio/tls/{name}", str(path))
    rendered = directory / "tls.cfg"
    rendered.write_text(text)
    return rendered


def node_config(*, workdir: Path, redis_url: str, namespace: str, node_id: str, rtp_start: int,
                rtp_size: int = 200, grace_s: int = 20, dialplan: str = "keypad-demo", queues_extra: str = "",
                extra: str = "") -> str:
    """A voicebot node behind the proxy: ``dialplan`` for every call, queue state in the shared Redis.

    Every call reaches the node from the proxy's address, so the per-source limits are raised to the total ones.
    ``queues_extra`` (", key: value" items) extends the queues section, ``extra`` (YAML lines) the config.
    """
    return f"""
listen: {{host: 127.0.0.1, port: 0}}
rtp: {{port_start: {rtp_start}, port_end: {rtp_start + rtp_size}}}
network: {{egress_allow: [127.0.0.0/8]}}
acl: {{allow: [127.0.0.0/8]}}
routing: {{default_dialplan: {dialplan}}}
limits: {{max_calls: 500, max_calls_per_source: 500, invite_rate_per_source_per_s: 1000}}
prompts: {{digit_timeout_s: 3}}
api: {{port: 0, tokens_file: {workdir / 'tokens.json'}}}
queues: {{store: redis, redis_url: "{redis_url}", namespace: {namespace}, node_id: {node_id}{queues_extra}}}
dialplans_dir: {REPO / 'dialplans'}
nlu_dir: {REPO / 'nlu_models'}
knowledge_dir: {REPO / 'knowledge'}
shutdown_grace_s: {grace_s}
demo_backend: true
log: {{level: INFO, json: true}}
{extra}
"""


def kamailio_binary() -> str:
    path = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin")
    if path is None:
        raise RuntimeError("kamailio is not installed: run scripts/setup.sh --test (apt package kamailio)")
    return path


# ------------------------------------------------------------------------------------------- processes


class RedisServer:
    """A throwaway redis-server on a free loopback port (the pattern of tests/queues/conftest.py)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory), "--save", "",
             "--appendonly", "no", "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.command("PING") != "+PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def command(self, *words: str) -> str:
        """One inline command; the first reply line ('' when redis does not answer)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall((" ".join(words) + "\r\n").encode())
                return sock.recv(65536).decode(errors="replace").split("\r\n", 1)[0]
        except OSError:
            return ""

    def keys(self, pattern: str) -> list[str]:
        """KEYS ``pattern`` through redis-cli."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", "KEYS", pattern], capture_output=True,
                             text=True, timeout=10, check=True).stdout
        return [line for line in out.splitlines() if line]

    def records(self, key: str) -> dict[str, dict]:
        """The JSON records of one state hash (HGETALL ``key`` through redis-cli)."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", "HGETALL", key], capture_output=True,
                             text=True, timeout=10, check=True).stdout.splitlines()
        return {field: json.loads(value) for field, value in zip(out[::2], out[1::2])}

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None



@dataclass
class Node:
    """A voicebot node process: its SIP server and API port."""

    name: str
    server: ServerProcess
    api_port: int = 0

    def calls_ended(self) -> list[dict]:
        return self.server.records("call ended")

    def http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}", timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


def start_node(workdir: Path, name: str, *, redis_url: str, namespace: str, rtp_start: int,
               rtp_size: int = 200, grace_s: int = 20, **config: str) -> Node:
    """Start `voicebot serve` for one node and wait until SIP and the API listen (``config``: see node_config)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "voicebot.yaml"
    config_file.write_text(node_config(workdir=workdir, redis_url=redis_url, namespace=namespace, node_id=name,
                                       rtp_start=rtp_start, rtp_size=rtp_size, grace_s=grace_s, **config))
    try:
        server = launch_server(config_file, workdir, timeout=120)
    except RuntimeError as exc:
        raise RuntimeError(f"node {name} did not start: {exc}") from None
    node = Node(name=name, server=server)
    node.api_port = int(server.wait_for("api listening", timeout=10)[0]["port"])
    return node


def kill_node(node: Node) -> None:
    """A crash: SIGKILL the node and its speech workers at once (no drain, no clean-up of any kind)."""
    pids = [node.server.proc.pid, *_descendants(node.server.proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.server.proc.wait(10)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    children.setdefault(int(stat.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def stop_node(node: Node, timeout: float = 30.0) -> int:
    """SIGTERM, wait for the drain to finish (kill after ``timeout``); the exit code."""
    proc = node.server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class Kamailio:
    """A kamailio process in the foreground, its log lines collected."""

    proc: subprocess.Popen[str]
    host: str
    port: int
    tls_port: int | None = None
    lines: list[str] = field(default_factory=list)

    def dispatched(self) -> collections.Counter[str]:
        """How many INVITEs went to each destination URI (first tries and failovers)."""
        counts: collections.Counter[str] = collections.Counter()
        for line in list(self.lines):
            if "edge: dispatch INVITE" in line:
                counts[line.rsplit(" to ", 1)[1].split()[0]] += 1
        return counts

    def grep(self, text: str) -> list[str]:
        return [line for line in list(self.lines) if text in line]

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.grep(text)
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in kamailio log within {timeout}s; last lines:\n"
                             + "\n".join(self.lines[-30:]))


def start_kamailio(workdir: Path, nodes: list[Node], *, allowed_sources: str = "127.0.0.0/8",
                   ping_interval_s: int = 1, algorithm: int = 4, pike_density: int = 1000,
                   tls_nodes: list[tuple[str, int]] | None = None, tls_config: Path | None = None,
                   trusted_identity_sources: str | None = None) -> Kamailio:
    """Render the node list, start kamailio on a free loopback port, wait until it answers SIP.

    With ``tls_nodes`` (host, TLS port) and ``tls_config`` (see tls_profiles) the proxy runs WITH_TLS: it also
    listens for TLS on a free port (``Kamailio.tls_port``) and reaches those nodes over TLS instead of ``nodes``."""
    workdir.mkdir(parents=True, exist_ok=True)
    ds_file = workdir / "dispatcher.list"
    if tls_nodes is not None:
        ds_file.write_text(dispatcher_list(tls_nodes, transport="tls"))
    else:
        ds_file.write_text(dispatcher_list([(node.server.host, node.server.port) for node in nodes]))
    port = free_udp_port()
    tls_port = free_tcp_port() if tls_nodes is not None else None
    command = kamailio_command(KAMAILIO_CFG, host="127.0.0.1", port=port, dispatcher_file=ds_file,
                               allowed_sources=allowed_sources, ping_interval_s=ping_interval_s,
                               algorithm=algorithm, pike_density=pike_density, tls_port=tls_port,
                               tls_config=tls_config, trusted_identity_sources=trusted_identity_sources)
    proc = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    kamailio = Kamailio(proc=proc, host="127.0.0.1", port=port, tls_port=tls_port)

    def reader() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            kamailio.lines.append(line.rstrip("\n"))

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + 15
    while sip_options_status(kamailio.host, kamailio.port) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_kamailio(kamailio)
            raise RuntimeError("kamailio did not answer OPTIONS:\n" + "\n".join(kamailio.lines[-40:]))
        time.sleep(0.1)
    return kamailio


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (Kamailio's TLS socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def sip_options_status(host: str, port: int, timeout: float = 0.5) -> int | None:
    """Send one out-of-dialog OPTIONS over UDP; the status code of the reply, None when nothing came back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        local_port = sock.getsockname()[1]
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        request = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
                   f"From: <sip:probe@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
                   f"To: <sip:{host}:{port}>\r\nCall-ID: {uuid.uuid4().hex}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
                   f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        sock.sendto(request.encode(), (host, port))
        try:
            while True:
                data = sock.recv(65535).decode(errors="replace")
                status = int(data.split(" ", 2)[1])
                if status >= 200:
                    return status
        except (OSError, ValueError, IndexError):
            return None


def stop_kamailio(kamailio: Kamailio) -> None:
    """SIGTERM the whole kamailio process group (its children too), kill it if it lingers."""
    if kamailio.proc.poll() is None:
        os.killpg(kamailio.proc.pid, signal.SIGTERM)
        try:
            kamailio.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(kamailio.proc.pid, signal.SIGKILL)
            kamailio.proc.wait()


def sipp_command(kamailio: Kamailio, workdir: Path, *, calls: int, rate: float, hold_ms: int,
                 limit: int = 50, timeout_s: int = 60) -> list[str]:
    """sipp placing ``calls`` keypad calls through the proxy at ``rate`` calls/s (at most ``limit`` at once)."""
    return ["sipp", f"{kamailio.host}:{kamailio.port}", "-sf", str(SCENARIO), "-s", "9000", "-m", str(calls),
            "-r", str(rate), "-l", str(limit), "-d", str(hold_ms), "-i", "127.0.0.1", "-p", str(free_udp_port()),
            "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-nostdin", "-timeout", f"{timeout_s}s",
            "-timeout_error", "-trace_err", "-error_file", str(workdir / "sipp_errors.log"),
            "-trace_stat", "-stf", str(workdir / "sipp_stats.csv"), "-fd", "1"]


def identity_sipp_command(kamailio: Kamailio, workdir: Path, *, source: str, asserted: str) -> list[str]:
    """sipp from ``source`` placing one keypad call through the proxy with P-Asserted-Identity ``asserted`` (its
    media on 127.0.0.1, the proxy's address: the node sends RTP at once to the signalling source's host)."""
    return ["sipp", f"{kamailio.host}:{kamailio.port}", "-sf", str(IDENTITY_SCENARIO), "-s", "9000", "-m", "1",
            "-key", "pai", asserted, "-d", "2000", "-i", source, "-p", str(free_udp_port(source)),
            "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-nostdin", "-timeout", "30s", "-timeout_error",
            "-trace_err", "-error_file", str(workdir / "sipp_errors.log"), "-rtp_echo"]


def queue_sipp_command(kamailio: Kamailio, workdir: Path, *, calls: int, rate: float, wait_ms: int,
                       caller_prefix: str, timeout_s: int = 120) -> list[str]:
    """sipp placing ``calls`` callers (From sip:+<caller_prefix><n>) who key 0 and wait ``wait_ms`` in the queue.

    Creates the "pcap" link the scenario's DTMF needs in ``workdir`` (the directory sipp must run in)."""
    pcap = workdir / "pcap"
    if not pcap.exists():
        pcap.symlink_to(SIPP_PCAPS)
    return ["sipp", f"{kamailio.host}:{kamailio.port}", "-sf", str(QUEUE_SCENARIO), "-m", str(calls),
            "-r", str(rate), "-d", str(wait_ms), "-key", "caller_prefix", caller_prefix,
            "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port()),
            "-nostdin", "-timeout", f"{timeout_s}s", "-trace_err", "-error_file", str(workdir / "sipp_errors.log"),
            "-trace_stat", "-stf", str(workdir / "sipp_stats.csv"), "-fd", "1"]
