# rxwake: measures how soon wait() returns after a frame arrives. It owns "eth0", sleeps in
# wait() on EVENT_RX, and at each wake-up prints the time from the RX interrupt (stamped by
# the driver in hard IRQ context, _nic.rx_irq_us()) to the wake-up, and from the soft IRQ's
# post to the wake-up. Frames are only counted and released. Ends with 0 after rxwake_n
# wake-ups (default 10).
import _nic
from time import ticks_diff, ticks_us

from kernel import syscalls as sc


async def main():
    nic = sc.acquire("eth0")
    sc.subscribe(nic, sc.EVENT_RX)
    wakes = int(sc.get_config("rxwake_n", "10"))
    while nic.recv() is not None:  # nothing can be queued yet, but be sure
        pass
    sc.console_print("rxwake: ready")
    n = 0
    while n < wakes:
        events = await sc.wait()
        woke = ticks_us()
        irq_to_wake = ticks_diff(woke, _nic.rx_irq_us())
        frames = 0
        while True:
            got = nic.recv()
            if got is None:
                break
            nic.release(got[1])
            frames += 1
        if not frames:
            continue
        n += 1
        sc.console_print("rxwake: %d frames, irq->wake %d us, post->wake %d us, events %d"
                         % (frames, irq_to_wake, sc.last_wake_latency_us(), len(events)))
    return 0
