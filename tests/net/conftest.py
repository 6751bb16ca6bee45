"""Fixtures for the network tests: echod behind QEMU user networking (hostfwd on 127.0.0.1),
and a guest on a tap device inside a network namespace that the test creates and removes.

Traffic goes only to 127.0.0.1 (user networking) or to 192.168.77.2 from inside the test's
own namespace (tap); nothing is ever sent anywhere else.

  echod_user      (vm, port): app=echod, UDP and TCP 7777 forwarded from 127.0.0.1:port.
  tap_guest       a TapGuest: q35 guest on a tap at 192.168.77.2 (static, from the kernel
                  command line), echod serving as a kernel app beside the REPL (app=echod
                  repl=1), so the REPL can be asked for counters at any time.
"""

from __future__ import annotations

import socket
import time

import pytest

from manticore_host import netns as netns_mod
from manticore_host.echobench import free_port
from nettools import ECHO_PORT, GUEST_IP, LISTENING_TCP, guest_eval, net_up, wait_echo


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def echod_user(boot):
    """echod under user networking: (vm, port) with 127.0.0.1:port -> guest 7777, UDP and TCP."""
    for _ in range(20):
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    vm = boot(app="echod", net="user", publish=[f"{port}:{ECHO_PORT}/udp",
                                                 f"{port}:{ECHO_PORT}/tcp"], wait_prompt=False)
    vm.console.read_until(LISTENING_TCP, timeout=60)
    return vm, port


@pytest.fixture(scope="session")
def namespaces_ok():
    ok, why = netns_mod.available()
    if not ok:
        pytest.skip(f"tap tests need network namespaces: {why}")
    netns_mod.remove_stale()
    return True


class TapGuest:
    """A guest on a tap in the test's namespace: echod runs as a kernel app beside the REPL
    (app=echod repl=1), so the REPL answers questions while echod keeps serving."""

    def __init__(self, vm):
        self.vm = vm
        self.ns = vm.vm.netns
        self.info: dict = {}
        self.sock: socket.socket | None = None

    def start(self) -> "TapGuest":
        deadline = time.monotonic() + 60
        while LISTENING_TCP not in self.vm.console.log:
            assert time.monotonic() < deadline, "expected echod to start listening within 60 s"
            time.sleep(0.05)
        self.info = net_up(self.vm)
        assert self.info["connected"] and self.info["ifconfig"][0] == GUEST_IP, (
            f"expected the guest up at {GUEST_IP} from ip= on the command line, "
            f"got {self.info}")
        self.sock = self.client()
        wait_echo(self.sock)
        return self

    def client(self) -> socket.socket:
        """A UDP socket inside the namespace, connected to echod."""
        s = self.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        s.connect((GUEST_IP, ECHO_PORT))
        return s

    def eval(self, expr: str, setup: str = ""):
        """Ask the REPL (echod pauses only while the command runs)."""
        return guest_eval(self.vm, expr, setup)

    def close(self):
        if self.sock is not None:
            self.sock.close()


@pytest.fixture
def tap_guest(namespaces_ok, boot):
    vm = boot(net="tap", app="echod", append="repl=1")
    guest = TapGuest(vm).start()
    try:
        yield guest
    finally:
        guest.close()
    # boot's teardown kills QEMU and deletes the namespace with its tap
