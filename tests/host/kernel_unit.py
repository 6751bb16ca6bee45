# Unit tests of the kernel's pure-Python parts, run by MicroPython's unix port built from the
# same source tree (tests/host/test_kernel_unit.py runs this file and reads its output).
# Each test prints "PASS name" or "FAIL name: why".
import sys

import asyncio

from kernel import devices, sched, syscalls
from kernel.dma import Pool
from kernel.events import EventQueue

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def reset():
    sched.apps.clear()
    sched.current = None
    sched.last_ended = None
    asyncio.new_event_loop()


def run_apps(*entries):
    """Spawn (name, entry) apps and run the loop until all ended."""
    apps = [sched.spawn(name, entry) for name, entry in entries]

    async def until_done():
        while sched.live_apps():
            await asyncio.sleep_ms(1)
        await asyncio.sleep_ms(5)  # let the cancelled tasks of ended apps unwind

    asyncio.run(until_done())
    return apps


# ---------------------------------------------------------------------------------------
# Scheduler


@test
def fairness_round_robin():
    reset()
    order = []

    def make(tag):
        async def main():
            for _ in range(50):
                order.append(tag)
                await asyncio.sleep(0)
        return main

    apps = run_apps(("a", make("a")), ("b", make("b")), ("c", make("c")))
    assert order[:6] == ["a", "b", "c", "a", "b", "c"], order[:6]
    counts = [order.count(t) for t in "abc"]
    assert counts == [50, 50, 50], counts
    # Each resume is a wake-up: 50 yields + the first run + the final return, per app.
    wakes = [app.wakeups for app in apps]
    assert max(wakes) - min(wakes) == 0 and wakes[0] >= 51, wakes
    # No window of 3 consecutive steps holds the same app twice.
    for i in range(0, len(order) - 2, 3):
        assert len(set(order[i:i + 3])) == 3, order[i:i + 3]


@test
def cpu_time_is_charged_to_the_app_that_runs():
    reset()
    import time

    async def busy():
        for _ in range(5):
            t = time.ticks_us()
            while time.ticks_diff(time.ticks_us(), t) < 2000:
                pass
            await asyncio.sleep(0)

    async def lazy():
        for _ in range(5):
            await asyncio.sleep(0)

    b, l = run_apps(("busy", busy), ("lazy", lazy))
    assert b.cpu_us >= 10000, b.cpu_us
    assert l.cpu_us < b.cpu_us / 5, (l.cpu_us, b.cpu_us)


@test
def failure_is_isolated():
    reset()
    ran = []

    async def crasher():
        await asyncio.sleep_ms(2)
        raise ValueError("boom")

    async def survivor():
        for _ in range(10):
            await asyncio.sleep_ms(1)
        ran.append(True)

    c, s = run_apps(("crasher", crasher), ("survivor", survivor))
    assert c.state == sched.FAILED and c.exit_code == 1, (c.state, c.exit_code)
    assert isinstance(c.error, ValueError), c.error
    assert s.state == sched.DONE and s.exit_code == 0 and ran, (s.state, s.exit_code)


@test
def exit_from_a_subtask_ends_the_app():
    reset()
    seen = []

    async def helper():
        await asyncio.sleep_ms(2)
        syscalls.exit(7)

    async def main():
        asyncio.create_task(helper())
        try:
            await asyncio.sleep_ms(1000)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    (app,) = run_apps(("x", main))
    assert app.exit_code == 7 and app.state == sched.DONE, (app.exit_code, app.state)
    assert seen == ["cancelled"], seen
    assert len(app.tasks) == 2, app.tasks  # the sub-task belongs to the app


@test
def plain_main_and_return_code():
    reset()
    a, b = run_apps(("plain", lambda: 3), ("none", lambda: None))
    assert (a.exit_code, b.exit_code) == (3, 0), (a.exit_code, b.exit_code)


