"""Write the seed corpora in tests/fuzz/corpus/ (run once; the files are kept in git).

Each seed is a well-formed input shaped like what QEMU and GRUB produce, in the harness's
input format (see the comment at the top of each fuzz_*.c), so the fuzzer starts from the
paths a real boot takes and mutates outwards."""

from __future__ import annotations

import struct
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def chunk(data: bytes) -> bytes:
    return struct.pack("<H", len(data)) + data


def table(sig: bytes, body: bytes, revision: int = 1) -> bytes:
    length = 36 + len(body)
    return struct.pack("<4sIBB6s8sIII", sig, length, revision, 0, b"BOCHS ", b"BXPC    ",
                       1, 0x43505842, 1) + body


def acpi_seeds() -> dict[str, bytes]:
    rsdp = struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, b"BOCHS ", 2, 0, 36, 0, 0, b"\0\0\0")
    madt = struct.pack("<II", 0xFEE00000, 1)
    madt += struct.pack("<BBBBI", 0, 8, 0, 0, 1) + struct.pack("<BBBBI", 0, 8, 1, 1, 1)
    madt += struct.pack("<BBBBI", 0, 8, 2, 2, 2)                      # online capable
    madt += struct.pack("<BBBBII", 1, 12, 0, 0, 0xFEC00000, 0)
    madt += struct.pack("<BBBBIH", 2, 10, 0, 0, 2, 0)
    madt += struct.pack("<BBBBIH", 2, 10, 0, 9, 9, 0xd)
    madt += struct.pack("<BBBHB", 4, 6, 0xff, 0, 1)
    madt += struct.pack("<BBHII", 3, 8, 0xd, 0, 0)                    # NMI source (flags, gsi)
    madt += struct.pack("<BBHIII", 9, 16, 0, 5, 1, 5)                 # x2APIC
    madt += struct.pack("<BBHQ", 5, 12, 0, 0xFEE00000)
    mcfg = b"\0" * 8 + struct.pack("<QHBBI", 0xB0000000, 0, 0, 255, 0)
    hpet = struct.pack("<I", 0x8086a201) + struct.pack("<BBBBQ", 0, 0, 0, 0, 0xFED00000)
    hpet += struct.pack("<BHB", 0, 0, 0)
    fadt = bytearray(244 - 36)
    struct.pack_into("<H", fadt, 46 - 36, 9)
    struct.pack_into("<I", fadt, 64 - 36, 0x604)
    struct.pack_into("<I", fadt, 112 - 36, 1 << 10)
    struct.pack_into("<BBBBQ", fadt, 116 - 36, 1, 8, 0, 0, 0xcf9)
    fadt[128 - 36] = 6
    struct.pack_into("<BBBBQ", fadt, 172 - 36, 1, 16, 0, 0, 0x604)
    s5 = b"\x08\\_S5_\x12\x06\x04\x0a\x05\x0a\x05\x00\x00"
    dsdt = b"\x10\x05\\_SB_" + s5 + b"\x08_S5_\x12\x05\x02\x00\x0b\x07\x00"
    tables = [table(b"FACP", bytes(fadt), 3), table(b"APIC", madt, 3), table(b"MCFG", mcfg),
              table(b"HPET", hpet), table(b"DSDT", dsdt, 2)]
    root = table(b"XSDT", b"")
    seeds = {}
    seeds["qemu_q35_xsdt"] = bytes([0x7]) + chunk(rsdp) + chunk(root) + b"".join(map(chunk, tables))
    rsdp1 = rsdp[:15] + b"\0" + rsdp[16:]
    seeds["rsdt_rev0"] = bytes([0x5]) + chunk(rsdp1) + chunk(table(b"RSDT", b"")) + \
        b"".join(map(chunk, tables[:2]))
    seeds["bad_checksums"] = bytes([0x6]) + chunk(rsdp) + chunk(root) + b"".join(map(chunk, tables))
    seeds["no_rsdp"] = bytes([0]) + chunk(b"RSD PTR?")
    # No RSDP, and qboot's MP table (microvm,acpi=off): 2 CPUs, ISA bus, I/O APIC 3, ISA IRQs
    # (0 on pin 2), ExtINT on LINT0 and NMI on LINT1; an entry count of 0, as qboot writes.
    entries = struct.pack("<BBBBIIQ", 0, 0, 0x14, 3, 0x60fb1, 0x1fcbfbfd, 0)
    entries += struct.pack("<BBBBIIQ", 0, 1, 0x14, 1, 0x60fb1, 0x1fcbfbfd, 0)
    entries += struct.pack("<BB6s", 1, 0, b"ISA   ") + struct.pack("<BBBBI", 2, 3, 0x14, 1, 0xFEC00000)
    for irq in range(16):
        entries += struct.pack("<BBHBBBB", 3, 0, 0, 0, irq, 3, 2 if irq == 0 else irq)
    entries += struct.pack("<BBHBBBB", 4, 3, 0, 0, 0, 0, 0) + struct.pack("<BBHBBBB", 4, 1, 0, 0, 0, 0xff, 1)
    mp_table = struct.pack("<4sHBB8s12sIHHIHBB", b"PCMP", 44 + len(entries), 4, 0, b"QBOOT   ",
                           b"000000000000", 0, 0, 0, 0xFEE00000, 0, 0, 0) + entries
    seeds["mp_table_qboot"] = bytes([0x11]) + chunk(b"RSD PTR?") + chunk(b"") + chunk(mp_table)
    seeds["mp_table_bad_sums_imcr"] = bytes([0x30]) + chunk(b"RSD PTR?") + chunk(b"") + chunk(mp_table)
    return seeds


