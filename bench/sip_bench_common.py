"""Shared pieces of the SIP benchmarks: a `voicebot serve` process on loopback, sipp runs, /proc usage, figures.

Everything runs on 127.0.0.1; every wait is bounded; callers stop sipp and the server in ``finally``.
"""

from __future__ import annotations

import calendar
import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
SCENARIOS = BENCH / "sipp"
SERVE_WITH_STATS = BENCH / "voicebot_serve_with_stats.py"
SIPP_PCAPS = Path("/usr/share/sip-tester")
# Above Linux's ephemeral range (32768..60999) and the integration tests' ranges (30000..60100).
RTP_PORT_START, RTP_PORT_END = 61000, 65000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_media_port() -> int:
    """An even port with the next three free too (sipp binds audio p, p+1 and video p+2, p+3)."""
    for _ in range(50):
        port = free_udp_port() & ~1
        socks = []
        try:
            for offset in range(4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free block of 4 UDP ports on 127.0.0.1")


KEYPAD_DEMO = "keypad-demo"  # voicebot's built-in DTMF flow: greeting, digits, read-back, goodbye (no models)


def bench_config(*, max_calls: int, digit_timeout_s: float = 60, dialplan: str = KEYPAD_DEMO) -> str:
    """A server config sized for the benchmark: every call from 127.0.0.1 is admitted to ``dialplan``,
    no recording; the demo dialplans' webhooks are answered by the built-in demo backend (opt-in since issue 16)."""
    return f"""
listen: {{host: 127.0.0.1, port: 0}}
rtp: {{port_start: {RTP_PORT_START}, port_end: {RTP_PORT_END}}}
network: {{egress_allow: [127.0.0.0/8]}}
recording: {{enabled: false}}
api: {{port: 0}}
limits: {{max_calls: {max_calls}, max_calls_per_source: {max_calls}, invite_rate_per_source_per_s: 10000}}
prompts: {{digit_timeout_s: {digit_timeout_s}}}
routing: {{default_dialplan: {dialplan}, dids: {{"1000": {dialplan}}}}}
shutdown_grace_s: 5
log: {{level: INFO}}
demo_backend: true
"""


# ------------------------------------------------------------------------------------------ process usage
@dataclass(frozen=True)
class ProcUsage:
    """CPU seconds (user + system, all threads) and memory of one process at one instant."""

    at: float
    cpu_s: float
    rss_kb: int
    peak_rss_kb: int
    preempted: int  # involuntary context switches of the main thread: other load took the core


def read_usage(pid: int) -> ProcUsage:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    rss_kb = peak_kb = preempted = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                preempted = int(line.split()[1])
    return ProcUsage(time.monotonic(), cpu_s, rss_kb, peak_kb, preempted)


def git_revision() -> str:
    """The checkout's commit (+ "-dirty" when voicebot/ has local changes), to tie figures to code."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "voicebot"], cwd=REPO, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (rev or "unknown") + ("-dirty" if dirty else "")


def load_average() -> float:
    """The machine's 1-minute load average (other engineers' work shares these cores)."""
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def cpu_percent(first: ProcUsage, last: ProcUsage) -> float:
    """Average CPU between two samples; 100 % = one core busy."""
    wall = last.at - first.at
    return 100.0 * (last.cpu_s - first.cpu_s) / wall if wall > 0 else 0.0


# ------------------------------------------------------------------------------------------------ server
@dataclass
class BenchServer:
    """`voicebot serve` (with the benchmark stats lines) running in a child process."""

    proc: subprocess.Popen[str]
    workdir: Path
    port: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, workdir: Path, config_text: str, timeout: float = 120.0) -> BenchServer:
        config = workdir / "voicebot-bench.yaml"
        config.write_text(config_text)
        proc = subprocess.Popen([sys.executable, str(SERVE_WITH_STATS), "--config", str(config)], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        server = cls(proc=proc, workdir=workdir)
        ready = threading.Event()
        threading.Thread(target=server._read_log, args=(ready,), daemon=True).start()
        if not ready.wait(timeout) or server.port == 0:
            server.stop()
            raise RuntimeError("voicebot serve did not start:\n" + "\n".join(server.other_lines[-30:]))
        return server

    def _read_log(self, ready: threading.Event) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.startswith("{"):
                try:
                    self.records.append(json.loads(line))
                    continue
                except ValueError:
                    pass
            self.other_lines.append(line.rstrip("\n"))
            if "listening on udp" in line:
                self.port = int(line.split("listening on udp ")[1].split()[0].rsplit(":", 1)[1])
                ready.set()
        ready.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def messages(self, msg: str) -> list[dict[str, Any]]:
        return [entry for entry in list(self.records) if entry.get("msg") == msg]

    def latest_stats(self) -> dict[str, Any] | None:
        """The newest once-a-second "bench stats" line (ticker stats, active calls, UA counters)."""
        for entry in reversed(list(self.records)):
            if entry.get("msg") == "bench stats":
                return entry
        return None

    def wait_stats_after(self, moment_ts: float, timeout: float = 5.0) -> dict[str, Any] | None:
        """The first "bench stats" line logged after wall-clock time ``moment_ts``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in reversed(list(self.records)):
                if entry.get("msg") == "bench stats" and _log_time(entry) > moment_ts:
                    return entry
            time.sleep(0.1)
        return None

    def active_calls(self) -> int:
        stats = self.latest_stats()
        return int(stats["active_calls"]) if stats else 0

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until the server reports no active call and no ticker callback."""
        deadline = time.monotonic() + timeout
        start_ts = time.time()
        while time.monotonic() < deadline:
            stats = self.wait_stats_after(start_ts, timeout=2.0)
            if stats and stats["active_calls"] == 0 and stats["ticker"]["callbacks"] == 0:
                return True
            start_ts = time.time()
        return False

    def reset_ticker_stats(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _log_time(entry: dict[str, Any]) -> float:
    stamp = str(entry.get("ts", ""))  # 2026-11-25T00:21:33.036Z
    try:
        whole, frac = stamp.rstrip("Z").split(".")
        return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000
    except ValueError:
        return 0.0


# -------------------------------------------------------------------------------------------------- sipp
@dataclass
class SippRun:
    """A sipp UAC in the background; its statistics go to files in ``rundir``."""

    proc: subprocess.Popen[bytes]
    rundir: Path
    stat_file: Path
    media_port: int

    @classmethod
    def start(cls, server: BenchServer, scenario: str, rundir: Path, args: list[str], timeout_s: float) -> SippRun:
        rundir.mkdir(parents=True, exist_ok=True)
        pcap = rundir / "pcap"
        if not pcap.exists():
            pcap.symlink_to(SIPP_PCAPS)
        stat_file = rundir / "stats.csv"
        media_port = free_media_port()
        cmd = ["sipp", f"127.0.0.1:{server.port}", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
               "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(media_port), *args,
               "-nostdin", "-timeout", f"{int(math.ceil(timeout_s))}s", "-trace_stat", "-stf", str(stat_file),
               "-fd", "1", "-trace_rtt", "-rtt_freq", "1", "-trace_err", "-error_file", str(rundir / "errors.log")]
        (rundir / "command.txt").write_text(" ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, cwd=rundir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(rundir / "sipp.stderr", "wb"))
        return cls(proc, rundir, stat_file, media_port)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def stat_rows(self) -> list[dict[str, str]]:
        if not self.stat_file.exists():
            return []
        with self.stat_file.open(newline="") as handle:
            return list(csv.DictReader(handle, delimiter=";"))

    def final_counts(self) -> dict[str, int]:
        """Cumulative counters from sipp's last statistics row."""
        rows = self.stat_rows()
        if not rows:
            return {}
        last = rows[-1]
        names = {"created": "TotalCallCreated", "successful": "SuccessfulCall(C)", "failed": "FailedCall(C)",
                 "retransmissions": "Retransmissions(C)", "unexpected": "FailedUnexpectedMessage(C)",
                 "max_udp_retrans": "FailedMaxUDPRetrans(C)", "recv_timeouts": "FailedTimeoutOnRecv(C)",
                 "dead_call_msgs": "DeadCallMsgs(C)", "out_of_call_msgs": "OutOfCallMsgs(C)"}
        return {key: int(last.get(column) or 0) for key, column in names.items()}

    def offered_rate(self) -> float:
        """Calls created per second while sipp was still creating them (1 s resolution)."""
        rows = self.stat_rows()
        if not rows:
            return 0.0
        final = int(rows[-1].get("TotalCallCreated") or 0)
        for row in rows:
            if int(row.get("TotalCallCreated") or 0) >= final:
                elapsed = _hms_seconds(row.get("ElapsedTime(C)", ""))
                return final / elapsed if elapsed else 0.0
        return 0.0

    def response_times_ms(self) -> list[float]:
        """INVITE → 200 OK times (the scenario's rtd) of every successful call."""
        times: list[float] = []
        for path in self.rundir.glob("*_rtt.csv"):
            with path.open() as handle:
                for line in handle:
                    parts = line.strip().split(";")
                    if len(parts) >= 2 and parts[0] != "Date_ms":
                        try:
                            times.append(float(parts[1]))
                        except ValueError:
                            continue
        return times

    def errors_excerpt(self, lines: int = 8) -> str:
        path = self.rundir / "errors.log"
        if not path.exists():
            return ""
        text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return "\n".join(text[:lines])


def _hms_seconds(value: str) -> float:
    try:
        hours, minutes, seconds = value.split(":")[:3]
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def udp_drops_by_port(host_hex: str = "0100007F") -> dict[int, int]:
    """Datagrams the kernel dropped per local UDP port on 127.0.0.1 (receive buffer full), from /proc/net/udp."""
    drops: dict[int, int] = {}
    with open("/proc/net/udp") as table:
        next(table)
        for line in table:
            parts = line.split()
            address, port_hex = parts[1].split(":")
            if address == host_hex:
                drops[int(port_hex, 16)] = drops.get(int(port_hex, 16), 0) + int(parts[-1])
    return drops


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]
