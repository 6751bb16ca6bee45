# pong: the far end of pingpong: answers every message on channel "ping" on channel "pong"
# with the time its task woke up and its CPU, until b"end".
from time import ticks_us

from kernel import syscalls as sc


async def main():
    there = sc.channel("ping", slots=4, size=32)
    back = sc.channel("pong", slots=4, size=32)
    me = sc.cpu()
    while True:
        msg = await there.get()
        woke = ticks_us()
        if msg == b"end":
            return 0
        await back.put(b"%d %d" % (woke, me))
