# Per-app event queues: what subscribe/getevents/wait (kernel/syscalls.py) are made of.
#
# A device (or timer) posts (handle, bits) to the queue of the app that subscribed to it.
# Posting is safe from the soft-IRQ path (a micropython.schedule callback, which may run
# between any two bytecodes of the loop): bits for the same handle are OR-ed together, so a
# queue never holds more entries than the app has handles, and taking the events swaps the
# table out in one store, so an event posted meanwhile lands either in what is taken or in
# what stays.
from time import ticks_us, ticks_diff

import asyncio


class EventQueue:
    def __init__(self):
        self.pending = {}  # handle -> OR of event bits not yet taken
        self.flag = asyncio.ThreadSafeFlag()
        self.posted = 0  # events posted, for ps()
        self.posted_us = None  # ticks_us() of the oldest event not yet taken
        self.latency_us = -1  # post -> wake of the last wait() that slept

    def post(self, handle, bits):
        pending = self.pending
        pending[handle] = pending.get(handle, 0) | bits
        self.posted += 1
        if self.posted_us is None:
            self.posted_us = ticks_us()
        self.flag.set()

    def take(self):
        """The pending events as [(handle, bits)], oldest handle first; the queue is empty after."""
        pending = self.pending
        if not pending:
            return []
        self.pending = {}
        self.posted_us = None
        return list(pending.items())

    def __len__(self):
        return len(self.pending)

    async def wait(self, timeout_ms=None):
        """Suspend until an event is pending (or timeout_ms passed); then take the events."""
        if not self.pending:
            if timeout_ms is None:
                while not self.pending:
                    await self.flag.wait()
            else:
                try:
                    await asyncio.wait_for_ms(self._wait_pending(), timeout_ms)
                except asyncio.TimeoutError:
                    return []
            posted = self.posted_us
            if posted is not None:
                self.latency_us = ticks_diff(ticks_us(), posted)
        return self.take()

    async def _wait_pending(self):
        while not self.pending:
            await self.flag.wait()

    def clear(self):
        self.pending = {}
        self.posted_us = None
