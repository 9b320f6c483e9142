"""The caller's leg as a call's lifecycle sees it (voicebot.calls.lifecycle.Leg): its Channel, how it is recorded,
released and summed up at the end. One class per transport (a SIP call with its RTP stream, a browser's WebRTC
channel)."""

from __future__ import annotations

from pathlib import Path

from voicebot.calls.lifecycle import LegEnd
from voicebot.calls.recording import CallRecorder, PacedTap, pcm16_bytes
from voicebot.channels.sip import SipChannel
from voicebot.channels.webrtc import WebRtcChannel
from voicebot.rtp.stream import RtpStream
from voicebot.sip.call import SipCall


class SipLeg:
    """A SIP call and its RTP stream; the SipChannel is made when first asked for (after the answer)."""

    kind = "sip"

    def __init__(self, call: SipCall, stream: RtpStream, channel: SipChannel | None = None) -> None:
        self.call = call
        self.stream = stream
        self._channel = channel

    @classmethod
    def of(cls, channel: SipChannel) -> SipLeg:
        return cls(channel.call, channel.stream, channel)

    @property
    def channel(self) -> SipChannel:
        if self._channel is None:
            self._channel = SipChannel(self.call, self.stream)
        return self._channel

    def record_to(self, directory: Path) -> CallRecorder:
        recorder = CallRecorder(directory, self.call.call_id, self.stream.codec.decode)
        self.stream.on_tick_media(recorder.on_tick)
        return recorder

    def stop_recording(self) -> None:
        self.stream.on_tick_media(None)

    async def release(self) -> None:
        await self.stream.close()
        if self.call.state.value != "ended":
            await self.call.hangup("session ended")

    def ended(self) -> LegEnd:
        stats = self.stream.stats
        rtp = {"rtp_sent": stats.get("packets_sent"), "rtp_received": stats.get("packets_received"),
               "rtp_lost": stats.get("cumulative_lost")}
        return LegEnd(
            end_reason=self.call.end_reason or "", duration_s=round(self.call.duration, 2),
            media=rtp,
            log_media={**rtp, "rtp_wrong_source": stats.get("wrong_source"), "srtp": stats.get("srtp"),
                       "srtp_auth_failed": stats.get("srtp_auth_failed"), "srtp_replayed": stats.get("srtp_replayed"),
                       "srtp_rekeys": stats.get("srtp_rekeys")})


class BrowserLeg:
    """A caller on the "call us" page; the web route closes the peer connection once the call returns."""

    kind = "webrtc"

    def __init__(self, channel: WebRtcChannel) -> None:
        self._channel = channel

    @property
    def channel(self) -> WebRtcChannel:
        return self._channel

    def record_to(self, directory: Path) -> CallRecorder:
        """Caller left, bot or agent right, paced by the audio the page is sent."""
        recorder = CallRecorder(directory, self._channel.call_id, pcm16_bytes)
        tap = PacedTap(recorder, self._channel.live_rate)
        self._channel.on_wire_audio(tap.on_caller)
        self._channel.on_sent_audio(tap.on_sent)
        return recorder

    def stop_recording(self) -> None:
        self._channel.on_wire_audio(None)
        self._channel.on_sent_audio(None)

    async def release(self) -> None:
        return None

    def ended(self) -> LegEnd:
        return LegEnd(end_reason="browser call ended", message="browser call ended")
