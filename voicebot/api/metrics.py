"""Queue and agent figures from the ACD state: JSON summaries for the dashboard and Prometheus text for /metrics."""

from __future__ import annotations

from typing import Any

from voicebot.queues.acd import Acd
from voicebot.queues.ewt import Ewt
from voicebot.queues.models import AgentsConfig, QueuesConfig
from voicebot.queues.state import AcdState

__all__ = ["prometheus_text", "queue_summaries"]


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def queue_summaries(
    state: AcdState, agents: AgentsConfig, queues: QueuesConfig, now: float, ewts: dict[str, Ewt | None]
) -> list[dict[str, Any]]:
    acd = Acd(agents, queues, state)
    summaries = []
    for queue in queues.queues:
        waiting = acd.positions(queue.name, now)
        staffed, available = acd.staffed(queue.name)
        stats = state.stats.get(queue.name)
        answered = stats.answered if stats else 0
        abandoned = stats.abandoned if stats else 0
        ewt = ewts.get(queue.name)
        summaries.append({
            "name": queue.name,
            "waiting": len(waiting),
            "longest_wait_s": max((p.waiting_s for p in waiting), default=0.0),
            "ewt": None if ewt is None else {"low_s": round(ewt.low_s, 1), "high_s": round(ewt.high_s, 1)},
            "staffed": staffed,
            "available": available,
            "answered": answered,
            "abandoned": abandoned,
            "asa_s": round(_ratio(stats.total_answer_wait_s, answered), 1) if stats else 0.0,
            "abandonment_rate": round(_ratio(abandoned, answered + abandoned), 4),
            "service_level": round(_ratio(stats.answered_within_sl, answered + abandoned), 4) if stats else 0.0,
            "service_level_s": queue.service_level_s,
            "aht_s": round(stats.aht_s, 1) if stats else None,
            "callbacks_pending": sum(1 for t in state.callbacks.values() if t.queue == queue.name),
            "callbacks_done": stats.callbacks_done if stats else 0,
            "open": queue.is_open(now),
        })
    return summaries


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(summaries: list[dict[str, Any]], state: AcdState) -> str:
    """Prometheus exposition format (text 0.0.4)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            rendered = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
            lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")

    per_queue = [(s, {"queue": s["name"]}) for s in summaries]
    metric("voicebot_queue_length", "gauge", "Callers waiting in the queue.", [(l, s["waiting"]) for s, l in per_queue])
    metric("voicebot_queue_longest_wait_seconds", "gauge", "Wait of the longest-waiting caller.",
           [(l, s["longest_wait_s"]) for s, l in per_queue])
    metric("voicebot_queue_asa_seconds", "gauge", "Average speed of answer.", [(l, s["asa_s"]) for s, l in per_queue])
    metric("voicebot_queue_abandonment_ratio", "gauge", "Abandoned / (answered + abandoned).",
           [(l, s["abandonment_rate"]) for s, l in per_queue])
    metric("voicebot_queue_service_level_ratio", "gauge", "Answered within the service-level threshold / offered.",
           [({**l, "threshold_s": f"{s['service_level_s']:g}"}, s["service_level"]) for s, l in per_queue])
    metric("voicebot_queue_answered_total", "counter", "Callers answered by an agent.", [(l, s["answered"]) for s, l in per_queue])
    metric("voicebot_queue_abandoned_total", "counter", "Callers who hung up while waiting.", [(l, s["abandoned"]) for s, l in per_queue])
    metric("voicebot_callbacks_pending", "gauge", "Callback tasks waiting for an agent.",
           [(l, s["callbacks_pending"]) for s, l in per_queue])
    metric("voicebot_callbacks_completed_total", "counter", "Callbacks that reached the caller.",
           [(l, s["callbacks_done"]) for s, l in per_queue])
    states = ("offline", "available", "reserved", "busy", "wrap_up")
    counts = {name: sum(1 for a in state.agents.values() if a.state == name) for name in states}
    metric("voicebot_agents", "gauge", "Agents by state.", [({"state": name}, counts[name]) for name in states])
    logged_in = sum(counts[name] for name in states if name != "offline")
    occupied = counts["reserved"] + counts["busy"] + counts["wrap_up"]
    metric("voicebot_agent_occupancy_ratio", "gauge", "Agents handling calls / agents logged in.",
           [({}, _ratio(occupied, logged_in))])
    return "\n".join(lines) + "\n"
