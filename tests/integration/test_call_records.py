"""Call records are written as the call goes (issue 15.23, issue 18): `kill -9` of the server while a caller is in
the menu keeps every event up to the kill — the call's start, the nodes entered, the bot's prompts."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.integration.support import REPO, start_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _events(db: Path) -> list[tuple[str, str, str]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as reader:
        return reader.execute("SELECT call_id, kind, data FROM call_events ORDER BY call_id, seq").fetchall()


def test_kill_9_in_the_menu_keeps_the_call_record_up_to_the_kill(tmp_path: Path) -> None:
    quiet = tmp_path / "quiet.wav"
    soundfile.write(str(quiet), np.zeros(40 * 8000, dtype=np.int16), 8000)
    server = start_server(tmp_path, "speech: {workers: 1, asr_model: tiny.en}", dialplan="demo")
    db = tmp_path / "records" / "calls.sqlite3"
    caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play", str(quiet),
                               "--duration", "30", "--timeout", "40", "--json"], cwd=REPO,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(kind == "bot" for _, kind, _ in _events(db)):  # the greeting was said: the caller is in the menu
            assert time.monotonic() < deadline, "no bot prompt recorded:\n" + "\n".join(server.lines[-20:])
            assert server.proc.poll() is None and caller.poll() is None
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        assert server.proc.wait(10) == -signal.SIGKILL
        assert server.records("call ended") == []  # it really died mid-call: the log line never came
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait(10)
        stop_server(server)

    events = _events(db)
    call_ids = {call_id for call_id, _, _ in events}
    assert len(call_ids) == 1 and all(call_ids), (events, server.lines[-30:])
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "call_started" and "node" in kinds and "bot" in kinds, kinds
    assert "Welcome" in " ".join(data for _, kind, data in events if kind == "bot"), events
    with sqlite3.connect(str(db)) as reader:
        ended_at, node = reader.execute("SELECT ended_at, node FROM calls").fetchone()
    assert ended_at is None and node, (ended_at, node)  # still open, and we know where the caller was

    shown = subprocess.run([sys.executable, "-m", "voicebot.cli", "records", "--db", str(db), "show",
                            call_ids.pop()], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "call_started" in shown.stdout and "Welcome" in shown.stdout, (shown.stdout, shown.stderr, events)


def test_a_node_configured_for_postgres_ships_its_calls_there(tmp_path: Path) -> None:
    from tests.records.pg import fresh_database, server_dsn

    quiet = tmp_path / "quiet.wav"
    soundfile.write(str(quiet), np.zeros(20 * 8000, dtype=np.int16), 8000)
    with server_dsn() as server_url, fresh_database(server_url) as dsn:
        import psycopg

        server = start_server(tmp_path, "speech: {workers: 1, asr_model: tiny.en}\nrecords: {store: postgres, path: "
                              f"{tmp_path / 'outbox.sqlite3'}, postgres_dsn_env: VB_TEST_RECORDS_DSN}}",
                              dialplan="demo", env={"VB_TEST_RECORDS_DSN": dsn})
        try:
            caller = subprocess.run([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play", str(quiet),
                                     "--duration", "8", "--timeout", "30", "--json"], cwd=REPO, timeout=60,
                                    stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
            assert caller.returncode == 0, caller.stderr[-2000:]
            deadline = time.monotonic() + 30
            while True:
                with psycopg.connect(dsn) as db:
                    row = db.execute("SELECT COUNT(*) FILTER (WHERE kind = 'bot'), "
                                     "COUNT(*) FILTER (WHERE kind = 'call_ended') FROM call_events").fetchone()
                if row is not None and row[0] >= 1 and row[1] == 1:
                    break
                assert time.monotonic() < deadline, ("nothing shipped", row, server.lines[-20:])
                time.sleep(0.1)
            with psycopg.connect(dsn) as db:
                dialplan, outcome = db.execute("SELECT dialplan, outcome FROM calls").fetchone()
            assert dialplan == "demo" and outcome is not None
        finally:
            stop_server(server)
