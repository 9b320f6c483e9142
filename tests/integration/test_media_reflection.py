"""RTP reflection: an INVITE whose SDP names a third party's address must not make voicebot stream to it."""

from __future__ import annotations

import socket

import pytest

from tests.integration.rawsip import media_port, sdp_offer
from tests.integration.support import ServerProcess
from tests.integration.test_bad_input import Caller, count_rtp, rtp_packet

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def invite_naming(caller: Caller, media: tuple[str, int]) -> int:
    """INVITE from the caller's signalling socket (127.0.0.1) with an SDP that names ``media``."""
    body = sdp_offer(media[0], media[1])
    caller.peer.send(caller.peer.request("INVITE", caller.server.uri, body=body, content_type="application/sdp",
                                         cseq=1))
    reply = caller.peer.wait_reply("INVITE", timeout=10)
    assert reply is not None and reply.status == 200, reply
    caller.to_tag = (reply.header("to") or "").split("tag=")[1].split(";")[0]
    caller.server_media = (caller.server.host, media_port(reply.body))
    caller.ack(1)
    return reply.status


def test_sdp_naming_a_third_party_gets_no_media_until_the_caller_sends(voicebot_server: ServerProcess) -> None:
    caller = Caller(voicebot_server)  # signalling and its own RTP socket on 127.0.0.1
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    victim.bind(("127.0.0.2", 0))  # the "third party" the crafted SDP points at
    try:
        invite_naming(caller, victim.getsockname())
        assert count_rtp(victim, 1.5) == 0, "voicebot streamed RTP to an address only the SDP named"
        assert count_rtp(caller.rtp, 0.3) == 0
        assert caller.server_media is not None
        for i in range(5):  # the real caller's media arrives: voicebot latches onto its source
            caller.rtp.sendto(rtp_packet(i, i * 160, 0x4321), caller.server_media)
        assert count_rtp(caller.rtp, 0.6) > 15
        assert count_rtp(victim, 0.3) == 0
        assert caller.bye() == 200
    finally:
        caller.close()
        victim.close()
    ended = voicebot_server.wait_for("call ended")[0]
    assert ended["rtp_sent"] > 15


def test_sdp_naming_the_signalling_source_gets_media_at_once(voicebot_server: ServerProcess) -> None:
    caller = Caller(voicebot_server)
    try:
        assert caller.invite() == 200  # SDP names 127.0.0.1, the INVITE's source: no need to wait for RTP
        assert count_rtp(caller.rtp, 0.6) > 15
        assert caller.bye() == 200
    finally:
        caller.close()

