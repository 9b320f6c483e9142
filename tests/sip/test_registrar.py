"""Agent phone registrar: the pure binding table, REGISTER parsing, and digest-checked handling."""

from __future__ import annotations

import logging

import pytest

from voicebot.compliance.secrets import Secret
from voicebot.sip import digest
from voicebot.sip.bindings import BindingTable, RegisterError, RegisterUpdate, parse_register
from voicebot.sip.message import SipRequest
from voicebot.sip.parser import parse_message
from voicebot.sip.registrar import Registrar, SipAccount

SRC = ("127.0.0.1", 5070)


def register(user: str = "alice", contact: str | None = "<sip:alice@127.0.0.1:5070;ob>", expires: str | None = "300",
             cseq: int = 1, call_id: str = "reg-1", auth: str | None = None, uri: str = "sip:127.0.0.1:5060") -> SipRequest:
    lines = [f"REGISTER {uri} SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK" + f"{cseq}{call_id}",
             "Max-Forwards: 70", f"From: <sip:{user}@127.0.0.1>;tag=ab", f"To: <sip:{user}@127.0.0.1>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER"]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    msg = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, SipRequest)
    return msg


# ---------------------------------------------------------------------------------------------- binding table


def test_binding_lives_until_its_expiry_and_newest_contact_wins() -> None:
    table = BindingTable()
    table.apply(RegisterUpdate("alice", [("sip:alice@10.0.0.1:5070", 60)], "c1", 1), SRC, now=1000.0)
    table.apply(RegisterUpdate("alice", [("sip:alice@10.0.0.2:5070", 300)], "c2", 1), SRC, now=1010.0)
    assert table.contact("alice", 1011.0) == "sip:alice@10.0.0.2:5070"
    assert {b.contact for b in table.current("alice", 1059.0)} == {"sip:alice@10.0.0.1:5070",
                                                                  "sip:alice@10.0.0.2:5070"}
    assert [b.contact for b in table.current("alice", 1061.0)] == ["sip:alice@10.0.0.2:5070"]
    assert table.contact("alice", 1311.0) is None
    assert table.users(1311.0) == []


def test_refresh_extends_and_expires_zero_or_wildcard_unregisters() -> None:
    table = BindingTable()
    table.apply(RegisterUpdate("bob", [("sip:bob@10.0.0.1", 60)], "c1", 1), SRC, now=0.0)
    table.apply(RegisterUpdate("bob", [("sip:bob@10.0.0.1", 60)], "c1", 2), SRC, now=50.0)
    assert table.contact("bob", 100.0) == "sip:bob@10.0.0.1"
    assert table.apply(RegisterUpdate("bob", [("sip:bob@10.0.0.1", 0)], "c1", 3), SRC, now=101.0) == []
    assert table.contact("bob", 101.0) is None
    table.apply(RegisterUpdate("bob", [("sip:bob@10.0.0.1", 60), ("sip:bob@10.0.0.9", 60)], "c1", 4), SRC, 102.0)
    assert table.apply(RegisterUpdate("bob", [], "c1", 5, wildcard=True), SRC, now=103.0) == []
    assert table.contact("bob", 103.0) is None


def test_out_of_order_cseq_and_too_many_contacts_change_nothing() -> None:
    table = BindingTable(max_per_user=2)
    table.apply(RegisterUpdate("carol", [("sip:carol@10.0.0.1", 60)], "c1", 5), SRC, now=0.0)
    with pytest.raises(RegisterError) as stale:
        table.apply(RegisterUpdate("carol", [("sip:carol@10.0.0.1", 0)], "c1", 5), SRC, now=1.0)
    assert stale.value.status == 500
    with pytest.raises(RegisterError) as full:
        table.apply(RegisterUpdate("carol", [("sip:carol@10.0.0.2", 60), ("sip:carol@10.0.0.3", 60)], "c2", 1),
                    SRC, now=1.0)
    assert full.value.status == 403
    assert [b.contact for b in table.current("carol", 2.0)] == ["sip:carol@10.0.0.1"]


