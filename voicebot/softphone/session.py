"""One pjsua2 call: endpoint, account, call callbacks and the main-thread event loop.

Threading: one pjlib thread (`threadCnt=0`); the caller's thread polls `libHandleEvents(10)`, so every
pjsua2 callback runs there, only records state, and never lets an exception escape into pjlib.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from voicebot.softphone.args import CallPlan
from voicebot.softphone.summary import CallSummary, HangupSide, classify_result

RFC4733_SECONDS_PER_DIGIT = 0.25  # pjmedia default: 160 ms tone + end packets + inter-digit gap
HANGUP_GRACE_SECONDS = 3.0  # wait this long for BYE/CANCEL to complete after hanging up
G711_PRIORITIES = {"PCMU/8000": 255, "PCMA/8000": 254}


@dataclass
class CallTracker:
    """What the callbacks observed; read by the main loop."""

    answered_at: float | None = None
    disconnected_at: float | None = None
    status_code: int = 0
    reason: str = ""
    connect_seconds: float = 0.0
    media_active: bool = False
    digits_received: str = ""
    callback_errors: list[str] = field(default_factory=list)


def _report_callback_error(tracker: CallTracker, where: str) -> None:
    """Record the exception being handled in a callback; the full traceback goes to stderr."""
    exc = sys.exc_info()[1]
    tracker.callback_errors.append(f"{where}: {pj_error_text(exc) if exc else 'unknown error'}")
    print(f"softphone: error in {where}:\n{traceback.format_exc(limit=4)}", file=sys.stderr)


def pj_error_text(exc: BaseException) -> str:
    """Short text for a pjsua2.Error (its str() is empty): the reason and pj status code."""
    reason = getattr(exc, "reason", "")
    if reason:
        status = getattr(exc, "status", None)
        return f"{reason} (pj status {status})" if status else str(reason)
    info = getattr(exc, "info", None)
    if callable(info):
        with contextlib.suppress(Exception):
            return str(info()).strip()
    return str(exc) or type(exc).__name__


def _quiet_pjlib_before_create() -> None:
    """libCreate logs at level 5 before EpConfig applies; lower pjlib's level through its C API."""
    import pjsua2

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(pjsua2._pjsua2.__file__).pj_log_set_level(0)


def _flush_c_stdio() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[TextIO]:
    """Point fd 1 at stderr while pjlib runs (its logger prints to stdout); yield a handle on the real stdout
    (for the watchdog, which may have to report while pjlib still holds fd 1)."""
    sys.stdout.flush()
    saved_fd = os.dup(1)
    os.dup2(2, 1)
    real_stdout = os.fdopen(os.dup(saved_fd), "w")
    try:
        yield real_stdout
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        _flush_c_stdio()  # pjlib's printf output is buffered; it must land on stderr, not on stdout
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        real_stdout.flush()
        real_stdout.close()


