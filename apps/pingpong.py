# pingpong: message round trips over two channels, for the cross-core latency figures of
# `invoke bench smp`, with apps/pong.py as the far end: app=pingpong@0,pong@1 across two
# CPUs, app=pingpong@0,pong@0 on one.
#
#   rounds=N (default 1000): round trips; prints "pingpong: N rounds on CPU a<->b:
#   median X us, p99 Y us, wake median Z us", where wake is the time from sending a message
#   to the far end's task running (it includes the far CPU's wake from halt by IPI).
from time import ticks_us, ticks_diff

from kernel import syscalls as sc


async def main():
    rounds = int(sc.get_config("rounds", "1000"))
    there = sc.channel("ping", slots=4, size=32)
    back = sc.channel("pong", slots=4, size=32)
    times = []
    wakes = []
    peer = -1
    for i in range(rounds + 10):
        start = ticks_us()
        await there.put(b"%d" % start)
        reply = await back.get()
        elapsed = ticks_diff(ticks_us(), start)
        woke, _, cpu = reply.partition(b" ")
        peer = int(cpu)
        if i >= 10:  # the first ones warm up
            times.append(elapsed)
            wakes.append(ticks_diff(int(woke), start))
    await there.put(b"end")
    times.sort()
    wakes.sort()
    sc.console_print("pingpong: %d rounds on CPU %d<->%d: median %d us, p99 %d us, "
                     "wake median %d us" % (rounds, sc.cpu(), peer, times[len(times) // 2],
                                            times[len(times) * 99 // 100], wakes[len(wakes) // 2]))
