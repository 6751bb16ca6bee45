# The subset of manticore's syscall layer (kernel/syscalls.py, docs/syscalls.md) that the
# benchmarked apps use, on Linux under MicroPython's unix port, with the same meaning:
#
#     from kernel import syscalls as sc
#     await sc.readable(sock)        # park the task until the socket has data
#
# The waits go through asyncio's poll-based I/O queue, exactly as on manticore, so the
# event loop sleeps in poll(2) meanwhile. get_config reads /proc/cmdline, as manticore's
# reads its kernel command line. Calls about manticore's own devices (acquire, subscribe,
# wait, DMA buffers) have no Linux counterpart here and are left out on purpose: an app
# that needs them is not a peer benchmark.
import asyncio


def readable(stream):
    """Awaitable: suspend the calling task until `stream` (a socket, sys.stdin) has data."""
    return _wait_io(asyncio.core._io_queue.queue_read, stream)


def writable(stream):
    """Awaitable: suspend the calling task until `stream` can take more data."""
    return _wait_io(asyncio.core._io_queue.queue_write, stream)


def _wait_io(queue, stream):
    # A generator is awaitable in MicroPython; yielding the queue call parks the task until
    # the loop's poll reports the stream ready (as extmod/asyncio/stream.py does). The
    # peer's socket wrapper (peersocket) is unwrapped to the port's own socket, so that
    # registering with the poller needs no Python call to find its file descriptor.
    yield queue(getattr(stream, "_sock", stream))


def _cmdline():
    try:
        with open("/proc/cmdline") as f:
            return f.read().split()
    except OSError:
        return []


def get_config(key, default=None):
    """A key=value word of the kernel command line (/proc/cmdline), as a str."""
    for word in _cmdline():
        k, sep, v = word.partition("=")
        if sep and k == key:
            return v
    return default


def console_print(*args):
    """Print to the console (as print)."""
    print(*args)


def exit(code=0):
    """End the calling app with this exit code; does not return."""
    raise SystemExit(code)