class CallSession:
    """One pjsua2 endpoint, account and call; `run()` returns the summary."""

    def __init__(self, plan: CallPlan, playback_wav: Path | None) -> None:
        import pjsua2 as pj  # imported lazily: `voicebot --help` must not load PJSIP

        self.pj = pj
        self.plan = plan
        self.playback_wav = playback_wav
        self.tracker = CallTracker()
        self.endpoint: Any = None
        self.account: Any = None
        self.call: Any = None
        self.player: Any = None
        self.recorder: Any = None
        self.hangup_requested_at: float | None = None
        self.timed_out = False
        self.digits_sent = ""
        self.dtmf_sent_at: float | None = None
        self.error: str | None = None
        self.transport_id: int | None = None  # the TCP/TLS transport the call goes through (None: UDP)

    # -- setup ---------------------------------------------------------------------------------

    def _start_endpoint(self) -> None:
        pj = self.pj
        if not self.plan.verbose:
            _quiet_pjlib_before_create()
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 4
        cfg.uaConfig.userAgent = "voicebot-softphone (pjsua2)"
        level = 5 if self.plan.verbose else 0
        cfg.logConfig.level = level
        cfg.logConfig.consoleLevel = level
        cfg.logConfig.msgLogging = 1 if self.plan.verbose else 0
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)
        self.endpoint = ep

        ipv6 = ":" in self.plan.bind
        tcfg = pj.TransportConfig()
        tcfg.port = self.plan.local_port
        tcfg.boundAddress = self.plan.bind
        transport_type = pj.PJSIP_TRANSPORT_UDP6 if ipv6 else pj.PJSIP_TRANSPORT_UDP
        ep.transportCreate(transport_type, tcfg)
        if self.plan.transport != "udp":  # the call's transport: the account sends through it
            scfg = pj.TransportConfig()
            scfg.port = 0
            scfg.boundAddress = self.plan.bind
            if self.plan.transport == "tls":
                self._configure_tls(scfg.tlsConfig)
                kind = pj.PJSIP_TRANSPORT_TLS6 if ipv6 else pj.PJSIP_TRANSPORT_TLS
            else:
                kind = pj.PJSIP_TRANSPORT_TCP6 if ipv6 else pj.PJSIP_TRANSPORT_TCP
            self.transport_id = ep.transportCreate(kind, scfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        self._prefer_g711()

    def _configure_tls(self, tls: Any) -> None:
        """TLS 1.2 or later; the server's certificate verified (chain and name); ours shown when given."""
        pj = self.pj
        tls.method = pj.PJSIP_TLSV1_2_METHOD
        tls.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2 | pj.PJ_SSL_SOCK_PROTO_TLS1_3
        tls.verifyServer = True
        if self.plan.tls_ca is not None:
            tls.CaListFile = str(self.plan.tls_ca)
        if self.plan.tls_cert is not None and self.plan.tls_key is not None:
            tls.certFile = str(self.plan.tls_cert)
            tls.privKeyFile = str(self.plan.tls_key)

    def _prefer_g711(self) -> None:
        for codec in self.endpoint.codecEnum2():
            base = "/".join(codec.codecId.split("/")[:2])
            self.endpoint.codecSetPriority(codec.codecId, G711_PRIORITIES.get(base, 0))

    def _create_account(self) -> None:
        pj = self.pj
        host = f"[{self.plan.bind}]" if ":" in self.plan.bind else self.plan.bind
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{self.plan.username or 'voicebot'}@{host}"
        acfg.regConfig.registerOnAdd = False
        if self.transport_id is not None:
            acfg.sipConfig.transportId = self.transport_id
        acfg.mediaConfig.transportConfig.port = 0  # any free RTP port, so parallel runs never clash
        acfg.mediaConfig.transportConfig.boundAddress = self.plan.bind
        if self.plan.srtp != "off":  # SDES keys (a=crypto); signalling stays sip: (no SIPS requirement)
            acfg.mediaConfig.srtpUse = (pj.PJMEDIA_SRTP_MANDATORY if self.plan.srtp == "mandatory"
                                        else pj.PJMEDIA_SRTP_OPTIONAL)
            acfg.mediaConfig.srtpSecureSignaling = 0
        if self.plan.username is not None:
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", self.plan.username, 0, self.plan.password or "")
            )
        account = pj.Account()
        account.create(acfg)
        self.account = account

    def _make_call(self) -> None:
        pj = self.pj
        prm = pj.CallOpParam(True)
        for name, value in self.plan.headers:
            header = pj.SipHeader()
            header.hName = name
            header.hValue = value
            prm.txOption.headers.append(header)
        call = _call_class()(self.account, self)
        self.call = call
        call.makeCall(self.plan.uri, prm)

    # -- media (called from onCallMediaState on the main thread) ----------------------------------

    def connect_media(self, audio: Any) -> None:
        pj = self.pj
        self.tracker.media_active = True
        if self.plan.record is not None:
            if self.recorder is None:
                recorder = pj.AudioMediaRecorder()
                recorder.createRecorder(str(self.plan.record))
                self.recorder = recorder
            audio.startTransmit(self.recorder)
        if self.playback_wav is not None:
            if self.player is None:
                player = pj.AudioMediaPlayer()
                player.createPlayer(str(self.playback_wav), pj.PJMEDIA_FILE_NO_LOOP)
                self.player = player
            self.player.startTransmit(audio)

    # -- main loop -----------------------------------------------------------------------------

    def _hangup(self) -> None:
        if self.hangup_requested_at is not None:
            return
        self.hangup_requested_at = time.monotonic()
        if self.call is None:
            return
        try:
            self.call.hangup(self.pj.CallOpParam(True))
        except self.pj.Error as exc:
            print(f"softphone: hangup failed: {pj_error_text(exc)}", file=sys.stderr)

    def _send_dtmf(self) -> None:
        pj = self.pj
        prm = pj.CallSendDtmfParam()
        prm.digits = self.plan.digits
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO if self.plan.dtmf_info else pj.PJSUA_DTMF_METHOD_RFC2833
        self.dtmf_sent_at = time.monotonic()
        try:
            self.call.sendDtmf(prm)
            self.digits_sent = self.plan.digits
        except pj.Error as exc:
            self.error = f"sending DTMF failed: {pj_error_text(exc)}"
            print(f"softphone: {self.error}", file=sys.stderr)
            self._hangup()

    def _dtmf_finished_at(self) -> float | None:
        if self.dtmf_sent_at is None:
            return None
        if self.plan.dtmf_info:
            return self.dtmf_sent_at
        return self.dtmf_sent_at + RFC4733_SECONDS_PER_DIGIT * len(self.plan.digits)

    def _tick(self, now: float, deadline: float) -> None:
        """Act on timers: DTMF, --duration, --hangup-after-dtmf, --timeout."""
        answered_at = self.tracker.answered_at
        if answered_at is not None and self.hangup_requested_at is None and self.call is not None:
            if self.plan.digits and self.dtmf_sent_at is None and now >= answered_at + self.plan.dtmf_delay:
                self._send_dtmf()
            if self.plan.duration is not None and now >= answered_at + self.plan.duration:
                self._hangup()
            finished = self._dtmf_finished_at()
            if (self.plan.hangup_after_dtmf is not None and finished is not None
                    and now >= finished + self.plan.hangup_after_dtmf):
                self._hangup()
        if now >= deadline and self.hangup_requested_at is None:
            self.timed_out = True
            self._hangup()

    def run(self) -> CallSummary:
        started = time.monotonic()
        deadline = started + self.plan.timeout
        try:
            self._start_endpoint()
            self._create_account()
            self._make_call()
        except self.pj.Error as exc:
            self.error = pj_error_text(exc)
            self.call = None
        while self.call is not None:
            self.endpoint.libHandleEvents(10)
            now = time.monotonic()
            if self.tracker.disconnected_at is not None:
                self.call = None  # drop the reference once pjsua reported DISCONNECTED
                break
            self._tick(now, deadline)
            if self.hangup_requested_at is not None and now >= self.hangup_requested_at + HANGUP_GRACE_SECONDS:
                self.error = self.error or "call did not end after hangup"
                break
        return self._summarise()

    def _summarise(self) -> CallSummary:
        t = self.tracker
        answered = t.answered_at is not None
        hangup: HangupSide | None = None
        if answered:
            hangup = "local" if self.hangup_requested_at is not None and (
                t.disconnected_at is None or self.hangup_requested_at <= t.disconnected_at) else "remote"
        if answered:
            end = t.disconnected_at or time.monotonic()
            duration = t.connect_seconds or max(0.0, end - (t.answered_at or end))
        else:
            duration = 0.0
        status = t.status_code
        reason = t.reason
        if self.timed_out and not answered:  # the 487 of our own CANCEL would mislead
            status, reason = 408, f"no answer within --timeout {self.plan.timeout:g}s"
        return CallSummary(
            uri=self.plan.uri,
            result=classify_result(answered=answered, status_code=status, timed_out=self.timed_out),
            status_code=status, reason=reason, duration=round(duration, 3),
            digits_sent=self.digits_sent, digits_received=t.digits_received, recorded_seconds=None, recording_rms=None, hangup=hangup,
            error=self.error or (t.callback_errors[0] if t.callback_errors else None),
        )

    def close(self) -> None:
        """Release media ports and the call, then destroy the library (recorder first: it finalises the WAV)."""
        self.call = None
        for name in ("player", "recorder"):
            port = getattr(self, name)
            setattr(self, name, None)
            del port
        self.account = None
        if self.endpoint is not None:
            try:
                self.endpoint.libDestroy()
            except self.pj.Error as exc:
                print(f"softphone: libDestroy failed: {pj_error_text(exc)}", file=sys.stderr)
            self.endpoint = None


