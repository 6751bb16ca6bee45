"""The raw queue API, second version (_nic queue objects, docs/syscalls.md), driven from the
REPL on a guest whose only NIC is QEMU's dgram netdev, so the test speaks Ethernet itself:
batched receive, in-place transmit with one notification per batch, the C echo path, the
hold limit that keeps the RX ring from starving, busy-poll mode, and the buffers a released
queue gives back. Every step asserts the buffer accounting."""

from __future__ import annotations

import json
import time

import pytest

from test_rawecho import GUEST_IP, PORT, RawLink, echo_to, udp_frame

pytestmark = pytest.mark.timeout(180)

SETUP = """
import _nic, time, json
q = _nic.queue()
def collect(n, ms=5000):
    got = []
    t = time.ticks_ms()
    while len(got) < n and time.ticks_diff(time.ticks_ms(), t) < ms:
        got += q.recv_batch(64)
    return got
def acct():
    s = q.stats()
    return {k: s[k] for k in ('app_held', 'rx_buffers_free_in_ring', 'rx_buffers_total',
            'tx_inplace', 'tx_inplace_in_flight', 'hold_limit', 'hold_refused', 'tx_kicks',
            'rx_interrupts', 'returned_rx', 'returned_tx', 'rx_frames')}
"""


def run(vm, code: str) -> dict:
    out, err = vm.console.raw_exec(code + "\nprint('@@' + json.dumps(R))\n", timeout=60)
    assert err == "", f"guest error:\n{err}"
    line = [x for x in out.splitlines() if x.startswith("@@")]
    assert line, f"no result; guest printed:\n{out}"
    return json.loads(line[-1][2:])


def replies(link: RawLink, sport: int, n: int, timeout: float = 5.0) -> list:
    got = []
    while len(got) < n:
        r = link.recv_matching(echo_to(sport), timeout=timeout)
        if r is None:
            break
        got.append(r)
    return got


def test_raw_queue_v2_batches_in_place_hold_limit_poll_and_release(boot, summary):
    link = RawLink()
    try:
        vm = boot(extra_args=link.qemu_args(), memory="256M")
        r = run(vm, SETUP + "q.acquire()\nR = acct()")
        total, limit = r["rx_buffers_total"], r["hold_limit"]
        assert limit == total // 2 and r["app_held"] == 0 and r["rx_buffers_free_in_ring"] == total

        # 1. batched receive: 8 frames, all held, the ring short of exactly those 8
        for i in range(8):
            link.send(udp_frame(b"batch%d" % i, sport=41000, ident=i))
        r = run(vm, "got = collect(8)\nR = acct(); R['n'] = len(got)")
        assert r["n"] == 8 and r["app_held"] == 8, r
        assert r["rx_buffers_free_in_ring"] == total - 8, r

        # 2. in place: reply from 4 of the received buffers, one notification for the batch;
        # after completion they are back in the RX ring by themselves
        r = run(vm, """
k0 = q.stats()['tx_kicks']
for f, i in got[:4]:
    f[0:6], f[6:12] = bytes(f[6:12]), bytes(f[0:6])
    f[26:30], f[30:34] = bytes(f[30:34]), bytes(f[26:30])
    f[34:36], f[36:38] = bytes(f[36:38]), bytes(f[34:36])
    q.tx_inplace(i, len(f), False)
q.tx_kick()
time.sleep_ms(50)
q.recv_batch(0)
R = acct(); R['kicks'] = R['tx_kicks'] - k0
""")
        got = replies(link, 41000, 4)
        assert len(got) == 4 and {g[0] for g in got} == {b"batch%d" % i for i in range(4)}, got
        assert r["kicks"] <= 1 and r["tx_inplace"] == 4 and r["app_held"] == 4, r

        # 3. release two by hand, then give the queue back holding two: (2, 0) returned
        r = run(vm, """
q.release(got[4][1]); q.release(got[5][1])
ret = q.release_queue()
R = acct(); R['ret'] = ret
""")
        assert r["ret"] == [2, 0] and r["app_held"] == 0, r
        assert r["rx_buffers_free_in_ring"] == total and r["tx_inplace_in_flight"] == 0, r

        # 4. the C echo path: 16 datagrams answered in place, none held afterwards (frames
        # that arrive while nobody holds the queue go to lwIP: acquire first)
        run(vm, "q.acquire()\nR = 0")
        for i in range(16):
            link.send(udp_frame(b"echo%02d" % i, sport=41001, ident=100 + i))
        r = run(vm, """
n = 0
t = time.ticks_ms()
while n < 16 and time.ticks_diff(time.ticks_ms(), t) < 5000:
    e, others = q.echo_batch(32, bytes([10, 0, 2, 15]), %d)
    n += e
R = acct(); R['n'] = n
""" % PORT)
        got = replies(link, 41001, 16)
        assert r["n"] == 16 and len(got) == 16, (r, len(got))
        assert all(g[3] and g[4] for g in got), "checksums of in-place replies must stay valid"

        # 5. hold limit: an app that keeps every buffer gets at most hold_limit of them; the
        # device keeps the rest, and release gives every held one back (counted)
        for i in range(limit + 8):
            link.send(udp_frame(b"hold", sport=41002, ident=i & 0xFFFF))
        r = run(vm, """
kept = collect(%d, 3000)
R = acct(); R['n'] = len(kept)
""" % (limit + 8))
        assert r["n"] == limit and r["app_held"] == limit and r["hold_refused"] > 0, r
        assert r["rx_buffers_free_in_ring"] >= total - limit, r
        r = run(vm, "ret = q.release_queue(); kept = None\nR = acct(); R['ret'] = ret")
        assert r["ret"] == [limit, 0] and r["app_held"] == 0, r
        assert r["rx_buffers_free_in_ring"] == total, r

        # 6. busy-poll: frames are taken without a single RX interrupt
        r = run(vm, "q.acquire(); collect(64, 500); q.poll(True)\nR = acct()")
        irq0 = r["rx_interrupts"]
        for i in range(8):
            link.send(udp_frame(b"poll%d" % i, sport=41003, ident=i))
        r = run(vm, """
got = collect(8)
for f, i in got:
    q.release(i)
R = acct(); R['n'] = len(got)
q.poll(False)
q.release_queue()
""")
        assert r["n"] == 8 and r["rx_interrupts"] == irq0 and r["app_held"] == 0, r
        summary(f"raw queue v2: batches, in-place TX ({4} replies, <=1 kick), C echo 16/16, "
                f"hold limit {limit} of {total} buffers, poll mode without interrupts")
    finally:
        link.close()