def mb2_tag(kind: int, payload: bytes) -> bytes:
    tag = struct.pack("<II", kind, 8 + len(payload)) + payload
    return tag + b"\0" * (-len(tag) % 8)


def boot_info_seeds() -> dict[str, bytes]:
    rsdp = struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, b"BOCHS ", 2, 0xe0000, 36, 0, 0, b"\0" * 3)
    mmap = struct.pack("<II", 24, 0) + struct.pack("<QQII", 0, 0x9fc00, 1, 0)
    mmap += struct.pack("<QQII", 0x100000, 0x7ee0000, 1, 0) + struct.pack("<QQII", 0xfffc0000, 0x40000, 2, 0)
    tags = (mb2_tag(1, b"app=echod ip=10.0.2.15 netmask=255.255.255.0 gw=10.0.2.2\0")
            + mb2_tag(4, struct.pack("<II", 639, 130048)) + mb2_tag(6, mmap)
            + mb2_tag(14, rsdp[:20]) + mb2_tag(15, rsdp) + mb2_tag(0, b""))
    mb2 = struct.pack("<II", 8 + len(tags), 0) + tags
    seeds = {"multiboot2_grub": b"\0" + mb2,
             "multiboot2_meminfo_only": b"\0" + struct.pack("<II", 0, 0) + mb2_tag(4, struct.pack("<II", 639, 1000))
             + mb2_tag(1, b"quiet\0") + mb2_tag(0, b"")}
    memmap = struct.pack("<QQII", 0, 0x9fc00, 1, 0) + struct.pack("<QQII", 0x100000, 0x7ee0000, 1, 0)
    memmap += struct.pack("<QQII", 0xfeffc000, 0x4000, 2, 0)
    cmdline = b"app=echod replcpu=1 ip=dhcp"
    start = struct.pack("<IIIIQQQQII", 0x336ec578, 1, 0, 0, 0, 1, 0xf5a00, 1, 3, 0)
    split = round(len(cmdline) * 255 / (len(cmdline) + len(memmap)))
    seeds["pvh_qemu"] = b"\1" + start + bytes([split]) + cmdline + memmap
    return seeds


def rx_record(frame: bytes, mode: int = 0, used: int | None = None, ident: int = 0,
              hdr: bytes = bytes(12)) -> bytes:
    data = hdr + frame
    return struct.pack("<BHHB", mode, len(data) if used is None else used, ident, len(data)) + data


def virtio_net_seeds() -> dict[str, bytes]:
    arp = bytes.fromhex("ffffffffffff525400123456 0806 0001080006040001 525400123456 0a000202"
                        " 000000000000 0a00020f".replace(" ", ""))
    udp = bytes.fromhex("525400123456 525400abcdef 0800".replace(" ", "")) + bytes.fromhex(
        "4500001c0001000040117ccc0a0002020a00020f" "d4310007000800000000")
    return {
        "good_frames": rx_record(arp) + rx_record(udp, mode=2) + rx_record(udp, mode=8),
        "malformed": rx_record(arp, used=13) + rx_record(udp, used=5000)
        + rx_record(udp, hdr=bytes([1]) + bytes(11)) + rx_record(udp, hdr=bytes([0, 1]) + bytes(10))
        + rx_record(udp, hdr=bytes(10) + b"\x02\x00"),
        "lying_ids": rx_record(udp, mode=1, ident=300) + rx_record(udp, mode=3, ident=0)
        + rx_record(udp, mode=5, ident=1),
    }


