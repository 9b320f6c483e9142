"""Kamailio + two voicebot nodes + one redis-server on loopback: calls are spread, a draining node is taken out.

Real processes throughout: kamailio running deploy/kamailio/kamailio.cfg, two `voicebot serve` nodes (keypad-demo,
queue state in the shared Redis), sipp placing calls through the proxy.
"""

from __future__ import annotations

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
    sip_options_status,
    sipp_command,
    start_kamailio,
    start_node,
    stop_kamailio,
    stop_node,
)
from tests.integration.support import require_tool

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
                                rtp_start=base))
        nodes.append(start_node(tmp_path / "node-b", "node-b", redis_url=redis.url, namespace=namespace,
                                rtp_start=base + 200))
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
                            stderr=subprocess.PIPE, text=True)
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
