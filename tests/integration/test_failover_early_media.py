"""Failover after early media: the trunk's first proxy (sipp) answers 183 with SDP pointing at an announcement
source the test runs, then fails the call with 503; the second proxy (sipp, -rtp_echo) answers 200 a second later.
Our RTP must leave the first peer at the failover (nothing sent to it while the second proxy rings, its late
packets dropped, never latched) and flow to and from the second; its answer keys the stream afresh (in-band DTMF
detection the first peer's 183 turned on is off: the second offers telephone-event)."""

from __future__ import annotations

import asyncio
import logging
import struct
import subprocess
import time
from pathlib import Path
from typing import cast

import pytest

from voicebot.handoff.dialer import OutboundDialer
from voicebot.rtp.ports import PortAllocator
from voicebot.sip.proxyhealth import TrunkProxies, TrunkRoutes
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import UserAgent

from tests.integration.support import SCENARIOS, free_media_port, free_port_range, free_udp_port, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LOOPBACK = EgressPolicy(["127.0.0.0/8"])
TARGET = "sip:+15550100@carrier.example"


class Announcement(asyncio.DatagramProtocol):
    """The first proxy's media: once our RTP arrives it streams PCMA back every 20 ms, and keeps streaming after
    the 503 (a media relay slow to let go); ``arrivals`` are the wall-clock times our packets reached it."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.arrivals.append(time.time())
        if self.task is None:
            self.task = asyncio.ensure_future(self._stream(addr))

    async def _stream(self, addr: tuple[str, int]) -> None:
        for seq in range(10_000):
            assert self.transport is not None
            self.transport.sendto(struct.pack("!BBHII", 0x80, 8, seq, seq * 160, 0x5EED) + b"\xd5" * 160, addr)
            await asyncio.sleep(0.02)  # the packet clock of the stream, not a wait for anything


def _sipp(tmp_path: Path, scenario: str, port: int, media_port: int, *extra: str) -> subprocess.Popen[bytes]:
    require_tool("sipp")
    return subprocess.Popen(["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
                             "-mi", "127.0.0.1", "-mp", str(media_port), "-m", "1", "-nostdin", "-timeout", "30s",
                             "-timeout_error", "-trace_err", "-error_file", str(tmp_path / f"{port}_errors.log"),
                             *extra], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_media_follows_the_second_proxy_after_a_failover_from_early_media(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    early_port, second_media = free_udp_port(), free_media_port()
    first_port, second_port = free_udp_port(), free_udp_port()
    first = _sipp(tmp_path, "trunk_proxy_early_media_503.xml", first_port, free_media_port(),
                  "-set", "early_port", str(early_port))
    second = _sipp(tmp_path, "trunk_proxy_answers_late.xml", second_port, second_media, "-rtp_echo")

    async def scenario() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        transport, announcement = await loop.create_datagram_endpoint(Announcement,
                                                                      local_addr=("127.0.0.1", early_port))
        ua = UserAgent("127.0.0.1", 0, egress=LOOPBACK)
        await ua.start()
        start, end = free_port_range(20)
        trunk = TrunkProxies("carrier", "carrier.example",
                             [f"sip:127.0.0.1:{first_port}", f"sip:127.0.0.1:{second_port}"])
        dialer = OutboundDialer(ua, PortAllocator(start, end), media_host="127.0.0.1", dtmf_payload_type=101,
                                egress=LOOPBACK, routes=TrunkRoutes([trunk]))
        try:
            leg = await dialer.dial(TARGET, [], ["PCMU", "PCMA"], timeout_s=20)
            answered = time.time()
            stream = leg.stream
            received = stream.stats["packets_received"]
            for _ in range(150):  # until the second proxy's echo has been flowing for a while (or 3 s)
                if stream.stats["packets_received"] >= received + 25:
                    break
                await asyncio.sleep(0.02)
            result = {"answered": answered, "arrivals": list(announcement.arrivals), "remote": stream.remote,
                      "latched": stream.stats["latched"], "inband": stream.inband_dtmf,
                      "gained": stream.stats["packets_received"] - received,
                      "wrong_source": stream.stats["wrong_source"], "codec": stream.codec.name}
            await leg.hangup()
            await leg.close()
            return result
        finally:
            if announcement.task is not None:
                announcement.task.cancel()
            transport.close()
            await ua.stop()

    try:
        with caplog.at_level(logging.INFO, logger="voicebot.handoff.dialer"):
            result = asyncio.run(asyncio.wait_for(scenario(), 40))
        codes = first.wait(20), second.wait(20)
        assert codes == (0, 0), "".join(p.read_text() for p in tmp_path.glob("*_errors.log"))
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
    [failover] = [r for r in caplog.records if r.getMessage().startswith("trunk proxy failed the call")]
    arrivals = result["arrivals"]
    assert isinstance(arrivals, list) and arrivals, "the 183's early media never reached the first peer"
    late = [t for t in arrivals if t > failover.created + 0.1]  # one packet may be in flight at the failover
    assert not late, f"{len(late)} packets sent to the failed proxy's media after the failover"
    second_addr = ("127.0.0.1", second_media)
    assert result["remote"] == second_addr and result["latched"] == second_addr, result
    assert isinstance(result["gained"], int) and result["gained"] >= 25, result  # the second's echo comes back
    assert isinstance(result["wrong_source"], int) and result["wrong_source"] > 0  # the first kept streaming
    assert result["inband"] is False and result["codec"] == "PCMU"
