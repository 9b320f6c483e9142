"""Kamailio + two voicebot nodes + one redis-server on loopback: calls are spread, a draining node is taken out.

Real processes throughout: kamailio running deploy/kamailio/kamailio.cfg, two `voicebot serve` nodes (keypad-demo,
queue state in the shared Redis), sipp placing calls through the proxy.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.kamailio_support import (
    Kamailio,
    Node,
    RedisServer,
    dispatcher_list,
    kamailio_command,
    kill_node,
    queue_sipp_command,
    sip_options_status,
    sipp_command,
    start_kamailio,
    start_node,
    stop_kamailio,
    stop_node,
)
from tests.integration.support import api_request, require_tool

pytestmark = [pytest.mark.integration]


@dataclass
class Cluster:
    kamailio: Kamailio
    node_a: Node
    node_b: Node
    redis: RedisServer
    namespace: str


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path) as running:
        yield running


# Nodes running the demo dialplan (its "0" queues the caller for an agent; no agent is logged in), beating every
# second with a 3 s TTL.
QUEUE_NODES = {"dialplan": "demo", "queues_extra": ", heartbeat_s: 1, node_ttl_s: 3",
               "extra": "speech: {workers: 1, asr_model: tiny.en}"}


@pytest.fixture
def queue_cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path, **QUEUE_NODES) as running:
        yield running


@contextlib.contextmanager
def running_cluster(tmp_path: Path, **node_config: object) -> Iterator[Cluster]:
    require_tool("sipp")
    require_tool("redis-server")
    redis = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    redis.start()
    namespace = "deploy" + uuid.uuid4().hex[:10]
    nodes: list[Node] = []
    kamailio: Kamailio | None = None
    try:
        base = 41000 + (uuid.uuid4().int % 40) * 400
        nodes.append(start_node(tmp_path / "node-a", "node-a", redis_url=redis.url, namespace=namespace,
                                rtp_start=base, **node_config))
        nodes.append(start_node(tmp_path / "node-b", "node-b", redis_url=redis.url, namespace=namespace,
                                rtp_start=base + 200, **node_config))
        kamailio = start_kamailio(tmp_path / "kamailio", nodes)
        yield Cluster(kamailio, nodes[0], nodes[1], redis, namespace)
    finally:
        if kamailio is not None:
            stop_kamailio(kamailio)
            (tmp_path / "kamailio.log").write_text("\n".join(kamailio.lines) + "\n")  # kept for diagnosis
        for node in nodes:
            stop_node(node)
        redis.stop()


def run_sipp(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def sipp_errors(cwd: Path) -> str:
    path = cwd / "sipp_errors.log"
    return path.read_text()[-3000:] if path.exists() else ""


def node_uri(node: Node) -> str:
    return f"sip:{node.server.host}:{node.server.port}"


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def taken_out_line(kamailio: Kamailio, node: Node) -> str | None:
    """The first Kamailio log line showing ``node`` taken out of the dispatcher set, if any."""
    marks = (f"edge: node {node_uri(node)} down", f"edge: node {node_uri(node)} failed INVITE")
    return next((line for line in list(kamailio.lines) if any(mark in line for mark in marks)), None)


def test_dispatcher_list_and_command_are_rendered_for_loopback(tmp_path: Path) -> None:
    listing = dispatcher_list([("127.0.0.1", 5071), ("::1", 5072)])
    assert listing == "1 sip:127.0.0.1:5071\n1 sip:[::1]:5072\n"
    with pytest.raises(ValueError, match="at least one"):
        dispatcher_list([])
    with pytest.raises(ValueError, match="outside"):
        dispatcher_list([("127.0.0.1", 70000)])
    command = kamailio_command(Path("k.cfg"), host="127.0.0.1", port=5999, dispatcher_file=tmp_path / "ds.list",
                               allowed_sources="127.0.0.0/8")
    assert "LISTEN=udp:127.0.0.1:5999" in command
    assert f'DISPATCHER_LIST="{tmp_path / "ds.list"}"' in command


def test_kamailio_config_parses_with_loopback_defines(tmp_path: Path) -> None:
    ds_file = tmp_path / "dispatcher.list"
    ds_file.write_text(dispatcher_list([("127.0.0.1", 5071), ("127.0.0.1", 5072)]))
    from tests.deploy.kamailio_support import KAMAILIO_CFG

    command = kamailio_command(KAMAILIO_CFG, host="127.0.0.1", port=5999, dispatcher_file=ds_file,
                               allowed_sources="127.0.0.0/8")
    checked = subprocess.run([command[0], "-c", *command[1:]], capture_output=True, text=True, timeout=20)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "config file ok" in checked.stdout + checked.stderr


@pytest.mark.timeout(60)
def test_edge_refuses_sources_outside_the_acl(tmp_path: Path) -> None:
    """A proxy whose ACL allows only 10.0.0.0/8 answers a loopback INVITE with 403 and never dispatches it."""
    require_tool("sipp")
    redis = RedisServer(tmp_path)
    redis.start()
    nodes: list[Node] = []
    kamailio: Kamailio | None = None
    try:
        nodes.append(start_node(tmp_path / "node", "node-acl", redis_url=redis.url,
                                namespace="acl" + uuid.uuid4().hex[:8],
                                rtp_start=40000 + (uuid.uuid4().int % 40) * 100))
        node = nodes[0]
        kamailio = start_kamailio(tmp_path / "kamailio", nodes, allowed_sources="10.0.0.0/8")
        result = run_sipp(sipp_command(kamailio, tmp_path, calls=1, rate=1, hold_ms=100, timeout_s=15), tmp_path,
                          timeout=30)
        assert result.returncode != 0
        assert "403 Forbidden" in sipp_errors(tmp_path)
        assert kamailio.grep("refused (not in ALLOWED_SOURCES)")
        assert kamailio.dispatched() == {}
        assert node.calls_ended() == []
    finally:
        if kamailio is not None:
            stop_kamailio(kamailio)
        for node in nodes:
            stop_node(node)
        redis.stop()


@pytest.mark.timeout(90)
def test_calls_spread_over_nodes_and_a_draining_node_is_taken_out(
        cluster: Cluster, tmp_path: Path) -> None:
    kamailio, node_a, node_b = cluster.kamailio, cluster.node_a, cluster.node_b

    # 1. Spread: 6 short calls, round-robin over both nodes, every one completed.
    first = run_sipp(sipp_command(kamailio, tmp_path, calls=6, rate=6, hold_ms=300, timeout_s=30), tmp_path,
                     timeout=45)
    assert first.returncode == 0, sipp_errors(tmp_path)
    wait_until(lambda: len(node_a.calls_ended()) + len(node_b.calls_ended()) == 6, 10, "6 call ended records")
    assert len(node_a.calls_ended()) >= 2 and len(node_b.calls_ended()) >= 2
    dispatched = kamailio.dispatched()
    assert set(dispatched) == {node_uri(node_a), node_uri(node_b)} and sum(dispatched.values()) == 6
    for record in node_a.calls_ended() + node_b.calls_ended():
        assert (record["outcome"], record["digits"], record["end_reason"]) == ("completed", "4", "bot hangup")
    # In-dialog requests followed the Record-Route: the nodes' BYEs went through the proxy.
    assert len(kamailio.grep("edge: in-dialog BYE")) == 6
    # Both nodes keep their queue state in the one Redis namespace.
    assert [record["store"] for record in node_a.server.records("queues ready") + node_b.server.records(
        "queues ready")] == ["redis", "redis"]
    assert cluster.redis.keys(f"voicebot:{cluster.namespace}:*")

    # 2. Drain: longer calls; node B gets SIGTERM while some of them are in progress on it.
    phase2 = tmp_path / "phase2"
    phase2.mkdir()
    calls = 16
    sipp = subprocess.Popen(sipp_command(kamailio, phase2, calls=calls, rate=4, hold_ms=2500, timeout_s=45),
                            cwd=phase2, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")  # sipp may echo stray RTP bytes
    try:
        wait_until(lambda: kamailio.dispatched()[node_uri(node_b)] >= dispatched[node_uri(node_b)] + 2, 10, "2 phase-2 calls on node B")
        ended_on_b_before = len(node_b.calls_ended())
        node_b.server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: node_b.http_status("/readyz") == 503, 5, "node B /readyz 503")
        assert sip_options_status(node_b.server.host, node_b.server.port) == 503
        assert node_a.http_status("/readyz") == 200
        # Kamailio takes B out when a probe gets 503, or earlier when an INVITE gets 503 (then it fails over).
        wait_until(lambda: taken_out_line(kamailio, node_b) is not None, 5, "Kamailio taking node B out")
        down = taken_out_line(kamailio, node_b)
        stdout, stderr = sipp.communicate(timeout=60)
    finally:
        if sipp.poll() is None:
            sipp.kill()
            sipp.wait()
    assert sipp.returncode == 0, sipp_errors(phase2) + stderr[-2000:]

    # Calls in progress on B finished normally after SIGTERM; B then exited cleanly with no call left.
    assert node_b.server.proc.wait(30) == 0
    assert len(node_b.calls_ended()) > ended_on_b_before
    assert node_b.server.records("draining done")[0]["calls_left"] == 0

    # After Kamailio saw B down, every new call went to A (a call that hit B in the gap was failed over to A).
    assert down is not None
    after_down = kamailio.lines[kamailio.lines.index(down):]
    assert not [line for line in after_down if "edge: dispatch INVITE" in line and node_uri(node_b) in line]
    assert [line for line in after_down if "edge: dispatch INVITE" in line and node_uri(node_a) in line]

    # No call failed or got lost: every call placed ended completed on exactly one node.
    wait_until(lambda: len(node_a.calls_ended()) + len(node_b.calls_ended()) == 6 + calls, 15,
               f"{6 + calls} call ended records")
    records = node_a.calls_ended() + node_b.calls_ended()
    assert len({record["call_id"] for record in records}) == 6 + calls
    assert all(record["outcome"] == "completed" for record in records)


@pytest.mark.timeout(60)
def test_invite_answered_503_by_a_draining_node_fails_over(tmp_path: Path) -> None:
    """Probes too slow to notice the drain: the draining node's 503 makes Kamailio retry the INVITE elsewhere."""
    require_tool("sipp")
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    namespace = "failover" + uuid.uuid4().hex[:8]
    base = 41000 + (uuid.uuid4().int % 40) * 400
    nodes: list[Node] = []
    kamailio: Kamailio | None = None
    long_calls = tmp_path / "long"
    long_calls.mkdir()
    try:
        for name, offset in (("node-a", 0), ("node-b", 200)):
            nodes.append(start_node(tmp_path / name, name, redis_url=redis.url, namespace=namespace,
                                    rtp_start=base + offset))
        node_a, node_b = nodes
        kamailio = start_kamailio(tmp_path / "kamailio", nodes, ping_interval_s=60)
        # One long call on each node keeps B alive while it drains.
        holding = subprocess.Popen(sipp_command(kamailio, long_calls, calls=2, rate=10, hold_ms=6000, timeout_s=30),
                                   cwd=long_calls, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_until(lambda: len(kamailio.dispatched()) == 2, 10, "a long call on each node")
        node_b.server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: node_b.http_status("/readyz") == 503, 5, "node B /readyz 503")
        short = run_sipp(sipp_command(kamailio, tmp_path, calls=4, rate=10, hold_ms=200, timeout_s=30), tmp_path,
                         timeout=45)
        assert short.returncode == 0, sipp_errors(tmp_path)
        assert holding.wait(30) == 0
        failed_over = kamailio.grep(f"edge: node {node_uri(node_b)} failed INVITE")
        assert failed_over and all("(503)" in line for line in failed_over)
        assert kamailio.grep("(failover)")
        wait_until(lambda: len(node_a.calls_ended()) == 5, 10, "4 short calls + 1 long call ended on A")
        assert [record["outcome"] for record in node_b.calls_ended()] == ["completed"]
        assert node_b.server.proc.wait(20) == 0
    finally:
        if kamailio is not None:
            stop_kamailio(kamailio)
        for node in nodes:
            stop_node(node)
        redis.stop()