@functools.cache
def _call_class() -> type:
    """The pjsua2.Call subclass, built on first use so importing this module does not load PJSIP."""
    import pjsua2 as pj

    class SoftphoneCall(pj.Call):  # type: ignore[misc]
        """pjsua2 Call whose callbacks only record state in the session's tracker."""

        def __init__(self, account: Any, session: CallSession) -> None:
            super().__init__(account)
            self._session = session
            self._last_event_timestamp: int | None = None

        def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
            tracker = self._session.tracker
            try:
                info = self.getInfo()
                if info.state == pj.PJSIP_INV_STATE_CONFIRMED and tracker.answered_at is None:
                    tracker.answered_at = time.monotonic()
                    tracker.status_code, tracker.reason = info.lastStatusCode, info.lastReason
                elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                    tracker.disconnected_at = time.monotonic()
                    if tracker.answered_at is None:
                        tracker.status_code, tracker.reason = info.lastStatusCode, info.lastReason
                    tracker.connect_seconds = info.connectDuration.sec + info.connectDuration.msec / 1000
            except Exception:  # noqa: BLE001 - never let an exception cross into pjlib
                _report_callback_error(tracker, "onCallState")

        def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
            """SIP INFO digits arrive here (RFC 4733 ones go to onDtmfEvent)."""
            try:
                if prm.method != pj.PJSUA_DTMF_METHOD_RFC2833:
                    self._session.tracker.digits_received += str(prm.digit)
            except Exception:  # noqa: BLE001
                _report_callback_error(self._session.tracker, "onDtmfDigit")

        def onDtmfEvent(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
            """RFC 4733 events: count each event once, at its first packet (a new RTP timestamp)."""
            try:
                if prm.method == pj.PJSUA_DTMF_METHOD_RFC2833 and prm.timestamp != self._last_event_timestamp:
                    self._last_event_timestamp = prm.timestamp
                    self._session.tracker.digits_received += str(prm.digit)
            except Exception:  # noqa: BLE001
                _report_callback_error(self._session.tracker, "onDtmfEvent")

        def onCallMediaState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
            try:
                info = self.getInfo()
                for index, media in enumerate(info.media):
                    if (media.type == pj.PJMEDIA_TYPE_AUDIO
                            and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE):
                        self._session.connect_media(self.getAudioMedia(index))
            except Exception:  # noqa: BLE001
                _report_callback_error(self._session.tracker, "onCallMediaState")

    return SoftphoneCall