def test_parse_register_reads_lifetimes_and_refuses_bad_ones() -> None:
    update = parse_register(register(contact="<sip:alice@127.0.0.1:5070>;expires=120", expires="300"))
    assert (update.user, update.contacts, update.cseq) == ("alice", [("sip:alice@127.0.0.1:5070", 120)], 1)
    assert parse_register(register(expires=None)).contacts[0][1] == 3600
    assert parse_register(register(expires="86400")).contacts[0][1] == 3600  # clamped to the maximum
    assert parse_register(register(contact=None)).contacts == []  # a query
    assert parse_register(register(contact="*", expires="0")).wildcard
    for bad, status in ((register(expires="10"), 423), (register(contact="*", expires="60"), 400),
                        (register(contact="<mailto:a@b.c>"), 400)):
        with pytest.raises(RegisterError) as err:
            parse_register(bad)
        assert err.value.status == status
    with pytest.raises(RegisterError) as brief:
        parse_register(register(expires="10"))
    assert ("Min-Expires", "60") in brief.value.headers


# ---------------------------------------------------------------------------------------------- registrar


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make_registrar(clock: Clock | None = None) -> Registrar:
    accounts = {"alice": SipAccount("alice", "a1", Secret("s3cret-pw")),
                "bob": SipAccount("bob", "a2", Secret("bobs-pw"))}
    return Registrar("agents.test", accounts, clock=clock or Clock())


def answer(registrar: Registrar, user: str, password: str, **kw: object) -> tuple[int, str, list[tuple[str, str]]]:
    """The 401 challenge, then the same REGISTER with credentials, as a phone does."""
    status, _, headers = registrar.handle(register(user=user, **kw), SRC)  # type: ignore[arg-type]
    assert status == 401
    challenge = digest.parse_challenge(dict(headers)["WWW-Authenticate"])
    auth = digest.build_authorization(challenge, "REGISTER", "sip:127.0.0.1:5060", user, password)
    kw = {**kw, "cseq": int(kw.get("cseq", 1)) + 1}  # type: ignore[call-overload]
    return registrar.handle(register(user=user, auth=auth, **kw), SRC)  # type: ignore[arg-type]


def test_right_password_registers_and_the_agent_is_rung_at_the_contact() -> None:
    registrar = make_registrar()
    status, _, headers = answer(registrar, "alice", "s3cret-pw")
    assert status == 200
    assert ("Contact", "<sip:alice@127.0.0.1:5070;ob>;expires=300") in headers
    assert registrar.contact_for_agent("a1") == "sip:alice@127.0.0.1:5070;ob"
    assert registrar.contact_for_agent("a2") is None
    status, _, _ = answer(registrar, "alice", "s3cret-pw", expires="0", cseq=3)
    assert status == 200 and registrar.contact_for_agent("a1") is None


def test_wrong_password_and_unknown_user_get_403_and_no_binding(caplog: pytest.LogCaptureFixture) -> None:
    registrar = make_registrar()
    with caplog.at_level(logging.INFO, logger="voicebot.sip.registrar"):
        assert answer(registrar, "alice", "guess")[0] == 403
        assert answer(registrar, "mallory", "anything")[0] == 403
    assert registrar.table.users(registrar.clock()) == []
    assert "guess" not in caplog.text and "s3cret-pw" not in caplog.text
    assert [r.fields["user"] for r in caplog.records] == ["alice", "mallory"]  # type: ignore[attr-defined]


def test_user_cannot_register_another_agents_address() -> None:
    registrar = make_registrar()
    status, _, headers = registrar.handle(register(user="alice"), SRC)
    challenge = digest.parse_challenge(dict(headers)["WWW-Authenticate"])
    auth = digest.build_authorization(challenge, "REGISTER", "sip:127.0.0.1:5060", "bob", "bobs-pw")
    assert registrar.handle(register(user="alice", auth=auth, cseq=2), SRC)[0] == 403
    assert registrar.contact_for_agent("a1") is None


def test_expired_or_foreign_nonce_is_challenged_again_not_refused() -> None:
    clock = Clock()
    registrar = make_registrar(clock)
    _, _, headers = registrar.handle(register(), SRC)
    challenge = digest.parse_challenge(dict(headers)["WWW-Authenticate"])
    auth = digest.build_authorization(challenge, "REGISTER", "sip:127.0.0.1:5060", "alice", "s3cret-pw")
    clock.now += 400  # past the nonce lifetime: stale=true, the phone retries without asking its user
    status, _, stale = registrar.handle(register(auth=auth, cseq=2), SRC)
    assert status == 401 and "stale=TRUE" in dict(stale)["WWW-Authenticate"]
    restarted = make_registrar(clock)  # a new secret: the old nonce is not ours any more
    assert restarted.handle(register(auth=auth, cseq=3), SRC)[0] == 401
