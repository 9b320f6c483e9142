"""voicebot: offline-first telephony IVR and voice-bot server."""

__version__ = "0.1.0"
