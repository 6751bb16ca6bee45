"""Fault campaign, QEMU level: the link cut and restored in the middle of a TCP transfer
(QMP set_link): the transfer comes through exact and echod serves new clients afterwards; a
machine reset requested through QMP
(system_reset) ends the run with QEMU's status 0 (the launcher's -no-reboot), never a hang."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from manticore_host.echobench import free_port
from nettools import ECHO_PORT, LISTENING_TCP, tcp_echo, wait_echo


pytestmark = pytest.mark.timeout(150)


# A 2 s cut used to reset or truncate the connection: during the cut lwIP has no route
# (ip4_route wants the link up), so echod's send() failed with EHOSTUNREACH although the data
# was queued, and echod closed the client. ports/manticore/patches/0007 makes such a send
# succeed (lwIP retransmits once the link is back), as on Linux. Afterwards echod must serve
# new TCP and UDP clients too.
@pytest.fixture
def echod_static(boot):
    """echod_user with a static address (ip= on the command line) instead of DHCP, whose
    client restarts its exchange when the link comes back (dhcp_network_changed_link_up)."""
    port = free_port()
    vm = boot(app="echod", net="user", append="ip=10.0.2.15/24 gw=10.0.2.2",  # slirp's guest
              publish=[f"{port}:{ECHO_PORT}/udp", f"{port}:{ECHO_PORT}/tcp"],
              wait_prompt=False)
    vm.console.read_until(LISTENING_TCP, timeout=60)
    return vm, port


@pytest.mark.parametrize("addressing", ["dhcp", "static"])
def test_link_flap_mid_tcp_transfer_is_recovered(addressing, request, summary):
    vm, port = request.getfixturevalue("echod_user" if addressing == "dhcp" else "echod_static")
    data = os.urandom(256 * 1024)
    got = bytearray()
    errors = []
    flapped = restored = None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        def send():
            try:
                for i in range(0, len(data), 8192):
                    s.sendall(data[i:i + 8192])
                    time.sleep(0.01)            # a transfer that lasts a few seconds
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append(e)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        s.settimeout(2)
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline:
            if flapped is None and len(got) >= len(data) // 4:
                vm.qmp.cmd("set_link", {"name": "net0", "up": False})
                flapped = time.monotonic()
            if flapped and restored is None and time.monotonic() - flapped > 2:
                vm.qmp.cmd("set_link", {"name": "net0", "up": True})
                restored = time.monotonic()
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError as e:
                errors.append(e)
                break
            if not chunk:
                break
            got += chunk
        else:
            pytest.fail(f"the transfer neither finished nor was reset in 100 s ({len(got)} bytes)")
        sender.join(timeout=10)
    if restored is None:
        vm.qmp.cmd("set_link", {"name": "net0", "up": True})
    assert flapped, f"the link was never cut: only {len(got)} bytes came back"
    reset = any(isinstance(e, ConnectionResetError) for e in errors)
    # Either way, echod serves again: a new connection echoes exactly, and UDP answers.
    payload = os.urandom(4096)
    assert tcp_echo(port, payload, timeout=20) == payload, \
        "echod does not serve a new TCP connection after the cut"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.connect(("127.0.0.1", port))
        wait_echo(u, timeout=20)
    exact = not errors and bytes(got) == data
    summary(f"faults: link cut for 2 s in the middle of a 256 KiB TCP echo ({addressing}): "
            + ("recovered, exact" if exact else
               f"{'reset' if reset else 'ended'} after {len(got)} of {len(data)} bytes")
            + "; echod serves new TCP and UDP after")
    assert vm.returncode is None
    assert exact, (f"expected the 256 KiB echoed exactly across a 2 s link cut, got "
                   f"{len(got)} bytes, errors {errors}")


def test_system_reset_through_qmp_ends_the_run_reported(echod_user):
    # The launcher runs QEMU with -no-reboot: a reset request, from QMP as from the guest, ends
    # the run with status 0 (reported by QEMU's exit), promptly, never a hang.
    vm, port = echod_user
    vm.qmp.cmd("system_reset")
    status = vm.wait(timeout=30)
    assert status == 0, f"expected QEMU to exit with status 0 on a reset (-no-reboot), got {status}"
