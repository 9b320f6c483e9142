"""VoicebotServer: the SIP UA, media and call sessions wired together for `voicebot serve`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voicebot.channels.sip import SipChannel
from aiohttp import web

from voicebot.api.app import EXTRA_METRICS_KEY, HUB_KEY, NodeStatus, create_app
from voicebot.api.analytics import add_analytics_routes
from voicebot.api.trunks import add_trunk_routes
from voicebot.api.cases import CaseDesk, CaseWebhook, add_case_routes
from voicebot.api.knowledge import add_knowledge_routes
from voicebot.api.recordings import add_recording_routes
from voicebot.compliance.audit import AuditLog
from voicebot.compliance.deployment import certificate_findings
from voicebot.api.cli import default_tokens_path
from voicebot.api.forward import AnswerForwarder, advertised_url
from voicebot.api.tokens import TokenStore
from voicebot.config import ListenConfig, ServerConfig, TrunkConfig, resolve_trunk_password
from voicebot.dialplan.actions import Enqueue
from voicebot.calls.events import Noted
from voicebot.compliance.alerts import QualityAlert
from voicebot.calls.legs import BrowserLeg, SipLeg
from voicebot.calls.lifecycle import CallLifecycle, CallServices
from voicebot.calls.quality_watch import followed_call_sink
from voicebot.channels.base import Channel, LiveLeg
from voicebot.compliance.lint import DEFAULT_POLICY_DIR, Policy, load_policies
from voicebot.yamlsrc import ConfigErrors, YamlSourceError
from voicebot.handoff import CallQueue, DialFailed, HandoffManager, OutboundDialer
from voicebot.handoff.browser import BrowserAgentLegs, add_browser_agent_routes
from voicebot.handoff.live_transcript import BridgedCall, CallSinks, LiveTranscripts, follow_bridged_calls
from voicebot.handoff.trunk_routes import trunk_routes
from voicebot.calls.hold import load_hold_audio
from voicebot.queues.models import AgentsConfig, QueuesConfig, check_queues_servable, load_agents, load_queues
from voicebot.queues.service import AcdService
from voicebot.queues.liveness import NodeLiveness
from voicebot.queues.resilient import ResilientStore
from voicebot.queues.store import MemoryStore, Store
from voicebot.records.journal import open_journal
from voicebot.rtp.ports import PortAllocator, PortsExhausted
from voicebot.rtp.stream import RtpStream
from voicebot.rtp.ticker import get_ticker, log_media_stats
from voicebot.rtp.trust import media_address_confirmed
from voicebot.channels.webrtc import WebRtcChannel
from voicebot.calls.conversation import DialplanSession
from voicebot.web.captions import caption_observer
from voicebot.web.admission import BrowserLimits
from voicebot.web.routes import add_webrtc_routes
from voicebot.dialplan.events import CallContext
from voicebot.runtime import KEYPAD_DEMO, Runtime
from voicebot.calls.keypad_session import CallRecord, DemoDtmfSession, DemoPrompts, PromptSource
from voicebot.sip.call import SipCall
from voicebot.sip.challenge import DigestGuard
from voicebot.sip.admission import SetupAdmission
from voicebot.sip.lockout import AuthLockout
from voicebot.sip.registrar import Registrar, SipAccount
from voicebot.compliance.secrets import Secret, read_secret
from voicebot.sip.optionsping import OptionsMonitor
from voicebot.sip.registration import Registration
from voicebot.sip.headers import SipParseError
from voicebot.sip.identity import ANONYMOUS
from voicebot.sip.message import Arrival
from voicebot.sip.session_timer import SessionTimerPolicy
from voicebot.sip.uri import parse_name_addr, parse_uri
from voicebot.sip.sdp import Encryption, NoCommonCodec, SdpError, SrtpKeys, negotiate, parse_sdp
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.stream import StreamSettings
from voicebot.sip.tls import TlsSettings
from voicebot.sip.tlsreload import CertificateRotation
from voicebot.sip.ua import TransportOptions, UaLimits, UserAgent

log = logging.getLogger("voicebot.server")


class AuditFileHandler(logging.Handler):
    """Copies audit events (API logins, context and recording reads, agent states, dialplan and certificate
    reloads) to the append-only audit file."""

    AUDITED_RUNTIME = {"dialplan reloaded": "config.reload", "dialplan reload refused": "config.reload_refused",
                       "tls certificate reloaded": "config.reload",
                       "tls certificate reload refused": "config.reload_refused"}
    AUDITED_LOGGERS = ("voicebot.audit", "voicebot.runtime", "voicebot.sip.tls")

    def __init__(self, audit: AuditLog) -> None:
        super().__init__(logging.INFO)
        self.audit = audit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.name == "voicebot.audit":
                data = json.loads(message)
                actor = f"{data.pop('role', None) or 'anonymous'}:{data.pop('token', None) or '-'}"
                event = str(data.pop("event", "event"))
                target = str(data.get("call_id") or data.get("agent") or data.get("path") or "-")
                self.audit.record(actor, event, target, **data)
            else:
                action = next((v for k, v in self.AUDITED_RUNTIME.items() if message.startswith(k)), None)
                if action is not None:
                    fields = getattr(record, "fields", {}) or {}
                    target = fields.get("dialplan") or fields.get("file") or "-"
                    self.audit.record("system", action, str(target), **fields)
        except Exception:  # noqa: BLE001 - auditing must never break the call path
            self.handleError(record)


class CallQueuePort:
    """The handoff manager bound to one caller (SIP or browser), as the dialplan session sees it."""

    def __init__(self, handoff: HandoffManager, leg: LiveLeg, caller_number: str) -> None:
        self.handoff = handoff
        self.leg = leg
        self.caller_number = caller_number

    async def join(self, action: Enqueue, transcript: list[dict], lang: str) -> CallQueue:
        return await self.handoff.join(self.leg, action.queue, tuple(action.skills), action.priority,
                                       dict(action.context), transcript, self.caller_number, lang)

    async def leave(self, membership: CallQueue, reason: str) -> None:  # type: ignore[override]
        await self.handoff.leave(membership, reason)


def sdp_warning(reason: str, code: int = 399) -> str:
    """A Warning header value (RFC 3261 §20.43; 399 by default, 304 for an unusable media format) telling a caller
    why its SDP was refused."""
    text = "".join(c if " " <= c < "\x7f" else "?" for c in reason[:200]).replace("\\", "\\\\").replace('"', '\\"')
    return f'{code} voicebot "{text}"'


def default_cache_dir() -> Path:
    return Path(os.environ.get("VOICEBOT_CACHE") or Path.home() / ".cache" / "voicebot")


def transport_options(listen: ListenConfig) -> TransportOptions:
    """The UA's transport settings from the listen section."""
    tls = None
    if listen.tls is not None:
        t = listen.tls
        tls = TlsSettings(cert_file=t.cert_file, key_file=t.key_file, ca_file=t.ca_file, client_auth=t.client_auth,
                          verify_server=t.verify_server, min_version=t.min_version)
    st = listen.stream
    return TransportOptions(transports=tuple(listen.transports), tls_port=listen.tls_port, tls=tls,
                            stream=StreamSettings(idle_timeout_s=st.idle_timeout_s, max_connections=st.max_connections,
                                                  max_per_source=st.max_connections_per_source,
                                                  connect_timeout_s=st.connect_timeout_s,
                                                  handshake_timeout_s=st.handshake_timeout_s))