@test
def states_in_ps():
    reset()
    ev = asyncio.Event()
    rows = []

    async def waiter():
        await ev.wait()

    async def observer():
        await asyncio.sleep(0)
        rows.extend(sched.ps_rows())
        ev.set()

    run_apps(("waiter", waiter), ("observer", observer))
    states = {row[0]: row[1] for row in rows}
    assert states["waiter"] == sched.WAITING, states
    assert states["observer"] == sched.RUNNABLE or states["observer"] == "runnable", states
    final = {row[0]: row[1] for row in sched.ps_rows()}
    assert final == {"waiter": "done", "observer": "done"}, final


# ---------------------------------------------------------------------------------------
# Events


@test
def events_coalesce_per_handle():
    q = EventQueue()
    q.post("nic", 1)
    q.post("nic", 2)
    q.post("timer", 1)
    q.post("nic", 1)
    got = dict(q.take())
    assert got == {"nic": 3, "timer": 1}, got
    assert q.take() == [], "the queue must be empty after take()"


@test
def wait_wakes_on_post_and_times_out():
    reset()
    q = EventQueue()
    out = []

    async def waiter():
        out.append(await q.wait())
        out.append(await q.wait(20))

    async def poster():
        await asyncio.sleep_ms(5)
        q.post("h", 4)

    async def main():
        t = asyncio.create_task(waiter())
        await poster()
        await t

    asyncio.run(main())
    assert out == [[("h", 4)], []], out
    assert q.latency_us >= 0, q.latency_us


@test
def post_from_a_scheduled_callback_wakes_the_loop():
    # The soft-IRQ path: micropython.schedule runs the post between bytecodes.
    import micropython
    reset()
    q = EventQueue()
    got = []

    async def main():
        micropython.schedule(lambda _: q.post("irq", 1), None)
        got.append(await q.wait(1000))

    asyncio.run(main())
    assert got == [[("irq", 1)]], got


# ---------------------------------------------------------------------------------------
# Devices


class FakeDevice(devices.Device):
    def __init__(self):
        super().__init__("fake0")
        self.opened = 0

    def open(self):
        self.opened += 1


@test
def acquire_is_exclusive_and_released_at_the_end():
    reset()
    dev = devices.register(FakeDevice())
    errors = []
    got = []

    async def holder():
        syscalls.acquire("fake0")
        await asyncio.sleep_ms(5)
        raise RuntimeError("holder dies holding fake0")

    async def other():
        await asyncio.sleep_ms(1)
        try:
            syscalls.acquire("fake0")
        except OSError as e:
            errors.append(e)
        while True:
            await asyncio.sleep_ms(1)
            try:
                got.append(syscalls.acquire("fake0"))
                return
            except OSError:
                pass

    run_apps(("holder", holder), ("other", other))
    assert len(errors) == 1 and errors[0].errno == syscalls.EBUSY, errors
    assert "held by app 'holder'" in errors[0].args[1], errors[0].args
    assert got == [dev] and dev.owner is None and dev.opened == 2, (got, dev.owner, dev.opened)
    del devices.registry["fake0"]


@test
def device_events_reach_only_the_subscriber():
    reset()
    dev = devices.register(FakeDevice())
    got = []

    async def main():
        h = syscalls.acquire("fake0")
        dev.post(1)  # not subscribed: dropped
        syscalls.subscribe(h, devices.EVENT_RX)
        dev.post(devices.EVENT_RX | devices.EVENT_LINK)  # only RX is wanted
        got.extend(await syscalls.wait(0.1))

    run_apps(("sub", main))
    assert got == [(dev, devices.EVENT_RX)], got
    del devices.registry["fake0"]


# ---------------------------------------------------------------------------------------
# DMA pool


@test
def pool_first_fit_and_coalescing():
    region = bytearray(4096)
    import uctypes
    pool = Pool(lambda n: memoryview(region), uctypes.addressof, 4096)
    a, _ = pool.alloc(100)
    b, _ = pool.alloc(1000)
    c, _ = pool.alloc(64)
    a[0] = 1
    assert pool.free_bytes() == 4096 - 128 - 1024 - 64, pool.free_bytes()
    pool.free(b)
    d, charged = pool.alloc(900)
    assert uctypes.addressof(d) == uctypes.addressof(b) and charged == 960, "first fit reuses b's hole"
    pool.free(a)
    pool.free(c)
    pool.free(d)
    assert pool.free_list == [[0, 4096]], pool.free_list
    try:
        pool.alloc(5000)
    except OSError:
        pass
    else:
        raise AssertionError("expected ENOMEM")


