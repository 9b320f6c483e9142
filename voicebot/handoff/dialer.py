"""OutboundDialer: place a SIP call with media and return the answered leg as a Channel.

One path for every outbound leg (agent ringing, callbacks, REFER): open an RTP stream, offer our codecs, INVITE with
the given headers, CANCEL what rings too long, apply the SDP answer (codec switch, hold) and point media at the
answer's address only when the egress policy allows it (otherwise symmetric RTP must find us). Early media (183 with
SDP) is applied the same way before the answer, so the ringing leg's audio (announcements, ringback) flows at once.

A call to a trunk with proxies (voicebot.sip.proxyhealth) goes to its first healthy proxy (a loose Route); a 503,
a timeout (no response at all within the trunk's invite_timeout_s) or a transport error moves it to the next (a
408 after the call rang is the callee not answering: no failover). A proxy that had sent early media before failing
leaves nothing behind: the stream is reset (``RtpStream.reset_peer``) before the next proxy is tried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from voicebot.channels.sip import SipChannel
from voicebot.rtp.ports import PortAllocator, PortsExhausted
from voicebot.rtp.stream import RtpStream
from voicebot.sip.call import CallState, Progress, SipCall
from voicebot.sip.headers import SipParseError
from voicebot.sip.proxyhealth import TrunkProxies, TrunkRoutes
from voicebot.sip.sdp import Encryption, Negotiated, SdpError, apply_answer, build_offer, parse_sdp
from voicebot.sip.transport import EgressPolicy
from voicebot.sip.ua import CallFailed, UserAgent
from voicebot.sip.uri import parse_uri

log = logging.getLogger("voicebot.handoff.dialer")

G711 = ("PCMU", "PCMA")
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
FAILOVER_STATUSES = frozenset({408, 503})  # 408 only while nothing answered: timer B, invite_timeout_s, no connection


class DialFailed(Exception):
    """The outbound leg was not established; ``status`` and ``reason`` suit a NOTIFY sipfrag or a log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def codec_preference(first: str | None, preference: Sequence[str] = G711) -> list[str]:
    """``preference`` with ``first`` (e.g. the caller's codec, so a bridge needs no transcoding) moved to the front."""
    codecs = list(preference) or list(G711)
    if first is not None and first in PAYLOAD_TYPES:
        codecs = [first] + [c for c in codecs if c != first]
    return codecs


