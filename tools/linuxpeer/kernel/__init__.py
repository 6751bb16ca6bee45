# The Linux peer's stand-in for manticore's `kernel` package (tools/linuxpeer/, frozen into
# the peer's MicroPython unix port): only the syscall layer, and of that only what the
# apps the peer runs (apps/echod.py, unchanged) use. On Linux the scheduler, devices and
# app loader are Linux's and peer_run.py's, so nothing else is here.
from . import syscalls

sys = syscalls  # kernel.sys, as on manticore
