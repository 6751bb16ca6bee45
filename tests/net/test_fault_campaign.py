"""The fault campaign on the running image (bounded here; `invoke bench faults` runs 100,000
frames): seeded malformed frames of every kind (tests/faultframes.py) through the tap netdev
while echod serves. QEMU must stay up, echod must answer during and afterwards, every frame
must be accounted for (seen by the driver: received or dropped as malformed, or dropped by the
host's tap queue when the guest was busy), and gc.mem_free() and the free receive buffers must
come back to their baseline."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from faultframes import fault_frames, record_result
from nettools import ECHO_PORT, GUEST_IP, HOST_IP, udp_echo, wait_echo

FRAMES = int(os.environ.get("MANTICORE_FAULT_FRAMES", "3000"))
MEMORY = "[gc.collect(), gc.mem_free(), nic.stats()]"
ECHO_EVERY = 500
RX_BUFFER_FRAME_MAX = 2048 - 12     # a receive buffer less the virtio_net_hdr (virtio_net.h)
REASSEMBLY_SECONDS = 40             # lwIP's IP_REASS_MAXAGE (15 s) with room for TCG

pytestmark = pytest.mark.timeout(160 + FRAMES // 100)


def tap_dropped(ns) -> int:
    """Frames the host's tap queue dropped towards QEMU (the guest could not keep up)."""
    out = ns.run(["cat", f"/sys/class/net/{ns.tap}/statistics/tx_dropped"], check=True).stdout
    return int(out.strip())


def run_campaign(g, frames: int, summary=None) -> dict:
    ns = g.ns
    guest_mac = bytes.fromhex(g.info["mac"].replace(":", ""))
    host_mac = ns.tap_mac()
    ns.run(["ip", "link", "set", ns.tap, "mtu", "4000"], check=True)    # oversize frames too
    wait_echo(g.sock)
    g.eval(MEMORY, "import gc, network\nnic = network.LAN()")
    g.eval(MEMORY)                                  # the REPL's own first-use allocations
    _, free0, stats0 = g.eval(MEMORY)
    dropped0 = tap_dropped(ns)

    psock = ns.packet_socket()
    sent, refused, kinds, echoes, answered, too_big = 0, 0, Counter(), 0, 0, 0
    t0 = time.monotonic()
    try:
        for n, (kind, frame) in enumerate(fault_frames(frames, guest_mac, host_mac, HOST_IP,
                                                       GUEST_IP, ECHO_PORT,
                                                       spoof_avoid=(HOST_IP,))):
            try:
                psock.send(frame)
                sent += 1
                kinds[kind] += 1
                # QEMU drops what does not fit one receive buffer (no VIRTIO_NET_F_MRG_RXBUF)
                too_big += len(frame) > RX_BUFFER_FRAME_MAX
            except OSError:
                refused += 1
            if n % 32 == 31:
                time.sleep(0.004)                   # a burst, then let the guest drain
            if n % ECHO_EVERY == ECHO_EVERY - 1:    # echod keeps serving during the campaign
                echoes += 1
                answered += udp_echo(g.sock, b"during-%d" % n, timeout=3) == b"during-%d" % n
    finally:
        psock.close()
    took = time.monotonic() - t0
    assert g.vm.returncode is None, "QEMU exited during the fault campaign"

    time.sleep(1)
    wait_echo(g.sock, timeout=20)
    after_echoes = 0
    for i in range(20):
        payload = b"after-campaign-%d" % i
        assert udp_echo(g.sock, payload) == payload, \
            f"expected echod to answer after {sent} malformed frames (request {i} unanswered)"
        after_echoes += 1
    # Fragments wait in lwIP's reassembly queue (holding their receive buffers) until
    # IP_REASS_MAXAGE expires: give them that long to come back.
    deadline = time.monotonic() + REASSEMBLY_SECONDS
    while True:
        g.eval(MEMORY)
        _, free1, stats1 = g.eval(MEMORY)
        if stats1["rx_pbufs_held"] <= stats0["rx_pbufs_held"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    dropped1 = tap_dropped(ns)

    seen = ((stats1["rx_frames"] + stats1["rx_dropped_malformed"])
            - (stats0["rx_frames"] + stats0["rx_dropped_malformed"]))
    host_drops = dropped1 - dropped0
    # The guest also received our echo requests and perhaps a few ARP/neighbour frames.
    ours = seen - echoes - after_echoes - 1
    result = {"frames": sent, "refused_by_host": refused, "seconds": round(took, 1),
              "too_big_for_qemu": too_big,
              "kinds": dict(kinds), "seen_by_driver": seen, "dropped_by_tap": host_drops,
              "malformed_dropped": stats1["rx_dropped_malformed"] - stats0["rx_dropped_malformed"],
              "echo_during": f"{answered}/{echoes}", "mem_free": [free0, free1],
              "rx_free_in_ring": [stats0["rx_buffers_free_in_ring"],
                                  stats1["rx_buffers_free_in_ring"]],
              "rx_pbufs_held": [stats0["rx_pbufs_held"], stats1["rx_pbufs_held"]]}
    if summary:
        summary(f"faults: {sent} malformed frames in {took:.1f} s, driver saw {seen} "
                f"({result['malformed_dropped']} dropped as malformed), tap dropped {host_drops}, "
                f"echo during {answered}/{echoes}, mem_free {free0} -> {free1}, "
                f"rx free {result['rx_free_in_ring']}")
    # Every frame sent is accounted for: the driver saw it, the host's tap queue dropped it, or
    # QEMU did, being larger than a receive buffer.
    assert ours + host_drops + too_big >= sent - 4 and ours <= sent + 8, (
        f"frames not accounted for: sent {sent}, driver saw {seen} (minus {echoes + after_echoes} "
        f"echo requests), tap dropped {host_drops}: {result}")
    assert abs(free1 - free0) <= 2048, f"gc.mem_free() not back at its baseline: {result}"
    assert stats1["rx_buffers_free_in_ring"] >= stats0["rx_buffers_free_in_ring"], \
        f"free receive buffers not back at their baseline: {result}"
    assert stats1["rx_pbufs_held"] <= stats0["rx_pbufs_held"], \
        f"receive buffers left inside lwIP: {result}"
    return result


def test_malformed_frames_campaign(tap_guest, summary):
    result = run_campaign(tap_guest, FRAMES, summary)
    record_result("frames", result)
    assert result["frames"] >= FRAMES * 9 // 10, result