class OutboundDialer:
    """Places outbound calls with media for one server process."""

    def __init__(self, ua: UserAgent, ports: PortAllocator, *, media_host: str, dtmf_payload_type: int,
                 egress: EgressPolicy, bind_host: str | None = None, routes: TrunkRoutes | None = None) -> None:
        self.ua = ua
        self.routes = routes or TrunkRoutes()  # trunks whose calls go through (failing over between) proxies
        self.ports = ports
        self.media_host = media_host  # the address we put in our SDP
        self.bind_host = bind_host or media_host  # the address our RTP sockets bind
        self.dtmf_payload_type = dtmf_payload_type
        self.egress = egress

    async def dial(self, uri: str, headers: Sequence[tuple[str, str]], codecs: Sequence[str] = G711, *,
                   timeout_s: float | None = None, encryption: Encryption = "none",
                   on_created: Callable[[SipCall], None] | None = None, trunk: str | None = None) -> SipChannel:
        """The answered leg as a Channel; raises :class:`DialFailed` (no media port, refused, no answer within
        ``timeout_s``, unusable SDP answer). ``on_created`` sees the call while it rings (to CANCEL it);
        ``encryption`` is the SRTP policy of the offer (the agent's or trunk's), so this leg may be SRTP while the
        leg it is bridged to is not. ``trunk`` names the trunk whose proxies carry the call (default: the trunk
        whose domain the URI's host is, if any)."""
        codec = codecs[0] if codecs else G711[0]
        try:
            stream = await RtpStream.open(self.bind_host, self.ports, codec, PAYLOAD_TYPES.get(codec, 0),
                                          self.dtmf_payload_type)
        except (PortsExhausted, OSError) as exc:
            log.warning("outbound leg has no media port: %s", exc, extra={"fields": {"uri": uri}})
            raise DialFailed(503, "Service Unavailable") from None
        offer = build_offer(self.media_host, stream.local_port, list(codecs) or [codec], self.dtmf_payload_type,
                            encryption=encryption)
        if encryption != "none":
            stream.expect_srtp()
        ringing: list[SipCall] = []

        def created(call: SipCall) -> None:
            ringing.append(call)
            if on_created is not None:
                on_created(call)

        def early_media(sdp: bytes) -> None:
            try:
                self._apply(stream, apply_answer(offer, parse_sdp(sdp)))
            except SdpError as exc:  # the final answer may still be usable
                log.info("early media SDP ignored", extra={"fields": {"uri": uri, "reason": exc.reason}})

        def reset_media() -> None:  # failing over after early media: the next proxy's answer starts afresh
            stream.reset_peer(srtp_expected=encryption != "none")

        try:
            leg = await asyncio.wait_for(self._invite(uri, offer.encode(), list(headers), created, early_media,
                                                      self._trunk_for(uri, trunk), reset_media), timeout_s)
        except (CallFailed, asyncio.TimeoutError) as exc:
            if ringing and ringing[-1].state is not CallState.ENDED:
                await ringing[-1].hangup("no answer")
            await stream.close()
            failed = (DialFailed(exc.status, exc.reason) if isinstance(exc, CallFailed)
                      else DialFailed(408, "Request Timeout"))
            log.info("outbound leg not answered", extra={"fields": {"uri": uri, "reason": str(failed)}})
            raise failed from None
        except BaseException:
            await stream.close()
            raise
        try:
            # the answer may have come in a reliable 183 with a 200 OK carrying no SDP (RFC 3262/3264)
            negotiated = apply_answer(offer, parse_sdp(leg.remote_sdp or leg.early_sdp))
        except SdpError as exc:
            await leg.hangup("bad SDP answer")
            await stream.close()
            log.warning("outbound leg answered with unusable SDP", extra={"fields": {"uri": uri, "reason": exc.reason}})
            raise DialFailed(488, "bad SDP answer") from None
        self._apply(stream, negotiated)
        return SipChannel(leg, stream)

    def _apply(self, stream: RtpStream, negotiated: Negotiated) -> None:
        """Point ``stream`` at an SDP answer (early or final): codec, SRTP keys, hold, remote address."""
        if negotiated.codec.name != stream.codec.name:
            stream.set_codec(negotiated.codec.name, negotiated.codec.payload_type)  # a bridge transcodes
        stream.apply_sdes(negotiated.srtp)  # plain RTP when the answer carried no key
        # no telephone-event in this answer: keypad tones come in the audio (a later answer with it turns that off)
        stream.detect_inband_dtmf(negotiated.dtmf_payload_type is None)
        stream.set_hold(negotiated.on_hold)
        if negotiated.remote_port and self.egress.allows(negotiated.remote_host):
            stream.set_remote(negotiated.remote_host, negotiated.remote_port)
        elif negotiated.remote_port and not negotiated.on_hold:
            log.warning("media address %s not allowed by egress policy; waiting for symmetric RTP",
                        negotiated.remote_host)

    def _trunk_for(self, uri: str, name: str | None) -> TrunkProxies | None:
        if name is not None:
            return self.routes.trunks.get(name)
        try:
            parsed = parse_uri(uri)
        except SipParseError:
            return None
        return self.routes.for_domain(parsed.host + (f":{parsed.port}" if parsed.port else ""))

    async def _invite(self, uri: str, sdp: bytes, headers: list[tuple[str, str]],
                      created: Callable[[SipCall], None], early_media: Callable[[bytes], None],
                      trunk: TrunkProxies | None, reset_media: Callable[[], None]) -> SipCall:
        """The answered call: straight to ``uri``, or through ``trunk``'s proxies with failover."""
        if trunk is None:
            return await self.ua.invite(uri, sdp=sdp, headers=headers, on_created=created,
                                        on_early_media=early_media)
        proxies = trunk.candidates()
        for number, proxy in enumerate(proxies, 1):
            fields = {"uri": uri, "trunk": trunk.trunk, "proxy": proxy}
            attempt: list[SipCall] = []
            try:
                return await self._invite_via(uri, sdp, [*headers, ("Route", f"<{loose_route(proxy)}>")], created,
                                              early_media, trunk.invite_timeout_s, attempt)
            except CallFailed as exc:
                rang = bool(attempt) and attempt[0].progress >= Progress.RINGING  # a 408 after a 180/183: no answer
                if exc.status not in FAILOVER_STATUSES or (exc.status == 408 and rang) or number == len(proxies):
                    raise
                if attempt and attempt[0].early_sdp:
                    reset_media()  # the failed proxy's early media must not outlive it
                log.warning("trunk proxy failed the call; trying the next",
                            extra={"fields": {**fields, "status": exc.status, "next": proxies[number]}})
            except OSError as exc:  # the proxy's name did not resolve, or no connection
                if number == len(proxies):
                    raise CallFailed(503, "Service Unavailable (no trunk proxy reachable)") from None
                log.warning("trunk proxy unreachable; trying the next",
                            extra={"fields": {**fields, "error": str(exc), "next": proxies[number]}})
        raise AssertionError("unreachable: candidates() is never empty")

    async def _invite_via(self, uri: str, sdp: bytes, headers: list[tuple[str, str]],
                          created: Callable[[SipCall], None], early_media: Callable[[bytes], None],
                          timeout_s: float, attempt: list[SipCall]) -> SipCall:
        """One INVITE (its call goes into ``attempt``); abandoned as 408 when nothing at all (not even 100 Trying)
        answers within ``timeout_s``."""

        def on_created(call: SipCall) -> None:
            attempt.append(call)
            created(call)

        task = asyncio.ensure_future(self.ua.invite(uri, sdp=sdp, headers=headers, on_created=on_created,
                                                    on_early_media=early_media))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout_s)
            if not done and attempt and attempt[0].progress is Progress.NONE:
                self.ua.abandon_invite(attempt[0].invite)  # the INVITE ends with 408: the caller fails over
            return await task
        except BaseException:
            task.cancel()
            raise


def loose_route(proxy: str) -> str:
    """``proxy`` as a loose-routing Route URI (RFC 3261 §16.12.1.1: the ``lr`` parameter)."""
    base, _, headers = proxy.partition("?")
    if "lr" not in (p.split("=", 1)[0].lower() for p in base.split(";")[1:]):
        base += ";lr"
    return base + (f"?{headers}" if headers else "")
