"""SIP-level hardening against a running `voicebot serve` (issue 21 items 2-6), driven with raw UDP.

Agent phones register with digest auth (REGISTER replay, password guessing), hostile sources flood the socket
(parse-error logging, OPTIONS floods), malformed requests and SDP get specific answers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.rawsip import RawPeer, Reply, sdp_offer
from tests.integration.support import (
    ServerProcess,
    free_udp_port,
    start_server,
    stop_server,
)
from tests.integration.test_agent_registration import agents_yaml
from tests.integration.test_bad_input import Caller
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


LOCKOUT = "auth: {lockout: {failures_per_source: 5, failures_per_user: 8, ban_s: 3}}\n"


def fail_logins(peer: RawPeer, count: int, user: str = "alice") -> None:
    for _ in range(count):
        reply, _ = login(peer, user, "guess-" + secrets.token_hex(3))
        assert reply.status == 403, reply.raw


def audit_actions(server: ServerProcess) -> list[dict]:
    path = server.workdir / "audit" / "audit.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [entry for entry in map(json.loads, lines) if entry["action"] == "sip.login_lockout"]


def poll(condition, timeout: float, every: float = 0.3):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def test_password_guessing_locks_the_source_out_until_the_ban_expires(tmp_path: Path) -> None:
    server = start_registrar(tmp_path, LOCKOUT)
    guesser, other = RawPeer(("127.0.0.1", server.port)), RawPeer(("127.0.0.1", server.port), "127.0.0.5")
    try:
        fail_logins(guesser, 4)
        fail_logins(guesser, 1, user="mallory")  # unknown users count for the source too
        locked, _ = login(guesser)  # the right password, at once after: refused
        assert locked.status == 403 and "locked out" in locked.reason, locked.raw
        server.wait_for_match("SIP login lockout", scope="source", key="127.0.0.1")
        entry = poll(lambda: audit_actions(server), 10)[0]
        assert entry["details"]["scope"] == "source" and entry["details"]["failures"] == 5, entry
        ok, _ = login(other)  # another address is not affected (the user's own count, 4, is below 8)
        assert ok.status == 200, ok.raw
        # The ban expires (3 s): the right password from the guesser's address works again.
        assert poll(lambda: login(guesser)[0].status == 200, 15, every=0.5)
        assert not any(PASSWORD in line for line in server.lines)
    finally:
        guesser.close()
        other.close()
        stop_server(server)


def test_password_guessing_from_many_addresses_locks_the_user_out(tmp_path: Path) -> None:
    server = start_registrar(tmp_path, LOCKOUT)
    peers = [RawPeer(("127.0.0.1", server.port), f"127.0.0.{n}") for n in (2, 3, 4)]
    try:
        fail_logins(peers[0], 4)
        fail_logins(peers[1], 4)  # 8 failures of alice, none of the addresses reached 5
        locked, _ = login(peers[2])
        assert locked.status == 403 and "locked out" in locked.reason, locked.raw
        server.wait_for_match("SIP login lockout", scope="user", key="alice")
        assert poll(lambda: [e for e in audit_actions(server) if e["details"]["scope"] == "user"], 10)
        assert poll(lambda: login(peers[2])[0].status == 200, 15, every=0.5)
    finally:
        for peer in peers:
            peer.close()
        stop_server(server)


def hostile_datagram(n: int) -> bytes:
    """60 KB of garbage, of a request with a huge bad header line, or of a request with a huge Call-ID."""
    head = (f"INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK{n}\r\n"
            f"From: <sip:x@127.0.0.1>;tag={n}\r\nTo: <sip:1000@127.0.0.1>\r\nCSeq: 1 INVITE\r\n").encode()
    kind = n % 3
    if kind == 0:
        return secrets.token_bytes(60_000)
    if kind == 1:
        return head + b"Call-ID: x\r\nX-Bad " + b"a" * 60_000 + b"\r\n\r\n"
    return head + b"Call-ID: " + b"c" * 60_000 + b"\r\nContent-Length: 0\r\n\r\n"


def test_flood_of_large_bad_datagrams_from_outside_the_acl_writes_a_few_short_lines(tmp_path: Path) -> None:
    server = start_server(tmp_path, "acl: {allow: [127.0.0.2/32]}\n")
    hostile = RawPeer(("127.0.0.1", server.port))  # 127.0.0.1 is outside the ACL
    friend = RawPeer(("127.0.0.1", server.port), "127.0.0.2")
    stranger = RawPeer(("127.0.0.1", server.port), "127.0.0.3")
    try:
        lines_before = len(server.lines)
        for n in range(500):
            hostile.send(hostile_datagram(n))
            if n % 25 == 24:  # datagrams are handled in order: the friend's answer means the batch was read
                friend.send(friend.request("OPTIONS", f"sip:1000@127.0.0.1:{server.port}"))
                reply = friend.wait_reply("OPTIONS")
                assert reply is not None and reply.status == 200
        logged = server.lines[lines_before:]
        assert len(logged) <= 6 and sum(map(len, logged)) < 4000, "\n".join(line[:300] for line in logged)
        limited = server.wait_for("requests from source rate-limited")
        assert limited[0]["src"] == "127.0.0.1"
        # Outside the ACL and not flooding: still told 403, once.
        stranger.send(stranger.request("OPTIONS", f"sip:1000@127.0.0.1:{server.port}"))
        refused = stranger.wait_reply("OPTIONS")
        assert refused is not None and refused.status == 403
    finally:
        for peer in (hostile, friend, stranger):
            peer.close()
        stop_server(server)


def test_sip_socket_gets_the_configured_receive_buffer_and_reports_it(tmp_path: Path) -> None:
    server = start_server(tmp_path)  # listen.receive_buffer_bytes: default 4 MiB
    try:
        entry = server.wait_for("sip receive buffer")[0]
        requested, granted = entry["requested"], entry["granted"]
        assert requested == 4 * 1024 * 1024 and entry["port"] == server.port
        rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
        assert granted >= (requested if os.geteuid() == 0 else min(requested, rmem_max)), entry
        # The kernel's own view of the socket (ss: skmem rb) is the size reported.
        out = subprocess.run(["ss", "-uamn", f"sport = :{server.port}"], capture_output=True, text=True,
                             check=True).stdout
        assert re.search(r"\brb(\d+)", out) and int(re.search(r"\brb(\d+)", out)[1]) == granted, out
    finally:
        stop_server(server)


def invite_from(peer: RawPeer, server: ServerProcess) -> None:
    body = sdp_offer(peer.host, 40000)
    peer.send(peer.request("INVITE", f"sip:1000@127.0.0.1:{server.port}", body=body,
                           content_type="application/sdp", cseq=1))


def test_new_calls_get_503_while_too_many_setups_are_pending(tmp_path: Path) -> None:
    server = start_server(tmp_path, "answer_delay_s: 8\nlimits: {max_pending_setups: 2}\n")
    peers = [RawPeer(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        for peer in peers[:2]:
            invite_from(peer, server)
            ringing = peer.wait_reply("INVITE", final=False)
            while ringing is not None and ringing.status == 100:
                ringing = peer.wait_reply("INVITE", final=False)
            assert ringing is not None and ringing.status == 180, ringing
        invite_from(peers[2], server)
        refused = peers[2].wait_reply("INVITE")
        assert refused is not None and refused.status == 503, refused
        assert "2 call setups pending" in refused.reason and refused.header("retry-after") == "2"
        server.wait_for_match("call setup refused", reason="overloaded: 2 call setups pending")
    finally:
        for peer in peers:
            peer.close()
        stop_server(server)


def test_new_calls_get_503_while_the_media_clock_is_late(tmp_path: Path) -> None:
    server = start_server(tmp_path, "limits: {max_media_lag_ms: 100}\n")
    caller, late = Caller(server), RawPeer(("127.0.0.1", server.port))
    try:
        assert caller.invite() == 200  # a call in progress: the media clock runs
        server.proc.send_signal(signal.SIGSTOP)  # the loop stalls (overload) while an INVITE arrives
        try:
            invite_from(late, server)
            time.sleep(0.5)  # the length of the stall, not a synchronisation
        finally:
            server.proc.send_signal(signal.SIGCONT)
        refused = late.wait_reply("INVITE")
        assert refused is not None and refused.status == 503 and "media clock" in refused.reason, refused
        assert refused.header("retry-after") == "2"
        assert caller.bye() == 200
    finally:
        caller.close()
        late.close()
        stop_server(server)


def test_a_single_short_pause_of_the_loop_does_not_turn_a_caller_away(tmp_path: Path) -> None:
    server = start_server(tmp_path, "limits: {max_media_lag_ms: 100}\n")
    caller, next_caller = Caller(server), RawPeer(("127.0.0.1", server.port))
    try:
        assert caller.invite() == 200  # a call in progress: the media clock runs
        server.proc.send_signal(signal.SIGSTOP)  # one pause (like a garbage collection) while an INVITE arrives
        try:
            invite_from(next_caller, server)
            time.sleep(0.15)  # the length of the pause, not a synchronisation
        finally:
            server.proc.send_signal(signal.SIGCONT)
        answer = next_caller.wait_reply("INVITE")
        assert answer is not None and answer.status == 200, answer
        assert caller.bye() == 200
    finally:
        caller.close()
        next_caller.close()
        stop_server(server)


def test_sustained_options_flood_at_a_modest_rate_gets_the_source_banned(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    flooder = RawPeer(("127.0.0.1", server.port), "127.0.0.6")
    uri = f"sip:1000@127.0.0.1:{server.port}"
    try:
        sent, deadline = 0, time.monotonic() + 15
        while not server.records("source banned") and time.monotonic() < deadline:
            for _ in range(8):  # 80 requests/s in batches of 8 every 100 ms: 4x the per-source rate, not 1,000/s
                flooder.send(flooder.request("OPTIONS", uri))
            sent += 8
            while flooder.recv(0.0001) is not None:
                pass
            time.sleep(0.1)  # pacing the flood, not synchronisation
        banned = server.wait_for_match("source banned", timeout=1, src="127.0.0.6")
        assert banned["reason"] == "flood" and sent < 600, (banned, sent)
        while flooder.recv(0.2) is not None:  # answers still in flight
            pass
        flooder.send(flooder.request("OPTIONS", uri))  # a polite request from the banned source: ignored
        assert flooder.wait_reply("OPTIONS", timeout=1.0) is None
    finally:
        flooder.close()
        stop_server(server)


def test_requests_missing_call_id_from_or_cseq_get_400_through_their_via(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    peer = RawPeer(("127.0.0.1", server.port))
    try:
        for missing in ("Call-ID", "From", "CSeq"):
            lines = peer.request("OPTIONS", f"sip:1000@127.0.0.1:{server.port}").split("\r\n")
            peer.send("\r\n".join(line for line in lines if not line.startswith(missing + ":")))
            data = peer.recv(3.0)
            assert data is not None, f"no answer to a request without {missing}"
            text = data.decode()
            assert text.startswith("SIP/2.0 400 ") and f"missing mandatory header {missing}" in text, text
            assert f"{missing}:" not in text and f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port}" in text, text
    finally:
        peer.close()
        stop_server(server)


def test_sdp_with_an_invalid_connection_address_is_refused_with_a_reason(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    peer = RawPeer(("127.0.0.1", server.port))
    try:
        body = sdp_offer("127.0.0.1", 40000).replace("c=IN IP4 127.0.0.1", "c=IN IP4 999.1.2.3")
        peer.send(peer.request("INVITE", f"sip:1000@127.0.0.1:{server.port}", body=body,
                               content_type="application/sdp"))
        reply = peer.wait_reply("INVITE")
        assert reply is not None and reply.status in (400, 488), reply
        warning = reply.header("warning") or ""
        assert "999.1.2.3" in warning and "not a valid IP4 address" in warning, reply.raw
        assert server.wait_for_match("call rejected: bad SDP")["reason"].endswith("is not a valid IP4 address")
    finally:
        peer.close()
        stop_server(server)


def test_sigterm_exits_in_bounded_time_when_a_caller_never_answers_the_bye(tmp_path: Path) -> None:
    server = start_server(tmp_path)  # shutdown_grace_s: 5
    caller = Caller(server)
    try:
        assert caller.invite() == 200
        # The caller's phone goes silent: it reads nothing and answers no BYE (its retransmissions pile up).
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0
        took = time.monotonic() - started
        assert took < 5 + 5, f"exit took {took:.1f} s after SIGTERM (grace 5 s)"
        server.wait_for("stopped")
        bye = caller.peer.recv(1.0)
        assert bye is not None and bye.startswith(b"BYE "), bye  # the call was hung up, not just dropped
    finally:
        caller.close()
        stop_server(server)
