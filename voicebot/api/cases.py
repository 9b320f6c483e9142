"""Cases over the API and their notifications (issue 19): GET /cases, GET /cases/{id}, PATCH /cases/{id},
GET /dispositions. Authenticated like every data route (401/403/429 from the app's middleware); agents see and
change only the cases they own, supervisors and admins all.

The :class:`CaseDesk` is the glue: at hang-up it builds the after-call summary from the call's record and opens a
case for calls that reached an agent or ended unresolved; it stores the agent's disposition (desktop WebSocket) as
an event of the call's record; a follow-up time on a case schedules an ACD callback (voicebot/queues); every create
and update is POSTed to the configured webhook (an SMS gateway plugs in there) under the dialplan webhooks' egress
policy, secrets from the environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from voicebot.api.app import _error, audit, principal_of
from voicebot.api.jsonbody import JsonBodyError, read_json
from voicebot.dialplan.webhook_policy import WebhookEgress, WebhookSecretMissing, expand_env, mask
from voicebot.queues.acd import AcdError
from voicebot.queues.callbacks import InvalidCallbackNumber, confirm_number
from voicebot.queues.service import AcdService
from voicebot.records.aftercall import AfterCallSummary, needs_case, summarize
from voicebot.records.cases import STATUSES, CaseError, CaseStore, validate_patch
from voicebot.records.dispositions import Dispositions

__all__ = ["CASES_KEY", "CaseDesk", "CaseWebhook", "add_case_routes", "public_case"]

log = logging.getLogger(__name__)


def public_case(case: Mapping[str, Any]) -> dict[str, Any]:
    """A case as the API and the webhook show it: the number to call back masked but its last 4 digits; the
    summary also as text in both languages."""
    shown = dict(case)
    try:
        summary = AfterCallSummary(**shown["summary"])
        shown["summary_text"] = {lang: summary.text(lang) for lang in ("en-US", "zh-CN")}
    except (KeyError, TypeError):
        pass
    number = shown.pop("callback_number", None) or ""
    shown["callback_number"] = ("****" + number[-4:]) if number else None
    return shown


class CaseWebhook:
    """POST {"event": "case_created" | "case_updated", "case": {...}} to the configured URL; failures are logged,
    never raised (a gateway being down must not lose the case)."""

    def __init__(self, url: str, headers: Mapping[str, str], egress: WebhookEgress, *,
                 environ: Mapping[str, str] | None = None, timeout_s: float = 5.0) -> None:
        self.url = url
        self.headers = dict(headers)
        self.egress = egress
        self.environ = environ if environ is not None else os.environ
        self.timeout_s = timeout_s
        self.failures = 0

    async def notify(self, event: str, case: Mapping[str, Any]) -> str | None:
        """Send one notification; the reason it was not delivered, or None."""
        reason = await self.egress.refuses_url(self.url)
        used: list[str] = []
        try:
            if reason is None:
                headers, used = expand_env(self.headers, self.environ)
                timeout = aiohttp.ClientTimeout(total=self.timeout_s)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with session.post(self.url, json={"event": event, "case": public_case(case)},
                                            headers=headers, allow_redirects=False) as response:
                        if response.status >= 300:
                            reason = f"HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, WebhookSecretMissing) as exc:
            reason = str(exc) or type(exc).__name__
        if reason is not None:
            self.failures += 1
            log.warning("case notification not delivered", extra={"fields": {
                "event": event, "case": case.get("id"), "error": mask(reason, used)}})
        return reason


class CaseDesk:
    """Cases for the server: opened at hang-up, dispositions from the desktop, follow-ups through the ACD."""

    def __init__(self, store: CaseStore, dispositions: Dispositions, acd: AcdService | None = None, *,
                 notifier: CaseWebhook | None = None,
                 record_event: Callable[[str, str, dict[str, Any]], None] | None = None,
                 flush: Callable[[], object] | None = None, callback_allowed: tuple[str, ...] = ("*",),
                 follow_up_queue: str | None = None) -> None:
        self.store = store
        self.dispositions = dispositions
        self.acd = acd
        self.notifier = notifier
        self.record_event = record_event
        self.flush = flush
        self.callback_allowed = callback_allowed
        self.follow_up_queue = follow_up_queue
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _written(self) -> None:
        if self.flush is not None:  # the journal writes on its own thread: wait for what is queued so far
            await asyncio.to_thread(self.flush)

    def _notify(self, event: str, case: Mapping[str, Any]) -> None:
        if self.notifier is not None:
            task = asyncio.ensure_future(self.notifier.notify(event, case))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def after_call(self, call_id: str) -> dict[str, Any] | None:
        """call_ended for the server: a failure is logged, never raised into the call's teardown."""
        try:
            return await self.call_ended(call_id)
        except Exception as exc:  # noqa: BLE001 - a broken case store must not cost the next call
            log.error("case not created", extra={"fields": {"call_id": call_id, "error": str(exc)}})
            return None

    async def call_ended(self, call_id: str) -> dict[str, Any] | None:
        """Open the call's case if it reached an agent or ended unresolved; the case, or None."""
        await self._written()
        row, events = await asyncio.to_thread(self.store.call, call_id)
        if row is None:
            return None
        summary = summarize(events)
        if not needs_case(summary):
            return None
        queues = [d.get("queue") for k, d in events if k == "queue_joined" and isinstance(d.get("queue"), str)]
        chosen = self.dispositions.lookup(row["dialplan"] or "", summary.disposition)
        case = await asyncio.to_thread(
            self.store.create_for_call, call_id, summary, industry=row["dialplan"] or "",
            owner=summary.agent or None, caller=row["caller"] or "", queue=queues[-1] if queues else None,
            status="closed" if chosen is not None and chosen.closes else "open")
        if case is not None:
            audit("case_created", None, case=case["id"], call_id=call_id)
            log.info("case created", extra={"fields": {"case": case["id"], "call_id": call_id,
                                                       "owner": case["owner"]}})
            self._notify("case_created", case)
        return case

    async def set_disposition(self, agent_id: str, call_id: Any, code: Any) -> str | None:
        """The agent's disposition for a call they answered, as a `disposition` event of its record (and on its
        case when it is open already); the reason it was refused, or None."""
        if not isinstance(call_id, str) or not isinstance(code, str):
            return 'send {"type": "disposition", "call_id": ..., "code": ...}'
        await self._written()
        row, events = await asyncio.to_thread(self.store.call, call_id)
        if row is None or not any(k == "agent_answered" and d.get("agent") == agent_id for k, d in events):
            return "you did not answer this call"
        industry = row["dialplan"] or ""
        chosen = self.dispositions.lookup(industry, code)
        if chosen is None:
            offered = ", ".join(d.code for d in self.dispositions.for_industry(industry))
            return f"disposition {code!r} is not a code for {industry or 'this call'}; use one of {offered}"
        if self.record_event is not None:
            self.record_event(call_id, "disposition", {"code": code, "agent": agent_id})
        case = await asyncio.to_thread(self.store.by_call, call_id)
        if case is not None:
            changes: dict[str, Any] = {"disposition": code}
            if chosen.closes and case["follow_up_at"] is None:
                changes["status"] = "closed"
            updated = await asyncio.to_thread(self.store.update, case["id"], changes)
            if updated is not None:
                self._notify("case_updated", updated)
        return None

    async def patch(self, case: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply validated changes; a follow-up time schedules (or moves, or cancels) the ACD callback.
        Raises CaseError when the callback cannot be scheduled."""
        if "follow_up_at" in changes:
            await self._schedule(case, changes["follow_up_at"])
        updated = await asyncio.to_thread(self.store.update, str(case["id"]), changes)
        assert updated is not None
        self._notify("case_updated", updated)
        return updated

    async def _schedule(self, case: Mapping[str, Any], at: float | None) -> None:
        if self.acd is None:
            raise CaseError("follow-up callbacks need the queues (queues.enabled)")
        task_id = f"followup-{case['id']}"
        if at is None:
            await self.acd.abandon(task_id)
            return
        try:
            number = confirm_number(case.get("callback_number"), allowed=self.callback_allowed)
        except InvalidCallbackNumber as exc:
            raise CaseError(f"follow_up_at: this case cannot be called back ({exc})") from None
        queue = self.follow_up_queue or case.get("queue") or next(iter(self.acd.queues_config.by_name()), "")
        try:
            await self.acd.schedule_callback(task_id, number, queue, float(at))
        except AcdError as exc:
            raise CaseError(f"follow_up_at: {exc}") from None


CASES_KEY = web.AppKey("cases", CaseDesk)


def _may_see(request: web.Request, case: Mapping[str, Any]) -> bool:
    principal = principal_of(request)
    return principal.role != "agent" or case.get("owner") == principal.agent


async def list_cases(request: web.Request) -> web.Response:
    desk = request.app[CASES_KEY]
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        return _error(400, f"status must be one of {', '.join(STATUSES)}")
    principal = principal_of(request)
    owner = principal.agent if principal.role == "agent" else (request.query.get("owner") or None)
    cases = await asyncio.to_thread(desk.store.find, status=status, owner=owner)
    audit("cases_listed", principal, count=len(cases))
    return web.json_response({"cases": [public_case(c) for c in cases]})


async def _own_case(request: web.Request) -> dict[str, Any] | web.Response:
    case = await asyncio.to_thread(request.app[CASES_KEY].store.get, request.match_info["case"])
    if case is None:
        return _error(404, f"no case {request.match_info['case'][:64]!r}")
    if not _may_see(request, case):
        audit("case_denied", principal_of(request), case=case["id"])
        return _error(403, "agents may only see and change their own cases")
    return case


async def get_case(request: web.Request) -> web.Response:
    case = await _own_case(request)
    if isinstance(case, web.Response):
        return case
    audit("case_read", principal_of(request), case=case["id"])
    return web.json_response(public_case(case))


async def patch_case(request: web.Request) -> web.Response:
    desk = request.app[CASES_KEY]
    case = await _own_case(request)
    if isinstance(case, web.Response):
        return case
    try:
        body = await read_json(request)
    except JsonBodyError as exc:
        return _error(400, f"send a JSON object ({exc})")
    principal = principal_of(request)
    if principal.role == "agent" and isinstance(body, dict) and body.get("owner", principal.agent) != principal.agent:
        return _error(403, "agents may not hand a case to someone else; ask a supervisor")
    agents = frozenset(desk.acd.agents) if desk.acd is not None else None
    try:
        changes = validate_patch(body, industry=case["industry"], dispositions=desk.dispositions,
                                 now=desk.acd.clock() if desk.acd is not None else time.time(),
                                 agents=agents)
        updated = await desk.patch(case, changes)
    except CaseError as exc:
        return _error(400, str(exc))
    audit("case_updated", principal, case=case["id"], fields=sorted(changes))
    return web.json_response(public_case(updated))


async def list_dispositions(request: web.Request) -> web.Response:
    """The codes for ?industry=NAME, or for the industry (dialplan) of ?call=ID (the agent desktop's picker)."""
    desk = request.app[CASES_KEY]
    industry = request.query.get("industry", "")
    if request.query.get("call"):
        row, _events = await asyncio.to_thread(desk.store.call, request.query["call"][:200])
        industry = (row or {}).get("dialplan") or ""
    codes = desk.dispositions.for_industry(industry)
    return web.json_response({"industry": industry, "dispositions": [
        {"code": d.code, "closes": d.closes, "en-US": d.en, "zh-CN": d.zh} for d in codes]})


def add_case_routes(app: web.Application, desk: CaseDesk) -> None:
    app[CASES_KEY] = desk
    app.router.add_get("/cases", list_cases)
    app.router.add_get("/cases/{case}", get_case)
    app.router.add_patch("/cases/{case}", patch_case)
    app.router.add_get("/dispositions", list_dispositions)
