"""Layer 2: the guest on a tap device inside a network namespace that the test creates and
removes (QEMU runs inside it; host 192.168.77.1, guest 192.168.77.2 from ip= on the kernel
command line).  ARP and ping from the host, a burst of malformed frames, the cable cut and
restored through QMP set_link, and a flood of echoes that must leave no leak behind.

Everything is sent from inside the namespace to the guest; nothing leaves it."""

import os
import socket
import struct
import time

import pytest

from frames import ETH_P_ARP, arp_request, malformed_frames
from manticore_host.echobench import echo_load
from nettools import (ECHO_PORT, GUEST_IP, HOST_IP, collect_replies, flat, net_up, send_burst,
                      udp_echo, wait_echo)

pytestmark = pytest.mark.timeout(120)

# The flood's size and time bound (MANTICORE_FLOOD_REQUESTS overrides, e.g. for a quick look).
FLOOD_REQUESTS = int(os.environ.get("MANTICORE_FLOOD_REQUESTS", "100000"))
FLOOD_SECONDS = 180


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


# --------------------------------------------------------------------------- ARP and ping


def test_host_arps_and_pings_the_guest(namespaces_ok, boot):
    vm = boot(net="tap")
    ns = vm.vm.netns
    info = net_up(vm)
    assert info["connected"] and info["ifconfig"][0] == GUEST_IP, \
        f"expected the guest at {GUEST_IP} (static, from ip= on the command line), got {info}"

    # ARP by hand: a request from the tap, the guest's reply read off the wire.
    psock = ns.packet_socket()
    try:
        host_mac = ns.tap_mac()
        psock.send(arp_request(host_mac, HOST_IP, GUEST_IP))
        psock.settimeout(0.5)
        reply = None
        deadline = time.monotonic() + 5
        while reply is None and time.monotonic() < deadline:
            try:
                frame = psock.recv(2048)
            except socket.timeout:
                psock.send(arp_request(host_mac, HOST_IP, GUEST_IP))
                continue
            if len(frame) >= 42 and struct.unpack("!H", frame[12:14])[0] == ETH_P_ARP:
                op, sha, spa, tha, tpa = struct.unpack("!6xH6s4s6s4s", frame[14:42])
                if op == 2 and socket.inet_ntoa(spa) == GUEST_IP:
                    reply = (frame[:6], sha, tha, socket.inet_ntoa(tpa))
    finally:
        psock.close()
    assert reply is not None, f"expected an ARP reply from {GUEST_IP} within 5 s"
    dst, sha, tha, tpa = reply
    assert mac_text(sha) == info["mac"], \
        f"expected the ARP reply to carry the guest's MAC {info['mac']}, got {mac_text(sha)}"
    assert (dst, tha, tpa) == (host_mac, host_mac, HOST_IP), \
        f"expected the ARP reply addressed to the host {mac_text(host_mac)}/{HOST_IP}, " \
        f"got to {mac_text(dst)}, target {mac_text(tha)}/{tpa}"

    # ping(8) from inside the namespace: the kernel ARPs by itself, then ICMP echo.
    ns.run(["ip", "neigh", "flush", "dev", ns.tap])
    ping = ns.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", GUEST_IP], timeout=30)
    assert ping.returncode == 0 and "3 received" in ping.stdout, \
        f"expected 3 of 3 pings answered, got status {ping.returncode}:\n{ping.stdout}{ping.stderr}"
    mac, state = ns.neighbour(GUEST_IP)
    assert mac == info["mac"], \
        f"expected the host's ARP table to hold {GUEST_IP} at {info['mac']}, got {mac} ({state})"
    big = ns.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "1472", GUEST_IP], timeout=30)
    assert big.returncode == 0 and "2 received" in big.stdout, \
        f"expected full-MTU pings (1472 bytes of data) answered, got:\n{big.stdout}{big.stderr}"


# --------------------------------------------------------------------------- malformed frames

# Where each layer's drops are counted (network.LAN().stats(), flattened).
LAYER_COUNTERS = {
    "link": ("rx_dropped_malformed", "lwip.link.drop", "lwip.etharp.drop"),
    "ip": ("lwip.ip.drop", "lwip.ip_frag.drop", "lwip.ip6.drop"),
    "udp": ("lwip.udp.drop",),
}
LAYERS = ("link", "ip", "udp")


def layer_drops(stats: dict) -> dict:
    f = flat(stats)
    missing = [k for keys in LAYER_COUNTERS.values() for k in keys if k not in f]
    assert not missing, f"expected drop counters {missing} in network.LAN().stats(), got keys {sorted(f)}"
    return {layer: sum(f[k] for k in keys) for layer, keys in LAYER_COUNTERS.items()}


def moved(before: dict, after: dict) -> dict:
    b, a = flat(before), flat(after)
    return {k: a[k] - b.get(k, 0) for k in a if isinstance(a[k], int) and a[k] != b.get(k, 0)}