# ---------------------------------------------------------------------------------------
# rawecho's frame handling against a fake NIC (the _nic API: tx_buffer/tx_send/mac)


class FakeNic:
    def __init__(self):
        self.sent = []
        self.bufs = {}
        self.next_id = 0

    def mac(self):
        return b"\x52\x54\x00\x12\x34\x56"

    def tx_buffer(self):
        self.next_id += 1
        buf = bytearray(1536)
        self.bufs[self.next_id] = buf
        return memoryview(buf), self.next_id

    def tx_send(self, tx_id, length):
        self.sent.append(bytes(self.bufs.pop(tx_id)[:length]))

    def tx_free(self, tx_id):
        self.bufs.pop(tx_id)


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_frame(payload, src=b"\x0a\x00\x02\x02", dst=b"\x0a\x00\x02\x0f", dport=7):
    import struct
    udp_len = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    csum = _csum(pseudo + struct.pack("!HHHH", 40000, dport, udp_len, 0) + payload) or 0xFFFF
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 9, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    eth = b"\x52\x54\x00\x12\x34\x56" + b"\x52\x54\x00\x9a\x00\x01" + b"\x08\x00"
    return eth + ip + struct.pack("!HHHH", 40000, dport, udp_len, csum) + payload


@test
def rawecho_udp_swap_and_checksums():
    from apps import rawecho
    nic = FakeNic()
    echo = rawecho.Echo(nic, rawecho.parse_ip("10.0.2.15"), 7)
    for size in (0, 1, 100, 1472):
        payload = bytes((i * 7) & 0xFF for i in range(size))
        frame = _udp_frame(payload)
        assert echo.handle(memoryview(frame)) == 0
        out = nic.sent.pop()
        assert len(out) == max(60, len(frame)), (size, len(out))
        assert out[0:6] == frame[6:12] and out[6:12] == frame[0:6]
        assert out[26:30] == frame[30:34] and out[30:34] == frame[26:30]
        assert out[34:36] == frame[36:38] and out[36:38] == frame[34:36]
        assert out[42:42 + size] == payload
        assert _csum(out[14:34]) == 0, "IPv4 header checksum"
        pseudo = out[26:34] + bytes((0, 17)) + out[38:40]
        assert _csum(pseudo + out[34:42 + size]) == 0, "UDP checksum"


@test
def rawecho_arp_and_malformed():
    from apps import rawecho
    import struct
    nic = FakeNic()
    echo = rawecho.Echo(nic, rawecho.parse_ip("10.0.2.15"), 7)
    asker = b"\x52\x54\x00\x9a\x00\x01"
    arp = (b"\xff" * 6 + asker + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
           + asker + b"\x0a\x00\x02\x02" + bytes(6) + b"\x0a\x00\x02\x0f")
    echo.handle(memoryview(arp))
    out = nic.sent.pop()
    assert out[0:6] == asker and out[20:22] == b"\x00\x02" and out[22:28] == nic.mac()
    assert out[28:32] == b"\x0a\x00\x02\x0f" and out[32:42] == arp[22:32], out
    other = arp[:38] + b"\x0a\x00\x02\x63"
    echo.handle(memoryview(other))
    good = _udp_frame(b"x" * 50)
    bad = [b"", good[:13], good[:30], good[:41], arp[:30], good[:-10]]
    for i in (14, 16, 17, 38, 39):
        mutated = bytearray(good)
        mutated[i] = 0xFF
        bad.append(bytes(mutated))
    for frame in bad:
        echo.handle(memoryview(frame))
    assert nic.sent == [], "no reply to malformed frames or ARP for another address"
    assert rawecho.stats["malformed"] >= 8, rawecho.stats


def main():
    failed = 0
    for fn in TESTS:
        try:
            fn()
            print("PASS", fn.__name__)
        except Exception as e:
            failed += 1
            print("FAIL %s: %r" % (fn.__name__, e))
            sys.print_exception(e)
    print("DONE %d tests, %d failed" % (len(TESTS), failed))


main()
