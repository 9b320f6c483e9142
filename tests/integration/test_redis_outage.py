"""Redis dies while callers wait in queue: the calls stay up on local state, and nothing is lost when it returns.

Real processes on loopback only: a private redis-server (append-only) that the test kills with SIGKILL and starts
again on the same port, one `voicebot serve` (queues.store: redis, demo dialplan), two PJSIP softphone callers who
press 0 for an agent, and two sipp agent phones. Caller 1 is queued before the outage, caller 2 during it (so
only the reconcile can bring caller 2 into Redis). During the outage the hold audio (a 1000 Hz tone) keeps
flowing and position announcements are still spoken; after the reconcile both callers are in the Redis queue,
both are answered by agents, and both call records are complete.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from calendar import timegm
from pathlib import Path

import numpy as np
import pytest
import redis
import soundfile

from tests.integration.support import (REPO, SCENARIOS, ServerProcess, api_request, free_media_port, free_udp_ports,
                                       require_tool, start_server, stop_server)
from tests.integration.test_two_nodes import tone_dominant_seconds
from tests.queues.conftest import RedisServer
from voicebot.api.tokens import TokenStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HOLD_HZ = 1000.0
RATE = 8000


def epoch(record: dict) -> float:
    """A log record's ts (2026-01-02T03:04:05.678Z) as seconds since the epoch."""
    whole, millis = record["ts"].rstrip("Z").split(".")
    return timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis) / 1000


def shared_records(client: redis.Redis, namespace: str, kind: str) -> dict[str, dict]:
    return {key: json.loads(value) for key, value in client.hgetall(f"voicebot:{namespace}:{kind}").items()}


