"""The browser side of voicebot: the "call us" page and its WebRTC signalling."""

from voicebot.web.routes import add_webrtc_routes

__all__ = ["add_webrtc_routes"]
