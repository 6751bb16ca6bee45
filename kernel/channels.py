# Channels: bounded queues of bytes-like messages between apps, on one CPU or across CPUs.
#
#     ch = kernel.sys.channel("jobs", slots=64, size=256)   # both ends open it by name
#     await ch.put(b"work")        # waits while the channel is full (back-pressure)
#     msg = await ch.get()         # waits for a message; the CPU halts meanwhile
#     ch.send(b"x") / ch.recv()    # the same without waiting: False / None instead
#
# The ring lives in memory all CPUs share (C, _smp.Channel): a message is copied in by the
# sender and out by the receiver, so no Python object crosses from one CPU's heap to another.
# A receiver that finds the channel empty asks to be woken (want_read) and sleeps; the
# sender's CPU then sends it an inter-processor interrupt (or, on the same CPU, schedules the
# wake-up directly). docs/syscalls.md has the details.
import asyncio

from . import smp

try:
    import _smp
except ImportError:
    _smp = None


class Channel:
    def __init__(self, name, slots=64, size=256):
        if _smp is None:
            raise OSError("channels need the manticore kernel")
        self._ring = _smp.Channel(name, slots, size)
        self._flag = asyncio.ThreadSafeFlag()
        self.name = name

    def send(self, msg):
        """Queue msg; False (and nothing queued) when the channel is full."""
        return self._ring.send(msg)

    def recv(self):
        """The oldest message as bytes, or None when there is none."""
        return self._ring.recv()

    async def put(self, msg):
        """Queue msg, waiting while the channel is full."""
        ring = self._ring
        while not ring.send(msg):
            await self._sleep(ring.want_write)

    async def get(self):
        """The oldest message, waiting for one."""
        ring = self._ring
        while True:
            msg = ring.recv()
            if msg is not None:
                return msg
            await self._sleep(ring.want_read)

    async def _sleep(self, want):
        # Armed before asking: a wake-up that comes between the two still sets the flag.
        flag = self._flag
        smp.arm(flag)
        if want():
            smp.disarm(flag)
            return
        await flag.wait()

    def stats(self):
        return self._ring.stats()

    def __len__(self):
        return len(self._ring)

    def __repr__(self):
        return repr(self._ring)
