# The device registry: named devices and device queues that apps acquire for exclusive use.
#
# acquire(name, app) hands the device to one app; a second acquire fails with
# OSError(EBUSY) naming the holder; the kernel releases everything an app holds when it ends.
# A device posts events (bits) to its owner's EventQueue for the bits the owner subscribed
# to; the posting runs in the soft-IRQ path (a scheduled callback), never in a hard IRQ.
#
# Devices here: "console" (serial input; the REPL holds it when it runs) and "eth0",
# "eth0.q1", ..., "eth1", ... (the raw virtio-net queue pairs, when the image has _nic).
import errno

# MicroPython's errno module has no EBUSY; this is its value in py/mperrno.h (and Linux).
EBUSY = getattr(errno, "EBUSY", 16)

EVENT_RX = 1  # a frame or input arrived
EVENT_TX = 2  # transmit space came back
EVENT_LINK = 4  # the link changed
EVENT_INPUT = 1  # console: bytes arrived (same bit as RX)
EVENT_TIMER = 1  # timer: it fired


def _closed(*args):
    raise OSError(errno.EBADF, "device handle released")


class Device:
    """A named resource with at most one owner. Subclasses open/close the hardware side."""

    def __init__(self, name):
        self.name = name
        self.owner = None  # the App holding it
        self.mask = 0  # the event bits the owner subscribed to

    # Called by the registry.
    def open(self):
        pass

    def close(self):
        pass

    def post(self, bits):
        # Soft-IRQ path: keep it short, allocate nothing when nothing is subscribed.
        owner = self.owner
        if owner is not None:
            bits &= self.mask
            if bits:
                owner.events.post(self, bits)

    def subscribe(self, events):
        self.mask = events

    def detach(self):
        """Give the device back (syscalls.release; the kernel does it when the owner ends)."""
        owner = self.owner
        if owner is None:
            return
        self.owner = None
        self.mask = 0
        try:
            self.close()
        finally:
            if self in owner.resources:
                owner.resources.remove(self)

    def __repr__(self):
        return "<device %s%s>" % (self.name, " held by " + self.owner.name if self.owner else "")


registry = {}


def register(device):
    registry[device.name] = device
    return device


def acquire(name, app):
    device = registry.get(name)
    if device is None:
        raise OSError(errno.ENODEV, "no device '%s' (devices: %s)" % (name, ", ".join(sorted(registry))))
    if device.owner is not None:
        owner = device.owner
        holder = "app '%s'" % owner.name if owner.entry else "the " + owner.name.upper()
        raise OSError(EBUSY, "device '%s' is busy: held by %s" % (name, holder))
    device.open()
    device.owner = app
    device.mask = 0
    app.resources.append(device)
    return device


def listing():
    """[(name, owner name or None, details)]: details are None, or for a NIC queue pair
    {'queue': pair, 'vector': (rx, tx), 'cpu': n, 'owner': 'raw'|'lwip'|'none'}."""
    out = []
    for name in sorted(registry):
        device = registry[name]
        info = getattr(device, "info", None)
        out.append((name, device.owner.name if device.owner else None, info() if info else None))
    return out


# ---------------------------------------------------------------------------------------
# console: the serial input. The receive interrupt schedules _input (soft IRQ) while an app
# holds it; read() takes the bytes that arrived.


class Console(Device):
    def __init__(self, kernel_module):
        super().__init__("console")
        self._k = kernel_module
        self.read = _closed

    def open(self):
        self.read = self._k.console_read
        self._k.console_on_input(self.post)

    def subscribe(self, events):
        self.mask = events
        # Input that arrived before the subscription is news too.
        if self._k.console_pending():
            self.post(EVENT_INPUT)

    def close(self):
        self._k.console_on_input(None)
        self.read = _closed


# ---------------------------------------------------------------------------------------
# eth0, eth0.q1, ..., eth1, ...: raw NIC queue pairs (modnic.c). "ethN" is queue pair 0 of NIC
# N; while an app holds the pair lwIP is detached from it (lwIP only ever uses pair 0 of the
# NIC named by lwip=, default eth0). The app receives frames as memoryviews over the DMA
# buffers (recv/recv_batch/release), transmits from kernel buffers (tx_buffer/tx_send/tx_free,
# or send by copy) or in place from a received buffer (tx_inplace), batches notifications
# (kick=False, tx_kick) and may busy-poll (poll(True)). The handle's methods are the queue
# object's own, bound at acquire and replaced at release, so the fast path has no kernel code.

_NIC_CALLS = ("recv", "recv_batch", "release", "send", "tx_buffer", "tx_send", "tx_free",
              "tx_kick", "tx_inplace", "echo_batch", "poll", "mac", "link", "stats",
              "rx_irq_us")


class Nic(Device):
    def __init__(self, nic, name, queue, pair=0):
        super().__init__(name)
        self.pair = pair
        self._nic = nic
        self._queue = queue  # _nic.Queue
        self.MTU = nic.MTU
        self.BUFFER_SIZE = nic.BUFFER_SIZE
        self.returned = None  # (rx, tx) buffers given back at the last release
        for call in _NIC_CALLS:
            setattr(self, call, _closed)

    def info(self):
        s = self._queue.stats()
        return {"queue": self.pair, "vector": (s["vector_rx"], s["vector_tx"]), "cpu": s["cpu"],
                "owner": s["owner"]}

    def open(self):
        q = self._queue
        q.acquire()  # OSError(EBUSY) if someone else (outside the kernel) has it
        for call in _NIC_CALLS:
            setattr(self, call, getattr(q, call))
        q.on_rx(self.post)

    def close(self):
        q = self._queue
        for call in _NIC_CALLS:
            setattr(self, call, _closed)
        try:
            q.on_rx(None)
        finally:
            self.returned = q.release_queue()


def probe():
    """Register what this image and machine have."""
    try:
        import _kernel
    except ImportError:
        _kernel = None
    if _kernel is not None:
        register(Console(_kernel))
    try:
        import _nic
    except ImportError:
        return
    for name, nic_index, pair, _rx, _tx, _cpu, _owner in _nic.queues():
        register(Nic(_nic, name, _nic.queue(nic_index, pair), pair))
