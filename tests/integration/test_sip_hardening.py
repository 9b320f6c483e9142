"""SIP-level hardening against a running `voicebot serve` (issue 21 items 2-6), driven with raw UDP.

Agent phones register with digest auth (REGISTER replay, password guessing), hostile sources flood the socket
(parse-error logging, OPTIONS floods), malformed requests and SDP get specific answers.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.integration.rawsip import RawPeer, Reply
from tests.integration.support import (
    ServerProcess,
    free_udp_port,
    start_server,
    stop_server,
)
from tests.integration.test_agent_registration import agents_yaml
from voicebot.sip import digest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PASSWORD = "agent-pw-7f3k"
ENV = {"VOICEBOT_TEST_AGENT_PW": PASSWORD}


def start_registrar(tmp_path: Path, extra: str = "") -> ServerProcess:
    """A server whose agent a1 registers its phone as alice (password PASSWORD)."""
    server = start_server(tmp_path, agents_yaml(tmp_path, free_udp_port()) + extra, env=ENV)
    server.wait_for("agent registrar ready")
    return server


def register(peer: RawPeer, user: str = "alice", *, authorization: str | None = None, call_id: str | None = None,
             contact_port: int | None = None, expires: int = 120) -> tuple[Reply, str]:
    """Send one REGISTER for ``user`` (with ``authorization`` if given); (final reply, the request sent)."""
    uri = f"sip:127.0.0.1:{peer.server[1]}"
    peer.cseq += 1
    request = (f"REGISTER {uri} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {peer.host}:{peer.port};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag={peer.tag}\r\nTo: <sip:{user}@127.0.0.1>\r\n"
               f"Call-ID: {call_id or peer.call_id}\r\nCSeq: {peer.cseq} REGISTER\r\n"
               f"Contact: <sip:{user}@{peer.host}:{contact_port or peer.port}>;expires={expires}\r\n"
               + (f"Authorization: {authorization}\r\n" if authorization else "")
               + "Content-Length: 0\r\n\r\n")
    peer.send(request)
    reply = peer.wait_reply("REGISTER")
    assert reply is not None, f"no answer to REGISTER from {peer.host}:{peer.port}"
    return reply, request


def answer(challenge_reply: Reply, peer: RawPeer, user: str = "alice", password: str = PASSWORD,
           nc: int = 1) -> str:
    """Authorization answering the SHA-256 challenge of a 401."""
    assert challenge_reply.status == 401, challenge_reply.raw
    challenges = [digest.parse_challenge(v) for v in challenge_reply.headers["www-authenticate"]]
    challenge = next(c for c in challenges if c.algorithm == "SHA-256")
    return digest.build_authorization(challenge, "REGISTER", f"sip:127.0.0.1:{peer.server[1]}", user, password,
                                      nc=nc)


def login(peer: RawPeer, user: str = "alice", password: str = PASSWORD) -> tuple[Reply, str]:
    """Challenge + answer; (the final reply, the Authorization sent)."""
    challenge, _ = register(peer, user)
    authorization = answer(challenge, peer, user, password)
    reply, _ = register(peer, user, authorization=authorization)
    return reply, authorization


def test_captured_register_authorization_cannot_be_replayed(tmp_path: Path) -> None:
    server = start_registrar(tmp_path)
    phone, attacker = RawPeer(("127.0.0.1", server.port)), RawPeer(("127.0.0.1", server.port))
    try:
        reply, captured = login(phone)
        assert reply.status == 200, reply.raw
        # The sniffed Authorization, re-sent from another source with a new Call-ID and the attacker's Contact.
        replay, _ = register(attacker, authorization=captured, call_id=secrets.token_hex(8) + "@evil")
        assert replay.status == 401, replay.raw
        # ... and from the phone's own address (spoofed source) with the same nonce count: a stale challenge.
        again, _ = register(phone, authorization=captured, call_id=secrets.token_hex(8) + "@evil",
                            contact_port=attacker.port)
        assert again.status == 401 and "stale=true" in again.raw.lower(), again.raw
        server.wait_for("REGISTER replay refused")
        # The registered Contact is still the phone's.
        registered = server.records("agent registered")
        assert len(registered) == 1 and str(phone.port) in registered[0]["contact"], registered
        # The phone itself goes on: the same nonce with an increased count is accepted.
        challenge = digest.parse_credentials(captured)
        refresh = digest.build_authorization(
            digest.Challenge(challenge["realm"], challenge["nonce"], "SHA-256", ("auth",)), "REGISTER",
            challenge["uri"], "alice", PASSWORD, nc=2)
        assert refresh != captured
        ok, _ = register(phone, authorization=refresh)
        assert ok.status == 200, ok.raw
    finally:
        phone.close()
        attacker.close()
        stop_server(server)
