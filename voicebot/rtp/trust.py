"""Whether an SDP media address may be sent to before the peer's own RTP has arrived (anti-reflection)."""

from __future__ import annotations

import ipaddress
from typing import Literal

MediaTrust = Literal["signalling_source", "sdp"]


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.split("%", 1)[0]) == ipaddress.ip_address(b.split("%", 1)[0])
    except ValueError:
        return False


def media_address_confirmed(sdp_host: str, signalling_host: str, trust: MediaTrust = "signalling_source") -> bool:
    """True when media may go to ``sdp_host`` at once.

    ``signalling_source`` (default): only when the offer names the host the SIP request came from; any other
    address (a crafted SDP naming a third party) waits until RTP from the peer arrives and is latched.
    ``sdp``: trust the SDP address (a trunk whose media gateway differs from its signalling host and never sends
    first); the egress allowlist still applies.
    """
    if trust == "sdp":
        return True
    return _same_host(sdp_host, signalling_host)
