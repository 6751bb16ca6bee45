"""Several NICs and several queue pairs: echod (lwIP, eth0) beside rawecho on a second NIC
(eth1) over user networking; and a multiqueue tap (queues=2) in the test's namespace with
echod on queue pair 0 (lwIP) and rawecho on eth0.q1, both answering 192.168.77.2:7777, so
that every flow is answered whichever queue the tap hashes it to: the per-queue counters
must show frames on both, and every queue recovers after QMP set_link off/on."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from frames import ETH_P_IP, ethernet, ipv4_header, udp_segment
from manticore_host.echobench import echo_load, free_ports
from nettools import ECHO_PORT, GUEST_IP, HOST_IP, LISTENING_TCP, flat, guest_eval, udp_echo

pytestmark = pytest.mark.timeout(180)


def wait_log(vm, pattern: bytes, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, vm.console.log):
        assert time.monotonic() < deadline, f"expected {pattern!r} on the console in {timeout} s"
        time.sleep(0.05)


def echo_all(sockets, rounds: int, tag: bytes) -> list:
    lost = []
    for r in range(rounds):
        for n, s in enumerate(sockets):
            payload = b"%s-%d-%d" % (tag, n, r)
            if udp_echo(s, payload, timeout=2.0) != payload:
                lost.append((n, r))
    return lost


def test_two_nics_echod_on_eth0_rawecho_on_eth1(boot, summary):
    p0, p1 = free_ports(2)
    vm = boot(net="user", publish=[f"{p0}:{ECHO_PORT}/udp", f"{p0}:{ECHO_PORT}/tcp"],
              nics=[f"user:{p1}:7/udp"], app="echod,rawecho", append="repl=1 nic=eth1",
              wait_prompt=False)
    wait_log(vm, re.escape(LISTENING_TCP))
    wait_log(vm, rb"rawecho: 10\.0\.2\.15 udp port 7 on eth1")
    assert re.search(rb"virtio-net: eth1 ", vm.console.log), "expected a boot line for eth1"
    for port, name in ((p0, "echod on eth0"), (p1, "rawecho on eth1")):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", port))
            deadline = time.monotonic() + 30
            while udp_echo(s, b"hello", timeout=1.0) != b"hello":
                assert time.monotonic() < deadline, f"expected {name} to answer"
            lost = [i for i in range(200) if udp_echo(s, b"%d" % i, timeout=2.0) != b"%d" % i]
            assert not lost, f"{name}: lost {lost[:10]}"
    devs = guest_eval(vm, "[list(d[:2]) for d in kernel.lsdev()]", "import kernel")
    assert ["eth1", "rawecho"] in devs and ["eth0", None] in devs, devs
    summary("net: two NICs: echod (lwIP) on eth0 and rawecho on eth1, 200 echoes each")


def boot_mq_guest(boot, machine="q35"):
    """echod on pair 0 (lwIP) and rawecho on eth0.q1 of a 2-pair multiqueue tap."""
    vm = boot(machine=machine, net="tap", queues=2, app="echod,rawecho",
              append=f"repl=1 queue=1 port={ECHO_PORT}", wait_prompt=False)
    wait_log(vm, re.escape(LISTENING_TCP))
    wait_log(vm, rb"rawecho: 192\.168\.77\.2 udp port 7777 on eth0\.q1")
    assert re.search(rb"virtio-net: eth0 .*2 queue pairs \(of 2\)", vm.console.log), \
        "expected eth0 with 2 queue pairs"
    return vm


@pytest.fixture
def mq_guest(namespaces_ok, boot):
    vm = boot_mq_guest(boot)
    guest_eval(vm, "nic.active(True)", "import network\nnic = network.LAN()")
    return vm


QUEUE_STATS = ("[dict((k, _nic.queue(0, p).stats()[k]) for k in ('rx_frames', 'tx_frames', "
               "'rx_dropped_malformed', 'owner', 'vector_rx', 'vector_tx', 'cpu')) for p in (0, 1)]")


def flows_on_both_pairs(vm, socks: list, tag: bytes) -> list:
    """32 flows (source ports, which the tap spreads over the pairs) into `socks`, each echoed
    5 times, none lost; then both pairs' counters, each with frames and its owner."""
    for _ in range(32):
        s = vm.vm.netns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((GUEST_IP, ECHO_PORT))
        socks.append(s)
    deadline = time.monotonic() + 30
    while udp_echo(socks[0], b"ready", timeout=1.0) != b"ready":
        assert time.monotonic() < deadline, "expected the guest to answer on the tap"
    lost = echo_all(socks, 5, tag)
    assert not lost, f"expected every echo of 32 flows x 5 answered; lost {lost[:10]}"
    q = guest_eval(vm, QUEUE_STATS, "import _nic")
    assert q[0]["owner"] == "lwip" and q[1]["owner"] == "raw", q
    assert q[0]["rx_frames"] > 0 and q[1]["rx_frames"] > 0, (
        f"expected frames on both queue pairs, got {q}")
    return q


