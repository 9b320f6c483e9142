"""RFC 5923 ``;alias`` rules of the stream connection table (issue 20 review #2): which sent-by a connection may
claim, and that a live connection's address is never taken over."""

from __future__ import annotations

from voicebot.sip.stream import Connection, StreamTransport, alias_host_allowed


def test_alias_host_is_the_source_ip_in_any_spelling() -> None:
    assert alias_host_allowed("192.0.2.7", "192.0.2.7", ())
    assert alias_host_allowed("[2001:DB8::1]", "2001:db8:0::1", ())
    assert alias_host_allowed("::ffff:192.0.2.7", "192.0.2.7", ())
    assert not alias_host_allowed("192.0.2.8", "192.0.2.7", ())
    assert not alias_host_allowed("edge.example.com", "192.0.2.7", ())


def test_alias_host_may_be_a_name_of_the_verified_certificate() -> None:
    names = ("edge.example.com", "198.51.100.1")
    assert alias_host_allowed("EDGE.example.com.", "192.0.2.7", names)
    assert alias_host_allowed("198.51.100.1", "192.0.2.7", names)
    assert not alias_host_allowed("other.example.com", "192.0.2.7", names)


def _connection(table: StreamTransport, remote: tuple[str, int], names: tuple[str, ...] = ()) -> Connection:
    conn = Connection(table, "tls")
    conn.remote, conn.peer_names = remote, names
    table.adopt(conn)
    return conn


def test_alias_binds_only_addresses_nobody_else_holds() -> None:
    table = StreamTransport(lambda data, conn: None, lambda head, addr, kind, reason: None)
    trunk = _connection(table, ("192.0.2.7", 40000), ("edge.example.com",))
    phone = _connection(table, ("192.0.2.7", 40001))
    assert table.alias(trunk, ("192.0.2.7", 5061)) is None
    assert table.find(("192.0.2.7", 5061), "tls") is trunk
    assert table.alias(phone, ("192.0.2.7", 5061)) == "address held by another connection"
    assert table.alias(phone, ("192.0.2.7", 40000)) == "address held by another connection"
    assert table.find(("192.0.2.7", 40000), "tls") is trunk
    assert table.alias(phone, ("192.0.2.9", 5061)) is not None  # another host: not its address, not its certificate
    assert table.find(("192.0.2.9", 5061), "tls") is None
    assert table.alias(trunk, ("edge.example.com", 5061)) is None  # a name its certificate proves
    table.forget(trunk)
    assert table.alias(phone, ("192.0.2.7", 5061)) is None  # the holder is gone: free to claim
