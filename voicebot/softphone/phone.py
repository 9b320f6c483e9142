"""`voicebot call`: a pjsua2 (PJSIP) test softphone that places one call and reports what happened.

It plays a WAV into the call, records what it hears, sends DTMF (RFC 4733 or SIP INFO), hangs up after
a duration, and prints a one-line summary (or JSON). One pjlib thread: `threadCnt=0`, the main thread
polls `libHandleEvents`; every pjsua2 callback only records state and never raises.

Run as `voicebot call ...` or `python -m voicebot.softphone ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import TextIO

from voicebot.softphone.audio import AudioFileError, measure_recording, prepare_playback_wav
from voicebot.softphone.args import UsageError, add_call_arguments, plan_from_args
from voicebot.softphone.session import CallSession, stdout_to_stderr
from voicebot.softphone.summary import EXIT_TIMEOUT, EXIT_USAGE, CallSummary

__all__ = ["add_call_arguments", "main", "run_call"]

WATCHDOG_EXTRA_SECONDS = 15.0  # hard exit if pjlib itself wedges past --timeout + this


def _start_watchdog(seconds: float, uri: str, as_json: bool, out: TextIO) -> threading.Timer:
    """Hard-exit if pjlib wedges: the softphone must never outlive --timeout by much."""

    def fire() -> None:
        summary = CallSummary(uri=uri, result="timeout", status_code=0, reason="", duration=0.0,
                              digits_sent="", digits_received="", recorded_seconds=None, recording_rms=None, hangup=None,
                              error="softphone wedged; killed by watchdog")
        with contextlib.suppress(Exception):
            print(summary.to_json() if as_json else summary.to_text(), file=out, flush=True)
        os._exit(EXIT_TIMEOUT)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def _attach_recording_stats(summary: CallSummary, record: Path | None) -> None:
    if record is None:
        return
    if not record.exists():
        summary.recorded_seconds, summary.recording_rms = 0.0, 0.0
        return
    try:
        stats = measure_recording(record)
    except AudioFileError as exc:
        summary.error = summary.error or str(exc)
        return
    summary.recorded_seconds = round(stats.seconds, 3)
    summary.recording_rms = round(stats.rms, 5)


def run_call(args: argparse.Namespace) -> int:
    """Place one call as described by `args` (see add_call_arguments); print the summary; return the exit code."""
    try:
        plan = plan_from_args(args)
    except UsageError as exc:
        print(f"voicebot call: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="voicebot-softphone-") as tmp:
        playback: Path | None = None
        if plan.play is not None:
            try:
                playback = prepare_playback_wav(plan.play, Path(tmp) / "play.wav")
            except AudioFileError as exc:
                print(f"voicebot call: error: {exc}", file=sys.stderr)
                return EXIT_USAGE
        with stdout_to_stderr() as out:
            watchdog = _start_watchdog(plan.timeout + WATCHDOG_EXTRA_SECONDS, plan.uri, args.json, out)
            session = CallSession(plan, playback)
            try:
                summary = session.run()
            finally:
                session.close()
                watchdog.cancel()
        _attach_recording_stats(summary, plan.record)
    print(summary.to_json() if args.json else summary.to_text(), flush=True)
    if summary.exit_code() != 0 and args.json:  # in text mode the summary line already says it
        print(f"voicebot call: {summary.to_text()}", file=sys.stderr)
    return summary.exit_code()


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m voicebot.softphone`."""
    parser = argparse.ArgumentParser(prog="python -m voicebot.softphone", description=__doc__.splitlines()[0])
    add_call_arguments(parser)
    return run_call(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