def test_malformed_burst_is_dropped_and_counted(tap_guest, summary):
    g, ns = tap_guest, tap_guest.ns
    guest_mac = bytes.fromhex(g.info["mac"].replace(":", ""))
    host_mac = ns.tap_mac()
    # Let over-MTU frames leave the host kernel, so that QEMU and the guest meet them.
    ns.run(["ip", "link", "set", ns.tap, "mtu", "4000"], check=True)
    replies_sock = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    replies_sock.bind((HOST_IP, 0))
    sport = replies_sock.getsockname()[1]
    probes = malformed_frames(guest_mac, host_mac, HOST_IP, GUEST_IP, sport, ECHO_PORT)

    before = g.eval("network.LAN().stats()", "import network")
    wait_echo(g.sock)

    delivered, refused = send_burst(ns, probes)

    # Replies to anything the guest accepted come back to replies_sock.
    answered = collect_replies(replies_sock)

    # echod still answers, and a valid request gets its exact echo.
    wait_echo(g.sock, timeout=10)
    for i in range(20):
        payload = b"after-burst-%d" % i
        assert udp_echo(g.sock, payload) == payload, \
            f"expected echod to answer after the malformed burst (request {i} unanswered)"
    after = g.eval("network.LAN().stats()", "import network")
    assert g.vm.returncode is None, "QEMU exited during the malformed burst"

    # -- what the guest answered
    by_tag = {b"P%02d" % i: p for i, p in enumerate(probes)}
    wrong = [by_tag[t].name for t in answered if t in by_tag and by_tag[t].drop not in ("accept", "either")]
    assert not wrong, f"expected no reply to frames that must be dropped; the guest answered: {wrong}"
    for i, p in enumerate(probes):
        if p.drop == "accept" and p in delivered:
            got = answered.get(b"P%02d" % i)
            assert got == p.reply, (f"expected {p.name!r} to be answered with exactly "
                                    f"{p.reply!r} (the bytes inside the IP total length), got {got!r}")
        if p.reply is not None and b"P%02d" % i in answered and p.drop == "either":
            assert answered[b"P%02d" % i] == p.reply, \
                f"{p.name!r} was answered, but not with its own payload: {answered[b'P%02d' % i][:40]!r}"

    # -- the counters: each layer's drops grew at least by what should have died there (3 rounds),
    # counted cumulatively so that a frame dropped earlier than predicted still counts.
    expected = {layer: 0 for layer in LAYERS}
    for p in delivered:
        layer = "link" if p.drop == "arp" else p.drop
        if layer in expected:
            expected[layer] += 3
    d0, d1 = layer_drops(before), layer_drops(after)
    delta = {layer: d1[layer] - d0[layer] for layer in LAYERS}
    report = ", ".join(f"{layer} +{delta[layer]} (>= {expected[layer]})" for layer in LAYERS)
    for n in range(1, len(LAYERS) + 1):
        upto = LAYERS[:n]
        got = sum(delta[x] for x in upto)
        want = sum(expected[x] for x in upto)
        assert got >= want, (
            f"expected drop counters of {'+'.join(upto)} to grow by at least {want} for the "
            f"{len(delivered)} malformed frames x3, got {got}: {report}\n"
            f"refused by the host kernel (never sent): {refused}\n"
            f"counters that moved: {moved(before, after)}")
    accepted = sorted(by_tag[t].name for t in answered if t in by_tag)
    summary(f"net: malformed burst: {len(delivered)} kinds x3 delivered, drops {report}; "
            f"answered: {accepted}; refused by the host kernel: {[r[0] for r in refused]}")


# --------------------------------------------------------------------------- link cut


LINK_WAIT = """
import time, network
nic = network.LAN()
_t0 = time.ticks_ms()
while nic.isconnected() != {want} and time.ticks_diff(time.ticks_ms(), _t0) < 10000:
    time.sleep_ms(10)
"""


def test_link_cut_and_restored_through_qmp(tap_guest):
    g = tap_guest
    changes0 = g.eval("nic.stats()['link_changes']", "import network\nnic = network.LAN()")
    g.vm.qmp.cmd("set_link", {"name": "net0", "up": False})
    down = g.eval("[nic.isconnected(), nic.status(), nic.stats()['link_changes']]",
                  LINK_WAIT.format(want=False))
    assert down[0] is False and down[1] == 0, (
        f"expected isconnected() False and status() 0 (link down) after set_link net0 off, "
        f"got isconnected {down[0]}, status {down[1]}")
    assert down[2] > changes0, f"expected link_changes to grow from {changes0}, got {down[2]}"

    assert udp_echo(g.sock, b"while-the-cable-is-cut", timeout=1.5) is None, \
        "expected no echo while the link is down"

    g.vm.qmp.cmd("set_link", {"name": "net0", "up": True})
    up = g.eval("[nic.isconnected(), nic.status(), nic.ifconfig()[0], nic.stats()['link_changes']]",
                LINK_WAIT.format(want=True))
    assert up[0] is True and up[1] == 3 and up[2] == GUEST_IP, (
        f"expected isconnected() True, status() 3 and the address {GUEST_IP} back after "
        f"set_link net0 on, got {up[:3]}")
    assert up[3] > down[2], f"expected link_changes to grow again from {down[2]}, got {up[3]}"
    wait_echo(g.sock, timeout=10)
    for i in range(50):
        payload = b"after-link-up-%d" % i
        assert udp_echo(g.sock, payload) == payload, f"expected echo {i} to work after the link came back"