HELD_ELSEWHERE = """
import _nic
q = _nic.queue(1, 0)
got = []
for name, call in (("recv", q.recv), ("release_queue", q.release_queue),
                   ("send", lambda: q.send(bytes(60))), ("tx_kick", q.tx_kick),
                   ("on_rx", lambda: q.on_rx(print)), ("acquire", q.acquire)):
    try:
        call()
        got.append((name, "allowed"))
    except OSError as e:
        got.append((name, str(e)))
s = [q.stats() for i in range(50)][-1]
print("@@", got, s["owner"], s["cpu"])
"""


def test_a_queue_held_on_cpu_1_is_that_cpus_alone(boot, summary):
    """rawecho on CPU 1 holds eth1's pair, its interrupts steered there. From CPU 0's REPL
    the pair's counters can be read (often: no effect on its rings), but nothing that
    touches its rings is allowed, a second acquire is EBUSY, and CPU 0's soft reset (Ctrl-D,
    which mpremote sends before each command) leaves it with CPU 1's app."""
    p0, p1 = free_ports(2)
    vm = boot(net="user", publish=[f"{p0}:{ECHO_PORT}/udp", f"{p0}:{ECHO_PORT}/tcp"],
              nics=[f"user:{p1}:7/udp"], cpus=2, memory="256M",
              append="app=echod@0,rawecho@1 repl=1 nic=eth1", wait_prompt=False)
    wait_log(vm, rb"rawecho: 10\.0\.2\.15 udp port 7 on eth1")
    vm.console.read_until(b">>> ", timeout=60)
    vm.sync(timeout=30)

    def rawecho_answers(tag: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", p1))
            deadline = time.monotonic() + 30
            while udp_echo(s, tag, timeout=1.0) != tag:
                assert time.monotonic() < deadline, f"expected rawecho on CPU 1 to answer ({tag!r})"
            lost = [i for i in range(100) if udp_echo(s, b"%s%d" % (tag, i), timeout=2.0) != b"%s%d" % (tag, i)]
            assert not lost, f"rawecho on CPU 1 lost {lost[:10]} ({tag!r})"

    rawecho_answers(b"before")
    out, err = vm.console.raw_exec(HELD_ELSEWHERE, timeout=30)
    assert not err, err
    line = [x for x in out.splitlines() if x.startswith("@@")][0]
    for name in ("recv", "release_queue", "send", "tx_kick", "on_rx"):
        assert f"('{name}', 'queue held by CPU 1')" in line, line
    assert "('acquire', '16')" in line and line.endswith("raw 1"), line  # 16: EBUSY
    rawecho_answers(b"stats")

    vm.console.write(b"\x04")  # CPU 0's soft reset
    vm.console.read_until(b"soft reboot", timeout=20)
    vm.sync(timeout=30)
    rawecho_answers(b"reset")
    owner = guest_eval(vm, "[_nic.queue(1, 0).stats()[k] for k in ('owner', 'cpu')]", "import _nic")
    assert owner == ["raw", 1], owner
    summary("net: eth1's pair held by rawecho on CPU 1: CPU 0 may read its counters only; "
            "rawecho answered through CPU 0's stats calls and its soft reset")


def test_multiqueue_tap_flows_on_both_queues_all_answered_and_link_recovers(mq_guest, summary):
    vm = mq_guest
    socks = []
    try:
        q = flows_on_both_pairs(vm, socks, b"mq")
        assert q[0]["vector_rx"] != q[1]["vector_rx"], q
        lsdev = guest_eval(vm, "[list(d[:2]) for d in kernel.lsdev()]", "import kernel")
        assert ["eth0.q1", "rawecho"] in lsdev, lsdev

        vm.qmp.cmd("set_link", {"name": "net0", "up": False})
        time.sleep(0.5)
        assert udp_echo(socks[0], b"cut", timeout=1.0) is None, "expected no echo while down"
        vm.qmp.cmd("set_link", {"name": "net0", "up": True})
        deadline = time.monotonic() + 30
        while udp_echo(socks[0], b"back", timeout=1.0) != b"back":
            assert time.monotonic() < deadline, "expected echoes again after set_link on"
        lost = echo_all(socks, 3, b"up")
        assert not lost, f"expected every flow answered after the link came back; lost {lost[:10]}"
        q2 = guest_eval(vm, QUEUE_STATS, "import _nic")
        assert all(q2[p]["rx_frames"] > q[p]["rx_frames"] for p in (0, 1)), (q, q2)
        summary(f"net: multiqueue tap, 2 queue pairs: 32 flows, rx frames per queue "
                f"{q2[0]['rx_frames']}/{q2[1]['rx_frames']}, all answered, link off/on recovered")
    finally:
        for s in socks:
            s.close()


def test_multiqueue_tap_on_microvm_over_virtio_mmio(namespaces_ok, boot, summary):
    """The same split on microvm: virtio-net-device negotiates VIRTIO_NET_F_MQ over
    virtio-mmio, whose one interrupt line serves both pairs (virtio 1.2, 4.2.3.4)."""
    vm = boot_mq_guest(boot, "microvm")
    assert re.search(rb"virtio-net: eth0 mmio@", vm.console.log), "expected eth0 on virtio-mmio"
    socks = []
    try:
        q = flows_on_both_pairs(vm, socks, b"mmio")
        assert q[0]["vector_rx"] == q[1]["vector_rx"], f"expected one shared line, got {q}"
        summary(f"net: multiqueue tap on microvm (virtio-mmio), 2 queue pairs on one line: "
                f"rx frames per queue {q[0]['rx_frames']}/{q[1]['rx_frames']}, all answered")
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- a burst at one pair

RAW_PORT = 7            # rawecho on eth0.q1 answers this port only; echod (lwIP, pair 0) 7777
LWIP_DROPS = ("lwip.link.drop", "lwip.ip.drop", "lwip.ip.chkerr", "lwip.udp.drop",
              "lwip.udp.chkerr", "lwip.etharp.drop")
PER_QUEUE = ("[dict((k, _nic.queue(0, p).stats()[k]) for k in ('rx_frames', "
             "'rx_dropped_malformed')) for p in (0, 1)]")


def flows_answered(ns, port: int, count: int, tries: int = 3) -> tuple[list, list]:
    """`count` UDP sockets (distinct source ports) connected to GUEST_IP:port, each asked
    once per try: (answered, silent). With rawecho on pair 1 answering RAW_PORT and lwIP on
    pair 0 answering ECHO_PORT, which flows are answered says which pair the tap hashed them
    to (the tap picks a queue per flow hash, and keeps it: tun's flow table)."""
    socks = []
    for _ in range(count):
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((GUEST_IP, port))
        socks.append(s)
    answered = set()
    for t in range(tries):
        for n, s in enumerate(socks):
            if n not in answered and udp_echo(s, b"which-queue-%d-%d" % (n, t), timeout=0.3):
                answered.add(n)
    return [s for n, s in enumerate(socks) if n in answered], \
        [s for n, s in enumerate(socks) if n not in answered]


def malformed_for(guest_mac: bytes, host_mac: bytes, sport: int) -> list[bytes]:
    """Three IPv4/UDP frames of the flow HOST_IP:sport -> GUEST_IP:RAW_PORT, each wrong in a
    way that leaves the flow's addresses and ports (what the tap hashes) intact: a bad IPv4
    header checksum, a UDP length below 8, a UDP length beyond the datagram."""
    data = b"burst-at-q1-0123456789"

    def frame(seg, **ip_kw):
        return ethernet(guest_mac, host_mac, ETH_P_IP,
                        ipv4_header(HOST_IP, GUEST_IP, 17, len(seg), **ip_kw) + seg)
    return [frame(udp_segment(HOST_IP, GUEST_IP, sport, RAW_PORT, data), bad_checksum=True),
            frame(udp_segment(HOST_IP, GUEST_IP, sport, RAW_PORT, data, length=4)),
            frame(udp_segment(HOST_IP, GUEST_IP, sport, RAW_PORT, data, length=500))]


def test_malformed_burst_at_one_pair_leaves_the_other_pairs_app_answering(namespaces_ok, boot,
                                                                          summary):
    vm = boot(net="tap", queues=2, app="echod,rawecho",
              append=f"repl=1 queue=1 port={RAW_PORT}", wait_prompt=False)
    wait_log(vm, re.escape(LISTENING_TCP))
    wait_log(vm, rb"rawecho: 192\.168\.77\.2 udp port 7 on eth0\.q1")
    info = guest_eval(vm, "':'.join('%02x' % b for b in nic.config('mac'))",
                      "import network\nnic = network.LAN()\nnic.active(True)")
    guest_mac = bytes.fromhex(info.replace(":", ""))
    ns = vm.vm.netns
    q1_flows, q0_flows = flows_answered(ns, RAW_PORT, 24)
    echod_flows, _ = flows_answered(ns, ECHO_PORT, 8)
    try:
        assert q1_flows, "expected some of 24 flows to port 7 hashed to pair 1 (rawecho)"
        assert echod_flows, "expected some of 8 flows to port 7777 hashed to pair 0 (echod)"
        sports = [s.getsockname()[1] for s in q1_flows]
        frames = [f for sport in sports for f in malformed_for(guest_mac, ns.tap_mac(), sport)]
        burst = frames * max(1, 300 // len(frames))          # about 300 frames, all at pair 1

        setup = "import _nic, network, apps.rawecho"
        counters = ("[%s, network.LAN().stats(), apps.rawecho.queue_stats['eth0.q1']]"
                    % PER_QUEUE)
        q_before, lan_before, raw_before = guest_eval(vm, counters, setup)

        # echod on pair 0 answers all along: one request in flight on one of its flows.
        load: list = []
        loader = threading.Thread(target=lambda: load.append(echo_load(
            echod_flows[0], 64, 1, seconds=4.0, loss_timeout=2.0,
            deadline=time.monotonic() + 30)))
        loader.start()
        time.sleep(0.5)
        psock = ns.packet_socket()
        try:
            for f in burst:
                psock.send(f)
        finally:
            psock.close()
        loader.join(40)
        assert load, "expected the load on echod's flow to finish"
        r = load[0]
        # rawecho still answers its flows after the burst
        lost = [n for n, s in enumerate(q1_flows)
                if udp_echo(s, b"after-%d" % n) != b"after-%d" % n]
        q_after, lan_after, raw_after = guest_eval(vm, counters, setup)

        rx = [q_after[p]["rx_frames"] - q_before[p]["rx_frames"] for p in (0, 1)]
        malformed = raw_after["malformed"] - raw_before["malformed"]
        f0, f1 = flat(lan_before), flat(lan_after)
        lwip = {k: f1.get(k, 0) - f0.get(k, 0) for k in LWIP_DROPS if f1.get(k, 0) != f0.get(k, 0)}
        summary(f"net: {len(burst)} malformed frames aimed at eth0.q1 ({len(sports)} flows): "
                f"rawecho counted {malformed} malformed on q1; rx frames q0 +{rx[0]}, q1 +{rx[1]}; "
                f"echod on q0 meanwhile {r.received}/{r.sent} answered "
                f"(p99 {r.p99_us or 0:.0f} us); "
                f"lwIP drops {lwip or 'none'}")
        assert r.sent > 0 and r.lost == 0 and r.corrupt == 0, (
            f"expected echod on pair 0 to answer every request during the burst, got {r.summary()}")
        assert not lost, f"expected rawecho to answer its flows after the burst; lost {lost}"
        assert malformed == len(burst), (
            f"expected rawecho's counters for eth0.q1 to account for all {len(burst)} malformed "
            f"frames, got {malformed} (q1 counters before {raw_before}, after {raw_after})")
        assert rx[1] >= len(burst), f"expected >= {len(burst)} frames on pair 1, got {rx}"
        assert rx[0] <= r.sent + 20, (
            f"expected pair 0 to see only echod's {r.sent} requests (and a little ARP), not the "
            f"burst: rx frames per pair {rx}")
        assert not lwip, f"expected no drop in lwIP (the burst never reached pair 0), got {lwip}"
    finally:
        for s in q1_flows + q0_flows + echod_flows:
            s.close()
