# CPUs, as each CPU's kernel sees them: which CPU this is, the others' accounting, app
# placement (app=NAME@CPU), and wake-ups by inter-processor interrupt.
#
# Every CPU runs an interpreter of its own (docs/multicore.md) with its own copy of this
# module. What CPUs share is in C (_smp): per-CPU accounting, the app board (every app's
# CPU, state and exit code) and channels. A wake-up is an IPI to a CPU; there its C handler
# schedules _on_wake, which sets the flags of the tasks waiting for one (channel readers and
# writers, CPU 0 waiting for the others' apps to end).
try:
    import _smp
except ImportError:  # the unix port (host tests): one CPU
    _smp = None

DEFAULT_CPU = 0  # where an app without @CPU runs: beside the REPL and lwIP (sockets)


def cpu_id():
    return _smp.cpu_id() if _smp is not None else 0


def cpu_count():
    return _smp.cpu_count() if _smp is not None else 1


def parse_placement(text):
    """"echod@0,spin@1,ticker" -> [("echod", 0), ("spin", 1), ("ticker", None)].

    A CPU that is not a number stays a string, so that the caller can name it in an error.
    """
    placed = []
    for word in text.split(","):
        if not word:
            continue
        name, at, where = word.partition("@")
        cpu = None
        if at:
            try:
                cpu = int(where)
            except ValueError:
                cpu = where
        placed.append((name, cpu))
    return placed


def placement_error(name, cpu, cpus=None):
    """Why app `name` cannot run on `cpu`, or None when it can."""
    if cpu is None:
        return None
    count = cpu_count()
    if not isinstance(cpu, int) or cpu < 0:
        return "app '%s' placed on CPU '%s', which is not a CPU number" % (name, cpu)
    if cpu >= count:
        return ("app '%s' placed on CPU %d, but this machine has %d CPU%s (0-%d)"
                % (name, cpu, count, "" if count == 1 else "s", count - 1))
    if cpus is not None and not cpus[cpu]["online"]:
        return "app '%s' placed on CPU %d, which did not come online" % (name, cpu)
    return None


# ---------------------------------------------------------------------------------------
# Wake-ups

_waiting = []  # ThreadSafeFlags to set at the next wake-up of this CPU


def _on_wake(_):
    global _waiting
    flags = _waiting
    _waiting = []
    for flag in flags:
        flag.set()


def init():
    if _smp is not None:
        _smp.on_wake(_on_wake)


def arm(flag):
    """Have `flag` set at this CPU's next wake-up (arm before checking, then wait)."""
    if flag not in _waiting:
        _waiting.append(flag)


def disarm(flag):
    try:
        _waiting.remove(flag)
    except ValueError:
        pass


def wake(cpu):
    if _smp is not None:
        _smp.wake(cpu)


async def wait_wake(timeout_ms=None):
    """Sleep until this CPU is woken (or timeout_ms passed)."""
    # asyncio is imported here, not at the top: this module loads at every boot, asyncio
    # only with the scheduler (kernel/boot.py).
    import asyncio
    flag = asyncio.ThreadSafeFlag()
    arm(flag)
    try:
        if timeout_ms is None:
            await flag.wait()
        else:
            try:
                await asyncio.wait_for_ms(flag.wait(), timeout_ms)
            except asyncio.TimeoutError:
                pass
    finally:
        disarm(flag)


# ---------------------------------------------------------------------------------------
# The CPUs, for kernel.cpus()

STATE_NAMES = ("runnable", "waiting", "done", "failed")


def board():
    """Every CPU's apps: [(slot, cpu, name, state, exit code or None, wakeups, cpu_us, end)]."""
    if _smp is None:
        return []
    rows = []
    for slot, cpu, name, state, code, wakeups, cpu_us, end in _smp.board():
        rows.append((slot, cpu, name, STATE_NAMES[state], None if code < 0 else code,
                     wakeups, cpu_us, end))
    return rows


def cpus():
    """One dict per CPU: cpu, apic_id, online, apps (names placed there), busy/idle time
    (microseconds since it came online), busy (fraction), interrupts, wakeups, heap."""
    if _smp is None:
        return [{"cpu": 0, "apic_id": 0, "online": True, "apps": [], "busy_us": 0,
                 "idle_us": 0, "busy": 0.0, "interrupts": 0, "wakeups": 0, "heap": 0}]
    apps = {}
    for row in board():
        apps.setdefault(row[1], []).append(row[2])
    result = []
    for cpu, apic, online, failed, up_us, idle_us, irqs, wakeups, heap, ready in _smp.cpus():
        busy_us = max(up_us - idle_us, 0)
        result.append({
            "cpu": cpu, "apic_id": apic, "online": online, "failed": failed,
            "apps": apps.get(cpu, []), "busy_us": busy_us, "idle_us": idle_us,
            "busy": busy_us / up_us if up_us else 0.0, "interrupts": irqs,
            "wakeups": wakeups, "heap": heap, "ready": ready,
        })
    return result


def print_cpus(out=print):
    out("%-4s %-5s %-7s %6s %12s %10s %8s  %s" % ("CPU", "APIC", "ONLINE", "BUSY", "IDLE_US",
                                                  "IRQS", "WAKEUPS", "APPS"))
    for c in cpus():
        out("%-4d %-5d %-7s %5.1f%% %12d %10d %8d  %s" % (
            c["cpu"], c["apic_id"], "yes" if c["online"] else "NO", c["busy"] * 100,
            c["idle_us"], c["interrupts"], c["wakeups"], ",".join(c["apps"])))
