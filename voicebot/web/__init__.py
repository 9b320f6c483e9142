"""The browser side of voicebot: the "call us" page and its WebRTC signalling (see voicebot.web.routes)."""
