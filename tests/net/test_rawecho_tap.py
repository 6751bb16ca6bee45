"""rawecho (the raw NIC queue, apps/rawecho.py) on a tap inside the test's network namespace:
the guest boots with app=rawecho repl=1 and ip=192.168.77.2 (from the launcher) port=7777 on
its command line.  rawecho answers ARP itself, echoes every UDP payload size 0..1472
byte-identically, survives the same malformed burst as echod (tests/frames.py), and its
own counters (apps.rawecho.stats, read through the REPL beside it) account for every frame.

Everything is sent from inside the namespace to the guest; nothing leaves it."""

import random
import re
import socket
import struct
import time

import pytest

from frames import ETH_P_ARP, arp_request, malformed_frames
from nettools import (ECHO_PORT, GUEST_IP, HOST_IP, collect_replies, guest_eval, send_burst,
                      udp_echo, wait_echo)

pytestmark = pytest.mark.timeout(240)

READY = re.compile(rb"rawecho: 192\.168\.77\.2 udp port 7777 on eth0 ([0-9a-f:]{17})")
STATS = "apps.rawecho.stats"
STATS_SETUP = "import apps.rawecho"
COUNTERS = ("echoed", "arp_replies", "ignored", "malformed", "tx_full")


class RawGuest:
    def __init__(self, vm, mac: str):
        self.vm = vm
        self.ns = vm.vm.netns
        self.mac_text = mac
        self.mac = bytes.fromhex(mac.replace(":", ""))
        self.sock = self.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.connect((GUEST_IP, ECHO_PORT))

    def stats(self) -> dict:
        return guest_eval(self.vm, STATS, STATS_SETUP)


@pytest.fixture
def raw_tap(namespaces_ok, boot):
    vm = boot(net="tap", app="rawecho", append="repl=1 port=7777", wait_prompt=False)
    m = vm.console.read_until(READY, timeout=60)
    mac = READY.search(m).group(1).decode()
    guest = RawGuest(vm, mac)
    try:
        wait_echo(guest.sock)
        yield guest
    finally:
        guest.sock.close()


def test_rawecho_answers_arp_on_tap(raw_tap):
    g, ns = raw_tap, raw_tap.ns
    before = g.stats()
    # By hand: a request from the tap, the reply read off the wire.
    psock = ns.packet_socket()
    reply = None
    try:
        host_mac = ns.tap_mac()
        psock.settimeout(0.5)
        psock.send(arp_request(host_mac, HOST_IP, GUEST_IP))
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
    assert reply is not None, f"expected rawecho to answer an ARP request for {GUEST_IP} within 5 s"
    dst, sha, tha, tpa = reply
    assert sha == g.mac, f"expected the ARP reply to carry the guest's MAC {g.mac_text}, got {sha.hex()}"
    assert (dst, tha, tpa) == (host_mac, host_mac, HOST_IP), \
        f"expected the reply addressed to the host, got to {dst.hex()}, target {tha.hex()}/{tpa}"

    # The host kernel's own resolution: flush the neighbour, send, and the entry comes back.
    ns.run(["ip", "neigh", "flush", "dev", ns.tap])
    assert udp_echo(g.sock, b"after-neigh-flush", timeout=3) == b"after-neigh-flush"
    mac, state = ns.neighbour(GUEST_IP)
    assert mac == g.mac_text, f"expected the host's ARP table to hold {GUEST_IP} at {g.mac_text}, got {mac} ({state})"
    after = g.stats()
    assert after["arp_replies"] >= before["arp_replies"] + 2, \
        f"expected rawecho's arp_replies to grow by at least 2, got {before} -> {after}"


