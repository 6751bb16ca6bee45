"""An idle guest leaves the host alone: QEMU's CPU time (utime + stime from /proc/<pid>/stat)
stays under 5% of a core while the VM waits at the prompt or sleeps -- and the meter itself is
checked against a busy loop."""

from __future__ import annotations

import time

import pytest

from platformtools import cpu_share, qemu_pid

pytestmark = pytest.mark.timeout(60)


def test_idle_at_prompt_under_5_percent(vm, summary):
    pid = qemu_pid(vm)
    time.sleep(0.5)  # let boot-time work settle
    share = cpu_share(pid, 5.0)
    summary(f"idle at the prompt: QEMU used {share * 100:.1f}% of a core over 5 s")
    assert share < 0.05, f"expected an idle VM at the prompt to use < 5% of a host core over 5 s, got {share * 100:.1f}%"


def test_sleeping_under_5_percent(vm, summary):
    """time.sleep halts the CPU rather than spinning."""
    pid = qemu_pid(vm)
    vm.console.write("import time; time.sleep_ms(3500)\r")
    vm.console.read_until("time.sleep_ms(3500)\r\n", timeout=10)
    time.sleep(0.25)
    share = cpu_share(pid, 3.0)
    vm.console.read_until(b">>> ", timeout=10)
    summary(f"during time.sleep_ms: QEMU used {share * 100:.1f}% of a core")
    assert share < 0.05, f"expected time.sleep_ms to halt the CPU (< 5% of a host core), got {share * 100:.1f}%"


def test_asyncio_sleep_under_5_percent(vm, summary):
    """asyncio's scheduler waits through the port's wait-for-event hook: it must halt too."""
    pid = qemu_pid(vm)
    line = ('import asyncio; exec("async def m():\\n await asyncio.sleep_ms(3500)\\n'
            'asyncio.run(m())")')
    vm.console.write(line + "\r")
    vm.console.read_until(line.encode() + b"\r\n", timeout=10)
    time.sleep(0.25)
    t0 = time.monotonic()
    share = cpu_share(pid, 3.0)
    vm.console.read_until(b">>> ", timeout=10)
    took = time.monotonic() - t0 + 0.25
    summary(f"during asyncio.sleep_ms: QEMU used {share * 100:.1f}% of a core")
    assert took >= 3.2, f"expected the asyncio sleep to last 3.5 s, the prompt came back after {took:.2f} s"
    assert share < 0.05, f"expected asyncio.sleep_ms to halt the CPU (< 5% of a host core), got {share * 100:.1f}%"


def test_busy_loop_shows_up_in_the_meter(vm):
    """The control: a spinning guest does register, so a low idle figure means something."""
    pid = qemu_pid(vm)
    vm.console.write("import time\rt = time.ticks_ms()\rwhile time.ticks_diff(time.ticks_ms(), t) < 2000: pass\r\r")
    time.sleep(0.3)
    share = cpu_share(pid, 1.2)
    vm.console.read_until(b">>> ", timeout=10)
    assert share > 0.3, f"expected a busy loop in the guest to use > 30% of a host core, got {share * 100:.1f}% (is the meter broken?)"