class VoicebotServer:
    """Answers calls on the configured address and runs a session per call."""

    def __init__(self, config: ServerConfig, prompts: PromptSource, *, egress: EgressPolicy | None = None,
                 runtime: Runtime | None = None) -> None:
        self.config = config
        self.prompts = prompts
        self.runtime = runtime
        self.egress = egress or EgressPolicy(str(n) for n in config.network.egress_allow)
        acl = [str(n) for n in config.acl.allow]
        for trunk in config.trunks:
            acl.extend(str(n) for n in trunk.allow_from)
        lim = config.limits
        self.ua = UserAgent(config.listen.host, config.listen.port, public_host=config.listen.public_host,
                            acl=acl, egress=self.egress,
                            limits=UaLimits(max_calls=lim.max_calls, max_calls_per_source=lim.max_calls_per_source,
                                            max_message_bytes=lim.max_message_bytes, max_headers=lim.max_headers,
                                            requests_per_source_per_s=lim.invite_rate_per_source_per_s,
                                            receive_buffer_bytes=config.listen.receive_buffer_bytes,
                                            admission=SetupAdmission(max_pending_setups=lim.max_pending_setups,
                                                                     max_media_lag_s=lim.max_media_lag_ms / 1000)),
                            transports=transport_options(config.listen))
        self.ua.media_lag = get_ticker().lag
        self.ua.accept_calls(self._on_invite)
        # P-Asserted-Identity / Remote-Party-ID are believed only from a configured trunk (its allow_from) whose
        # checks the request passes (tls_names: over TLS with one of the trunk's certificates)
        self.ua.trusted_identity = self._identity_trusted
        timers = config.listen.session_timers
        self.ua.session_timers = SessionTimerPolicy(timers.enabled, timers.expires_s, timers.min_se_s)
        if config.auth.challenge_non_trunk:
            users = {}
            for user in config.auth.users:
                password = os.environ.get(user.password_env)
                if not password:
                    raise ValueError(f"auth.users: environment variable {user.password_env} for "
                                     f"{user.username!r} is not set")
                users[user.username] = password
            trusted = [str(n) for trunk in config.trunks for n in trunk.allow_from]
            self.ua.guard = DigestGuard.build(config.auth.realm, users, trusted)
        self.ports = PortAllocator(config.rtp.port_start, config.rtp.port_end)
        self.trunk_routes, health = trunk_routes(config.trunks)  # outbound proxies, failover, OPTIONS checks
        self.trunk_health = OptionsMonitor(self.ua, self.trunk_routes, health)
        self.dialer = OutboundDialer(self.ua, self.ports, media_host=self.media_host, bind_host=config.listen.host,
                                     dtmf_payload_type=config.codecs.dtmf_payload_type, egress=self.egress,
                                     routes=self.trunk_routes)
        self.registrations: list[Registration] = []
        self.registrar: Registrar | None = None  # agent phones registering to this node
        self.acd: AcdService | None = None
        self.handoff: HandoffManager | None = None
        self.node_status = NodeStatus(active_calls=lambda: self.ua.active_calls)
        self.api_runner: web.AppRunner | None = None
        self.api_port: int | None = None
        self.hold_audio = load_hold_audio(config.queues.hold_audio)
        self.journal, self.shipper = open_journal(config.records, node=f"{socket.gethostname()}:{config.listen.port}")
        self._background: set[asyncio.Task] = set()
        self.certificates: CertificateRotation | None = None  # listen.tls files, re-read by reload_tls
        self.cases: CaseDesk | None = None
        self.policies = _industry_policies()
        self.live_transcripts: LiveTranscripts | None = None  # bridged calls followed live (issue 19)
        self.call_sinks = CallSinks()  # running calls' transcript sinks: a bridged call's live lines go there too

    @property
    def media_host(self) -> str:
        return self.config.listen.public_host or self.config.listen.host

    async def start(self) -> None:
        self._start_audit()
        if self.shipper is not None:
            self.shipper.start()
        await self.ua.start()
        if self.ua.options.tls is not None:
            self.certificates = CertificateRotation(self.ua, self.ua.options.tls)
        log.info("listening", extra={"fields": {"host": self.config.listen.host, "port": self.ua.port,
                                                **{f"{kind}_port": port for kind, port in self.ua.ports.items()}}})
        self._background.add(asyncio.ensure_future(log_media_stats(get_ticker())))  # "media ticker" every 60 s
        self.trunk_health.start()
        if self.config.queues.enabled:
            await self._start_queues()
        for trunk in self.config.trunks:
            if not trunk.register_enabled:
                continue
            password = resolve_trunk_password(trunk)
            registration = Registration(self.ua, trunk.registrar, trunk.username or "", password,
                                        expires=trunk.expires, name=trunk.name)
            self.registrations.append(registration)
            self._background.add(asyncio.ensure_future(registration.run()))

    def reload_tls(self) -> None:
        """Reload (SIGHUP): re-read listen.tls's certificate, key and CA for new connections; a broken set is refused
        (logged with its file) and the previous certificate keeps serving. Warns as `voicebot validate` does."""
        if self.certificates is None or self.certificates.reload() != "reloaded":
            return
        for _loc, message, hint in certificate_findings(self.config):
            log.warning("tls certificate warning: %s", message, extra={"fields": {"fix": hint}})

    def _start_audit(self) -> None:
        """Everything the API and the server audit (logger "voicebot.audit") also goes to the hash-chained file."""
        self.audit = AuditLog(self.config.api.audit_log)
        handler = AuditFileHandler(self.audit)
        for name in handler.AUDITED_LOGGERS:
            logging.getLogger(name).addHandler(handler)

    async def _start_queues(self) -> None:
        qc = self.config.queues
        agents = load_agents(qc.agents_file)
        queues = load_queues(qc.queues_file)
        check_queues_servable(queues, agents, qc.queues_file)
        node = qc.node_id or f"{socket.gethostname()}:{self.ua.port}"
        # Redis behind ResilientStore: callers keep waiting on local state while Redis is down, reconciled after
        store: Store = MemoryStore() if qc.store == "memory" else ResilientStore.from_url(qc.redis_url, qc.namespace,
                                                                                          node=node)
        self.acd = AcdService(store, agents, queues, node=node)
        if qc.store == "redis":  # shared by nodes: heartbeat, and recovery of the callers of a lost node
            self.acd.liveness = NodeLiveness(self.acd, heartbeat_s=qc.heartbeat_s, ttl_s=qc.node_ttl_s,
                                             callback_allowed=qc.callback_allowed)
        self.handoff = HandoffManager(self.ua, self.ports, self.acd, media_host=self.media_host,
                                      dtmf_payload_type=self.config.codecs.dtmf_payload_type, egress=self.egress,
                                      ring_timeout_s=qc.ring_timeout_s, announce_every_s=qc.announce_every_s,
                                      callback_allowed=tuple(qc.callback_allowed),
                                      callback_uri_template=qc.callback_uri_template or self._trunk_template(),
                                      media_encryption=self.config.media_encryption,
                                      customer_encryption=self.config.media_encryption_for(
                                          self.config.trunks[0] if self.config.trunks else None),
                                      dialer=self.dialer)
        self.handoff.start()
        self._follow_bridged_calls(queues)
        self._start_registrar(agents)
        log.info("queues ready", extra={"fields": {"node": node, "store": qc.store, "agents": len(agents.agents),
                                                   "queues": len(queues.queues)}})
        api = self.config.api
        if api.enabled:
            tokens = TokenStore.load(api.tokens_file or default_tokens_path())
            app = create_app(self.acd, tokens, allowed_origins=api.allowed_origins, node_status=self.node_status)
            lim = self.config.limits
            browser_calls = add_webrtc_routes(
                app, self._on_browser_call, limits=BrowserLimits(
                    max_calls=lim.max_calls, per_source=lim.browser_calls_per_source,
                    offers_per_source_per_min=lim.browser_offers_per_source_per_min,
                    connect_timeout_s=lim.browser_connect_timeout_s),
                other_calls=lambda: self.ua.active_calls, media_host=api.media_host or api.host)
            self.ua.other_calls = lambda: browser_calls.active
            self.handoff.browser_legs = BrowserAgentLegs(self.acd, ring_timeout_s=qc.ring_timeout_s,
                                                         media_host=api.media_host or api.host)
            add_browser_agent_routes(app, self.handoff.browser_legs)
            if self.live_transcripts is not None:  # lines written and dropped (by reason) in /metrics
                app[EXTRA_METRICS_KEY].append(self.live_transcripts.totals.prometheus)
            add_recording_routes(app, Path(self.config.recording.directory))
            add_analytics_routes(app, Path(self.config.records.path), Path(self.config.nlu_dir),
                                 metrics=self.journal.metrics)
            if self.config.cases.enabled and self.journal.store is not None:
                self.cases = self._case_desk()
                add_case_routes(app, self.cases)
                app[HUB_KEY].on_disposition = self.cases.set_disposition
            add_knowledge_routes(app, lambda: self.runtime.knowledge if self.runtime is not None else None)
            add_trunk_routes(app, self.trunk_routes)
            app[EXTRA_METRICS_KEY].append(self._speech_metrics)
            self.api_runner = web.AppRunner(app, access_log=None)
            await self.api_runner.setup()
            site = web.TCPSite(self.api_runner, api.host, api.port)
            await site.start()
            self.api_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
            log.info("api listening", extra={"fields": {"host": api.host, "port": self.api_port}})
            self._advertise_api(self.handoff.browser_legs, api.advertise_url or advertised_url(
                api.host, self.api_port, self.config.listen.public_host))

    def _speech_metrics(self) -> str:
        """The speech workers' queue (job waits: how saturated ASR/TTS are) for /metrics; empty without them."""
        pool = self.runtime.pool if self.runtime is not None else None
        return pool.queue_wait_metrics() if pool is not None else ""

    def _follow_bridged_calls(self, queues: QueuesConfig) -> None:
        """Live transcript + agent assist of bridged calls (queues with live_transcript: true; issue 19); pushed to
        the desktops once the API runs."""
        assert self.handoff is not None
        runtime = self.runtime
        follower = follow_bridged_calls(
            queues, runtime.speech if runtime is not None else None, sink_for=self._live_sink,
            publisher=lambda: self.api_runner.app[HUB_KEY] if self.api_runner is not None else None,
            knowledge=lambda: runtime.knowledge if runtime is not None else None)
        if follower is not None:
            self.handoff.on_bridged = follower.start_call
            self.handoff.recorded_dialplan = self.journal.dialplan_of  # a callback's (read in a worker thread)
        self.live_transcripts = follower

    def _live_sink(self, call: BridgedCall) -> Callable[[dict[str, Any]], None]:
        """Where a bridged call's live lines go: its session's sink (record + that dialplan's quality checks), else
        (a callback following up a call that ended) the record with the checks (timed rules on the shared ticker)
        of the dialplan that call ran, which the ACD read from the record before dialling (no store read here)."""
        call_id = call.call_id
        sink = self.call_sinks.get(call_id)
        if sink is not None:
            return sink
        dialplan = call.dialplan or ""
        return followed_call_sink(dialplan, self.policies, self.journal.sink(call_id),
                                  lambda alert: self._quality_alert(call_id, dialplan, alert))

    def _case_desk(self) -> CaseDesk:
        """Cases after calls (issue 19) in the call record database; notifications to cases.webhook_url."""
        from voicebot.dialplan.webhook_policy import WebhookEgress
        from voicebot.records.cases import CaseStore
        from voicebot.records.dispositions import load_dispositions

        cases = self.config.cases
        egress = WebhookEgress(self.config.webhook_egress.allow, self.config.webhook_egress.deny)
        notifier = CaseWebhook(cases.webhook_url, cases.webhook_headers, egress) if cases.webhook_url else None
        store = CaseStore(self.config.records.path, ship=self.config.records.store == "postgres")
        return CaseDesk(store, load_dispositions(cases.dispositions_file), self.acd,
                        notifier=notifier, record_event=self.journal.append, flush=self.journal.flush,
                        callback_allowed=tuple(self.config.queues.callback_allowed),
                        follow_up_queue=cases.follow_up_queue)

    def _advertise_api(self, legs: BrowserAgentLegs, url: str) -> None:
        """Nodes sharing Redis: publish our API URL in the heartbeat, forward answers for calls held elsewhere."""
        liveness = self.acd.liveness if self.acd is not None else None
        registry = getattr(liveness, "registry", None)
        if liveness is None or registry is None:
            return
        liveness.advertise(url)
        legs.forwarder = AnswerForwarder(registry.node_api_url, liveness.service.node)
        log.info("api advertised", extra={"fields": {"url": url}})

    def _start_registrar(self, agents: AgentsConfig) -> None:
        """Agents with a sip_user register their phones here (digest, realm auth.realm) and are rung at the
        registered Contact. Bindings are per node. A missing password stops the start with SecretError."""
        accounts = {agent.sip_user: SipAccount(agent.sip_user, agent.id, Secret(read_secret(
            env=agent.sip_password_env, file=agent.sip_password_file, name=f"agent {agent.id!r} SIP password")))
            for agent in agents.agents if agent.sip_user is not None}
        if not accounts or self.handoff is None:
            return
        lock = self.config.auth.lockout
        self.registrar = Registrar(self.config.auth.realm, accounts, lockout=AuthLockout(
            failures_per_source=lock.failures_per_source, failures_per_user=lock.failures_per_user,
            window_s=lock.window_s, ban_s=lock.ban_s, max_ban_s=lock.max_ban_s))
        self.ua.handle("REGISTER", self.registrar.respond)
        self.handoff.agent_contact = self.registrar.contact_for_agent
        log.info("agent registrar ready", extra={"fields": {"realm": self.config.auth.realm,
                                                            "accounts": len(accounts)}})

    def _trunk_template(self) -> str | None:
        """Callbacks go out through the first trunk: sip:<number>@<outbound proxy or registrar host>."""
        if not self.config.trunks:
            return None
        trunk = self.config.trunks[0]
        if trunk.proxies:  # the dialer routes the trunk's domain through its healthy proxies
            return f"sip:{{number}}@{trunk.domain}"
        uri = parse_uri(trunk.outbound_proxy or trunk.registrar)
        return f"sip:{{number}}@{uri.host}" + (f":{uri.port}" if uri.port else "")

    async def drain(self, grace_s: float) -> None:
        """Stop taking new calls, let calls in progress finish for up to ``grace_s``, then hang up the rest."""
        self.ua.accepting = False
        self.node_status.draining = True
        deadline = time.monotonic() + grace_s
        while self.ua.active_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        left = self.ua.active_calls
        log.info("draining done", extra={"fields": {"calls_left": left}})
        if self.handoff is not None and left:
            await self.handoff.hand_over()  # callers still queued become callbacks before they are hung up
        for task in self._background:
            task.cancel()
        await self.trunk_health.stop()
        for registration in self.registrations:
            await registration.unregister()
        if self.handoff is not None:
            await self.handoff.close()
        if self.acd is not None and self.acd.liveness is not None:
            try:
                await self.acd.liveness.retire()  # survivors take over this node's callbacks now, not after the TTL
            except Exception as exc:  # noqa: BLE001 - Redis down: the heartbeat simply expires
                log.warning("could not retire the node heartbeat: %s", exc)
        if self.acd is not None:
            await self.acd.store.close()  # a degraded store says what it could not write back
        if self.api_runner is not None:
            await self.api_runner.cleanup()
        log.info("stopped", extra={"fields": {"calls_left": left, "rtp_ports_in_use": self.ports.in_use,
                                              "calls_total": self.ua.stats.calls_total,
                                              "parse_errors": self.ua.stats.parse_errors}})
        await self.ua.stop()
        if self.shipper is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.shipper.stop)
        self.journal.close()

    # ------------------------------------------------------------------ one call
    async def _on_invite(self, call: SipCall) -> None:
        fields: dict[str, object] = {"call_id": call.call_id, "from": _shown_from(call), "to": call.to_header,
                                     "src": f"{call.addr[0]}:{call.addr[1]}", "caller": call.identity.shown,
                                     "identity": call.identity.source}
        if call.redirection is not None:
            fields["redirection"] = call.redirection.as_dict()
        trunk = self.config.trunk_for_source(call.addr[0])  # looked up once: every decision below uses it
        fields.update(self._arrival(call, trunk))
        log.info("call offered", extra={"fields": fields})
        came = call.arrival
        refusal = trunk.tls_refusal(came.transport, came.peer_names) if trunk is not None else None
        if refusal is not None:
            call.reject(403, "Forbidden (mutual TLS required)")
            log.warning("call rejected: trunk requires mutual TLS", extra={"fields": {**fields, "reason": refusal}})
            return
        if not call.remote_sdp:
            call.reject(488, "Not Acceptable Here (an SDP offer is required)")
            log.warning("call rejected: no SDP offer", extra={"fields": fields})
            return
        encryption = self.config.media_encryption_for(trunk)
        try:
            offer = parse_sdp(call.remote_sdp)
            preference = list(self.config.codecs.preference)
            probe = negotiate(offer, self.media_host, 9, preference, encryption=encryption)
        except NoCommonCodec as exc:
            call.reject(488, "Not Acceptable Here", headers=[("Warning", sdp_warning(exc.reason, 304))])
            log.warning("call rejected: no common codec", extra={"fields": {**fields, "reason": exc.reason}})
            return
        except SdpError as exc:
            call.reject(400, "Bad SDP", headers=[("Warning", sdp_warning(exc.reason))])
            log.warning("call rejected: bad SDP", extra={"fields": {**fields, "reason": exc.reason}})
            return
        try:
            stream = await RtpStream.open(self.config.listen.host, self.ports, probe.codec.name,
                                          probe.codec.payload_type, probe.dtmf_payload_type)
            if probe.dtmf_payload_type is None:
                stream.detect_inband_dtmf()  # no telephone-event offered: keypad tones come in the audio
        except (PortsExhausted, OSError) as exc:
            call.reject(503, "Service Unavailable (no media ports)")
            log.error("no RTP port: %s", exc, extra={"fields": fields})
            return
        leg = SipLeg(call, stream)
        record = CallRecord(call_id=call.call_id, from_=_shown_from(call), to=call.to_header)
        async with CallLifecycle(leg, record, self._call_services()) as life:  # torn down however the call goes
            if self.config.answer_delay_s:
                call.ringing()
                try:
                    await asyncio.wait_for(call.ended.wait(), self.config.answer_delay_s)
                except asyncio.TimeoutError:
                    pass
            negotiated = negotiate(offer, self.media_host, stream.local_port, preference, encryption=encryption)
            stream.apply_sdes(negotiated.srtp)
            keys = [negotiated.srtp]  # the SDES keys in force, for re-INVITEs (same keys kept, new keys = rekey)
            self._apply_remote(stream, negotiated.remote_host, negotiated.remote_port, negotiated.on_hold,
                               call.addr[0])
            call.on_reinvite = lambda sdp: self._on_reinvite(stream, sdp, preference, call.addr[0], encryption, keys)
            call.on_refer = lambda refer_to, _req: self._on_refer(call, refer_to, life)
            if not await call.answer(negotiated.answer.encode()):
                record.outcome = call.end_reason or "not answered"
                return
            dialplan = self.config.dialplan_for(call.to_uri_user or "", trunk)
            life.start(caller=call.identity.shown, callee=call.to_uri_user or "", dialplan=dialplan)
            if dialplan == KEYPAD_DEMO or self.runtime is None or dialplan not in self.runtime.interpreters:
                await life.run(DemoDtmfSession(leg.channel, self._demo_prompts(), self.prompts, record))
            else:
                redirect = call.redirection
                context = CallContext(caller=call.identity.number, dnis=call.to_uri_user or "", channel="sip",
                                      call_id=call.call_id, private=call.identity.private,
                                      original_called=redirect.original_called if redirect else "",
                                      redirect_reason=redirect.reason if redirect else "")
                await life.run(self._dialplan_session(dialplan, leg.channel, context, life,
                                                      self.config.transfer.allows))

    def _identity_trusted(self, host: str, arrival: Arrival) -> bool:
        """Whether a request from ``host`` that arrived as ``arrival`` may assert the caller's identity: it comes
        from a trunk and passes that trunk's tls_names check (a call the trunk check refuses asserts nothing)."""
        trunk = self.config.trunk_for_source(host)
        return trunk is not None and trunk.tls_refusal(arrival.transport, arrival.peer_names) is None

    @staticmethod
    def _arrival(call: SipCall, trunk: TrunkConfig | None) -> dict[str, Any]:
        """How the INVITE came, for its log line: its transport, the trunk its source belongs to, the TLS peer's
        certificate name as ``tls_peer``."""
        came = call.arrival  # recorded by the UA from the socket the INVITE arrived on, never from its address
        arrival: dict[str, Any] = {"transport": came.transport, "trunk": trunk.name if trunk is not None else None}
        if came.transport == "tls":
            arrival["tls_peer"] = came.peer_name
        return arrival

    def _call_services(self, *, recorded: bool = True) -> CallServices:
        """What each call is wired to: the call record and after-call case (unless ``recorded`` is False), the
        live quality checks and their supervisor alerts, the recording directory, the drain's hand-overs."""
        return CallServices(
            journal=self.journal if recorded else None, after_call=self._after_call if recorded else None,
            policies=self.policies, on_quality_alert=self._quality_alert,
            recording_dir=Path(self.config.recording.directory) if self.config.recording.enabled else None,
            handed_over=self._handed_over)

    def _handed_over(self, call_id: str) -> str | None:
        """The outcome of a waiting caller this node handed over while draining (e.g. a callback), if any."""
        return self.handoff.handed_over.pop(call_id, None) if self.handoff is not None else None

    def _dialplan_session(self, name: str, channel: Channel, context: CallContext, life: CallLifecycle,
                          transfer_allowed: Callable[[str], bool]) -> DialplanSession:
        """The one way a call on any channel gets its dialplan session: queues (hold audio, agents), webhooks,
        knowledge, the recorder's pause, and the call's event bus (record, quality checks, captions)."""
        assert self.runtime is not None and self.runtime.speech is not None
        queues = None
        if self.handoff is not None and isinstance(channel, (SipChannel, WebRtcChannel)):  # legs that can be bridged
            queues = CallQueuePort(self.handoff, channel, context.caller or "")
        recorder = life.recorder
        self.call_sinks.attach(context.call_id or "", life.entry_sink)  # a bridged call's live lines join the call
        return DialplanSession(
            channel, self.runtime.interpreters[name], context, self.runtime.speech, self.runtime.nlu.get(name),
            webhooks=self.runtime.webhook, transfer_allowed=transfer_allowed,
            on_recording=recorder.pause if recorder is not None else None, queues=queues,
            hold_audio=self.hold_audio, knowledge=self.runtime.answer, events=life.events)

    def _quality_alert(self, call_id: str, dialplan: str, alert: QualityAlert) -> None:
        """A live quality alert: logged (audited by the log pipeline) and pushed to the supervisor desktops."""
        fields = {"call_id": call_id, "dialplan": dialplan, "kind": alert.kind, "rule": alert.rule,
                  "policy": alert.policy, "speaker": alert.speaker, "detail": alert.detail}
        log.warning("quality alert", extra={"fields": fields})
        if self.api_runner is not None:
            hub = self.api_runner.app[HUB_KEY]
            task = asyncio.ensure_future(hub.alert_supervisors({"type": "quality_alert", **fields}))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _after_call(self, call_id: str) -> None:
        """Open the call's case (if it needs one) once its record is written, off the call's teardown."""
        if self.cases is not None:
            task = asyncio.ensure_future(self.cases.after_call(call_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _on_browser_call(self, channel: WebRtcChannel) -> None:
        """A caller on the "call us" web page: the default dialplan, same session as a phone call (queues, hold
        audio, agents and the stereo recording included), with live captions. Without speech, the keypad demo
        (not written to the call records)."""
        name = self.config.routing.default_dialplan
        record = CallRecord(call_id=channel.call_id, from_="browser", to=name, dialplan=name)
        talks = self.runtime is not None and name in self.runtime.interpreters and self.runtime.speech is not None
        async with CallLifecycle(BrowserLeg(channel), record, self._call_services(recorded=talks)) as life:
            life.start(caller="browser", callee=name, dialplan=name)
            if not talks:
                await life.run(DemoDtmfSession(channel, self._demo_prompts(), self.prompts, record))
                return
            context = CallContext(caller="", dnis=name, channel="webrtc", call_id=channel.call_id)
            session = self._dialplan_session(name, channel, context, life, lambda _target: False)
            life.events.subscribe(caption_observer(channel.caption))
            await life.run(session)

    def _apply_remote(self, stream: RtpStream, host: str, port: int, on_hold: bool,
                      signalling_host: str | None = None) -> None:
        """Point media at the SDP address; from a caller (``signalling_host`` given) an address other than the
        request's source is sent to only once the caller's RTP arrives (voicebot.rtp.trust)."""
        stream.set_hold(on_hold)
        if port and self.egress.allows(host):
            confirmed = signalling_host is None or media_address_confirmed(
                host, signalling_host, self.config.network.media_trust)
            if not confirmed:
                log.info("media address %s is not the signalling source %s: sending after the caller's RTP",
                         host, signalling_host)
            stream.set_remote(host, port, confirmed=confirmed)
        elif port and not on_hold:
            log.warning("media address %s not allowed by egress policy; waiting for symmetric RTP", host)

    async def _on_reinvite(self, stream: RtpStream, sdp: bytes, preference: list[str],
                           signalling_host: str | None = None, encryption: Encryption = "none",
                           keys: list[SrtpKeys | None] | None = None) -> bytes | None:
        """Answer a re-offer (hold, resume, new address, rekey); None (488) keeps the call as it was."""
        current = keys[0] if keys else None
        try:
            negotiated = negotiate(parse_sdp(sdp), self.media_host, stream.local_port, preference,
                                   encryption=encryption, current_srtp=current)
        except SdpError as exc:
            log.info("re-INVITE refused", extra={"fields": {"reason": exc.reason}})
            return None
        if negotiated.codec.name != stream.codec.name:
            return None  # codec change mid-call is not supported: 488
        stream.apply_sdes(negotiated.srtp)
        if keys is not None:
            keys[0] = negotiated.srtp
        self._apply_remote(stream, negotiated.remote_host, negotiated.remote_port, negotiated.on_hold,
                           signalling_host)
        log.info("re-INVITE", extra={"fields": {"hold": negotiated.on_hold,
                                                "srtp": negotiated.srtp.suite if negotiated.srtp else None,
                                                "rekeyed": negotiated.srtp is not None and negotiated.srtp != current}})
        return negotiated.answer.encode()

    def _on_refer(self, call: SipCall, refer_to: str, life: CallLifecycle) -> bool:
        """Accept a REFER only to a configured target (noted in the referring call's record); then call it and
        report progress by NOTIFY."""
        try:
            target = parse_name_addr(refer_to).uri
        except SipParseError:
            return False
        target.headers = None  # Replaces/other embedded headers are not honoured
        target_text = str(target)
        if not target.is_sip or not self.config.transfer.allows(target_text):
            log.warning("REFER refused: target not allowed",
                        extra={"fields": {"call_id": call.call_id, "target": target_text}})
            return False
        log.info("REFER accepted", extra={"fields": {"call_id": call.call_id, "target": target_text}})
        life.events.publish(Noted(time.time(), "refer_accepted", {"target": target_text}))
        self.ua.spawn(self._follow_refer(call, target_text))
        return True

    async def _follow_refer(self, referred: SipCall, target: str) -> None:
        """Place the referred call; the new leg gets a session of its own (blind transfer semantics) and a call
        record of its own like any other leg, whose ``referred`` event names the referring call."""
        try:
            leg = await self.dialer.dial(target, [("Referred-By", f"<{self.ua.contact_uri}>")],
                                         list(self.config.codecs.preference), encryption=self.config.media_encryption)
        except DialFailed as exc:
            await referred.notify_refer(exc.status, exc.reason, terminated=True)
            return
        await referred.notify_refer(200, "OK", terminated=True)
        record = CallRecord(call_id=leg.call_id, from_=leg.call.from_header, to=leg.call.to_header)
        async with CallLifecycle(SipLeg.of(leg), record, self._call_services()) as life:
            life.start(caller=referred.identity.shown, callee=leg.call.to_uri_user or "", dialplan=KEYPAD_DEMO)
            life.events.publish(Noted(time.time(), "referred", {"referred_from": referred.call_id, "target": target}))
            await life.run(DemoDtmfSession(leg, self._demo_prompts(), self.prompts, record))

    def _demo_prompts(self) -> DemoPrompts:
        p = self.config.prompts
        return DemoPrompts(greeting=p.greeting, goodbye=p.goodbye, digit_timeout_s=p.digit_timeout_s,
                           max_digits=p.max_digits)


def _industry_policies() -> list[Policy]:
    """The compliance policies (policies/*.yaml) the live quality checks apply; none when they do not load (the
    error is logged: `voicebot validate` names the file and line)."""
    try:
        return load_policies(DEFAULT_POLICY_DIR)
    except (ConfigErrors, YamlSourceError) as exc:
        log.error("compliance policies not loaded; live quality checks are off: %s", exc)
        return []


def _shown_from(call: SipCall) -> str:
    """The From header as logs and records show it: withheld when the caller asked for privacy."""
    return f"<sip:{ANONYMOUS}@anonymous.invalid>" if call.identity.private else call.from_header
