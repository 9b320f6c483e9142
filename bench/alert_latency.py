#!/usr/bin/env python3
"""Alert latency of the real-time quality checks (issue 19): a forbidden phrase's end, spoken by the agent on a
real bridged SIP call, → the supervisor's ``quality_alert`` received over /ws/supervisor (the dashboard's socket).

Everything on loopback, once per repetition: `voicebot serve` (demo dialplan, queue ``support`` with
``live_transcript: true``, real speech workers), the project's softphone as the caller (presses 0 for an agent,
then silent), a PJSIP phone as the agent (tests/integration/pjsua_agent.py: auto-answers, plays a WAV, hangs up).
The agent's WAV is synthesised beforehand with the project's TTS (Piper): lead silence, then a sentence holding a
forbidden phrase of policies/ (default: common.yaml's "tell me your full card number"), then silence.

Phrase end: the moment the agent phone's player passes the phrase's last sample (pjsua_agent.py --mark-sample,
polled every 10 ms, a frame before it is encoded and sent). Alert: the arrival time of the first agent
``quality_alert`` of that call on the supervisor socket. A repetition fails when the phrase is not played, no alert
arrives within --alert-timeout s, or the call fails; failures are counted, not timed. Also printed: the same
latency from the server's own estimate of the phrase end (its transcript line's time less the VAD's end silence).

    bench/alert_latency.py [--n 20] [--model tiny.en] [--window 10] [--results-dir bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import RESULTS, BenchRecord  # noqa: E402
from tests.integration.support import (REPO, ServerProcess, api_request, free_udp_port, start_server,  # noqa: E402
                                       stop_server)
from voicebot.api.tokens import TokenStore  # noqa: E402
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, load_policies  # noqa: E402
from voicebot.speech.resample import resample  # noqa: E402
from voicebot.speech.segmenter import LIVE_LISTEN  # noqa: E402
from voicebot.speech.services import trim_silence  # noqa: E402

AGENT_PHONE = REPO / "tests" / "integration" / "pjsua_agent.py"
RATE = 8000
LEAD_S, TAIL_S = 2.0, 12.0  # the bridge is up well before the phrase; nothing else said before the hang-up
HANG_UP_AFTER_S = 11.0


def forbidden_phrase(phrase: str) -> str:
    """``phrase`` if a policy of policies/ forbids it (else SystemExit naming the ones that exist)."""
    phrases = [p.phrase for policy in load_policies(DEFAULT_POLICY_DIR) for p in policy.forbidden_phrases]
    if phrase not in phrases:
        raise SystemExit(f"{phrase!r} is not a forbidden phrase of policies/: one of {phrases}")
    return phrase


def agent_wav(path: Path, sentence: str) -> int:
    """Synthesise ``sentence`` (Piper) into ``path`` (8 kHz) between silences; the sample where it ends."""
    from voicebot.speech.tts import PiperTts

    pcm, rate = PiperTts().synthesize(sentence)
    speech = trim_silence(resample(pcm, rate, RATE) if rate != RATE else pcm, RATE)
    audio = np.concatenate([np.zeros(int(LEAD_S * RATE), np.int16), speech, np.zeros(int(TAIL_S * RATE), np.int16)])
    soundfile.write(str(path), audio, RATE, subtype="PCM_16")
    return int(LEAD_S * RATE) + speech.size


class Lines:
    """A subprocess's JSON stdout lines, each with the wall time it was read."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: list[tuple[float, dict[str, Any]]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.events.append((time.time(), json.loads(line)))
            except ValueError:
                pass

    def first(self, event: str) -> dict[str, Any] | None:
        return next((e for _at, e in list(self.events) if e.get("event") == event), None)


