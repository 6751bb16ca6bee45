"""Fault campaign, apps: one that spins in an except: loop swallowing KeyboardInterrupt
(apps/stubborn.py) is contained as docs/multicore.md says of a CPU-bound app: placed on a CPU
of its own it takes that CPU, and echod, the REPL and Ctrl-C on CPU 0 carry on. (Heap
exhaustion and unbounded recursion: test_smp.py's failing-app test, fail=memory/recursion.)"""

from __future__ import annotations

import socket
import time

import pytest

from kerneltools import log_text
from manticore_host.echobench import free_port
from nettools import ECHO_PORT, LISTENING_TCP, udp_echo, wait_echo

pytestmark = pytest.mark.timeout(150)


def test_app_swallowing_keyboardinterrupt_is_contained_on_its_cpu(boot):
    port = free_port()
    vm = boot(cpus=2, memory="256M", fw_cfg_cmdline="app=echod@0,stubborn@1 repl=1",
              net="user", publish=[f"{port}:{ECHO_PORT}/udp", f"{port}:{ECHO_PORT}/tcp"],
              wait_prompt=False)
    vm.console.read_until(LISTENING_TCP, timeout=60)
    vm.sync(timeout=30)
    deadline = time.monotonic() + 30
    while "stubborn: swallowing every exception on CPU 1" not in log_text(vm):
        assert time.monotonic() < deadline, log_text(vm)[-3000:]
        time.sleep(0.1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        wait_echo(s)
        # Ctrl-C at the console, several times: the REPL's CPU takes it, stubborn never sees
        # it (and would swallow it); echod and the REPL keep answering.
        for _ in range(3):
            vm.console.write(b"\x03")
            time.sleep(0.2)
        vm.sync(timeout=30)
        lost = [i for i in range(100) if udp_echo(s, b"%04d" % i, timeout=2.0) != b"%04d" % i]
    assert not lost, f"echod lost {len(lost)} of 100 echoes beside stubborn: {lost[:10]}"
    assert vm.repl("6 * 7", timeout=10) == "42"
    rows = vm.repl("print(kernel.ps_rows())")
    assert "'stubborn', 'runnable'" in rows, rows
    assert vm.returncode is None
