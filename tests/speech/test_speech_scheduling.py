"""Which speech job runs next: urgent before speculative, oldest first, abandoned jobs dropped, waits measured."""

from __future__ import annotations

import numpy as np

from voicebot.speech.scheduling import JobQueue, Ticket, prometheus_waits


def test_urgent_jobs_run_before_speculative_ones_and_oldest_first_within_a_rank() -> None:
    queue: JobQueue[str] = JobQueue()
    queue.push("pause of caller A", "asr", now=0.0, ticket=Ticket(urgent=False))
    queue.push("end of caller B's turn", "asr", now=1.0)
    queue.push("reply to caller C", "tts", now=2.0)
    queue.push("pause of caller D", "asr", now=0.5, ticket=Ticket(urgent=False))
    order = [job.payload for job in iter(lambda: queue.pop(now=3.0), None)]
    assert order == ["end of caller B's turn", "reply to caller C", "pause of caller A", "pause of caller D"]
    assert len(queue) == 0 and queue.pop(now=3.0) is None


def test_a_speculative_job_becomes_urgent_when_its_caller_waits_on_it() -> None:
    queue: JobQueue[str] = JobQueue()
    ticket = Ticket(urgent=False)
    queue.push("later turn end", "asr", now=0.0)
    queue.push("pause that ended the turn", "asr", now=1.0, ticket=ticket)
    queue.push("older turn end", "asr", now=0.5)
    ticket.urgent = True  # the turn ended on this pause
    assert [job.payload for job in iter(lambda: queue.pop(now=2.0), None)] == \
        ["later turn end", "older turn end", "pause that ended the turn"]


def test_jobs_holding_audio_of_the_same_length_are_told_apart() -> None:
    # ASR payloads are numpy audio: a job compared field by field raised "truth value of an array is ambiguous"
    # as soon as two callers' utterances of one length waited together (a saturated pool)
    queue: JobQueue[np.ndarray] = JobQueue()
    first = queue.push(np.zeros(1600, dtype=np.int16), "asr", now=0.0, ticket=Ticket(urgent=False))
    second = queue.push(np.ones(1600, dtype=np.int16), "asr", now=1.0)
    popped = queue.pop(now=2.0)
    assert popped is second
    assert queue.remove(first) and len(queue) == 0


def test_abandoned_and_removed_jobs_never_run_and_are_counted() -> None:
    queue: JobQueue[str] = JobQueue()
    gave_up = [False]
    queue.push("overtaken pause", "asr", now=0.0, ticket=Ticket(), abandoned=lambda: gave_up[0])
    hung_up = queue.push("hung-up caller", "asr", now=0.1)
    queue.push("wanted", "tts", now=0.2)
    gave_up[0] = True
    assert queue.remove(hung_up) and not queue.remove(hung_up)
    assert [job.payload for job in iter(lambda: queue.pop(now=1.0), None)] == ["wanted"]
    assert queue.dropped == {"asr": 2}


def test_waits_are_kept_per_kind_and_rank_and_exported_as_a_histogram() -> None:
    queue: JobQueue[str] = JobQueue()
    queue.push("a", "asr", now=0.0)
    queue.push("b", "asr", now=0.0, ticket=Ticket())
    queue.push("c", "tts", now=1.0)
    assert queue.oldest_wait_s(now=2.0) == 2.0
    queue.pop(now=0.3)  # a waited 0.3 s
    queue.pop(now=1.02)  # c waited 0.02 s
    assert queue.oldest_wait_s(now=4.0) == 4.0  # b still waits
    queue.pop(now=4.0)  # b waited 4 s
    waits = queue.waits
    assert waits[("asr", "urgent")].count == 1 and abs(waits[("asr", "urgent")].total_s - 0.3) < 1e-9
    assert waits[("asr", "speculative")].max_s == 4.0 and waits[("tts", "urgent")].count == 1
    text = prometheus_waits(queue, queued=0, oldest_s=0.0, workers=2, busy=1)
    lines = text.splitlines()
    assert 'voicebot_speech_queue_wait_seconds_bucket{job="asr",rank="urgent",le="0.25"} 0' in lines
    assert 'voicebot_speech_queue_wait_seconds_bucket{job="asr",rank="urgent",le="0.5"} 1' in lines
    assert 'voicebot_speech_queue_wait_seconds_bucket{job="asr",rank="speculative",le="2.5"} 0' in lines
    assert 'voicebot_speech_queue_wait_seconds_bucket{job="asr",rank="speculative",le="+Inf"} 1' in lines
    assert 'voicebot_speech_queue_wait_seconds_count{job="tts",rank="urgent"} 1' in lines
    assert "voicebot_speech_workers_busy 1" in lines and "voicebot_speech_workers 2" in lines
    assert 'voicebot_speech_jobs_dropped_total{job="asr"} 0' in lines
