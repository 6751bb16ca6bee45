"""Idle cost and wake-up latency on the network path: an idle kernel with echod waiting on
its sockets (user networking) stays under 2% of a host core, and an app sleeping in wait()
on the raw NIC queue (apps/rxwake.py) wakes within 1 ms of a frame's arrival.

The wake-up is measured inside the guest, on one clock (the TSC through time.ticks_us): the
driver stamps the RX interrupt in hard IRQ context (_nic.rx_irq_us()), and rxwake takes
ticks_us() as soon as wait() returns; it prints the difference (and the soft-IRQ post ->
wake part of it).  Frames come from the host over QEMU's dgram netdev, one every 100 ms, so
that each finds the guest halted in `sti; hlt`.  At least 90% of the wake-ups must come
within 1 ms (typical under TCG: median ~0.2 ms, max ~0.6-0.7 ms) and none after 10 ms: a
host that deschedules QEMU's thread at the wrong moment is not the kernel's latency."""

from __future__ import annotations

import re
import time

import pytest

from kerneltools import cpu_share, qemu_pid, start_apps, wait_for
from test_rawecho import RawLink, udp_frame

pytestmark = pytest.mark.timeout(120)

WAKES = 20
LINE = re.compile(rb"rxwake: (\d+) frames, irq->wake (-?\d+) us, post->wake (-?\d+) us")


def test_idle_kernel_with_echod_waiting_under_2_percent(boot, summary):
    vm = start_apps(boot, "app=echod", net="user")
    wait_for(vm, r"echod: listening on 7777/tcp", timeout=60)
    time.sleep(1.0)
    pid = qemu_pid(vm)
    share = cpu_share(pid, 5.0)
    summary(f"idle kernel, app=echod (user networking): QEMU used {share * 100:.2f}% of a core over 5 s")
    assert vm.returncode is None, "the VM exited while it should idle"
    assert share < 0.02, f"expected an idle kernel with echod waiting under 2% of a host core, got {share * 100:.2f}%"


def test_wait_wakes_within_1_ms_of_a_frame(boot, summary):
    link = RawLink()
    try:
        vm = start_apps(boot, f"app=rxwake rxwake_n={WAKES}", extra_args=link.qemu_args())
        wait_for(vm, r"rxwake: ready", timeout=60)
        time.sleep(0.3)
        irq_us, post_us = [], []
        for i in range(WAKES):
            link.send(udp_frame(b"wake-%d" % i, sport=42000, ident=i + 1))
            line = wait_for(vm, LINE, timeout=10)
            m = LINE.search(line)
            irq_us.append(int(m.group(2)))
            post_us.append(int(m.group(3)))
            time.sleep(0.1)
        status = vm.wait(timeout=30)
    finally:
        link.close()
    s = sorted(irq_us)
    summary(f"RX interrupt -> wait() wake-up over {WAKES} frames (in-guest TSC): median "
            f"{s[len(s) // 2]} us, max {s[-1]} us; soft-IRQ post -> wake max {max(post_us)} us")
    assert status == 0, f"expected rxwake to end with 0 after {WAKES} wake-ups, got {status}"
    assert min(irq_us) >= 0, f"expected the wake-up after the interrupt, got {irq_us}"
    # Under TCG on a shared host, QEMU's thread can be descheduled between the interrupt and
    # the wake-up; that is the host, not the kernel: 90% within 1 ms, none beyond 10 ms.
    within = sum(1 for us in irq_us if us < 1000)
    assert within >= WAKES * 9 // 10, \
        f"expected wait() to wake within 1 ms of the RX interrupt (>= 90% of {WAKES}), got {irq_us} us"
    assert s[-1] < 10000, f"expected no wake-up later than 10 ms after the interrupt, got {irq_us} us"
