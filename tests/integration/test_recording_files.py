"""Recordings on disk against a running `voicebot serve`: private files, names no Call-ID can collide on, and a
failing disk that costs the recording but never the call or its record."""

from __future__ import annotations

import resource
import stat
import time
from pathlib import Path

import pytest
import soundfile

from tests.integration.support import (
    SCENARIOS,
    ServerProcess,
    api_request,
    free_udp_port,
    run_sipp,
    start_server,
    stop_server,
)
from tests.integration.test_bad_input import Caller, rtp_packet
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def short_call(server: ServerProcess, call_id: str) -> None:
    """A raw call under ``call_id``: INVITE, half a second of caller RTP, BYE."""
    caller = Caller(server)
    caller.peer.call_id = call_id
    try:
        assert caller.invite() == 200
        assert caller.server_media is not None
        for i in range(25):
            caller.rtp.sendto(rtp_packet(i, i * 160, 0x5151), caller.server_media)
            time.sleep(0.02)
        assert caller.bye() == 200
    finally:
        caller.close()


def fetch_status(port: int, path: str, token: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_look_alike_call_ids_get_separate_private_recordings(tmp_path: Path) -> None:
    tokens = TokenStore.load(tmp_path / "tokens.json")
    supervisor = tokens.create("supervisor", label="floor")
    tokens.save()
    server = start_server(tmp_path)
    try:
        short_call(server, "victim-call@10.0.0.1")
        short_call(server, "victim-call_10.0.0.1")  # sanitises to the same text as the victim's Call-ID
        ended = server.wait_for("call ended", count=2)
        api_port = server.wait_for("api listening")[0]["port"]
        by_call = {e["call_id"]: e["recording"] for e in ended}
        victim, attacker = by_call["victim-call@10.0.0.1"], by_call["victim-call_10.0.0.1"]
        assert victim["path"] != attacker["path"], "two calls wrote one recording file"
        assert len(server.recordings()) == 2
        assert victim["id"] != attacker["id"]
        for call_id, rec in by_call.items():
            path = Path(rec["path"])
            assert path.is_file() and rec["id"] in path.name
            assert soundfile.SoundFile(str(path)).comment == f"call-id: {call_id}"
        assert len(server.recordings()) == 2
        assert fetch_status(api_port, "/calls/victim-call@10.0.0.1/recording", supervisor) == 200
        assert fetch_status(api_port, f"/recordings/{victim['id']}", supervisor) == 200
        # The very same Call-ID again: a third file; asking by Call-ID is now ambiguous (409 names the ids).
        short_call(server, "victim-call@10.0.0.1")
        server.wait_for("call ended", count=3)
        assert len(server.recordings()) == 3
        status, body = api_request(api_port, "GET", "/calls/victim-call@10.0.0.1/recording", supervisor)
        assert status == 409 and victim["id"] in body["recordings"] and len(body["recordings"]) == 2
    finally:
        stop_server(server)


def test_recordings_are_private_files_in_a_private_folder(tmp_path: Path) -> None:
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings").chmod(0o755)  # a pre-existing, world-readable folder gets narrowed
    server = start_server(tmp_path)
    try:
        short_call(server, "privacy@10.0.0.1")
        ended = server.wait_for("call ended")[0]
        path = Path(ended["recording"]["path"])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
        assert stat.S_IMODE((tmp_path / "recordings").stat().st_mode) == 0o700
    finally:
        stop_server(server)


def _limit_file_size() -> None:
    """In the server process: no file may grow beyond 16 KiB (EFBIG, like ENOSPC on a full disk)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))


def test_failing_recording_writes_cost_neither_the_call_nor_its_record(tmp_path: Path) -> None:
    # The 16 KiB file-size limit stands for a full disk; the SQLite record store could not even be created under it,
    # so this test keeps to the recording and the "call ended" record line (the store's own failures never cost a
    # call either: tests/records/test_store.py).
    server = start_server(tmp_path, "records: {enabled: false}", preexec_fn=_limit_file_size)
    try:
        result = run_sipp([f"{server.host}:{server.port}", "-sf", str(SCENARIOS / "dtmf_info.xml"), "-m", "1",
                           "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp",
                           str(free_udp_port())], tmp_path)
        assert result.returncode == 0, result.stderr  # the caller's call ran its normal course
        ended = server.wait_for("call ended")[0]
        assert ended["digits"] == "[DIGITS 2]" and ended["outcome"] == "completed"  # keyed digits masked in logs
        assert "recording write failed" in ended["recording"]["error"]
        assert ended["recording"]["id"] and ended["recording"]["path"]
        assert not server.records("call handler crashed")
        assert server.records("recording stopped")
        assert server.proc.poll() is None
    finally:
        stop_server(server)