# --------------------------------------------------------------------------- flood


MEMORY = "[gc.collect(), gc.mem_free(), nic.stats()]"


@pytest.mark.timeout(FLOOD_SECONDS + 90)
def test_flood_leaves_memory_and_rx_buffers_where_they_were(tap_guest, summary):
    g = tap_guest
    # Warm up (ARP entry, socket buffers, first allocations), then the baseline.
    warm = echo_load(g.sock, 64, 8, count=2000, loss_timeout=0.2)
    assert warm.received > 0, f"expected the warm-up echoes to be answered, got {warm.summary()}"
    _, free0, stats0 = g.eval(MEMORY, "import gc, network\nnic = network.LAN()")
    g.eval(MEMORY)                          # the REPL's own first-use allocations
    _, free0, stats0 = g.eval(MEMORY)
    wait_echo(g.sock)

    t0 = time.monotonic()
    flood = echo_load(g.sock, 64, 32, count=FLOOD_REQUESTS, loss_timeout=0.1,
                      deadline=t0 + FLOOD_SECONDS)
    took = time.monotonic() - t0
    time.sleep(0.5)
    wait_echo(g.sock, timeout=10)
    g.eval(MEMORY)
    _, free1, stats1 = g.eval(MEMORY)

    summary(f"net: flood over tap: {flood.sent:,} requests (32 in flight) in {took:.1f} s, "
            f"{flood.received:,} answered ({flood.rate:.0f}/s), {flood.lost:,} lost; "
            f"mem_free {free0} -> {free1}; rx free in ring {stats0['rx_buffers_free_in_ring']} -> "
            f"{stats1['rx_buffers_free_in_ring']}; held by lwIP {stats0['rx_pbufs_held']} -> "
            f"{stats1['rx_pbufs_held']}")
    assert flood.sent == FLOOD_REQUESTS, (
        f"expected {FLOOD_REQUESTS:,} requests within {FLOOD_SECONDS} s, only {flood.sent:,} went "
        f"out ({flood.received:,} answered, {flood.rate:.0f}/s)")
    assert flood.received >= FLOOD_REQUESTS // 10, (
        f"expected most of the flood answered, got {flood.received:,} of {flood.sent:,}")
    assert abs(free1 - free0) <= 2048, (
        f"expected gc.mem_free() back where it was after {flood.sent:,} echoes (within 2 KiB), "
        f"got {free0} -> {free1} ({free1 - free0:+d} bytes)")
    assert stats1["rx_buffers_free_in_ring"] >= stats0["rx_buffers_free_in_ring"], (
        f"expected the free RX buffer count back at {stats0['rx_buffers_free_in_ring']} "
        f"(of {stats0['rx_buffers_total']}), got {stats1['rx_buffers_free_in_ring']}")
    assert stats1["rx_pbufs_held"] <= stats0["rx_pbufs_held"], (
        f"expected no RX buffers left inside lwIP, held {stats0['rx_pbufs_held']} -> "
        f"{stats1['rx_pbufs_held']}")


# --------------------------------------------------------------------------- large bursts


DROPS = ("lwip.link.drop", "lwip.link.memerr", "lwip.udp.drop", "lwip.udp.memerr",
         "rx_dropped_no_pbuf", "tx_dropped_busy")


def test_echod_loses_nothing_at_1400_bytes_32_in_flight(tap_guest, summary):
    """The bench's hardest echod case over tap (1400-byte datagrams, 32 in flight): every
    request answered, and the guest's own drop counters (link, UDP, pbufs, TX ring) unchanged.
    A reply later than the bench's 100 ms loss timeout is a host stall, not a drop: it is
    counted as late, and this test waits 2 s for any reply."""
    g = tap_guest
    before = flat(g.eval("network.LAN().stats()", "import network"))
    r = echo_load(g.sock, 1400, 32, count=3000, loss_timeout=2.0, deadline=time.monotonic() + 60)
    time.sleep(0.3)
    after = flat(g.eval("network.LAN().stats()"))
    grown = {k: after.get(k, 0) - before.get(k, 0) for k in DROPS
             if after.get(k, 0) != before.get(k, 0)}
    summary(f"net: echod over tap, 1400 B x32: {r.received}/{r.sent} answered "
            f"({r.rate:.0f}/s, p99 {r.p99_us or 0:.0f} us), late {r.late}, lost {r.lost}; "
            f"guest drops {grown or 'none'}; lwIP held at most {after.get('rx_pbufs_held_max')} "
            f"RX buffers")
    assert r.sent == 3000 and r.lost == 0 and r.corrupt == 0, (
        f"expected all 3000 requests of 1400 B (32 in flight) answered, got {r.summary()}")
    assert not grown, f"expected no drop counted in the guest, got {grown}"