def sipp_agent(port: int, cwd: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(["sipp", "-sf", str(SCENARIOS / "agent_answers.xml"), "-i", "127.0.0.1", "-p", str(port),
                             "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-rtp_echo", "-m", "1", "-nostdin",
                             "-timeout", "150s", "-timeout_error", "-trace_err",
                             "-error_file", str(cwd / f"{name}_errors.log")],
                            cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def softphone(server: ServerProcess, heard: Path, duration_s: int) -> subprocess.Popen:
    """A caller who presses 0 (agent) 3 s after the answer and hangs up after ``duration_s``."""
    return subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--record", str(heard),
                             "--dtmf", "0", "--dtmf-delay", "3", "--duration", str(duration_s), "--json",
                             "--timeout", "120"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def test_callers_keep_waiting_through_a_redis_outage_and_are_served_after_the_reconcile(tmp_path: Path) -> None:
    require_tool("sipp")
    require_tool("redis-server")
    (tmp_path / "redis").mkdir()
    store = RedisServer(tmp_path / "redis")
    store.start()
    client = redis.Redis(host="127.0.0.1", port=store.port, decode_responses=True)
    namespace = "outage" + uuid.uuid4().hex[:8]
    agent_ports = dict(zip(("a1", "a2"), free_udp_ports(2)))
    (tmp_path / "agents.yaml").write_text("agents:\n" + "".join(
        f"  - id: {agent}\n    name: Agent {agent}\n    sip_uri: sip:{agent}@127.0.0.1:{port}\n"
        "    skills: {billing: 5}\n    languages: [en-US]\n    wrap_up_s: 0\n" for agent, port in agent_ports.items()))
    (tmp_path / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n")
    hold = tmp_path / "hold.wav"
    t = np.arange(2 * RATE) / RATE
    soundfile.write(str(hold), (8000 * np.sin(2 * np.pi * HOLD_HZ * t)).astype(np.int16), RATE)
    tokens = TokenStore.load(tmp_path / "tokens.json")
    secrets = {"admin": tokens.create("admin"), **{a: tokens.create("agent", agent=a) for a in agent_ports}}
    tokens.save()
    server = start_server(tmp_path, f"""speech: {{workers: 1, asr_model: tiny.en}}
codecs: {{preference: [PCMA, PCMU]}}
queues: {{agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, ring_timeout_s: 10,
          store: redis, redis_url: "{store.url}", namespace: {namespace}, node_id: node-x, hold_audio: {hold},
          announce_every_s: 8}}
""", dialplan="demo")
    (tmp_path / "pcap").symlink_to("/usr/share/sip-tester")
    processes: list[subprocess.Popen] = []
    try:
        api_port = int(server.wait_for("api listening")[0]["port"])
        agents = {a: sipp_agent(port, tmp_path, a) for a, port in agent_ports.items()}
        processes += agents.values()
        heard = [tmp_path / "heard1.wav", tmp_path / "heard2.wav"]
        callers = [softphone(server, heard[0], 50)]
        processes += callers
        first = server.wait_for("caller queued", timeout=40)[0]
        call_ids = [first["call_id"]]
        assert call_ids[0] in shared_records(client, namespace, "entries")
        time.sleep(1.0)

        # Redis dies hard. The ACD loop notices within a step and serves from its local copy.
        assert store.process is not None
        store.process.send_signal(signal.SIGKILL)
        store.process.wait(10)
        store.process = None
        killed_at = time.time()
        degraded = server.wait_for("queue store degraded: Redis unreachable, callers keep waiting on local state",
                                   timeout=10)[0]
        assert degraded["level"] == "warning" and degraded["node"] == "node-x"
        status, body = api_request(api_port, "GET", "/readyz", None)
        assert (status, body) == (200, {"status": "ready", "store": "degraded"})
        # A second caller arrives during the outage and is queued on local state only.
        callers.append(softphone(server, heard[1], 45))
        processes.append(callers[1])
        second = server.wait_for("caller queued", count=2, timeout=40)[1]
        call_ids.append(second["call_id"])
        assert second["position"] == 2
        status, body = api_request(api_port, "GET", "/queues", secrets["admin"])
        assert status == 200 and next(q["waiting"] for q in body["queues"] if q["name"] == "support") == 2
        time.sleep(max(0.0, killed_at + 12 - time.time()))
        assert all(c.poll() is None for c in callers)  # nobody was dropped

        store.start()  # same port, same append-only file
        restarted_at = time.time()
        back = server.wait_for("queue store back to normal: Redis reconciled", timeout=20)[0]
        assert back["conflicts"] == 0 and back["replayed"] >= 1
        assert len(server.records("queue store degraded: Redis unreachable, callers keep waiting on local state")) == 1
        entries = shared_records(client, namespace, "entries")
        assert sorted(entries) == sorted(call_ids), entries  # caller 2 reached Redis only through the reconcile
        assert {entries[c]["node"] for c in call_ids} == {"node-x"}
        assert entries[call_ids[0]]["enqueued_at"] < entries[call_ids[1]]["enqueued_at"]
        status, body = api_request(api_port, "GET", "/readyz", None)
        assert (status, body) == (200, {"status": "ready", "store": "normal"})

        # Agents log in: both waiting callers are served, in order, by the node that holds their calls.
        for agent in agent_ports:
            status, body = api_request(api_port, "POST", f"/agents/{agent}/state", secrets[agent],
                                       {"state": "available"})
            assert status == 200, body
        connected = server.wait_for("agent connected", count=2, timeout=40)
        assert sorted(c["call_id"] for c in connected) == sorted(call_ids)
        assert min(epoch(r) for r in server.records("ringing agent")) > epoch(back)  # no assignment while degraded

        summaries = []
        for caller in callers:
            out, err = caller.communicate(timeout=120)
            summaries.append(json.loads(out.strip().splitlines()[-1]))
            assert summaries[-1]["result"] == "answered", err[-2000:]
        for agent, proc in agents.items():
            assert proc.wait(30) == 0, (tmp_path / f"{agent}_errors.log").read_text(errors="ignore")

        # Both call records are complete: queued, connected to an agent, recorded, ended by the caller.
        ended = {r["call_id"]: r for r in server.wait_for("call ended", count=2, timeout=30)}
        for call_id in call_ids:
            record = ended[call_id]
            texts = [e["text"] for e in record["transcript"]]
            assert "queued in support" in texts and any(x.startswith("connected to agent a") for x in texts), texts
            assert record["outcome"] == "agent" and Path(record["recording"]["path"]).stat().st_size > 0
        # Caller 1 heard position announcements during the outage, and the hold audio between them.
        outage = (epoch(degraded), epoch(back))
        spoken = [e for e in ended[call_ids[0]]["transcript"]
                  if e["who"] == "bot" and ("in line" in e["text"] or "in the queue" in e["text"])]
        assert any(outage[0] < e["t"] < outage[1] for e in spoken), (outage, spoken)
        answered_at = epoch(next(r for r in server.records("call offered") if r["call_id"] == call_ids[0]))
        audio, rate = soundfile.read(str(heard[0]), dtype="int16")
        if audio.ndim > 1:
            audio = audio[:, 0]
        window = audio[int((killed_at + 1 - answered_at) * rate): int((restarted_at - answered_at) * rate)]
        assert len(window) >= 9 * rate
        assert tone_dominant_seconds(window, rate, HOLD_HZ) >= 3.0
        frames = window[: len(window) // 160 * 160].reshape(-1, 160).astype(np.float64)
        assert np.mean(np.sqrt((frames ** 2).mean(axis=1)) > 100) > 0.7  # sound nearly all the time: no dead air
        # The shared record: two answered, two handled, none abandoned, both agents free again.
        stats = shared_records(client, namespace, "stats")["support"]
        assert (stats["answered"], stats["handled"], stats["abandoned"]) == (2, 2, 0)
        assert shared_records(client, namespace, "entries") == {}
        assert shared_records(client, namespace, "assignments") == {}
        assert {a: s["state"] for a, s in shared_records(client, namespace, "agents").items()} == {
            "a1": "available", "a2": "available"}
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        stop_server(server)
        client.close()
        store.stop()