def pci_config(vendor: int, device: int, cls: int, header: int = 0, caps: list = (),
               secondary: int = 0, loop_to: int = 0) -> bytes:
    cfg = bytearray(256)
    struct.pack_into("<HHHH", cfg, 0, vendor, device, 0x0007, 0x0010 if caps else 0)
    struct.pack_into("<I", cfg, 8, cls << 8)
    cfg[0x0e] = header
    struct.pack_into("<I", cfg, 0x10, 0xfebd0000)
    if header == 1:
        cfg[0x19], cfg[0x1a] = secondary, secondary
    if caps:
        cfg[0x34] = caps[0][1]
        for k, (cap_id, offset) in enumerate(caps):
            cfg[offset] = cap_id
            cfg[offset + 1] = caps[k + 1][1] if k + 1 < len(caps) else loop_to
    return bytes(cfg)


def pci_record(bus: int, dev: int, fn: int, cfg: bytes) -> bytes:
    return struct.pack("<HB", bus << 8 | dev << 3 | fn, min(len(cfg), 255)) + cfg[:255]


def pci_seeds() -> dict[str, bytes]:
    host = pci_config(0x8086, 0x29c0, 0x060000)
    net = pci_config(0x1af4, 0x1041, 0x020000, caps=[(0x11, 0x98), (0x09, 0x84), (0x09, 0x70),
                                                     (0x09, 0x60), (0x09, 0x50), (0x09, 0x40)])
    bridge = pci_config(0x1b36, 0x000c, 0x060400, header=1, caps=[(0x10, 0x40)], secondary=1)
    loop = pci_config(0x1af4, 0x1044, 0x00ff00, caps=[(0x09, 0x40), (0x11, 0x50), (0x09, 0x60)],
                      loop_to=0x40)                   # 0x40 -> 0x50 -> 0x60 -> 0x40 ...
    return {
        "q35_virtio": b"\0" + pci_record(0, 0, 0, host) + pci_record(0, 3, 0, net),
        "bridge": b"\1" + pci_record(0, 0, 0, host) + pci_record(0, 1, 0, bridge)
        + pci_record(1, 0, 0, net),
        "cap_loop": b"\0" + pci_record(0, 0, 0, host) + pci_record(0, 2, 0, loop),
    }


def lwip_seeds() -> dict[str, bytes]:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from frames import (ETH_P_IP, arp_request, checksum, ethernet, ipv4_header, udp_frame)

    guest, host = bytes.fromhex("525400123456"), bytes.fromhex("525400abcdef")

    def rec(frame: bytes, ms: int = 1) -> bytes:
        return struct.pack("<H", len(frame)) + frame + bytes([ms])

    syn = struct.pack("!HHIIBBHHH", 40000, 7777, 1000, 0, 0x50, 0x02, 65535, 0, 0)
    pseudo = bytes([10, 0, 2, 2, 10, 0, 2, 15]) + struct.pack("!BBH", 0, 6, len(syn))
    syn = syn[:16] + struct.pack("!H", checksum(pseudo + syn)) + syn[18:]
    icmp = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping" * 8
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    frag_data = bytes(range(256)) * 2
    frag1 = ethernet(guest, host, ETH_P_IP, ipv4_header("10.0.2.2", "10.0.2.15", 17, 256,
                                                        ident=7, flags_frag=0x2000)
                     + struct.pack("!HHHH", 40000, 7777, 8 + 504, 0) + frag_data[:248])
    frag2 = ethernet(guest, host, ETH_P_IP, ipv4_header("10.0.2.2", "10.0.2.15", 17, 264,
                                                        ident=7, flags_frag=32)
                     + frag_data[248:])
    return {
        "arp_udp_tcp_icmp": rec(arp_request(host, "10.0.2.2", "10.0.2.15"))
        + rec(udp_frame(guest, host, "10.0.2.2", "10.0.2.15", 40000, 7777, b"hello echod"))
        + rec(ethernet(guest, host, ETH_P_IP, ipv4_header("10.0.2.2", "10.0.2.15", 6, len(syn))
                       + syn))
        + rec(ethernet(guest, host, ETH_P_IP, ipv4_header("10.0.2.2", "10.0.2.15", 1, len(icmp))
                       + icmp)),
        "fragments": rec(frag1) + rec(frag2, 200),
        "ipv6": ipv6_seed(guest, host, rec),
    }


