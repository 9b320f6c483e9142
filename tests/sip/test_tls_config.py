"""TLS settings in the server config: certificate problems are file:line errors before anything listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.certs import TestCa
from voicebot.config import load_server_config
from voicebot.sip.tls import certificate_names
from voicebot.sip.ua import uri_transport
from voicebot.yamlsrc import ConfigErrors, YamlSourceError


def errors(tmp_path: Path, listen: str) -> list[YamlSourceError]:
    path = tmp_path / "voicebot.yaml"
    path.write_text("log: {level: info}\nlisten:\n" + listen)
    with pytest.raises(ConfigErrors) as info:
        load_server_config(path)
    return list(info.value.errors)


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "pki")


def test_valid_tls_listen_section_loads(tmp_path: Path, ca: TestCa) -> None:
    pem = ca.issue("sip", ["sip.example.net"])
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"listen:\n  transports: [udp, tcp, tls]\n  tls:\n    cert_file: {pem.cert}\n"
                    f"    key_file: {pem.key}\n    ca_file: {ca.pem.cert}\n    client_auth: required\n")
    listen = load_server_config(path).listen
    assert listen.transports == ["udp", "tcp", "tls"] and listen.tls_port == 5061
    assert listen.tls is not None and listen.tls.min_version == "1.2"


def test_expired_certificate_is_reported_at_its_line(tmp_path: Path, ca: TestCa) -> None:
    pem = ca.issue("old", ["sip.example.net"], expired=True)
    [error] = errors(tmp_path, f"  transports: [tls]\n  tls:\n    cert_file: {pem.cert}\n    key_file: {pem.key}\n")
    assert error.line == 5 and "listen.tls.cert_file" in error.message
    assert f"certificate {pem.cert} expired on" in error.message


def test_key_of_another_certificate_is_refused(tmp_path: Path, ca: TestCa) -> None:
    one, two = ca.issue("one", ["a.example.net"]), ca.issue("two", ["b.example.net"])
    [error] = errors(tmp_path, f"  transports: [tls]\n  tls:\n    cert_file: {one.cert}\n    key_file: {two.key}\n")
    assert error.line == 6 and "listen.tls.key_file" in error.message
    assert "the key does not match the certificate" in error.message


def test_missing_and_non_pem_files(tmp_path: Path, ca: TestCa) -> None:
    pem = ca.issue("sip", ["sip.example.net"])
    [error] = errors(tmp_path, f"  tls:\n    cert_file: {tmp_path}/nope.crt\n    key_file: {pem.key}\n")
    assert error.line == 4 and "cannot read certificate" in error.message and "No such file" in error.message
    [error] = errors(tmp_path, f"  tls:\n    cert_file: {pem.key}\n    key_file: {pem.key}\n")
    assert "is not a PEM certificate" in error.message


def test_tls_transport_needs_a_certificate_and_mutual_tls_a_ca(tmp_path: Path, ca: TestCa) -> None:
    [error] = errors(tmp_path, "  transports: [udp, tls]\n")
    assert error.line == 3 and "transport tls needs a certificate" in error.message
    pem = ca.issue("sip", ["sip.example.net"])
    [error] = errors(tmp_path, f"  tls: {{cert_file: {pem.cert}, key_file: {pem.key}, client_auth: required}}\n")
    assert "client_auth needs ca_file" in error.message


def test_uri_transport() -> None:
    assert uri_transport("sips", None) == "tls"
    assert uri_transport("sip", "TCP") == "tcp"
    assert uri_transport("sip", None) == "udp"
    assert uri_transport("sip", None, "tls") == "tls"
    assert uri_transport("sip", "sctp") == "udp"


TRUNK = '  - {name: edge, registrar: "sip:127.0.0.1", register: false, allow_from: [10.0.0.2/32], tls_names: [%s]}\n'


def test_trunk_tls_names_need_a_node_asking_client_certificates(tmp_path: Path, ca: TestCa) -> None:
    pem = ca.issue("sip", ["sip.example.net"])
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"listen:\n  transports: [udp, tls]\n  tls: {{cert_file: {pem.cert}, key_file: {pem.key}}}\n"
                    "trunks:\n" + TRUNK % "edge.example.net")
    with pytest.raises(ConfigErrors) as info:
        load_server_config(path)
    [error] = info.value.errors
    assert error.line == 5 and "trunks[0].tls_names" in error.message and "client_auth" in error.message
    path.write_text(f"listen:\n  transports: [udp, tls]\n  tls: {{cert_file: {pem.cert}, key_file: {pem.key}, "
                    f"ca_file: {ca.pem.cert}, client_auth: required}}\ntrunks:\n" + TRUNK % "Edge.Example.net")
    trunk = load_server_config(path).trunks[0]
    assert trunk.tls_refusal("tls", ("edge.example.net", "10.0.0.2")) is None  # names compare without case
    assert "over mutual TLS only; this one came over udp" in (trunk.tls_refusal("udp", ()) or "")
    assert "showed none" in (trunk.tls_refusal("tls", ()) or "")
    assert "'other.example.net' is not one of trunk 'edge'" in (trunk.tls_refusal("tls", ("other.example.net",)) or "")


def test_certificate_names_of_a_peer_certificate() -> None:
    cert = {"subject": ((("countryName", "NL"),), (("commonName", "edge.example.net"),)),
            "subjectAltName": (("DNS", "edge.example.net"), ("DNS", "sbc.example.net"), ("IP Address", "10.0.0.2"),
                               ("URI", "sip:edge.example.net"))}
    assert certificate_names(cert) == ("edge.example.net", "sbc.example.net", "10.0.0.2")
    assert certificate_names({}) == ()


def test_a_tls_names_trunk_may_share_no_source_address_with_another_trunk(tmp_path: Path, ca: TestCa) -> None:
    """Calls go to the first trunk whose allow_from covers their source: an earlier trunk without tls_names
    overlapping a tls_names trunk would take its calls without the certificate check (issue 20 review #4)."""
    pem = ca.issue("sip", ["sip.example.net"])
    path = tmp_path / "voicebot.yaml"
    head = (f"listen:\n  transports: [udp, tls]\n  tls: {{cert_file: {pem.cert}, key_file: {pem.key}, "
            f"ca_file: {ca.pem.cert}, client_auth: required}}\ntrunks:\n")
    loose = '  - {name: carrier, registrar: "sip:127.0.0.1", register: false, allow_from: [10.0.0.0/24]}\n'
    path.write_text(head + loose + TRUNK % "edge.example.net")
    with pytest.raises(ConfigErrors) as info:
        load_server_config(path)
    [error] = info.value.errors
    assert error.line == 6 and "trunks[1].allow_from[0]" in error.message, error.message
    assert "overlaps trunk 'carrier'" in error.message and "trunk 'edge''s tls_names" in error.message
    path.write_text(head + TRUNK % "edge.example.net" + loose)  # the other order shadows the carrier's: refused too
    with pytest.raises(ConfigErrors) as info:
        load_server_config(path)
    assert info.value.errors[0].line == 6 and "trunks[1].allow_from[0]" in info.value.errors[0].message
    path.write_text(head + loose.replace("10.0.0.0/24", "10.0.1.0/24") + TRUNK % "edge.example.net")
    assert [t.name for t in load_server_config(path).trunks] == ["carrier", "edge"]  # disjoint: fine


def test_certificate_names_follow_rfc_6125() -> None:
    """subjectAltName alone names a certificate that has one (its common name is ignored), IP addresses compare as
    addresses, wildcard names prove nothing (issue 20 review #6)."""
    cert = {"subject": ((("commonName", "edge.example.net"),),),
            "subjectAltName": (("DNS", "SBC.Example.net."), ("DNS", "*.example.net"),
                               ("IP Address", "2001:DB8:0:0:0:0:0:1"), ("IP Address", "::ffff:10.0.0.2"))}
    assert certificate_names(cert) == ("sbc.example.net", "2001:db8::1", "10.0.0.2")
    assert certificate_names({"subject": ((("commonName", "Edge.example.net"),),)}) == ("edge.example.net",)
    assert certificate_names({"subject": ((("commonName", "*.example.net"),),)}) == ()


def test_tls_names_compare_canonically_and_refuse_wildcards(tmp_path: Path, ca: TestCa) -> None:
    pem = ca.issue("sip", ["sip.example.net"])
    path = tmp_path / "voicebot.yaml"
    head = (f"listen:\n  transports: [udp, tls]\n  tls: {{cert_file: {pem.cert}, key_file: {pem.key}, "
            f"ca_file: {ca.pem.cert}, client_auth: required}}\ntrunks:\n")
    path.write_text(head + TRUNK % '"2001:db8::0:1", edge.example.net.')
    trunk = load_server_config(path).trunks[0]
    assert trunk.tls_refusal("tls", ("2001:DB8:0:0:0:0:0:1",)) is None
    assert trunk.tls_refusal("tls", ("EDGE.example.net",)) is None
    assert trunk.tls_refusal("tls", ("2001:db8::2",)) is not None
    path.write_text(head + TRUNK % '"*.example.net"')
    with pytest.raises(ConfigErrors) as info:
        load_server_config(path)
    assert info.value.errors[0].line == 5 and "tls_names[0]" in info.value.errors[0].message
