"""Call setups per second over SIP/TLS against `voicebot serve`: one TLS connection reused per caller vs a new
TLS connection (full handshake) per call.

Debian's sipp is built without TLS, so the callers are asyncio ``ssl`` clients in this process: --callers of them
place calls back to back — INVITE / 200 / ACK / BYE / 200 — for --seconds per mode. Setup time is measured from the
connect (new) or the INVITE (reused) to the 200 OK. The client costs CPU on the same cores as the server, so the
figures are a floor, not the server's ceiling; bench/results records the load of the box.

    .venv/bin/python bench/sip_tls_call_rate.py --callers 4 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sip_bench_common import BenchServer, bench_config, cpu_percent, percentile, read_usage  # noqa: E402

from bench.results import BenchRecord  # noqa: E402
from tests.certs import TestCa  # noqa: E402


async def read_message(reader: asyncio.StreamReader) -> str:
    head = await reader.readuntil(b"\r\n\r\n")
    m = re.search(rb"^(?:Content-Length|l)\s*:\s*(\d+)", head, re.I | re.M)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return (head + body).decode()


async def final(reader: asyncio.StreamReader, method: str) -> str:
    while True:
        msg = await read_message(reader)
        if msg.startswith("SIP/2.0 ") and int(msg.split()[1]) >= 200 and f" {method}\r\n" in msg:
            return msg


def request(method: str, uri: str, sent_by: str, call_id: str, tag: str, cseq: int, to_tag: str = "",
            body: str = "") -> bytes:
    lines = [f"{method} {uri} SIP/2.0", f"Via: SIP/2.0/TLS {sent_by};branch=z9hG4bK{secrets.token_hex(6)};alias",
             f"From: <sip:bench@127.0.0.1>;tag={tag}", f"To: <{uri}>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", f"Contact: <sip:bench@{sent_by};transport=tls>",
             "Max-Forwards: 70"]
    if body:
        lines.append("Content-Type: application/sdp")
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n" + body).encode()


async def caller(port: int, context: ssl.SSLContext, reuse: bool, until: float, media_port: int,
                 setups: list[float], failures: list[str]) -> None:
    uri = f"sip:1000@127.0.0.1:{port};transport=tls"
    sdp = (f"v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
            reader, writer = conn
            sent_by = "127.0.0.1:%d" % writer.get_extra_info("sockname")[1]
            call_id, tag = secrets.token_hex(8) + "@bench", secrets.token_hex(4)
            writer.write(request("INVITE", uri, sent_by, call_id, tag, 1, body=sdp))
            if reuse:
                started = time.monotonic()
            ok = await asyncio.wait_for(final(reader, "INVITE"), 10)
            if not ok.startswith("SIP/2.0 200"):
                failures.append(ok.split("\r\n", 1)[0])
                continue
            setups.append(time.monotonic() - started)
            to_tag = re.search(r"^To:.*;tag=([^;\s]+)", ok, re.M).group(1)  # type: ignore[union-attr]
            writer.write(request("ACK", uri, sent_by, call_id, tag, 1, to_tag))
            writer.write(request("BYE", uri, sent_by, call_id, tag, 2, to_tag))
            bye = await asyncio.wait_for(final(reader, "BYE"), 10)
            if not bye.startswith("SIP/2.0 200"):
                failures.append("BYE " + bye.split("\r\n", 1)[0])
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            failures.append(type(exc).__name__)
            conn = None
            continue
        if not reuse:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


async def run_mode(port: int, context: ssl.SSLContext, reuse: bool, callers: int, seconds: float,
                   media_ports: list[int]) -> tuple[list[float], list[str], float]:
    setups: list[float] = []
    failures: list[str] = []
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(*(caller(port, context, reuse, until, media_ports[i], setups, failures)
                           for i in range(callers)))
    return setups, failures, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, BenchRecord("sip_tls_call_rate") as record:
        work = Path(tmp)
        ca = TestCa(work / "pki")
        pem = ca.issue("server", ["localhost", "127.0.0.1"])
        config = bench_config(max_calls=200).replace(
            "listen: {host: 127.0.0.1, port: 0}",
            f"listen: {{host: 127.0.0.1, port: 0, transports: [udp, tls], tls_port: 0, "
            f"tls: {{cert_file: {pem.cert}, key_file: {pem.key}}}}}")
        server = BenchServer.start(work, config)
        sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(args.callers)]
        try:
            for sink in sinks:
                sink.bind(("127.0.0.1", 0))
            listening = next(r for r in server.records if r.get("msg") == "listening")
            port = int(listening["tls_port"])
            context = ssl.create_default_context(cafile=str(ca.pem.cert))
            ports = [s.getsockname()[1] for s in sinks]
            for reuse in (True, False):
                before = read_usage(server.pid)
                setups, failures, elapsed = asyncio.run(run_mode(port, context, reuse, args.callers, args.seconds,
                                                                 ports))
                after = read_usage(server.pid)
                server.wait_idle(30)
                mode = "reused connection" if reuse else "new connection per call"
                rate = len(setups) / elapsed
                p50 = percentile([s * 1000 for s in setups], 50) if setups else 0.0
                p95 = percentile([s * 1000 for s in setups], 95) if setups else 0.0
                print(f"{mode:>24}: {len(setups)} calls in {elapsed:.1f} s = {rate:.1f} setups/s, "
                      f"{len(failures)} failed {sorted(set(failures))[:3]}, setup p50 {p50:.1f} ms p95 {p95:.1f} ms, "
                      f"server CPU {cpu_percent(before, after):.0f} %")
                record.row(f"SIP/TLS call setups/s, {mode} ({args.callers} Python ssl callers on the same box, "
                           f"{len(failures)} failed)", f"{rate:.0f}",
                           command=f"bench/sip_tls_call_rate.py --callers {args.callers} --seconds {args.seconds:g}")
        finally:
            for sink in sinks:
                sink.close()
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