def test_rawecho_every_size_0_to_1472_byte_identical_on_tap(raw_tap, summary):
    g = raw_tap
    rng = random.Random(0x5241)
    before = g.stats()
    lost, wrong, retried = [], [], 0
    t0 = time.monotonic()
    for size in range(1473):
        payload = rng.randbytes(size)
        for attempt in range(3):
            got = udp_echo(g.sock, payload, timeout=1.0)
            if got is not None:
                break
            retried += 1
        if got is None:
            lost.append(size)
        elif got != payload:
            wrong.append(size)
    took = time.monotonic() - t0
    after = g.stats()
    summary(f"rawecho over tap: 1473 payloads 0-1472 B in {took:.1f} s "
            f"({took / 1473 * 1e3:.2f} ms each), {retried} retried; echoed "
            f"{before['echoed']} -> {after['echoed']}")
    assert not lost, f"expected every size echoed, no echo (3 tries) for sizes {lost[:20]}"
    assert not wrong, f"expected byte-identical echoes, sizes {wrong[:20]} came back different"
    assert after["echoed"] - before["echoed"] >= 1473


def test_rawecho_survives_the_malformed_burst_and_counts_it(raw_tap, summary):
    g, ns = raw_tap, raw_tap.ns
    host_mac = ns.tap_mac()
    ns.run(["ip", "link", "set", ns.tap, "mtu", "4000"], check=True)
    replies_sock = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    replies_sock.bind((HOST_IP, 0))
    sport = replies_sock.getsockname()[1]
    probes = malformed_frames(g.mac, host_mac, HOST_IP, GUEST_IP, sport, ECHO_PORT)

    wait_echo(g.sock)
    before = g.stats()
    delivered, refused = send_burst(ns, probes)

    answered = collect_replies(replies_sock)
    mid = g.stats()

    wait_echo(g.sock, timeout=10)
    for i in range(20):
        payload = b"after-burst-%d" % i
        assert udp_echo(g.sock, payload) == payload, \
            f"expected rawecho to answer after the malformed burst (request {i} unanswered)"
    assert g.vm.returncode is None, "QEMU exited during the malformed burst"
    log = g.vm.console.log.decode("utf-8", "replace")
    assert "app 'rawecho' failed" not in log, f"rawecho failed during the burst:\n{log[-2000:]}"

    by_tag = {b"P%02d" % i: p for i, p in enumerate(probes)}
    bad = [by_tag[t].name for t in answered if t in by_tag and by_tag[t].drop not in ("accept", "either")]
    assert not bad, f"expected no reply to frames that must be dropped; rawecho answered: {bad}"
    for i, p in enumerate(probes):
        if p.drop == "accept" and p in delivered:
            got = answered.get(b"P%02d" % i)
            assert got == p.reply, f"expected {p.name!r} answered with exactly {p.reply!r}, got {got!r}"

    # The counters: every frame rawecho took is in exactly one outcome, and the frames that
    # must die (3 rounds) are all in ignored + malformed.
    d = {k: mid[k] - before[k] for k in ("rx",) + COUNTERS}
    outcomes = sum(d[k] for k in COUNTERS)
    must_drop = [p for p in delivered if p.drop not in ("accept", "either")]
    # A bad UDP checksum is not checked (rawecho never reads the payload): it goes back with
    # the same bad checksum, and the sender's stack drops it, as the no-reply check shows.
    must_drop_counted = [p for p in must_drop if p.name != "bad UDP checksum"]
    dropped = d["ignored"] + d["malformed"]
    summary(f"rawecho malformed burst over tap: {len(delivered)} kinds x3 delivered, counters "
            f"{d}; answered {sorted(by_tag[t].name for t in answered if t in by_tag)}; refused by "
            f"the host kernel: {[r[0] for r in refused]}")
    assert d["rx"] == outcomes, f"expected rx to equal the sum of the outcomes, got {d}"
    assert d["rx"] >= 3 * len(must_drop), f"expected rawecho to receive the burst, got {d}"
    assert dropped >= 3 * len(must_drop_counted), (
        f"expected ignored + malformed to grow by at least {3 * len(must_drop_counted)} "
        f"(the frames that must be dropped, x3), got {d}")
    assert d["malformed"] > 0 and d["ignored"] > 0, f"expected both kinds of drop counted, got {d}"
