"""`voicebot validate --config`: certificate lifetime / key permissions and trunks carrying finance or healthcare
calls without TLS or SRTP are warnings at the config's file:line; broken certificates are errors there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.certs import TestCa
from voicebot.compliance.deployment import deployment_warnings
from voicebot.compliance.lint import load_policies
from voicebot.config import load_server_config
from voicebot.dialplan.cli import main
from voicebot.yamlsrc import ConfigErrors, load_yaml

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, tls: str, trunks: str, default: str = "finance") -> Path:
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"""demo_backend: true
listen:
  host: 127.0.0.1
  transports: [udp, tls]
{tls}
routing: {{default_dialplan: {default}}}
trunks:
{trunks}""")
    return path


def _tls(pem_cert: Path, pem_key: Path) -> str:
    return f"  tls: {{cert_file: {pem_cert}, key_file: {pem_key}}}"


CLEAR_TRUNK = '  - {name: carrier, registrar: "sip:sip.carrier.example", register: false, allow_from: [192.0.2.0/24]}\n'
SECURE_TRUNK = ('  - {name: secure, registrar: "sips:sip.carrier.example", register: false, allow_from: [198.51.100.0/24],'
                ' media_encryption: required}\n')


def _warnings(path: Path) -> list[str]:
    config = load_server_config(path)
    _, lines = load_yaml(path)
    return [str(w) for w in deployment_warnings(config, lines, str(path), load_policies(ROOT / "policies"))]


def test_finance_trunk_without_tls_or_srtp_is_warned_at_its_line(tmp_path: Path) -> None:
    pem = TestCa(tmp_path / "pki").issue("sip", ["sip.example.net"], days=365)
    pem.key.chmod(0o600)
    path = _config(tmp_path, _tls(pem.cert, pem.key), CLEAR_TRUNK + SECURE_TRUNK)
    found = _warnings(path)
    assert len(found) == 2, found
    tls_warning, srtp_warning = found
    assert tls_warning.startswith(f"{path}:8:") and "'carrier' carries finance (finance) calls without SIP over TLS" \
        in tls_warning
    assert srtp_warning.startswith(f"{path}:8:") and "without required SRTP (media_encryption: optional)" \
        in srtp_warning  # the secure trunk on line 9 has neither warning


def test_no_warning_for_a_trunk_outside_regulated_industries(tmp_path: Path) -> None:
    pem = TestCa(tmp_path / "pki").issue("sip", ["sip.example.net"], days=365)
    pem.key.chmod(0o600)
    assert _warnings(_config(tmp_path, _tls(pem.cert, pem.key), CLEAR_TRUNK, default="ecommerce")) == []


def test_certificate_close_to_expiry_and_readable_key(tmp_path: Path) -> None:
    pem = TestCa(tmp_path / "pki").issue("sip", ["sip.example.net"], days=10)
    pem.key.chmod(0o644)
    path = _config(tmp_path, _tls(pem.cert, pem.key), SECURE_TRUNK)
    found = _warnings(path)
    assert len(found) == 2, found
    assert found[0].startswith(f"{path}:5:") and "expires on" in found[0] and "(in 9 day(s))" in found[0]
    assert found[1].startswith(f"{path}:5:") and "accessible to other users (mode 644)" in found[1]


def test_validate_command_prints_warnings_and_certificate_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    ca = TestCa(tmp_path / "pki")
    good = ca.issue("sip", ["sip.example.net"], days=365)
    good.key.chmod(0o600)
    path = _config(tmp_path, _tls(good.cert, good.key), CLEAR_TRUNK)
    plan = ROOT / "dialplans" / "finance.yaml"
    args = ["validate", "--no-nlu", "--no-knowledge", "--config", str(path), str(plan)]
    assert main(args) == 0  # warnings do not fail validation
    out = capsys.readouterr().out
    assert f"warning: {path}:8:" in out and "without SIP over TLS" in out

    other = ca.issue("other", ["other.example.net"], days=365)
    path = _config(tmp_path, _tls(good.cert, other.key), CLEAR_TRUNK)  # a key that is not the certificate's
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"error: {path}:5:" in out and "the key does not match the certificate" in out


def test_ca_file_without_certificates_is_an_error_at_its_line(tmp_path: Path) -> None:
    pem = TestCa(tmp_path / "pki").issue("sip", ["sip.example.net"], days=365)
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    path = _config(tmp_path, f"  tls: {{cert_file: {pem.cert}, key_file: {pem.key}, ca_file: {bogus}}}", CLEAR_TRUNK)
    with pytest.raises(ConfigErrors) as info:
        load_server_config(path)
    assert str(info.value).startswith(f"{path}:5:") and f"CA file {bogus} holds no PEM certificate" in str(info.value)


@pytest.mark.parametrize(("every_s", "flagged"), [(30, []), (59, []), (60, ["healthcare"]), (120, [
    "common", "finance", "healthcare"])])
def test_queue_announcements_no_more_often_than_a_policys_max_hold_are_warned_at_their_line(
        tmp_path: Path, every_s: int, flagged: list[str]) -> None:
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"demo_backend: true\nrouting: {{default_dialplan: ecommerce}}\nqueues:\n"
                    f"  announce_every_s: {every_s}\n")
    found = _warnings(path)
    assert [w.split("policy '")[1].split("'")[0] for w in found] == flagged
    assert all(w.startswith(f"{path}:4:") and "every wait in its dialplans would be flagged" in w for w in found)
