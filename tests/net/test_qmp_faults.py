"""Fault campaign, QEMU level: the link cut and restored in the middle of a TCP transfer
(QMP set_link) is recovered, the data arriving exact; a machine reset requested through QMP
(system_reset) ends the run with QEMU's status 0 (the launcher's -no-reboot), never a hang."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest


pytestmark = pytest.mark.timeout(150)


def test_link_flap_mid_tcp_transfer_is_recovered(echod_user, summary):
    vm, port = echod_user
    data = os.urandom(256 * 1024)
    got = bytearray()
    errors = []
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
        flapped = restored = None
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
            if not chunk:
                break
            got += chunk
        sender.join(timeout=10)
    assert flapped and restored, f"the link was never cut: only {len(got)} bytes came back"
    assert not errors, f"the sender failed: {errors}"
    assert bytes(got) == data, (f"expected the 256 KiB echoed exactly across a 2 s link cut, "
                                f"got {len(got)} bytes")
    summary(f"faults: link cut for 2 s in the middle of a 256 KiB TCP echo: recovered, exact, "
            f"{time.monotonic() - restored:.1f} s after the link came back")
    assert vm.returncode is None


def test_system_reset_through_qmp_ends_the_run_reported(echod_user):
    # The launcher runs QEMU with -no-reboot: a reset request, from QMP as from the guest, ends
    # the run with status 0 (reported by QEMU's exit), promptly, never a hang.
    vm, port = echod_user
    vm.qmp.cmd("system_reset")
    status = vm.wait(timeout=30)
    assert status == 0, f"expected QEMU to exit with status 0 on a reset (-no-reboot), got {status}"