class SupervisorSocket:
    """/ws/supervisor in a thread: every message with the wall time it arrived."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(),), daemon=True)
        self._thread.start()
        if not self.ready.wait(20):
            raise RuntimeError("the supervisor socket did not sign in")

    async def _run(self) -> None:
        import aiohttp

        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{self.port}/ws/supervisor") as ws:
                await ws.send_json({"type": "auth", "token": self.token})
                receiver = asyncio.ensure_future(self._receive(ws))
                await self._stop.wait()
                receiver.cancel()

    async def _receive(self, ws: Any) -> None:
        async for message in ws:
            body = json.loads(message.data)
            self.messages.append((time.time(), body))
            if body.get("type") == "hello":
                self.ready.set()

    def first(self, kind: str, since: float, **fields: Any) -> tuple[float, dict[str, Any]] | None:
        return next(((at, m) for at, m in list(self.messages) if at >= since and m.get("type") == kind
                     and all(m.get(k) == v for k, v in fields.items())), None)

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def wait_for(condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    return None


def one_call(index: int, server: ServerProcess, api_port: int, agent_port: int, tokens: dict[str, str],
             supervisor: SupervisorSocket, wav: Path, mark: int, phrase: str, workdir: Path,
             alert_timeout_s: float, seen: list[str]) -> dict[str, Any]:
    """One bridged call; its latencies or the reason it failed."""
    status, body = api_request(api_port, "POST", "/agents/a1/state", tokens["agent"], {"state": "available"})
    if status not in (200, 409):
        return {"failed": f"agent state: {status} {body}"}
    since = time.time()
    agent = subprocess.Popen([sys.executable, str(AGENT_PHONE), "--port", str(agent_port), "--play", str(wav),
                              "--mark-sample", str(mark), "--hangup-after", str(HANG_UP_AFTER_S), "--timeout", "90"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    phone = Lines(agent)
    caller = subprocess.Popen([sys.executable, "-m", "voicebot.cli", "call", server.uri, "--play",
                               str(workdir / "quiet.wav"), "--dtmf", "0", "--dtmf-delay", "2", "--duration", "60",
                               "--json", "--timeout", "90"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        connected = wait_for(lambda: next((e for e in server.records("agent connected")
                                           if e["call_id"] not in seen), None), 40)
        if connected is None:
            return {"failed": "no agent connected"}
        call_id = connected["call_id"]
        seen.append(call_id)
        marked = wait_for(lambda: phone.first("mark"), 30)
        if marked is None:
            return {"failed": "the agent's phrase was not played", "call_id": call_id}
        phrase_end = float(marked["at"])
        alerted = wait_for(lambda: supervisor.first("quality_alert", since, call_id=call_id, speaker="agent"),
                           max(0.0, phrase_end + alert_timeout_s - time.time()))
        if alerted is None:
            return {"failed": f"no alert within {alert_timeout_s:g} s", "call_id": call_id}
        alert_at, alert = alerted
        if alert.get("rule") != phrase:
            return {"failed": f"alert for another rule: {alert.get('rule')!r}", "call_id": call_id}
        line = supervisor.first("transcript", since, call_id=call_id, who="agent")
        estimated = None if line is None else alert_at - (line[1]["t"] - LIVE_LISTEN.end_silence_ms / 1000)
        print(f"  call {index + 1}: {alert_at - phrase_end:.3f} s (server's estimate {estimated or float('nan'):.3f} s);"
              f" heard {line[1]['text'] if line else '?'!r}", flush=True)
        return {"call_id": call_id, "latency_s": alert_at - phrase_end, "estimated_s": estimated}
    finally:
        for proc in (agent, caller):
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        wait_for(lambda: len(server.records("agent call ended")) >= len(seen), 20)  # the agent is free again


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def run(n: int, model: str, window: float | None, phrase: str, alert_timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="alert-latency-") as tmp:
        workdir = Path(tmp)
        sentence = f"To check that, please {phrase}."
        mark = agent_wav(workdir / "agent.wav", sentence)
        soundfile.write(str(workdir / "quiet.wav"), np.zeros(90 * RATE, np.int16), RATE)
        agent_port = free_udp_port()
        (workdir / "agents.yaml").write_text(f"""agents:
  - id: a1
    name: Bench Agent
    sip_uri: sip:agent@127.0.0.1:{agent_port}
    skills: {{billing: 5}}
    languages: [en-US]
    wrap_up_s: 0
