"""SIP/TLS call setups per second against a real `voicebot serve`, open loop: the highest rate with 0 failures and
0 retransmissions, with the p95 setup time, for (a) a new TLS connection (full handshake) per call and (b) calls
sharing a few TLS connections opened before the step.

The bench starts `voicebot serve` (bench/voicebot_serve_with_stats.py) with a TLS listener and a certificate from
the tests' CA (tests/certs.py) in a temp dir. Debian's sipp has no TLS, so the callers are asyncio ``ssl`` clients
(uvloop) in --processes caller processes, on the same cores as the server. Each step offers one rate for
--seconds: call i starts at its slot (i / rate, not after the previous call), INVITE (PCMU offer) / 200 / ACK,
hold --hold s, BYE / 200. Setup time = the call's start (connect for a new connection, else the INVITE) → 200 OK;
"INVITE → 200" alone is printed too. Over TLS a client does not retransmit; the server retransmits its 200 OK
until the ACK arrives (RFC 3261 §13.3.1.4), so a retransmission is a repeated 200 OK seen by a caller. A failure is
a non-2xx final, no answer in 8 s, or a connection/handshake error. The steps of a mode stop after the first rate
with failures or with the callers unable to offer >= 95 % of the rate (the callers, not the server, are then the
limit; such a rate is not counted). Server CPU (100 % = one core) is read from /proc over each step.

    .venv/bin/python bench/tls_setup_rate.py     # rates 20..300/s, 10 s each, both modes (<= ~4 min)
    .venv/bin/python bench/tls_setup_rate.py --rates 5,10 --seconds 2 --modes reused
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import re
import secrets
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sip_bench_common import BenchServer, bench_config, cpu_percent, load_average, percentile, read_usage  # noqa: E402

from bench.results import BenchRecord  # noqa: E402
from tests.certs import TestCa  # noqa: E402

ANSWER_TIMEOUT_S = 8.0
MODES = {"new": "new TLS connection per call", "reused": "calls sharing TLS connections"}


@dataclass
class CallResult:
    """One call as a caller saw it (times in seconds, time.monotonic())."""

    scheduled: float
    started: float = 0.0
    setup_s: float | None = None  # start (connect or INVITE) → 200 OK
    invite_s: float | None = None  # INVITE → 200 OK
    failure: str = ""
    retransmissions: int = 0  # repeated 200 OKs for the INVITE (the server did not see our ACK in time)


# ---------------------------------------------------------------------------------------------- SIP over TLS
def _request(method: str, uri: str, sent_by: str, call_id: str, tag: str, cseq: int, to_tag: str = "",
             body: str = "") -> bytes:
    lines = [f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/TLS {sent_by};branch=z9hG4bK{secrets.token_hex(6)};alias",
             f"From: <sip:bench@127.0.0.1>;tag={tag}", f"To: <{uri}>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", f"Contact: <sip:bench@{sent_by};transport=tls>",
             "Max-Forwards: 70"]
    if body:
        lines.append("Content-Type: application/sdp")
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n" + body).encode()


def _header(head: str, name: str) -> str:
    match = re.search(rf"^{name}\s*:\s*(.*)$", head, re.I | re.M)
    return match.group(1).strip() if match else ""


class Connection:
    """One TLS connection; a reader task hands each response to the dialog (Call-ID) waiting for it and answers
    any request from the server with 200."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent_by = "127.0.0.1:%d" % writer.get_extra_info("sockname")[1]
        self.dialogs: dict[str, Dialog] = {}
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while True:
                head = (await self.reader.readuntil(b"\r\n\r\n")).decode()
                length = _header(head, "(?:Content-Length|l)")
                body = (await self.reader.readexactly(int(length))).decode() if length else ""
                if head.startswith("SIP/2.0 "):
                    dialog = self.dialogs.get(_header(head, "(?:Call-ID|i)"))
                    if dialog is not None:
                        dialog.response(head, body)
                else:
                    self._answer(head)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            for dialog in list(self.dialogs.values()):
                dialog.lost()

    def _answer(self, head: str) -> None:
        keep = [line for line in head.split("\r\n")[1:]
                if line.split(":", 1)[0].strip().lower() in ("via", "v", "from", "f", "to", "t", "call-id", "i",
                                                             "cseq")]
        self.writer.write(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode())

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