def test_app_holding_a_queue_gives_every_buffer_back(boot):
    """The kernel's release path (an app ending, or sys.release): every held buffer returns."""
    link = RawLink()
    try:
        vm = boot(extra_args=link.qemu_args(), memory="256M")
        run(vm, SETUP + "import kernel\nh = kernel.sys.acquire('eth0')\nR = 0")
        for i in range(12):
            link.send(udp_frame(b"x", sport=41004, ident=i))
        r = run(vm, """
got = []
t = time.ticks_ms()
while len(got) < 12 and time.ticks_diff(time.ticks_ms(), t) < 5000:
    got += h.recv_batch(64)
held = q.stats()['app_held']
kernel.sys.release(h)
got = None
R = acct(); R['held'] = held; R['returned'] = h.returned
""")
        assert r["held"] == 12 and r["returned"] == [12, 0], r
        assert r["app_held"] == 0 and r["rx_buffers_free_in_ring"] == r["rx_buffers_total"], r
    finally:
        link.close()


def test_rawecho_on_cpu1_gets_its_queue_interrupts_there(boot, summary):
    """app=rawecho@1: the pair's MSI-X vectors are steered to CPU 1 at acquire (smp_apic_id),
    where the app's interpreter runs its soft IRQ and callback; every echo is answered."""
    link = RawLink()
    try:
        vm = boot(fw_cfg_cmdline=f"app=rawecho@1 repl=1 ip={GUEST_IP} port={PORT}",
                  extra_args=link.qemu_args(), cpus=2, memory="256M", wait_prompt=False)
        deadline = time.monotonic() + 60
        while b"rawecho: " not in vm.console.log:
            assert time.monotonic() < deadline, "expected rawecho to start on CPU 1"
            time.sleep(0.05)
        lost = []
        for i in range(50):
            link.send(udp_frame(b"cpu1-%d" % i, sport=41100, ident=i))
            r = link.recv_matching(echo_to(41100), timeout=3.0)
            if r is None or r[0] != b"cpu1-%d" % i:
                lost.append(i)
        assert not lost, f"expected 50 echoes from rawecho on CPU 1, lost {lost[:10]}"
        out, err = vm.console.raw_exec(
            "import _nic\ns = _nic.queue().stats()\nprint('@@', s['cpu'], s['owner'], "
            "s['rx_interrupts'] > 0)\n", timeout=30)
        line = [x for x in out.splitlines() if x.startswith("@@")]
        assert line and line[0].split()[1:] == ["1", "raw", "True"], out + err
        summary("raw queue: rawecho@1 answered 50/50 with eth0's interrupts steered to CPU 1")
    finally:
        link.close()