""")
        (workdir / "queues.yaml").write_text("queues:\n  - name: support\n    max_wait_s: 600\n"
                                             "    live_transcript: true\n    assist: false\n")
        store = TokenStore.load(workdir / "tokens.json")
        tokens = {"agent": store.create("agent", agent="a1"), "supervisor": store.create("supervisor")}
        store.save()
        speech = f"speech: {{workers: 1, asr_model: {model}" + (f", asr_window_s: {window:g}}}" if window else "}")
        server = start_server(workdir, f"""{speech}
codecs: {{preference: [PCMU, PCMA]}}
queues: {{agents_file: {workdir / 'agents.yaml'}, queues_file: {workdir / 'queues.yaml'}, ring_timeout_s: 15}}
""", dialplan="demo")
        supervisor: SupervisorSocket | None = None
        try:
            api_port = server.wait_for("api listening", timeout=180)[0]["port"]
            supervisor = SupervisorSocket(api_port, tokens["supervisor"])
            print(f"agent says {sentence!r} ({mark / RATE - LEAD_S:.2f} s, ends at {mark / RATE:.2f} s of its WAV); "
                  f"{n} calls, {model}{f', {window:g} s window' if window else ''}", flush=True)
            seen: list[str] = []  # the call ids connected so far
            calls = [one_call(i, server, api_port, agent_port, tokens, supervisor, workdir / "agent.wav", mark,
                              phrase, workdir, alert_timeout_s, seen) for i in range(n)]
        finally:
            if supervisor is not None:
                supervisor.close()
            stop_server(server)
    return {"sentence": sentence, "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="bridged calls (repetitions)")
    parser.add_argument("--model", default="tiny.en", choices=["tiny.en", "base"])
    parser.add_argument("--window", type=float, default=10.0, help="Whisper English window, s (speech.asr_window_s)")
    parser.add_argument("--phrase", default="tell me your full card number", help="a forbidden phrase of policies/")
    parser.add_argument("--alert-timeout", type=float, default=10.0, help="s after the phrase: a failure beyond")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where alert_latency.json goes")
    args = parser.parse_args()
    phrase = forbidden_phrase(args.phrase)
    with BenchRecord("alert_latency", directory=args.results_dir) as record:
        result = run(args.n, args.model, args.window or None, phrase, args.alert_timeout)
        latencies = [c["latency_s"] for c in result["calls"] if "latency_s" in c]
        estimated = [c["estimated_s"] for c in result["calls"] if c.get("estimated_s") is not None]
        failures = [c for c in result["calls"] if "failed" in c]
        for failure in failures:
            print(f"  failed: {failure['failed']} ({failure.get('call_id', '-')})")
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        print(f"phrase end → supervisor alert: p50 {p50:.2f} s, p95 {p95:.2f} s, max "
              f"{max(latencies, default=float('nan')):.2f} s over {len(latencies)} calls; {len(failures)} of "
              f"{args.n} failed; server-estimated p50 {percentile(estimated, 50):.2f} s")
        record.data = {"n": args.n, "model": args.model, "window_s": args.window, "phrase": phrase,
                       "sentence": result["sentence"], "latencies_s": [round(x, 3) for x in latencies],
                       "server_estimated_s": [round(x, 3) for x in estimated], "p50_s": round(p50, 3),
                       "p95_s": round(p95, 3), "failures": len(failures),
                       "failure_reasons": [f["failed"] for f in failures]}
        record.row(f"Quality alert latency, agent's forbidden phrase end → supervisor alert (real bridged SIP call, "
                   f"{args.model})", f"p50 {p50:.2f} s, p95 {p95:.2f} s ({len(latencies)} calls, "
                   f"{len(failures)} failed)", command=" ".join(["bench/alert_latency.py", *sys.argv[1:]]))
        if args.n and len(failures) == args.n:
            raise SystemExit("every call failed: nothing measured")


if __name__ == "__main__":
    main()