def start_sipp(command: list[str], cwd: Path, sipps: list[subprocess.Popen[str]]) -> None:
    sipps.append(subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, text=True))


def queue_callers_on_both_nodes(cluster: Cluster, workdir: Path, sipps: list[subprocess.Popen[str]]) -> dict[str, dict]:
    """Four callers through Kamailio, two waiting on each node; the queue entries in Redis (call id -> entry)."""
    workdir.mkdir()
    start_sipp(queue_sipp_command(cluster.kamailio, workdir, calls=4, rate=2, wait_ms=150_000,
                                  caller_prefix="1555010", timeout_s=200), workdir, sipps)
    wait_until(lambda: len(cluster.node_a.server.records("caller queued")) >= 2
               and len(cluster.node_b.server.records("caller queued")) >= 2, 120, "2 callers queued on each node")
    key = f"voicebot:{cluster.namespace}:"
    entries = cluster.redis.records(key + "entries")
    assert sorted(entry["node"] for entry in entries.values()) == ["node-a", "node-a", "node-b", "node-b"]
    assert sorted(cluster.redis.keys(key + "node:*")) == [key + "node:node-a", key + "node:node-b"]
    return entries


def redis_json(cluster: Cluster, key: str) -> dict:
    out = subprocess.run(["redis-cli", "-p", str(cluster.redis.port), "--raw", "GET", key], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return json.loads(out)


def queue_positions(cluster: Cluster) -> dict[str, int]:
    """Call id -> position in the "support" queue, computed by the ACD from the shared Redis state."""
    from tests.integration.support import REPO
    from voicebot.queues.acd import Acd
    from voicebot.queues.models import load_agents, load_queues
    from voicebot.queues.state import STATE_KINDS, decode_state

    raw = {kind: {key: json.dumps(value) for key, value in
                  cluster.redis.records(f"voicebot:{cluster.namespace}:{kind}").items()} for kind in STATE_KINDS}
    acd = Acd(load_agents(REPO / "sip_config" / "agents.yaml"), load_queues(REPO / "sip_config" / "queues.yaml"),
              decode_state(raw))
    return {p.call_id: p.position for p in acd.positions("support", time.time())}


@pytest.mark.timeout(300)
def test_callers_queued_on_a_killed_node_become_callbacks_and_the_survivors_callers_keep_their_place(
        queue_cluster: Cluster, tmp_path: Path) -> None:
    cluster = queue_cluster
    kamailio, node_a, node_b, redis = cluster.kamailio, cluster.node_a, cluster.node_b, cluster.redis
    key = f"voicebot:{cluster.namespace}:"
    late_dir = tmp_path / "late"
    late_dir.mkdir()
    sipps: list[subprocess.Popen[str]] = []
    try:
        # 1. Four callers through Kamailio, spread over both nodes; no agent is available, so all of them wait.
        entries = queue_callers_on_both_nodes(cluster, tmp_path / "callers", sipps)
        on_a = {call_id for call_id, entry in entries.items() if entry["node"] == "node-a"}
        on_b = {call_id: entry for call_id, entry in entries.items() if entry["node"] == "node-b"}

        # 2. Node B crashes (SIGKILL, its speech worker too): nothing of it runs any more.
        kill_node(node_b)
        killed_at = time.monotonic()
        # Within the 3 s TTL (+ one 1 s beat and loop slack) node A removes B's callers from the shared queue...
        wait_until(lambda: set(redis.records(key + "entries")) == on_a, 8, "node B's callers leaving the queue")
        print(f"node B's callers recovered {time.monotonic() - killed_at:.1f} s after the kill")
        assert redis.keys(key + "node:*") == [key + "node:node-a"]
        # ... and re-offers each as a callback task dialled by node A, keeping the caller's place and context.
        callbacks = redis.records(key + "callbacks")
        assert set(callbacks) == {f"cb:{call_id}" for call_id in on_b}
        for call_id, entry in on_b.items():
            task = callbacks[f"cb:{call_id}"]
            assert (task["node"], task["state"], task["queue"]) == ("node-a", "pending", "support")
            assert (task["context_id"], task["enqueued_at"]) == (entry["context_id"], entry["enqueued_at"])
            assert task["number"].startswith("+1555010")
            context = redis_json(cluster, key + "context:" + entry["context_id"])
            assert context["call_id"] == call_id and context["queue_path"][0]["queue"] == "support"
            assert task["number"] not in json.dumps(context) and context["caller"].endswith(task["number"][-4:])
        # Node A wrote the call record of each lost call: none is lost.
        lost = {record["call_id"]: record for record in node_a.calls_ended() if record["call_id"] in on_b}
        assert set(lost) == set(on_b)
        for record in lost.values():
            assert (record["outcome"], record["lost_node"], record["recovered_by"], record["callback"]) == (
                "node lost → callback queued", "node-b", "node-a", True)
            assert record["context_id"] == on_b[record["call_id"]]["context_id"]
        assert queue_positions(cluster) == {call_id: position for position, call_id in
                                            enumerate(sorted(on_a, key=lambda c: entries[c]["enqueued_at"]), 1)}

        # 3. A new caller goes to the survivor and queues behind A's two callers (B's lost callers hold no place).
        start_sipp(queue_sipp_command(kamailio, late_dir, calls=1, rate=1, wait_ms=60_000, caller_prefix="1555020",
                                      timeout_s=100), late_dir, sipps)
        queued = node_a.server.wait_for("caller queued", count=3, timeout=90)[2]
        assert queued["position"] == 3
        positions = queue_positions(cluster)
        assert set(positions) == on_a | {queued["call_id"]} and positions[queued["call_id"]] == 3
        assert node_a.server.proc.poll() is None
    finally:
        for sipp in sipps:
            if sipp.poll() is None:
                sipp.kill()
                sipp.wait()


@pytest.mark.timeout(300)
def test_a_draining_nodes_queued_callers_are_served_then_become_callbacks_at_the_deadline(tmp_path: Path) -> None:
    """Graceful stop: the draining node's callers keep their place and are still served by agents (shared Redis);
    those still waiting when the drain time is over become callbacks that the surviving node dials."""
    from tests.integration.support import SCENARIOS, free_media_port, free_udp_port
    from voicebot.api.tokens import TokenStore

    agent_port = free_udp_port()
    (tmp_path / "agents.yaml").write_text(f"""agents:
  - {{id: a1, name: Agent One, sip_uri: "sip:agent@127.0.0.1:{agent_port}", skills: {{billing: 5}},
     languages: [en-US], wrap_up_s: 120}}
""")
    (tmp_path / "queues.yaml").write_text("queues:\n  - {name: support, max_size: 20}\n")
    agent_tokens = {}
    for name in ("node-a", "node-b"):
        (tmp_path / name).mkdir()
        tokens = TokenStore.load(tmp_path / name / "tokens.json")
        agent_tokens[name] = tokens.create("agent", agent="a1")
        tokens.save()
    config = {**QUEUE_NODES, "queues_extra": QUEUE_NODES["queues_extra"] + (
        f", agents_file: {tmp_path / 'agents.yaml'}, queues_file: {tmp_path / 'queues.yaml'}, ring_timeout_s: 5")}
    sipps: list[subprocess.Popen[str]] = []
    agent: subprocess.Popen[str] | None = None
    with running_cluster(tmp_path, grace_s=12, **config) as cluster:
        kamailio, redis = cluster.kamailio, cluster.redis
        key = f"voicebot:{cluster.namespace}:"
        try:
            entries = queue_callers_on_both_nodes(cluster, tmp_path / "callers", sipps)
            first = min(queue_positions(cluster).items(), key=lambda item: item[1])[0]  # the next to be served
            drained, survivor = ((cluster.node_a, cluster.node_b) if entries[first]["node"] == "node-a"
                                 else (cluster.node_b, cluster.node_a))
            on_drained = {call_id: e for call_id, e in entries.items() if e["node"] == drained.name}

            # 1. SIGTERM: the node drains (12 s). It takes no new call, but its callers keep their place in the shared
            # queue and it keeps beating: nothing is treated as lost.
            drained.server.proc.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            wait_until(lambda: drained.http_status("/readyz") == 503, 5, "/readyz 503 on the draining node")
            wait_until(lambda: taken_out_line(kamailio, drained) is not None, 8, "Kamailio taking the node out")
            late_dir = tmp_path / "late"
            late_dir.mkdir()
            start_sipp(queue_sipp_command(kamailio, late_dir, calls=1, rate=1, wait_ms=60_000,
                                          caller_prefix="1555020", timeout_s=100), late_dir, sipps)
            late = survivor.server.wait_for("caller queued", count=3, timeout=60)[2]
            assert late["position"] == 5  # behind all four: the draining node's callers kept their place
            time.sleep(max(0.0, stopped_at + 4 - time.monotonic()))  # past the 3 s TTL, still within the drain
            assert drained.server.proc.poll() is None
            assert set(redis.records(key + "entries")) == set(entries) | {late["call_id"]}
            assert key + f"node:{drained.name}" in redis.keys(key + "node:*")

            # 2. An agent logs in on the surviving node: the shared ACD offers the oldest caller, who waits on the
            # draining node, and that node rings the agent and bridges the call.
            (tmp_path / "agent").mkdir()
            agent = subprocess.Popen(
                ["sipp", "-sf", str(SCENARIOS / "agent_answers.xml"), "-i", "127.0.0.1", "-p", str(agent_port),
                 "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-rtp_echo", "-m", "1", "-nostdin",
                 "-timeout", "60s", "-timeout_error", "-trace_err", "-error_file",
                 str(tmp_path / "agent" / "errors.log")], cwd=tmp_path / "agent", stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            status, body = api_request(survivor.api_port, "POST", "/agents/a1/state", agent_tokens[survivor.name],
                                       {"state": "available"})
            assert status == 200, body
            connected = drained.server.wait_for("agent connected", timeout=15)[0]
            assert connected["call_id"] == first

            # 3. The drain deadline: the bridged call is ended, the callers still waiting become callbacks with their
            # records written; the node exits cleanly and drops its heartbeat, so the survivor dials the callbacks.
            assert drained.server.proc.wait(40) == 0
            assert agent.wait(20) == 0
            waiting = set(on_drained) - {first}
            assert drained.server.records("draining done")[0]["calls_left"] == 3  # 2 callers + the agent leg
            records = {r["call_id"]: r for r in drained.calls_ended() if r["call_id"] in on_drained}
            assert set(records) == set(on_drained)
            assert {records[call_id]["outcome"] for call_id in waiting} == {"node stopped → callback queued"}
            assert records[first]["outcome"] != "node stopped → callback queued"
            assert redis.keys(key + "node:*") == [key + f"node:{survivor.name}"]
            assert set(redis.records(key + "entries")) == set(entries) - set(on_drained) | {late["call_id"]}
            wait_until(lambda: {c["node"] for c in redis.records(key + "callbacks").values()} == {survivor.name},
                       5, "the survivor owning the drained node's callbacks")
            callbacks = redis.records(key + "callbacks")
            assert set(callbacks) == {f"cb:{call_id}" for call_id in waiting}
            for call_id in waiting:
                task = callbacks[f"cb:{call_id}"]
                assert (task["context_id"], task["enqueued_at"]) == (entries[call_id]["context_id"],
                                                                     entries[call_id]["enqueued_at"])
                assert task["number"].startswith("+1555010")
            assert queue_positions(cluster)[late["call_id"]] == 3
        finally:
            for process in [*sipps, *([agent] if agent is not None else [])]:
                if process.poll() is None:
                    process.kill()
                    process.wait()