class Dialog:
    """The caller side of one call on a connection."""

    def __init__(self, connection: Connection, uri: str, sdp: str) -> None:
        self.connection, self.uri, self.sdp = connection, uri, sdp
        self.call_id, self.tag = secrets.token_hex(8) + "@bench-tls", secrets.token_hex(4)
        self.invite_final: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.bye_final: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.invite_oks = 0
        connection.dialogs[self.call_id] = self

    def response(self, head: str, body: str) -> None:
        status = int(head.split(None, 2)[1])
        method = _header(head, "CSeq").split()[-1]
        if status < 200:
            return
        if method == "INVITE":
            if status < 300:
                self.invite_oks += 1
            if not self.invite_final.done():
                self.invite_final.set_result(head)
        elif method == "BYE" and not self.bye_final.done():
            self.bye_final.set_result(head)

    def lost(self) -> None:
        for future in (self.invite_final, self.bye_final):
            if not future.done():
                future.set_result("SIP/2.0 000 connection closed\r\n")

    async def run(self, result: CallResult, hold_s: float) -> None:
        writer, sent_by = self.connection.writer, self.connection.sent_by
        invited = time.monotonic()
        writer.write(_request("INVITE", self.uri, sent_by, self.call_id, self.tag, 1, body=self.sdp))
        final = await asyncio.wait_for(asyncio.shield(self.invite_final), ANSWER_TIMEOUT_S)
        answered = time.monotonic()
        if not final.startswith("SIP/2.0 2"):
            result.failure = final.split("\r\n", 1)[0][8:]
            return
        result.invite_s, result.setup_s = answered - invited, answered - result.started
        to_tag = re.search(r";\s*tag=([^;\s>]+)", _header(final, "(?:To|t)"))
        writer.write(_request("ACK", self.uri, sent_by, self.call_id, self.tag, 1, to_tag.group(1) if to_tag else ""))
        await asyncio.sleep(hold_s)
        writer.write(_request("BYE", self.uri, sent_by, self.call_id, self.tag, 2, to_tag.group(1) if to_tag else ""))
        bye = await asyncio.wait_for(asyncio.shield(self.bye_final), ANSWER_TIMEOUT_S)
        if not bye.startswith("SIP/2.0 2"):
            result.failure = "BYE " + bye.split("\r\n", 1)[0][8:]

    def forget(self) -> None:
        self.connection.dialogs.pop(self.call_id, None)


# ------------------------------------------------------------------------------------------ a caller process
class _Sink(asyncio.DatagramProtocol):
    """Swallows the server's RTP (so no ICMP port unreachable goes back)."""


