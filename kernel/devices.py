# The device registry: named devices and device queues that apps acquire for exclusive use.
#
# acquire(name, app) hands the device to one app; a second acquire fails with
# OSError(EBUSY) naming the holder; the kernel releases everything an app holds when it ends.
# A device posts events (bits) to its owner's EventQueue for the bits the owner subscribed
# to; the posting runs in the soft-IRQ path (a scheduled callback), never in a hard IRQ.
#
# Devices here: "console" (serial input; the REPL holds it when it runs) and "eth0" (the
# raw virtio-net queue, when the image has the _nic module).
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
    """[(name, owner name or None)]"""
    return [(name, registry[name].owner.name if registry[name].owner else None)
            for name in sorted(registry)]


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
# eth0: the raw NIC queue (modnic.c). While an app holds it lwIP is detached from the NIC and
# the app receives frames as memoryviews over the DMA buffers (recv/release) and transmits
# from kernel buffers (tx_buffer/tx_send/tx_free) or by copy (send). The handle's methods are
# _nic's own functions, bound at acquire and replaced at release, so the fast path has no
# kernel code in it.

_NIC_CALLS = ("recv", "release", "send", "tx_buffer", "tx_send", "tx_free", "mac", "link",
              "stats")


class Nic(Device):
    def __init__(self, nic):
        super().__init__("eth0")
        self._nic = nic
        self.MTU = nic.MTU
        self.BUFFER_SIZE = nic.BUFFER_SIZE
        for call in _NIC_CALLS:
            setattr(self, call, _closed)

    def open(self):
        nic = self._nic
        nic.acquire()  # OSError(EBUSY) if someone else (outside the kernel) has it
        for call in _NIC_CALLS:
            setattr(self, call, getattr(nic, call))
        nic.on_rx(self.post)

    def close(self):
        nic = self._nic
        for call in _NIC_CALLS:
            setattr(self, call, _closed)
        try:
            nic.on_rx(None)
        finally:
            nic.release_nic()


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
    if _nic.present():
        register(Nic(_nic))
