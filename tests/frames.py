"""Ethernet/ARP/IPv4/UDP frames built by hand, good and deliberately broken, for the tests
that talk to the guest at layer 2: tests/net (an AF_PACKET socket on the tap inside the
test's network namespace) and tests/kernel/test_rawecho.py (QEMU's dgram netdev).

Each malformed frame says at which layer the guest should drop it (RFC 894 Ethernet,
RFC 826 ARP, RFC 791 IPv4, RFC 768 UDP) or that either outcome is acceptable ("either":
IP options, fragments, over-MTU frames, which a stack may legitimately accept).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_HLEN = 14
ETH_ZLEN = 60           # shortest frame without FCS; QEMU pads shorter ones with zeros


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_aton(ip: str) -> bytes:
    return socket.inet_aton(ip)


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4_header(src: str, dst: str, proto: int, payload_len: int, *, ident: int = 0x4d54,
                ttl: int = 64, flags_frag: int = 0x4000, options: bytes = b"",
                version: int = 4, ihl: int | None = None, total_length: int | None = None,
                bad_checksum: bool = False) -> bytes:
    if len(options) % 4:
        raise ValueError("IPv4 options must fill whole 32-bit words")
    ihl = ihl if ihl is not None else 5 + len(options) // 4
    total = total_length if total_length is not None else 20 + len(options) + payload_len
    head = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, ident, flags_frag,
                       ttl, proto, 0, ip_aton(src), ip_aton(dst)) + options
    csum = checksum(head)
    if bad_checksum:
        csum ^= 0x5A5A
    return head[:10] + struct.pack("!H", csum) + head[12:]


def udp_segment(src: str, dst: str, sport: int, dport: int, data: bytes, *,
                length: int | None = None, bad_checksum: bool = False,
                no_checksum: bool = False) -> bytes:
    length = length if length is not None else 8 + len(data)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + data
    if no_checksum:
        return seg
    pseudo = ip_aton(src) + ip_aton(dst) + struct.pack("!BBH", 0, 17, len(seg))
    csum = checksum(pseudo + seg) or 0xFFFF
    if bad_checksum:
        csum = (csum ^ 0x1234) or 0x1111
    return seg[:6] + struct.pack("!H", csum) + seg[8:]


def udp_frame(dst_mac: bytes, src_mac: bytes, src: str, dst: str, sport: int, dport: int,
              data: bytes, **ip_kw) -> bytes:
    seg = udp_segment(src, dst, sport, dport, data)
    return ethernet(dst_mac, src_mac, ETH_P_IP, ipv4_header(src, dst, 17, len(seg), **ip_kw) + seg)


def arp_request(src_mac: bytes, src_ip: str, target_ip: str) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, src_mac, ip_aton(src_ip),
                       b"\0" * 6, ip_aton(target_ip))
    return ethernet(b"\xff" * 6, src_mac, ETH_P_ARP, body)


@dataclass
class Probe:
    name: str
    frame: bytes
    drop: str           # "link" | "arp" | "ip" | "udp" | "either" | "accept"
    reply: bytes | None = None      # for "accept": the UDP payload expected back


def malformed_frames(guest_mac: bytes, host_mac: bytes, host_ip: str, guest_ip: str,
                     sport: int, dport: int) -> list[Probe]:
    """The burst: every way a frame can be wrong at each layer, plus a few legitimate but
    unusual ones.  UDP ones go from host_ip:sport to guest_ip:dport (the echo port), each with
    its own payload ("P07:..."), so that any reply names the probe it answers."""
    g, h = guest_mac, host_mac
    probes: list[Probe] = []
    H, G = host_ip, guest_ip

    def tag() -> bytes:
        return b"P%02d:malformed-burst-0123456789" % len(probes)

    def seg_of(data, **kw):
        return udp_segment(H, G, sport, dport, data, **kw)

    def ip(proto, payload, **kw):
        return ethernet(g, h, ETH_P_IP, ipv4_header(H, G, proto, len(payload), **kw) + payload)

    def add(name, frame, drop, reply=None):
        probes.append(Probe(name, frame, drop, reply))

    # -- Ethernet / link ---------------------------------------------------------------
    add("truncated ethernet header (13 bytes)", g + h + b"\x08", "link")
    add("ethernet header only, type IPv4", ethernet(g, h, ETH_P_IP, b""), "ip")
    add("unknown ethertype 0x88b5", ethernet(g, h, 0x88B5, b"\x01" * 46), "link")
    add("unknown ethertype 0x1234", ethernet(g, h, 0x1234, tag()), "link")
    add("IPv6 header with unspecified addresses (to nobody)",
        ethernet(g, h, 0x86DD, b"\x60" + b"\0" * 45), "ip")
    add("802.3 length field instead of a type", ethernet(g, h, 46, b"\xaa" * 46), "link")

    # -- ARP -------------------------------------------------------------------------------
    add("truncated ARP", ethernet(g, h, ETH_P_ARP, b"\x00\x01\x08\x00"), "arp")
    add("ARP with hardware length 7",
        ethernet(g, h, ETH_P_ARP, struct.pack("!HHBBH", 1, ETH_P_IP, 7, 4, 1) + b"\0" * 38),
        "arp")

    # -- IPv4 ------------------------------------------------------------------------------
    seg = seg_of(tag())
    add("truncated IPv4 header (10 of 20 bytes)",
        ethernet(g, h, ETH_P_IP, ipv4_header(H, G, 17, len(seg))[:10]), "ip")
    seg = seg_of(tag())
    add("IPv4 header length 4 words (< 5)", ip(17, seg, ihl=4), "ip")
    seg = seg_of(tag())
    add("IPv4 header length 15 words, past the packet",
        ip(17, seg, ihl=15, total_length=20 + len(seg)), "ip")
    seg = seg_of(tag())
    add("IP version 6 in an IPv4 frame", ip(17, seg, version=6), "ip")
    seg = seg_of(tag())
    add("IP total length larger than the frame", ip(17, seg, total_length=1400), "ip")
    seg = seg_of(tag())
    add("IP total length 0", ip(17, seg, total_length=0), "ip")
    seg = seg_of(tag())
    add("bad IP header checksum", ip(17, seg, bad_checksum=True), "ip")
    add("unknown IP protocol 253", ip(253, tag()), "ip")
    seg = udp_segment(H, "192.168.77.99", sport, dport, tag())
    add("IP to another address (not the guest's)",
        ethernet(g, h, ETH_P_IP, ipv4_header(H, "192.168.77.99", 17, len(seg)) + seg), "ip")
    # Total length smaller than the frame: the rest is padding and must be cut off; with a UDP
    # length and checksum for the shorter datagram this is a good request, and the reply
    # carries only the bytes inside the IP total length.
    short = tag()[:7]
    short_seg = seg_of(short)
    add("IP total length smaller than the frame (trailing bytes are padding)",
        ethernet(g, h, ETH_P_IP, ipv4_header(H, G, 17, len(short_seg)) + short_seg
                 + b"PADDING-NOT-DATA" * 3), "accept", short)
    seg = seg_of(tag())
    add("IP total length cutting into the UDP datagram", ip(17, seg, total_length=20 + 8 + 4),
        "udp")

    # -- IP options, fragments (a stack may accept or drop these) ----------------------------
    data = tag()
    add("IP options (NOP NOP NOP EOL)", ip(17, seg_of(data), options=b"\x01\x01\x01\x00"),
        "either", data)
    data = tag()
    add("IP option router alert (RFC 2113)", ip(17, seg_of(data), options=b"\x94\x04\x00\x00"),
        "either", data)
    data = tag()
    add("IP option whose length runs past the header",
        ip(17, seg_of(data), options=b"\x07\x27\x04\x00"), "either", data)
    add("first fragment, never completed",
        ip(17, seg_of(tag()), flags_frag=0x2000, ident=0x1111), "either")
    add("middle fragment only", ip(17, b"F" * 16, flags_frag=0x2000 | 100, ident=0x2222),
        "either")
    add("fragment with an offset reaching past 64 KiB",
        ip(17, b"L" * 16, flags_frag=0x1FFF, ident=0x3333), "either")

    # -- UDP ---------------------------------------------------------------------------------
    add("truncated UDP header (4 of 8 bytes)", ip(17, seg_of(tag())[:4]), "udp")
    add("bad UDP checksum", ip(17, seg_of(tag(), bad_checksum=True)), "udp")
    data = tag()
    add("UDP length field larger than the datagram", ip(17, seg_of(data, length=1000)),
        "either", data)

    # -- over the MTU (the host kernel, the tap or QEMU may refuse or drop these: fine) -------
    data = tag() + b"B" * 1570
    add("1642-byte frame (over the 1514-byte maximum)", ip(17, seg_of(data)), "either", data)
    data = tag() + b"H" * 2970
    add("3042-byte frame (larger than a 2048-byte RX buffer)", ip(17, seg_of(data)), "either", data)
    return probes


# -- IPv6 (tests/net/test_ipv6.py, the lwIP fuzz seeds) ------------------------------------

ETH_P_IPV6 = 0x86DD
NEXT_HOP, NEXT_UDP, NEXT_ROUTING, NEXT_FRAGMENT, NEXT_ICMP6, NEXT_NONE, NEXT_DEST = \
    0, 17, 43, 44, 58, 59, 60


def ip6_packet(src: str, dst: str, next_header: int, payload: bytes, *, hop_limit: int = 64,
               payload_length: int | None = None) -> bytes:
    """An IPv6 header (RFC 8200 section 3) and `payload`."""
    plen = len(payload) if payload_length is None else payload_length
    return (struct.pack("!IHBB", 6 << 28, plen, next_header, hop_limit)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + payload)


def upper_checksum(src: str, dst: str, proto: int, data: bytes) -> int:
    """The UDP/ICMPv6 checksum over RFC 8200 section 8.1's pseudo-header."""
    pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!I3xB", len(data), proto))
    return checksum(pseudo + data) or 0xFFFF


def udp6(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    return seg[:6] + struct.pack("!H", upper_checksum(src, dst, NEXT_UDP, seg)) + seg[8:]


def icmp6(src: str, dst: str, type_: int, body: bytes) -> bytes:
    msg = struct.pack("!BBH", type_, 0, 0) + body
    return msg[:2] + struct.pack("!H", upper_checksum(src, dst, NEXT_ICMP6, msg)) + msg[4:]


def ext(next_header: int, body: bytes) -> bytes:
    """An extension header in the generic form (next header, length in 8-octet units past
    the first 8, body): hop-by-hop, destination options, routing (RFC 8200 section 4)."""
    assert (2 + len(body)) % 8 == 0
    return bytes([next_header, (2 + len(body)) // 8 - 1]) + body
