# The manticore kernel, in Python: scheduler (sched), syscall layer (syscalls, also
# kernel.sys), events, device registry (devices), DMA buffers (dma), command line (config)
# and the app loader (boot). frozen/_boot.py calls kernel.boot.main().
#
#   >>> kernel.ps()          # the apps: state, wake-ups, CPU time
#   >>> kernel.lsdev()       # [(device name, holder or None)]
#   >>> kernel.cpus()        # one dict per CPU: online, apps, busy/idle time, interrupts
from . import syscalls
from .smp import cpus, print_cpus  # noqa: F401 (kernel.cpus() at the REPL)
from .sched import ps, ps_rows  # noqa: F401 (kernel.ps() at the REPL)

sys = syscalls  # kernel.sys.acquire(...), as the syscall layer is also known


def lsdev():
    from . import devices
    return devices.listing()
