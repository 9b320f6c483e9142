"""Pure parts of the WebRTC channel and the call page's signalling: messages, framing, ICE config, bad offers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection

from voicebot.channels.base import Dtmf, HungUp
from voicebot.channels.webrtc import FrameChunker, PlaybackQueue, WebRtcChannel
from voicebot.calls.conversation import Transcript
from voicebot.web.captions import caption_observer
from voicebot.web.protocol import (CaptionMessage, DtmfMessage, HangupMessage, ProtocolError, encode_message,
                                   parse_message, parse_offer)
from voicebot.web.routes import add_webrtc_routes, ice_configuration


def test_messages_parse_and_round_trip() -> None:
    assert parse_message('{"type": "dtmf", "digit": "5"}') == DtmfMessage("5")
    assert parse_message(b'{"type": "dtmf", "digit": "a"}') == DtmfMessage("A")
    assert parse_message('{"type": "hangup"}') == HangupMessage("")
    caption = CaptionMessage(who="bot", text="Welcome — 欢迎")
    assert parse_message(encode_message(caption)) == caption
    assert json.loads(encode_message(HangupMessage("bot hangup"))) == {"type": "hangup", "reason": "bot hangup"}


@pytest.mark.parametrize("raw,fragment", [
    ("not json", "not valid JSON"),
    ("[1]", "must be a JSON object"),
    ('{"type": "dtmf", "digit": "55"}', "one digit"),
    ('{"type": "dtmf", "digit": "x"}', "one digit"),
    ('{"type": "dtmf"}', "one digit"),
    ('{"type": "hangup", "reason": 3}', "reason must be a string"),
    ('{"type": "caption", "who": "agent", "text": "hi"}', "caption needs who"),
    ('{"type": "wave"}', "unknown message type 'wave'"),
    ('{"type": "dtmf", "digit": "1", "pad": "' + "x" * 5000 + '"}', "too long"),
])
def test_bad_messages_are_rejected_with_the_reason(raw: str, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        parse_message(raw)


def test_offer_validation() -> None:
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    assert parse_offer(json.dumps({"type": "offer", "sdp": sdp})).sdp == sdp
    with pytest.raises(ProtocolError, match="type"):
        parse_offer(json.dumps({"type": "answer", "sdp": sdp}))
    with pytest.raises(ProtocolError, match="starting with 'v=0'"):
        parse_offer(json.dumps({"type": "offer", "sdp": 5}))
    with pytest.raises(ProtocolError, match="no audio m-line"):
        parse_offer(json.dumps({"type": "offer", "sdp": sdp.replace("m=audio", "m=video")}))


def test_playback_queue_cuts_frames_and_pads_the_last() -> None:
    queue = PlaybackQueue(frame_samples=4)
    assert queue.take_frame() is None
    queue.append(np.arange(1, 4, dtype=np.int16))
    queue.append(np.arange(4, 7, dtype=np.int16))
    assert queue.pending == 6
    assert queue.take_frame().tolist() == [1, 2, 3, 4]
    assert queue.take_frame().tolist() == [5, 6, 0, 0]
    assert queue.pending == 0 and queue.take_frame() is None
    queue.append(np.ones(10, dtype=np.int16))
    queue.clear()
    assert queue.pending == 0 and queue.take_frame() is None


def test_frame_chunker_keeps_the_remainder() -> None:
    chunker = FrameChunker(frame_samples=4)
    assert chunker.push(np.arange(3, dtype=np.int16)) == []
    frames = chunker.push(np.arange(3, 12, dtype=np.int16))
    assert [f.tolist() for f in frames] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert [f.tolist() for f in chunker.push(np.arange(12, 17, dtype=np.int16))] == [[12, 13, 14, 15]]


def test_ice_configuration_is_empty_by_default_and_validated() -> None:
    assert ice_configuration([]).iceServers == []  # never None: aiortc would add Google's STUN server
    config = ice_configuration([{"urls": "turn:turn.example.com:3478", "username": "u", "credential": "p"}])
    assert config.iceServers[0].urls == "turn:turn.example.com:3478"
    with pytest.raises(ValueError, match=r"ice_servers\[0\] needs 'urls'"):
        ice_configuration([{"url": "stun:x"}])
    with pytest.raises(ValueError, match="unknown keys \\['password'\\]"):
        ice_configuration([{"urls": "turn:x", "password": "p"}])


@pytest.mark.asyncio
async def test_channel_events_playback_and_transfer_without_a_peer() -> None:
    channel = WebRtcChannel(RTCPeerConnection(ice_configuration([])), "webrtc-test")
    try:
        channel._on_message('{"type": "dtmf", "digit": "7"}')
        channel._on_message('{"type": "nonsense"}')  # logged and ignored
        assert await channel.next_event(1) == Dtmf("7", "datachannel")
        assert await channel.next_event(0.01) is None
        channel.play(np.ones(800, dtype=np.int16), 8000)  # resampled to 16 kHz: 1600 samples = 5 frames
        assert channel.playing and channel.outbound.queue.pending == 1600
        channel.stop_playback()
        assert not channel.playing
        await channel.wait_playback()
        with pytest.raises(TypeError, match="int16"):
            channel.play(np.ones(10, dtype=np.float32), 16000)
        channel.caption("bot", "queued until the data channel opens")
        assert await channel.transfer("sip:agent@example.com") is False
        channel._on_message('{"type": "hangup", "reason": "caller hung up"}')
        assert await channel.next_event(1) == HungUp("caller hung up")
    finally:
        await channel.close()


def test_caption_observer_forwards_bot_and_caller_lines() -> None:
    shown: list[tuple[str, str]] = []
    transcript = Transcript()
    transcript.events.subscribe(caption_observer(lambda who, text: shown.append((who, text))))
    transcript.add("bot", "Welcome.")
    transcript.add("caller", "", kind="noinput")
    transcript.add("caller", "****", kind="dtmf")
    transcript.add("system", "enqueue cards")
    assert shown == [("bot", "Welcome."), ("caller", "****")]
    assert len(transcript.entries) == 4


@pytest.mark.asyncio
async def test_bad_offers_get_400_with_the_reason_and_the_page_is_served() -> None:
    calls: list[object] = []

    async def on_call(channel: object) -> None:
        calls.append(channel)

    app = web.Application()
    add_webrtc_routes(app, on_call)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        page = await client.get("/call")
        assert page.status == 200 and "Call us" in await page.text()
        script = await client.get("/call.js")
        assert script.status == 200 and "createDataChannel" in await script.text()
        assert await (await client.get("/webrtc/config")).json() == {"iceServers": []}
        bad = await client.post("/webrtc/offer", data="{", headers={"Content-Type": "application/json"})
        assert bad.status == 400 and "not valid JSON" in (await bad.json())["error"]
        form = await client.post("/webrtc/offer", data="{}", headers={"Content-Type": "text/plain"})  # cross-site
        assert form.status == 415 and "application/json" in (await form.json())["error"]
        no_audio = await client.post("/webrtc/offer", json={"type": "offer", "sdp": "v=0\r\nm=video 9 RTP 96\r\n"})
        assert no_audio.status == 400 and "no audio m-line" in (await no_audio.json())["error"]
        garbage = await client.post("/webrtc/offer", json={"type": "offer", "sdp": "v=0\r\nm=audio 9 x 0\r\n"})
        assert garbage.status == 400 and "cannot answer this offer" in (await garbage.json())["error"]
    assert calls == []
