"""Write RTP audio as a pcap file that sipp replays with ``play_pcap_audio`` (Ethernet + IPv4 + UDP + RTP)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from voicebot.rtp.g711 import get_codec

_GLOBAL = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # pcap 2.4, Ethernet link type
FRAME = 160  # 20 ms at 8 kHz


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def write_rtp_pcap(path: Path, pcm8k: np.ndarray, codec: str = "PCMU", payload_type: int = 0) -> float:
    """``pcm8k`` (int16, 8 kHz) as 20 ms RTP packets, one every 20 ms; returns the audio's length in seconds."""
    encoded = get_codec(codec).encode(np.asarray(pcm8k, dtype=np.int16))
    packets = []
    for index, start in enumerate(range(0, len(encoded) - FRAME + 1, FRAME)):
        rtp = struct.pack("!BBHII", 0x80, payload_type | (0x80 if index == 0 else 0), index & 0xFFFF,
                          index * FRAME, 0x1234ABCD) + encoded[start:start + FRAME]
        udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        micros = index * 20_000
        packets.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)) + frame)
    path.write_bytes(_GLOBAL + b"".join(packets))
    return len(packets) * FRAME / 8000
