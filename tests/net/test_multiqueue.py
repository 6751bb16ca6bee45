"""Several NICs and several queue pairs: echod (lwIP, eth0) beside rawecho on a second NIC
(eth1) over user networking; and a multiqueue tap (queues=2) in the test's namespace with
echod on queue pair 0 (lwIP) and rawecho on eth0.q1, both answering 192.168.77.2:7777, so
that every flow is answered whichever queue the tap hashes it to: the per-queue counters
must show frames on both, and every queue recovers after QMP set_link off/on."""

from __future__ import annotations

import re
import socket
import time

import pytest

from manticore_host.echobench import free_port
from nettools import ECHO_PORT, GUEST_IP, LISTENING_TCP, guest_eval, udp_echo

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
    p0, p1 = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
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


@pytest.fixture
def mq_guest(namespaces_ok, boot):
    vm = boot(net="tap", queues=2, app="echod,rawecho",
              append=f"repl=1 queue=1 port={ECHO_PORT}", wait_prompt=False)
    wait_log(vm, re.escape(LISTENING_TCP))
    wait_log(vm, rb"rawecho: 192\.168\.77\.2 udp port 7777 on eth0\.q1")
    assert re.search(rb"virtio-net: eth0 .*2 queue pairs \(of 2\)", vm.console.log), \
        "expected eth0 with 2 queue pairs"
    guest_eval(vm, "nic.active(True)", "import network\nnic = network.LAN()")
    return vm


QUEUE_STATS = ("[dict((k, _nic.queue(0, p).stats()[k]) for k in ('rx_frames', 'tx_frames', "
               "'rx_dropped_malformed', 'owner', 'vector_rx', 'vector_tx', 'cpu')) for p in (0, 1)]")


def test_multiqueue_tap_flows_on_both_queues_all_answered_and_link_recovers(mq_guest, summary):
    vm = mq_guest
    ns = vm.vm.netns
    socks = []
    try:
        for _ in range(32):     # 32 flows (source ports): the tap spreads them over the queues
            s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect((GUEST_IP, ECHO_PORT))
            socks.append(s)
        deadline = time.monotonic() + 30
        while udp_echo(socks[0], b"ready", timeout=1.0) != b"ready":
            assert time.monotonic() < deadline, "expected the guest to answer on the tap"
        lost = echo_all(socks, 5, b"mq")
        assert not lost, f"expected every echo of 32 flows x 5 answered; lost {lost[:10]}"
        q = guest_eval(vm, QUEUE_STATS, "import _nic")
        assert q[0]["owner"] == "lwip" and q[1]["owner"] == "raw", q
        assert q[0]["rx_frames"] > 0 and q[1]["rx_frames"] > 0, (
            f"expected frames on both queue pairs, got {q}")
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
