"""Which speech job a free worker runs next, and how long jobs waited for one (pure logic, no I/O).

Jobs wait here, in the server, instead of in a worker's own queue, so that:
- a job for a caller waiting on it now (a decode at the end of a turn, a reply's synthesis) runs before a
  speculative decode of a pause, which may never be needed;
- among jobs of one rank the oldest runs first: the caller waiting longest is served first;
- a job whose caller gave up on it (a pause overtaken by more speech, a hang-up) while it waited is dropped and
  costs no CPU (once handed to a worker process a job cannot be taken back);
- a speculative job becomes urgent when its caller's turn ends on it (`Ticket.urgent`).
The wait of every job that ran is kept per kind of job, for /metrics: it is the honest measure of saturation.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Upper bounds of the wait histogram (seconds): a turn has ~1.5 s in all, so most of the interest is below 1 s.
WAIT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Ticket:
    """The rank of the jobs started within one context: speculative until the caller waits on their result."""

    urgent: bool = False


# Set by whoever starts a speculative job (voicebot.speech.speculation); a job started without one is urgent.
CURRENT_TICKET: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar("speech_job_ticket", default=None)


@dataclass(eq=False)  # one job is itself, never another with equal fields: payloads hold numpy audio
class QueuedJob(Generic[T]):
    payload: T
    kind: str  # "asr" or "tts", for the statistics
    enqueued_at: float
    seq: int
    ticket: Ticket | None = None  # None: urgent
    abandoned: Callable[[], bool] = lambda: False  # True: nobody waits for the result any more

    @property
    def urgent(self) -> bool:
        return self.ticket is None or self.ticket.urgent


@dataclass
class WaitStats:
    """Waits of the jobs of one kind and rank that ran (histogram as Prometheus wants it: cumulative at output)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(WAIT_BUCKETS_S) + 1))
    total_s: float = 0.0
    count: int = 0
    max_s: float = 0.0

    def observe(self, wait_s: float) -> None:
        index = next((i for i, bound in enumerate(WAIT_BUCKETS_S) if wait_s <= bound), len(WAIT_BUCKETS_S))
        self.counts[index] += 1
        self.total_s += wait_s
        self.count += 1
        self.max_s = max(self.max_s, wait_s)


class JobQueue(Generic[T]):
    """Urgent jobs before speculative ones, oldest first within a rank; abandoned jobs are dropped unrun."""

    def __init__(self) -> None:
        self._jobs: list[QueuedJob[T]] = []
        self._seq = 0
        self.waits: dict[tuple[str, str], WaitStats] = {}  # (kind, "urgent"/"speculative") -> waits
        self.dropped: dict[str, int] = {}  # kind -> jobs abandoned before they ran

    def __len__(self) -> int:
        return len(self._jobs)

    def push(self, payload: T, kind: str, now: float, ticket: Ticket | None = None,
             abandoned: Callable[[], bool] = lambda: False) -> QueuedJob[T]:
        self._seq += 1
        job = QueuedJob(payload, kind, now, self._seq, ticket, abandoned)
        self._jobs.append(job)
        return job

    def pop(self, now: float) -> QueuedJob[T] | None:
        """The job a free worker should run now (its wait recorded), or None when none is left."""
        self._drop_abandoned()
        if not self._jobs:
            return None
        job = min(self._jobs, key=lambda j: (not j.urgent, j.enqueued_at, j.seq))
        self._jobs.remove(job)
        rank = "urgent" if job.urgent else "speculative"
        self.waits.setdefault((job.kind, rank), WaitStats()).observe(max(0.0, now - job.enqueued_at))
        return job

    def remove(self, job: QueuedJob[T]) -> bool:
        """Take ``job`` out unrun (its caller gave up); False if it was no longer queued."""
        if job in self._jobs:
            self._jobs.remove(job)
            self.dropped[job.kind] = self.dropped.get(job.kind, 0) + 1
            return True
        return False

    def oldest_wait_s(self, now: float) -> float:
        """How long the longest-waiting job has waited so far (0 when none waits)."""
        return max((now - job.enqueued_at for job in self._jobs), default=0.0)

    def _drop_abandoned(self) -> None:
        for job in [j for j in self._jobs if j.abandoned()]:
            self.remove(job)


def prometheus_waits(queue: JobQueue[Any], queued: int, oldest_s: float, workers: int, busy: int) -> str:
    """The queue's figures in Prometheus text format (0.0.4)."""
    lines = ["# HELP voicebot_speech_queue_wait_seconds Time a speech job (ASR, TTS) waited for a free worker "
             "process, by rank (urgent: a caller waits on it; speculative: a pause's early decode)",
             "# TYPE voicebot_speech_queue_wait_seconds histogram"]
    for (kind, rank), stats in sorted(queue.waits.items()):
        labels = f'job="{kind}",rank="{rank}"'
        running = 0
        for bound, count in zip(WAIT_BUCKETS_S, stats.counts):
            running += count
            lines.append(f'voicebot_speech_queue_wait_seconds_bucket{{{labels},le="{bound:g}"}} {running}')
        lines.append(f'voicebot_speech_queue_wait_seconds_bucket{{{labels},le="+Inf"}} {stats.count}')
        lines.append(f"voicebot_speech_queue_wait_seconds_sum{{{labels}}} {stats.total_s:.3f}")
        lines.append(f"voicebot_speech_queue_wait_seconds_count{{{labels}}} {stats.count}")
    lines += ["# HELP voicebot_speech_jobs_dropped_total Speech jobs dropped unrun: their caller no longer "
              "needed them (a pause overtaken by speech, a hang-up)",
              "# TYPE voicebot_speech_jobs_dropped_total counter"]
    for kind in sorted(set(queue.dropped) | {"asr"}):
        lines.append(f'voicebot_speech_jobs_dropped_total{{job="{kind}"}} {queue.dropped.get(kind, 0)}')
    lines += ["# HELP voicebot_speech_queue_length Speech jobs waiting for a free worker process",
              "# TYPE voicebot_speech_queue_length gauge", f"voicebot_speech_queue_length {queued}",
              "# HELP voicebot_speech_queue_oldest_wait_seconds Wait so far of the longest-waiting speech job",
              "# TYPE voicebot_speech_queue_oldest_wait_seconds gauge",
              f"voicebot_speech_queue_oldest_wait_seconds {oldest_s:.3f}",
              "# HELP voicebot_speech_workers_busy Speech worker processes running a job (of voicebot_speech_workers)",
              "# TYPE voicebot_speech_workers_busy gauge", f"voicebot_speech_workers_busy {busy}",
              "# HELP voicebot_speech_workers Speech worker processes", "# TYPE voicebot_speech_workers gauge",
              f"voicebot_speech_workers {workers}"]
    return "\n".join(lines) + "\n"
