# The manticore kernel, in Python: scheduler (sched), syscall layer (syscalls, also
# kernel.sys), events, device registry (devices), DMA buffers (dma), command line (config)
# and the app loader (boot). frozen/_boot.py calls kernel.boot.main().
#
#   >>> kernel.ps()          # the apps: state, wake-ups, CPU time
#   >>> kernel.lsdev()       # [(device name, holder or None)]
#   >>> kernel.cpus()        # one dict per CPU: online, apps, busy/idle time, interrupts
from .smp import cpus, print_cpus  # noqa: F401 (kernel.cpus() at the REPL)


def ps(out=print):
    # The scheduler (with asyncio) loads on first use, not at boot (kernel/boot.py).
    from . import sched
    return sched.ps(out)


def ps_rows():
    from . import sched
    return sched.ps_rows()


def __getattr__(name):
    # Submodules load on first use. The syscall layer (with channels and DMA pools) is not
    # imported here: a boot to the bare REPL does not need it (boottrace: ~1 ms of a cold TCG
    # boot); an app's `from kernel import syscalls` or kernel.sys at the REPL loads it.
    # MicroPython asks this hook before it imports a submodule for `from . import name`, so
    # the hook imports it (by full name: `from . import` would come back here).
    try:
        module = __import__("kernel." + ("syscalls" if name == "sys" else name), None, None,
                            ("__name__",))
    except ImportError:
        raise AttributeError(name)
    if module.__name__ == "kernel.syscalls":
        globals()["sys"] = module
    return module


def lsdev():
    from . import devices
    return devices.listing()
