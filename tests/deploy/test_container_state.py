"""The container's node configuration can start in the image: state goes to /var/lib/voicebot (the volume owned by
uid 10001), never to a relative var/ in the root-owned working directory; and when a state path is not writable
the node says which path and which setting — not "cannot listen … change listen.port".

No Docker engine here, and this machine's Python lives under /root (unreadable to uid 10001): the node runs as root
*without CAP_DAC_OVERRIDE* in a 0555 working directory, so like uid 10001 in /opt/voicebot it cannot write there."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_packaging import DOCKERFILE, NODE_CONFIG, args_of
from voicebot.config import load_server_config

REPO = Path(__file__).resolve().parents[2]
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE = 24, 1

pytestmark = pytest.mark.timeout(180)


def image_owned_dirs() -> list[Path]:
    """Directories the Dockerfile creates for the voicebot user (install -d -o voicebot, its home)."""
    owned: list[Path] = []
    for run in args_of(DOCKERFILE, "RUN"):
        for command in run.split("&&"):
            words = command.split()
            if words[:2] == ["install", "-d"] and "voicebot" in words:
                owned += [Path(w) for w in words if w.startswith("/")]
            if words and words[0] == "useradd" and "--home-dir" in words:
                owned.append(Path(words[words.index("--home-dir") + 1]))
    return owned


def test_every_state_path_of_the_node_config_is_in_a_directory_the_image_user_owns() -> None:
    config = load_server_config(NODE_CONFIG)
    env = " ".join(args_of(DOCKERFILE, "ENV"))
    cache = Path(re.search(r"VOICEBOT_CACHE=(\S+)", env).group(1))  # type: ignore[union-attr]
    state = {"api.audit_log": Path(config.api.audit_log).parent, "api.tokens_file": Path(config.api.tokens_file or "").parent,
             "recording.directory": Path(config.recording.directory), "VOICEBOT_CACHE": cache}
    owned = image_owned_dirs()
    for setting, directory in state.items():
        assert directory.is_absolute(), f"{setting} is relative ({directory}): it would land in /opt/voicebot (root)"
        assert any(directory == d or d in directory.parents for d in owned), f"{setting}: {directory} not in {owned}"


@pytest.fixture
def root_owned_workdir() -> Iterator[Path]:
    """A working directory like /opt/voicebot in the image: its user cannot write there (0555)."""
    workdir = Path(tempfile.mkdtemp(prefix="vb-opt-"))
    for shipped in ("dialplans", "nlu_models", "sip_config", "voices", "policies"):  # as in /opt/voicebot
        (workdir / shipped).symlink_to(REPO / shipped)
    (workdir / "readonly-volume").mkdir(mode=0o555)
    (workdir / "node.yaml").touch()
    workdir.chmod(0o555)
    yield workdir
    workdir.chmod(0o755)
    shutil.rmtree(workdir)


def loopback_variant(path: Path, state_dir: Path | None, *, drop_audit_log: bool = False) -> None:
    """node.yaml as shipped, moved onto loopback with free ports and the in-memory store; state paths under
    ``state_dir`` instead of /var/lib/voicebot when given."""
    data = yaml.safe_load(NODE_CONFIG.read_text())
    data["listen"] = {"host": "127.0.0.1", "port": 0, "transports": ["udp"]}
    data["rtp"] = {"port_start": 34000 + os.getpid() % 500 * 20, "port_end": 34020 + os.getpid() % 500 * 20}
    data["acl"] = {"allow": ["127.0.0.0/8"]}
    data["routing"] = {"default_dialplan": "keypad-demo"}
    data["queues"]["store"] = "memory"
    data["api"]["host"], data["api"]["port"] = "127.0.0.1", 0
    if drop_audit_log:
        data["api"].pop("audit_log")  # the configuration as it shipped before: the var/... default
    text = yaml.safe_dump(data)
    if state_dir is not None:
        text = text.replace("/var/lib/voicebot", str(state_dir))
    path.parent.chmod(0o755)
    path.write_text(text)
    path.parent.chmod(0o555)


def serve_as_image_user(config: Path, workdir: Path, cache: Path, home: Path,
                        timeout: float = 150) -> subprocess.Popen[str]:
    def drop_privileges() -> None:  # root keeps its uid but obeys file modes, like the image's user
        if ctypes.CDLL(None, use_errno=True).prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    env = {**os.environ, "VOICEBOT_CACHE": str(cache), "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "voicebot.cli", "serve", "--config", str(config)], cwd=workdir,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, preexec_fn=drop_privileges)  # noqa: PLW1509 - one prctl, no locks taken


def healthz(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                assert response.status == 200
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def image_user_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.mark.skipif(os.geteuid() != 0, reason="drops CAP_DAC_OVERRIDE from a root process")
@pytest.mark.parametrize("drop_audit_log", [True, False], ids=["var-default", "unwritable-volume"])
def test_an_unwritable_state_path_is_named_with_its_setting(root_owned_workdir: Path, drop_audit_log: bool) -> None:
    home = image_user_dir("vb-home-")
    try:
        config = root_owned_workdir / "node.yaml"
        # unwritable-volume: the state volume exists but its user cannot write it (a mis-owned mount).
        volume = root_owned_workdir / "readonly-volume"
        loopback_variant(config, home if drop_audit_log else volume, drop_audit_log=drop_audit_log)
        proc = serve_as_image_user(config, root_owned_workdir, home / "cache", home)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, stderr
        assert "cannot listen" not in stderr and "listen.port" not in stderr
        if drop_audit_log:
            assert f"cannot create or write {root_owned_workdir}/var/audit" in stderr, stderr
        else:
            assert f"cannot create or write {volume}/audit" in stderr, stderr
        assert "set api.audit_log to a writable path" in stderr
    finally:
        shutil.rmtree(home)


@pytest.mark.skipif(os.geteuid() != 0, reason="drops CAP_DAC_OVERRIDE from a root process")
def test_the_node_config_starts_as_the_image_user_with_its_state_volume(root_owned_workdir: Path) -> None:
    volume = image_user_dir("vb-var-lib-")
    proc: subprocess.Popen[str] | None = None
    try:
        config = root_owned_workdir / "node.yaml"
        loopback_variant(config, volume)
        proc = serve_as_image_user(config, root_owned_workdir, volume / "cache", volume)
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "listening on udp" in line or proc.poll() is not None:
                break
        assert any("listening on udp" in line for line in lines), "".join(lines[-20:])
        api_port = next(json.loads(line)["port"] for line in lines if '"msg": "api listening"' in line)
        healthz(api_port)  # served by the event loop: past the signal handlers, so SIGTERM drains
        proc.terminate()
        proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert (volume / "audit" / "audit.jsonl").is_file()
        assert not (root_owned_workdir / "var").exists()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        shutil.rmtree(volume)
