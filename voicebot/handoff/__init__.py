"""Handoff to human agents: the ACD adapter (acd), one outbound dialer (dialer), bridges between any two legs
(bridge) and browser agents on their desktop page (browser, imported on its own: it brings the web API)."""

from voicebot.handoff.acd import CallQueue, HandoffManager, QueueJoinError
from voicebot.handoff.bridge import MAX_RELAY_BACKLOG, ChannelBridge
from voicebot.handoff.dialer import DialFailed, OutboundDialer

__all__ = ["MAX_RELAY_BACKLOG", "CallQueue", "ChannelBridge", "DialFailed", "HandoffManager", "OutboundDialer",
           "QueueJoinError"]
