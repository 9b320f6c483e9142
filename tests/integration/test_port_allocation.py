"""Test peers get distinct loopback UDP ports: sipp's -p, its -mp media block (P..P+3) and the server's RTP range.

Probing the kernel twice can return the same just-closed port; the allocator hands each port out once per process.
"""

from __future__ import annotations

import socket

from tests.integration.support import free_media_port, free_port_range, free_udp_port, free_udp_ports


def test_repeated_probes_never_return_a_port_twice() -> None:
    # ~28k ephemeral ports: 600 independent probes would repeat one with probability > 99 % (birthday bound).
    ports = [free_udp_port() for _ in range(600)]
    assert len(set(ports)) == len(ports)


def test_media_blocks_are_even_free_and_disjoint_from_other_ports() -> None:
    sip_ports = {free_udp_port() for _ in range(50)}
    blocks = [free_media_port() for _ in range(50)]
    covered = [p for start in blocks for p in range(start, start + 4)]
    assert all(start % 2 == 0 for start in blocks)
    assert len(set(covered)) == len(covered) and not sip_ports & set(covered)
    for start in blocks[:5]:  # sipp can bind the whole block
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", start + offset))
        finally:
            for sock in sockets:
                sock.close()


def test_ports_stay_out_of_the_servers_rtp_range() -> None:
    rtp_start, rtp_end = free_port_range()
    blocks = free_udp_ports(100, span=40, even=True)
    assert not [p for start in blocks for p in range(start, start + 40) if rtp_start <= p < rtp_end]
    assert len(set(blocks)) == 100 and all(abs(a - b) >= 40 for i, a in enumerate(blocks) for b in blocks[i + 1:])
