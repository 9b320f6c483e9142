"""A pjsua2 (PJSIP) agent phone for integration tests: registers to voicebot with digest auth, auto-answers,
plays a WAV in a loop, records what it hears, and reports JSON lines on stdout:

    {"event": "registration", "code": 200, "expires": 300}     every final REGISTER outcome (expires 0: unregistered)
    {"event": "incoming", "msg": "<the whole INVITE as received>"}
    {"event": "disconnected"}                                    then it unregisters and exits

    python tests/integration/pjsua_agent.py --registrar sip:127.0.0.1:5060 --user alice --password pw \
        --play agent.wav --record heard.wav [--register-only] [--srtp mandatory] [--timeout 120]
    python tests/integration/pjsua_agent.py --port 5070 --play customer.wav --hangup-after 20   (no registration:
        a phone at a fixed address, e.g. a customer called back; hangs up that long after its media started)

    --mark-sample N: {"event": "mark", "at": <time.time()>} each time the player passes sample N of --play (e.g. the
        end of a phrase; polled every 10 ms, before the frame is encoded and sent)

One pjlib thread (threadCnt=0) polled from main; callbacks only record state (see voicebot/softphone/session.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from typing import Any, TextIO

import pjsua2 as pj

from voicebot.softphone.session import G711_PRIORITIES, _quiet_pjlib_before_create, stdout_to_stderr


class Phone:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.call: Any = None
        self.player: Any = None
        self.recorder: Any = None
        self.disconnected = False
        self.registrations: list[tuple[int, int]] = []
        self.media_at: float | None = None

    def emit(self, **event: Any) -> None:
        print(json.dumps(event), file=self.out, flush=True)


def _account_class(phone: Phone) -> type:
    class AgentAccount(pj.Account):  # type: ignore[misc]
        def onRegState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 callback name
            try:
                phone.registrations.append((int(prm.code), int(prm.expiration)))
                phone.emit(event="registration", code=int(prm.code), reason=str(prm.reason),
                           expires=int(prm.expiration))
            except Exception:  # noqa: BLE001 - never raise into pjlib
                traceback.print_exc()

        def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
            try:
                phone.emit(event="incoming", msg=str(prm.rdata.wholeMsg))
                call = _call_class(phone)(self, prm.callId)
                phone.call = call
                op = pj.CallOpParam()
                op.statusCode = 200
                call.answer(op)
            except Exception:  # noqa: BLE001
                traceback.print_exc()

    return AgentAccount


def _call_class(phone: Phone) -> type:
    class AgentCall(pj.Call):  # type: ignore[misc]
        def onCallState(self, prm: Any) -> None:  # noqa: N802
            try:
                if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                    phone.disconnected = True
            except Exception:  # noqa: BLE001
                traceback.print_exc()

        def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
            try:
                info = self.getInfo()
                for index, media in enumerate(info.media):
                    if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                        audio = self.getAudioMedia(index)
                        if phone.recorder is None and phone.args.record:
                            phone.recorder = pj.AudioMediaRecorder()
                            phone.recorder.createRecorder(phone.args.record)
                        if phone.recorder is not None:
                            audio.startTransmit(phone.recorder)
                        if phone.player is None:
                            phone.player = pj.AudioMediaPlayer()
                            phone.player.createPlayer(phone.args.play)  # loops
                        phone.player.startTransmit(audio)
                        if phone.media_at is None:
                            phone.media_at = time.monotonic()
                        phone.emit(event="media")
            except Exception:  # noqa: BLE001
                traceback.print_exc()

    return AgentCall


def run(args: argparse.Namespace, out: TextIO) -> int:
    phone = Phone(args, out)
    _quiet_pjlib_before_create()
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "voicebot-test-agent (pjsua2)"
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 0
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = args.port
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, G711_PRIORITIES.get("/".join(codec.codecId.split("/")[:2]), 0))
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@127.0.0.1"
    if args.registrar:
        acfg.regConfig.registrarUri = args.registrar
        acfg.regConfig.timeoutSec = 300
        acfg.regConfig.retryIntervalSec = 0  # a refused registration stays refused: the test reads the code
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    acfg.mediaConfig.transportConfig.port = 0
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    if args.srtp == "mandatory":  # SDES SRTP only: an offer without RTP/SAVP + a=crypto is refused
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
        acfg.mediaConfig.srtpSecureSignaling = 0
    account = _account_class(phone)()
    account.create(acfg)
    deadline = time.monotonic() + args.timeout
    unregistering_since: float | None = None
    last_position = 0
    while time.monotonic() < deadline:
        ep.libHandleEvents(10)
        if args.mark_sample and phone.player is not None:
            position = int(phone.player.getPos())
            if last_position < args.mark_sample <= position or position < last_position < args.mark_sample:
                phone.emit(event="mark", at=time.time(), position=position)
            last_position = position
        if (args.hangup_after and phone.media_at is not None and not phone.disconnected
                and time.monotonic() - phone.media_at > args.hangup_after):
            phone.media_at = float("inf")  # once
            phone.call.hangup(pj.CallOpParam())
        finished = phone.disconnected or (args.register_only and phone.registrations)
        if finished and unregistering_since is None:
            unregistering_since = time.monotonic()
            if phone.registrations and phone.registrations[-1][0] == 200:
                account.setRegistration(False)
            else:
                break
        if unregistering_since is not None and (phone.registrations[-1] == (200, 0)
                                                or time.monotonic() - unregistering_since > 5):
            break
    for _ in range(20):
        ep.libHandleEvents(10)
    phone.emit(event="disconnected" if phone.disconnected else "exit")
    phone.call = phone.player = phone.recorder = None  # the recorder finalises the WAV when released
    del account
    ep.libDestroy()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrar", default="", help="none: no registration (a phone at --port)")
    parser.add_argument("--user", default="agent")
    parser.add_argument("--password", default="")
    parser.add_argument("--port", type=int, default=0, help="the SIP port (0: any)")
    parser.add_argument("--mark-sample", type=int, default=0, help="report when the player passes this sample")
    parser.add_argument("--hangup-after", type=float, default=0.0, help="seconds after media (0: never)")
    parser.add_argument("--play", default="")
    parser.add_argument("--record", default="")
    parser.add_argument("--register-only", action="store_true")
    parser.add_argument("--srtp", choices=("off", "mandatory"), default="off")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    with stdout_to_stderr() as out:
        return run(args, out)


if __name__ == "__main__":
    sys.exit(main())
