"""The fault campaign's frame generator: a seeded, reproducible stream of malformed frames of
every kind the issue lists (random bytes, runts, oversize, truncations, lying lengths, bad
checksums, IPv4 fragments and overlaps, TCP flag soup, ARP spoofs), all addressed to the
guest's MAC (or broadcast) so that they reach its driver. Used by tests/net/test_fault_campaign.py
(bounded) and `invoke bench faults` (100,000 frames)."""

from __future__ import annotations

import random
import struct

from frames import (ETH_P_ARP, ETH_P_IP, checksum, ethernet, ip_aton, ipv4_header,
                    udp_segment)

KINDS = ("random", "runt", "oversize", "truncated", "lying_length", "bad_checksum",
         "fragment", "tcp_flags", "arp_spoof")


def _udp_ip(rng, host_ip, guest_ip, dport, data, **ip_kw) -> bytes:
    seg = udp_segment(host_ip, guest_ip, rng.randrange(1024, 65536), dport, data)
    return ipv4_header(host_ip, guest_ip, 17, len(seg), **ip_kw) + seg


def fault_frames(count: int, guest_mac: bytes, host_mac: bytes, host_ip: str, guest_ip: str,
                 echo_port: int, seed: int = 14, spoof_avoid: tuple = ()):
    """Yield (kind, frame) `count` times, kinds in rotation. ARP spoofs never claim an address
    in `spoof_avoid` (the host's own: poisoning it would only test the host's patience)."""
    rng = random.Random(seed)
    subnet = guest_ip.rsplit(".", 1)[0]
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        dst = guest_mac if rng.random() < 0.9 else b"\xff" * 6
        if kind == "random":
            frame = dst + rng.randbytes(rng.randrange(46, 1501))
        elif kind == "runt":
            frame = dst + rng.randbytes(rng.randrange(8, 54))        # 14..59 bytes
        elif kind == "oversize":
            frame = ethernet(dst, host_mac, ETH_P_IP,
                             _udp_ip(rng, host_ip, guest_ip, echo_port,
                                     rng.randbytes(rng.randrange(1473, 3000))))
        elif kind == "truncated":
            whole = ethernet(dst, host_mac, ETH_P_IP,
                             _udp_ip(rng, host_ip, guest_ip, echo_port, rng.randbytes(200)))
            frame = whole[:rng.randrange(14, len(whole))]
        elif kind == "lying_length":
            data = rng.randbytes(rng.randrange(0, 300))
            seg = udp_segment(host_ip, guest_ip, 40000, echo_port, data,
                              length=rng.choice([0, 7, 8 + len(data) + 1, 65535,
                                                 rng.randrange(65536)]))
            ip = ipv4_header(host_ip, guest_ip, 17, len(seg),
                             total_length=rng.choice([0, 19, 20, len(seg) + 21, 65535,
                                                      rng.randrange(65536)]),
                             ihl=rng.choice([None, 0, 4, 15, rng.randrange(16)]))
            frame = ethernet(dst, host_mac, ETH_P_IP, ip + seg)
        elif kind == "bad_checksum":
            data = rng.randbytes(rng.randrange(1, 200))
            seg = udp_segment(host_ip, guest_ip, 40001, echo_port, data,
                              bad_checksum=rng.random() < 0.5)
            ip = ipv4_header(host_ip, guest_ip, 17, len(seg), bad_checksum=True)
            frame = ethernet(dst, host_mac, ETH_P_IP, ip + seg)
        elif kind == "fragment":
            # Pieces of datagrams that overlap, leave holes, or claim offsets past 64 KiB.
            piece = rng.randbytes(rng.randrange(8, 600) & ~7)
            offset = rng.choice([0, 1, 8, 64, 1480, 8191, rng.randrange(8192)])
            more = 0x2000 if rng.random() < 0.7 else 0
            ip = ipv4_header(host_ip, guest_ip, rng.choice([17, 6, 1]), len(piece),
                             ident=rng.randrange(16), flags_frag=more | offset)
            frame = ethernet(dst, host_mac, ETH_P_IP, ip + piece)
        elif kind == "tcp_flags":
            flags = rng.randrange(256)
            head = struct.pack("!HHIIBBHHH", rng.randrange(1, 65536),
                               rng.choice([echo_port, 22, 80, rng.randrange(1, 65536)]),
                               rng.getrandbits(32), rng.getrandbits(32),
                               rng.choice([0x50, 0x00, 0xf0, 0x60]), flags,
                               rng.randrange(65536), 0, rng.randrange(65536))
            seg = head + rng.randbytes(rng.randrange(0, 64))
            pseudo = ip_aton(host_ip) + ip_aton(guest_ip) + struct.pack("!BBH", 0, 6, len(seg))
            csum = checksum(pseudo + seg) if rng.random() < 0.7 else rng.randrange(65536)
            seg = seg[:16] + struct.pack("!H", csum) + seg[18:]
            frame = ethernet(dst, host_mac, ETH_P_IP,
                             ipv4_header(host_ip, guest_ip, 6, len(seg)) + seg)
        else:  # arp_spoof
            while True:
                claimed = f"{subnet}.{rng.randrange(1, 255)}"
                if claimed not in spoof_avoid:
                    break
            op = rng.choice([1, 2])
            body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, op, rng.randbytes(6),
                               ip_aton(claimed), rng.choice([b"\0" * 6, guest_mac]),
                               ip_aton(rng.choice([guest_ip, claimed])))
            frame = ethernet(rng.choice([b"\xff" * 6, guest_mac]), rng.randbytes(6),
                             ETH_P_ARP, body)
        yield kind, frame


def record_result(name: str, result: dict) -> None:
    """For `invoke bench faults`: the figures of one campaign test as JSON in
    $MANTICORE_FAULTS_OUT/NAME.json (nothing when it is not set)."""
    import json
    import os
    from pathlib import Path

    out = os.environ.get("MANTICORE_FAULTS_OUT")
    if out:
        Path(out, f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