def netif_seeds() -> dict[str, bytes]:
    """Op records of fuzz_netif.c: bursts past the zero-copy limit, held and late-released
    pbufs, link flaps, the NIC taken by an app, a stalled transmit ring, down and up."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from frames import arp_request, udp_frame

    guest, host = bytes.fromhex("525400123456"), bytes.fromhex("525400abcdef")

    def frame(data: bytes, times: int = 1) -> bytes:
        return bytes([(times - 1) << 3]) + struct.pack("<H", len(data)) + data

    run, link, release, raw, stall, down_up = b"\x01", b"\x03", b"\x04", b"\x05", b"\x06", b"\x07"

    def wait(ms: int) -> bytes:
        return bytes([2, ms // 4])

    arp = frame(arp_request(host, "10.0.2.2", "10.0.2.15"))
    sink = udp_frame(guest, host, "10.0.2.2", "10.0.2.15", 40000, 7778, b"held" * 64)
    echo = udp_frame(guest, host, "10.0.2.2", "10.0.2.15", 40000, 7777, b"echo" * 16)
    return {
        # 192 frames a socket keeps: half the ring zero copy, the rest copied, then let go.
        "burst_hold": arp + run + frame(sink, 32) * 6 + run + release + run + frame(echo) + run,
        "link_flap": arp + run + frame(echo) + link + frame(echo, 4) + run + wait(800) + link
        + run + frame(echo) + run,
        "raw_acquire": arp + run + raw + frame(echo, 8) + run + raw + run,
        "tx_stall": arp + run + stall + frame(echo, 32) * 5 + run + stall + run + wait(400) + run,
        "down_up": frame(sink, 4) + run + down_up + frame(echo, 2) + run + release + run,
    }


def ipv6_seed(guest: bytes, host: bytes, rec) -> bytes:
    """Neighbour solicitation for fd77::2, a UDP echo request to it, the same behind a
    destination options header, a router advertisement and a two-fragment datagram."""
    from frames import (ETH_P_IPV6, NEXT_DEST, NEXT_FRAGMENT, NEXT_ICMP6, NEXT_UDP, ethernet,
                        ext, icmp6, ip6_packet, udp6)
    import socket
    h6, g6, ll = "fd77::1", "fd77::2", "fe80::1"

    def v6(src, dst, nh, payload, **kw):
        return ethernet(guest, host, ETH_P_IPV6, ip6_packet(src, dst, nh, payload, **kw))

    target = socket.inet_pton(socket.AF_INET6, g6)
    ns = icmp6(h6, "ff02::1:ff00:2", 135, b"\0" * 4 + target + b"\x01\x01" + host)
    ra = icmp6(ll, "ff02::1", 134, struct.pack("!BBHII", 64, 0, 1800, 0, 0)
               + b"\x01\x01" + host
               + struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 3600, 1800, 0)
               + socket.inet_pton(socket.AF_INET6, "fd78::"))
    udp = udp6(h6, g6, 40000, 7777, b"hello echod over ipv6")
    big = udp6(h6, g6, 40000, 7777, bytes(range(256)) * 2)
    frag1 = bytes([NEXT_UDP, 0]) + struct.pack("!HI", 1, 99) + big[:256]
    frag2 = bytes([NEXT_UDP, 0]) + struct.pack("!HI", 256, 99) + big[256:]
    return (rec(v6(h6, "ff02::1:ff00:2", NEXT_ICMP6, ns, hop_limit=255))
            + rec(v6(ll, "ff02::1", NEXT_ICMP6, ra, hop_limit=255))
            + rec(v6(h6, g6, NEXT_UDP, udp))
            + rec(v6(h6, g6, NEXT_DEST, ext(NEXT_UDP, b"\x01\x04\0\0\0\0") + udp))
            + rec(v6(h6, g6, NEXT_FRAGMENT, frag1))
            + rec(v6(h6, g6, NEXT_FRAGMENT, frag2), 200))


def main() -> None:
    for name, seeds in (("acpi", acpi_seeds()), ("boot_info", boot_info_seeds()),
                        ("virtio_net", virtio_net_seeds()), ("pci", pci_seeds()),
                        ("lwip", lwip_seeds()), ("netif", netif_seeds())):
        d = CORPUS / name
        d.mkdir(parents=True, exist_ok=True)
        for seed, data in seeds.items():
            (d / seed).write_bytes(data)


if __name__ == "__main__":
    main()
