"""SIP message parser / serialiser speed: µs per message for a typical INVITE (with SDP) and a 200 OK.

Also times the UAS checks (check_request) and the worst RFC 4475 torture message, and a 60 KB header, so a
regression towards super-linear parsing shows up. Best of several rounds is printed (the machine is shared).

    .venv/bin/python bench/sip_parse.py [--rounds 5] [--number 20000]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import BenchRecord  # noqa: E402
from voicebot.sip.parser import parse_message  # noqa: E402
from voicebot.sip.validate import check_request  # noqa: E402

SDP = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n"
       b"t=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")
INVITE = (b"INVITE sip:+4930123456@voicebot.example.com;user=phone SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport\r\n"
          b"Max-Forwards: 70\r\n"
          b"To: <sip:+4930123456@voicebot.example.com;user=phone>\r\n"
          b"From: \"Alice Caller\" <sip:+4917012345@trunk.example.net>;tag=1928301774\r\n"
          b"Call-ID: a84b4c76e66710@198.51.100.7\r\n"
          b"CSeq: 314159 INVITE\r\n"
          b"Contact: <sip:+4917012345@198.51.100.7:5060;transport=udp>\r\n"
          b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE\r\n"
          b"Supported: replaces, timer\r\n"
          b"User-Agent: TrunkGW/4.2\r\n"
          b"Content-Type: application/sdp\r\n"
          b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP)
OK_200 = (b"SIP/2.0 200 OK\r\n"
          b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK8e1f3c;received=192.0.2.10;rport=5060\r\n"
          b"From: <sip:bot@voicebot.example.com>;tag=a6c85cf\r\n"
          b"To: <sip:agent@pbx.example.com>;tag=314159\r\n"
          b"Call-ID: 843817637684230@192.0.2.10\r\n"
          b"CSeq: 2 BYE\r\n"
          b"Server: pbx\r\n"
          b"Content-Length: 0\r\n\r\n")
TORTURE = Path(__file__).resolve().parents[1] / "tests" / "sip" / "torture"


def best_us(fn: Callable[[], object], rounds: int, number: int) -> float:
    return min(timeit.repeat(fn, repeat=rounds, number=number)) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--number", type=int, default=20000)
    args = ap.parse_args()
    with BenchRecord("sip_parse") as record:
        measure(record, args.rounds, args.number)


def measure(record: BenchRecord, r: int, n: int) -> None:
    """Time each message, print the table, keep the figures and the README row in `record`."""
    invite = parse_message(INVITE)
    ok = parse_message(OK_200)
    methods = {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REFER", "NOTIFY", "UPDATE"}
    rows = [
        (f"parse INVITE + SDP ({len(INVITE)} B)", best_us(lambda: parse_message(INVITE), r, n)),
        (f"parse 200 OK ({len(OK_200)} B)", best_us(lambda: parse_message(OK_200), r, n)),
        ("serialise INVITE", best_us(invite.serialize, r, n)),
        ("serialise 200 OK", best_us(ok.serialize, r, n)),
        ("check_request INVITE", best_us(lambda: check_request(
            invite, supported_methods=methods, supported_extensions={"replaces", "timer"},  # type: ignore[arg-type]
            accepted_content_types={"application/sdp"}), r, n)),
    ]
    if TORTURE.is_dir():
        longreq = (TORTURE / "longreq.dat").read_bytes()
        rows.append((f"parse RFC 4475 longreq ({len(longreq)} B)",
                     best_us(lambda: parse_message(longreq), r, max(1, n // 10))))
    big = INVITE.replace(b"User-Agent: TrunkGW/4.2", b"X-Big: " + b"a;b," * 15000)
    rows.append((f"parse INVITE with a 60 KB header ({len(big)} B)",
                 best_us(lambda: parse_message(big, max_size=1 << 20), r, max(1, n // 200))))
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f"{name:<{width}}  {us:9.1f} µs")
    record.data["us_per_message"] = {name: round(us, 2) for name, us in rows}
    record.row("SIP parse, typical INVITE / 200 OK", f"~{rows[0][1]:.0f} µs / ~{rows[1][1]:.0f} µs")


if __name__ == "__main__":
    main()