async def _step(port: int, cafile: str, mode: str, slots: list[float], hold_s: float,
                connections: int) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context(cafile=cafile)
    sink, _ = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
    media_port = sink.get_extra_info("sockname")[1]
    uri = f"sip:1000@127.0.0.1:{port};transport=tls"
    sdp = (f"v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    shared = [await Connection.open(port, context) for _ in range(connections)] if mode == "reused" else []
    results = [CallResult(scheduled=slot) for slot in slots]

    async def call(index: int, result: CallResult) -> None:
        delay = result.scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result.started = time.monotonic()
        connection: Connection | None = None
        dialog: Dialog | None = None
        try:
            connection = shared[index % len(shared)] if shared else await asyncio.wait_for(
                Connection.open(port, context), ANSWER_TIMEOUT_S)
            dialog = Dialog(connection, uri, sdp)
            await dialog.run(result, hold_s)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            result.failure = result.failure or f"{type(exc).__name__} {exc}"[:80]
        finally:
            if dialog is not None:
                await asyncio.sleep(0)  # a 200 OK retransmission already in the buffer still counts
                result.retransmissions = max(0, dialog.invite_oks - 1)
                dialog.forget()
            if connection is not None and not shared:
                connection.close()

    await asyncio.gather(*(call(i, r) for i, r in enumerate(results)))
    for connection in shared:
        connection.close()
    sink.close()
    return [vars(r) for r in results]


def _caller_process(port: int, cafile: str, mode: str, slots: list[float], hold_s: float,
                    connections: int) -> list[dict[str, Any]]:
    import uvloop
    return uvloop.run(_step(port, cafile, mode, slots, hold_s, connections))


def _warm(_: int) -> None:
    import uvloop  # noqa: F401  # the first step should not pay the imports


# ------------------------------------------------------------------------------------------------ the bench
def summarise(results: list[CallResult], rate: float) -> dict[str, Any]:
    ok = [r for r in results if not r.failure and r.setup_s is not None]
    failures = [r.failure for r in results if r.failure]
    starts = sorted(r.started for r in results if r.started)
    offered = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 and starts[-1] > starts[0] else 0.0
    lag = [max(0.0, r.started - r.scheduled) * 1000 for r in results if r.started]
    setup = [r.setup_s * 1000 for r in ok if r.setup_s is not None]
    invite = [r.invite_s * 1000 for r in ok if r.invite_s is not None]
    return {
        "rate": rate, "offered": offered, "attempted": len(results), "ok": len(ok), "failed": len(failures),
        "failure_kinds": sorted({f.split(" ", 1)[0] for f in failures}),
        "failure_examples": sorted(set(failures))[:3],
        "retransmissions": sum(r.retransmissions for r in results),
        "setup_p50_ms": percentile(setup, 50), "setup_p95_ms": percentile(setup, 95),
        "invite_p50_ms": percentile(invite, 50), "invite_p95_ms": percentile(invite, 95),
        "caller_lag_p95_ms": percentile(lag, 95),
    }


def run_mode(pool: Any, server: BenchServer, port: int, cafile: str, mode: str, args: argparse.Namespace
             ) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for rate in args.rates:
        count = max(1, round(rate * args.seconds))
        start = time.monotonic() + 1.0
        slots = [start + i / rate for i in range(count)]
        per_process = max(1, args.connections // args.processes)
        before = read_usage(server.pid)
        server.reset_ticker_stats()
        jobs = [pool.apply_async(_caller_process, (port, cafile, mode, slots[p::args.processes], args.hold,
                                                   per_process))
                for p in range(args.processes) if slots[p::args.processes]]
        raw = [row for job in jobs for row in job.get(timeout=args.seconds + args.hold + 4 * ANSWER_TIMEOUT_S + 30)]
        after = read_usage(server.pid)
        stats = server.latest_stats() or {}
        server.wait_idle(30)
        step = summarise([CallResult(**row) for row in raw], rate)
        step.update(server_cpu_pct=cpu_percent(before, after), load=load_average(),
                    late_ticks=int(stats.get("ticker", {}).get("late_ticks", 0)),
                    ticks=int(stats.get("ticker", {}).get("ticks", 0)))
        steps.append(step)
        print(f"  {mode:>6} {rate:5g}/s: offered {step['offered']:6.1f}/s, {step['ok']:5d}/{step['attempted']} ok, "
              f"{step['failed']} failed {step['failure_examples']}, {step['retransmissions']} retrans, "
              f"setup p50 {step['setup_p50_ms']:.1f} / p95 {step['setup_p95_ms']:.1f} ms (INVITE→200 p95 "
              f"{step['invite_p95_ms']:.1f} ms), caller lag p95 {step['caller_lag_p95_ms']:.0f} ms, server CPU "
              f"{step['server_cpu_pct']:.0f} %, late ticks {step['late_ticks']}/{step['ticks']}, load "
              f"{step['load']:.1f}", flush=True)
        if step["failed"] or step["offered"] < 0.95 * rate:
            break
    return steps


def headline(steps: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The highest rate such that it and every lower rate ran clean (0 failures, 0 retransmissions, >= 95 % of the
    rate offered), and the first step that was not clean."""
    best = None
    for step in steps:
        if step["failed"] or step["retransmissions"] or step["offered"] < 0.95 * step["rate"]:
            return best, step
        best = step
    return best, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                        default=[20.0, 50.0, 100.0, 150.0, 200.0, 300.0], help="calls/s per step, ascending")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of calls per step (default 10)")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds between ACK and BYE (default 1)")
    parser.add_argument("--modes", type=lambda s: s.split(","), default=["new", "reused"], help="new,reused")
    parser.add_argument("--connections", type=int, default=4, help="shared TLS connections in reused mode")
    parser.add_argument("--processes", type=int, default=2, help="caller processes (default 2)")
    args = parser.parse_args(argv)
    if any(mode not in MODES for mode in args.modes):
        parser.error(f"--modes: any of {', '.join(MODES)}")
    if args.processes < 1 or args.connections < args.processes:
        parser.error("--processes must be >= 1 and --connections >= --processes")
    with tempfile.TemporaryDirectory() as tmp, BenchRecord("tls_setup_rate") as record:
        run(Path(tmp), args, record)
    return 0


def run(work: Path, args: argparse.Namespace, record: BenchRecord) -> None:
    ca = TestCa(work / "pki")
    pem = ca.issue("server", ["localhost", "127.0.0.1"])
    peak = int(max(args.rates) * (args.hold + 2)) + 100
    config = bench_config(max_calls=max(200, min(peak, 1900))).replace(
        "listen: {host: 127.0.0.1, port: 0}",
        f"listen: {{host: 127.0.0.1, port: 0, transports: [udp, tls], tls_port: 0, "
        f"tls: {{cert_file: {pem.cert}, key_file: {pem.key}}}, "
        f"stream: {{max_connections: 8192, max_connections_per_source: 8192}}}}")
    server = BenchServer.start(work, config)
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        port = int(next(r for r in server.records if r.get("msg") == "listening")["tls_port"])
        print(f"voicebot serve (TLS 127.0.0.1:{port}, dialplan keypad-demo); rates {args.rates} calls/s, "
              f"{args.seconds:g} s each, hold {args.hold:g} s; {args.processes} caller processes; reused mode: "
              f"{args.connections} connections", flush=True)
        with mp.get_context("spawn").Pool(args.processes) as pool:
            pool.map(_warm, range(args.processes))
            for mode in args.modes:
                results[mode] = run_mode(pool, server, port, str(ca.pem.cert), mode, args)
    finally:
        server.stop()
    record.data.update(steps=results, args={k: v for k, v in vars(args).items()})
    for mode, steps in results.items():
        best, first_bad = headline(steps)
        beyond = ""
        if first_bad is not None:
            why = ("failures" if first_bad["failed"] else "retransmissions" if first_bad["retransmissions"]
                   else "callers could not offer the rate")
            beyond = (f"; at {first_bad['rate']:g}/s {why} ({first_bad['failed']} failed, "
                      f"{first_bad['retransmissions']} retrans, p95 {first_bad['setup_p95_ms']:.0f} ms)")
        if best is None:
            print(f"{MODES[mode]}: no rate ran clean{beyond}")
            figure = f"none clean{beyond}"
        else:
            print(f"{MODES[mode]}: highest clean rate {best['rate']:g}/s, setup p95 {best['setup_p95_ms']:.1f} ms, "
                  f"server CPU {best['server_cpu_pct']:.0f} %{beyond}")
            figure = (f"**{best['rate']:g}/s** (p95 setup {best['setup_p95_ms']:.0f} ms, server "
                      f"{best['server_cpu_pct']:.0f} % of a core){beyond}")
        if mode == "reused" and args.connections:
            what = f"SIP/TLS call setups/s with 0 failures and 0 retransmissions, {args.connections} shared connections"
        else:
            what = "SIP/TLS call setups/s with 0 failures and 0 retransmissions, new connection (handshake) per call"
        record.row(f"{what} (Python ssl callers on the same cores, hold {args.hold:g} s)", figure)


if __name__ == "__main__":
    raise SystemExit(main())
