# The syscall layer: the only door between apps and the kernel, after Manticore's ABI
# (exit, wait, console_print, subscribe, getevents, get_config, acquire, vmspace_alloc).
#
#     from kernel import syscalls as sc
#
#     async def main():
#         nic = sc.acquire("eth0")            # OSError(EBUSY) if another app has it
#         sc.subscribe(nic, sc.EVENT_RX)
#         while True:
#             for handle, bits in await sc.wait():
#                 ...
#
# Every call acts for the calling app (the one whose task runs; at the REPL, the REPL).
# docs/syscalls.md describes each call with an example.
import errno

import asyncio

from . import config, devices, sched, smp
from .channels import Channel
from .devices import EBUSY  # noqa: F401 (for apps: errno has no EBUSY)
from .devices import EVENT_INPUT, EVENT_LINK, EVENT_RX, EVENT_TIMER, EVENT_TX  # noqa: F401
from .dma import Pool

# ---------------------------------------------------------------------------------------
# Devices and events


def acquire(name):
    """Exclusive use of a device or device queue ("eth0", "console"); OSError(EBUSY) if taken."""
    return devices.acquire(name, sched.caller())


def release(handle):
    """Give back a device or timer before the app ends (the kernel does it at the end)."""
    _check_owner(handle)
    handle.detach()


def subscribe(handle, events):
    """Queue the given event bits of a handle for this app (0: stop)."""
    _check_owner(handle)
    handle.subscribe(events)


def getevents():
    """The events queued for this app, [(handle, bits)], without waiting; the queue empties."""
    return sched.caller().events.take()


async def wait(timeout=None):
    """Suspend the app until an event arrives (or timeout seconds passed); returns getevents()."""
    queue = sched.caller().events
    return await queue.wait(None if timeout is None else int(timeout * 1000))


def readable(stream):
    """Awaitable: suspend the calling task until `stream` (a socket, sys.stdin) has data.

    For sockets asyncio's streams do not cover, e.g. UDP: `await sc.readable(sock)`, then a
    non-blocking recvfrom. The wait is select.poll's, so the core halts meanwhile."""
    return _wait_io(asyncio.core._io_queue.queue_read, stream)


def writable(stream):
    """Awaitable: suspend the calling task until `stream` can take more data."""
    return _wait_io(asyncio.core._io_queue.queue_write, stream)


def _wait_io(queue, stream):
    # A generator is awaitable in MicroPython; yielding the queue call parks the task on the
    # stream until the event loop's poll reports it ready (as extmod/asyncio/stream.py does).
    yield queue(stream)


def _check_owner(handle):
    owner = getattr(handle, "owner", None)
    if owner is not sched.caller():
        raise OSError(errno.EPERM, "%r does not belong to '%s'" % (handle, sched.caller().name))


# ---------------------------------------------------------------------------------------
# Timers: an event source like a device.


class Timer:
    """A timer handle: posts EVENT_TIMER to its owner every period_ms (or once)."""

    def __init__(self, app, period_ms, repeat):
        self.owner = app
        self.period_ms = period_ms
        self.repeat = repeat
        self.mask = 0
        self.fired = 0
        # The ticking is the kernel's work, not the app's: a plain asyncio task.
        self._task = sched._asyncio_create_task(self._run())

    async def _run(self):
        while True:
            await asyncio.sleep_ms(self.period_ms)
            self.fired += 1
            if self.mask & EVENT_TIMER and self.owner is not None:
                self.owner.events.post(self, EVENT_TIMER)
            if not self.repeat:
                return

    def subscribe(self, events):
        self.mask = events

    def detach(self):
        if self.owner is None:
            return
        if self in self.owner.resources:
            self.owner.resources.remove(self)
        self.owner = None
        if not self._task.done():
            self._task.cancel()

    def __repr__(self):
        return "<timer %d ms%s>" % (self.period_ms, "" if self.repeat else " once")


def timer(period_ms, repeat=True):
    """A timer event source: subscribe(t, EVENT_TIMER) to get its ticks."""
    app = sched.caller()
    t = Timer(app, period_ms, repeat)
    app.resources.append(t)
    return t


# ---------------------------------------------------------------------------------------
# Configuration, console, exit


def get_config(key, default=None):
    """A command line option (str) or boot fact (memory, heap, dma, cpus, heap_free, ...)."""
    return config.get(key, default)


def console_print(*args):
    """Print to the serial console (as print)."""
    print(*args)


def exit(code=0):
    """End the calling app (all its tasks) with this exit code; does not return."""
    raise SystemExit(code)


# ---------------------------------------------------------------------------------------
# DMA buffers (vmspace_alloc)


def _address(buf):
    import _kernel
    return _kernel.address(buf)


def _carve(size):
    import _kernel
    return _kernel.dma_carve(size)


pool = Pool(_carve, _address, 512 * 1024)
ALLOC_LIMIT = 128 * 1024  # per app, unless the command line says alloc_limit=BYTES


class _Buffers:
    """An app's DMA buffers, as one resource: freed together when the app ends."""

    def __init__(self, app):
        self.owner = app
        self.bufs = []

    def detach(self):
        bufs = self.bufs
        self.bufs = []
        for buf in bufs:
            self.owner.dma_bytes -= pool.free(buf)


def _buffers(app):
    for resource in app.resources:
        if isinstance(resource, _Buffers):
            return resource
    resource = _Buffers(app)
    app.resources.append(resource)
    return resource


def alloc(size):
    """A zeroed DMA-capable buffer (memoryview) of size bytes, within the app's limit."""
    app = sched.caller()
    limit = int(config.get("alloc_limit", ALLOC_LIMIT))
    if app.dma_bytes + size > limit:
        raise OSError(errno.ENOMEM, "app '%s' would exceed its DMA limit of %d bytes (%d in use)"
                      % (app.name, limit, app.dma_bytes))
    buf, charged = pool.alloc(size)
    app.dma_bytes += charged
    _buffers(app).bufs.append(buf)
    return buf


def free(buf):
    """Give a buffer from alloc() back."""
    app = sched.caller()
    offset = pool.offset_of(buf)
    for resource in app.resources:
        if isinstance(resource, _Buffers):
            for i, mine in enumerate(resource.bufs):
                if pool.offset_of(mine) == offset:
                    resource.bufs.pop(i)
                    app.dma_bytes -= pool.free(mine)
                    return
    raise ValueError("not a buffer of app '%s'" % app.name)


# ---------------------------------------------------------------------------------------
# Introspection (read-only)


def ps():
    """Print the apps with state, wake-ups and CPU time (kernel.ps())."""
    sched.ps()


def whoami():
    return sched.caller().name


def cpu():
    """The index of the CPU the calling app runs on (0 at the REPL)."""
    return smp.cpu_id()


def channel(name, slots=64, size=256):
    """The channel `name` (made on first use): a bounded queue of messages of at most `size`
    bytes, `slots` deep, between apps on any CPUs. See kernel/channels.py."""
    return Channel(name, slots, size)



def last_wake_latency_us():
    """Microseconds from an event's post to the wake-up of the app's last sleeping wait()."""
    return sched.caller().events.latency_us
