# Starting the kernel: read the command line, start the apps it names as tasks, then either
# run the event loop until the last app ends (and power off with its exit code), or hand the
# console to the REPL and run the loop whenever the REPL waits for a key.
#
#   app=NAME | app=a,b    run apps.NAME's main() as tasks
#   app=echod@0,spin@1    ... each on the CPU after its @ (default: CPU 0, smp.DEFAULT_CPU)
#   repl=1                keep the REPL beside the apps (default: REPL only without apps)
#   replcpu=K             run the REPL (and read the console) on CPU K instead of CPU 0, so
#                         that what is typed there never stalls the apps of CPU 0
#
# Every CPU runs this (each its own interpreter, docs/multicore.md). CPU 0 checks the whole
# list, reports bad placements, runs its own apps and the REPL, and powers off once the apps
# of every CPU have ended; another CPU runs the apps placed on it and then idles.
#
# The REPL and the loop share the one core through the REPL's idle hook: the port's console
# read (mp_hal_stdin_rx_chr) calls _kernel's idle hook while no key is waiting, and the hook
# runs asyncio until stdin is readable (a task polling sys.stdin). So apps run while the REPL
# waits at a prompt; a command typed at the REPL runs alone until it returns (or itself
# awaits asyncio: asyncio.run() at the REPL runs the apps too).
#
# The scheduler (kernel/sched.py, and asyncio with it) loads on first use: with the first app,
# or at the REPL with the first `import asyncio` (or kernel.ps(), or the syscall layer). A
# boot to the bare REPL has nothing to schedule, and importing them is ~3.4 ms of a cold TCG
# boot (boottrace). Until then the REPL waits for a key the plain way (no idle hook).
import sys

from . import config, devices, fs, net, smp

EXIT_UNKNOWN_APP = 127  # QEMU status (127 << 1) | 1 = 255, as a shell's "command not found"
EXIT_FAILED = 1  # an app that raised

try:
    import _kernel
except ImportError:  # the unix port (host tests)
    _kernel = None

try:
    import _smp
except ImportError:
    _smp = None


def frozen_apps():
    """The app names frozen into the image, sorted."""
    if _kernel is None:
        return []
    names = []
    for module in _kernel.frozen_modules():
        if module.startswith("apps.") and module != "apps.__init__":
            names.append(module[5:])
    names.sort()
    return names


def _loader(name):
    def load_and_run():
        module = fs.import_app(name)  # the filesystem's /apps first (kernel/fs.py)
        if module is None:
            module = __import__("apps." + name, None, None, ("main",))
        return module.main()

    return load_and_run


def start(names):
    if not names:
        return []
    sched = _scheduler()
    return [sched.spawn(name, _loader(name)) for name in names]


def _scheduler():
    """kernel.sched, loaded on first use (its load calls scheduler_loaded)."""
    from . import sched
    return sched


_repl_waiting = False  # the REPL started before the scheduler loaded


def scheduler_loaded(sched):
    """kernel/sched.py calls this once it has loaded: each app's end is reported, and a REPL
    that started before it becomes the "repl" app, with the loop running while it waits."""
    sched._end_hooks.append(_report_end)
    if _repl_waiting:
        start_repl(sched)


# ---------------------------------------------------------------------------------------
# Ending: the VM's exit status is the last app's exit code.


def power_off(code):
    import machine
    if code:
        print("kernel: exit status %d" % code)
        if _kernel is not None:
            _kernel.debug_exit(code)  # QEMU: status (code << 1) | 1
        print("kernel: no isa-debug-exit device; powering off (status 0)")
    machine.poweroff()


def _report_end(app):
    if app.state is _scheduler().FAILED:  # (an end hook: the scheduler is loaded)
        print("kernel: app '%s' failed (exit code %d)" % (app.name, app.exit_code))
    else:
        print("kernel: app '%s' exited with code %d" % (app.name, app.exit_code))

# ---------------------------------------------------------------------------------------
# The REPL beside the apps


_sched = None  # kernel.sched and asyncio.core, for _idle, once the REPL has the loop
_core = None


async def _stdin_ready():
    yield _core._io_queue.queue_read(sys.stdin)


def _idle():
    # Called by the REPL's console read when no key is waiting, and only for the REPL's own
    # reads (not input() in running code, see modkernel.c): the loop is not running, so a
    # cur_task left behind by Ctrl-C in asyncio.run() at the prompt is stale.
    core = _core
    core.cur_task = None
    task = _sched._asyncio_create_task(_stdin_ready())
    try:
        core.run_until_complete(task)
    finally:
        if not task.done():
            core._io_queue.remove(task)
            task.cancel()


def start_repl(sched=None):
    """The REPL becomes the "repl" app (what it starts is its) and runs the loop while it
    waits for a key; deferred, when the scheduler has not loaded, until it does."""
    global _repl_waiting, _sched, _core
    sched = sched or sys.modules.get("kernel.sched")
    if sched is None and _kernel is not None:
        _repl_waiting = True
        _kernel.on_first_import("asyncio", _scheduler)  # -> scheduler_loaded -> here
        return
    sched = sched or _scheduler()  # the unix port (host tests) has no import watch
    _repl_waiting = False
    if _kernel is not None:
        _kernel.on_first_import("asyncio", None)  # loaded some other way: stop watching
    from asyncio import core

    _sched, _core = sched, core
    if sched.repl_app is None:
        sched.repl_app = sched.App("repl")
    console = devices.registry.get("console")
    if console is not None and console.owner is None:
        console.owner = sched.repl_app  # the REPL reads the console
    if _kernel is not None:
        _kernel.set_idle_hook(_idle)


# ---------------------------------------------------------------------------------------
# Boot


class _CPU0Only:
    """Stands in for `socket` and `network` on the other CPUs: lwIP is CPU 0's."""

    def __init__(self, name):
        self.__name__ = name

    def __getattr__(self, attr):
        raise OSError("%s runs on CPU 0 (lwIP's); on CPU %d use a raw NIC queue or a channel"
                      % (self.__name__, smp.cpu_id()))


def _want_repl(options, placed):
    return options.get("repl", "0" if placed else "1") not in ("0", "no", "off")


def repl_cpu(options):
    """The CPU that runs the REPL (replcpu=K, default 0), or None when K is not usable."""
    text = options.get("replcpu")
    if text is None:
        return 0  # CPU 0 is always online; no need to ask _smp (boottrace: ~1.5 ms cold)
    try:
        cpu = int(text)
    except ValueError:
        return None
    cpus = smp.cpus()
    if cpu < 0 or cpu >= len(cpus) or not cpus[cpu]["online"]:
        return None
    return cpu


def _wait_until(done, timeout_ms=10000, step_ms=1):
    """Poll done() until it is true (True) or timeout_ms has passed (False), between CPUs."""
    import time
    start = time.ticks_ms()
    while not done():
        if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
            return False
        time.sleep_ms(step_ms)
    return True


def _console_taken_by(cpu):
    """On CPU 0: wait until `cpu` has taken the console (main_other_cpu does that first).
    Until then the console is CPU 0's, and CPU 0 returning from its boot script would start
    a second REPL beside the other CPU's (main.c runs one wherever the console is)."""
    return _wait_until(lambda: _smp.console_cpu() == cpu)


def _wait_cpu0_boot():
    """On the REPL's CPU: let CPU 0 print its boot lines (what is at /, boot.py, the apps)
    before the prompt, so that they never land in the middle of a REPL session."""
    _wait_until(lambda: smp.cpus()[0]["ready"], step_ms=5)


def main_other_cpu(cpu, placed, options):
    """The boot script on CPU `cpu` > 0: run the apps placed here, and the REPL when
    replcpu= names this CPU (then return at once: the port runs the REPL loop); else return
    when the apps have ended."""
    for module in ("socket", "network"):
        sys.modules[module] = _CPU0Only(module)
    names = [name for name, where in placed if where == cpu]
    known = frozen_apps()
    names = [name for name in names if name in known]  # CPU 0 reports unknown ones
    started = start(names)
    if _smp is not None:
        _smp.set_ready()
    if _want_repl(options, placed) and repl_cpu(options) == cpu:
        _smp.take_console()  # first: CPU 0 must not find the console its own (main.c)
        _wait_cpu0_boot()
        start_repl()
        return
    if not started:
        return
    print("kernel: CPU %d started %s" % (cpu, ", ".join(app.name for app in started)))
    import asyncio
    from asyncio import core

    sched = _scheduler()
    done = asyncio.Event()

    def on_end(app):
        if not sched.live_apps():
            done.set()

    sched._end_hooks.append(on_end)
    core.run_until_complete(sched._asyncio_create_task(done.wait()))


def _others_done():
    """True when every other CPU has started its apps and all of them have ended."""
    if _smp is None:
        return True
    sched = _scheduler()
    for c in smp.cpus()[1:]:
        if c["online"] and not c["ready"]:
            return False
    for row in smp.board():
        if row[1] != 0 and row[3] not in (sched.DONE, sched.FAILED):
            return False
    return True


def _last_exit_code():
    """The exit code of the app that ended last, on any CPU."""
    sched = _scheduler()
    best = None
    for row in smp.board():
        if row[3] in (sched.DONE, sched.FAILED) and (best is None or row[7] > best[7]):
            best = row
    if best is not None:
        return best[4] or 0
    last = sched.last_ended
    return last.exit_code if last is not None else 0


def _start_netrepl(value):
    """netrepl=PORT: the REPL over TCP too (_netrepl, netrepl.c), once the network is up."""
    try:
        port = int(value)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        print("kernel: netrepl=%s is not a TCP port (1-65535); no REPL over TCP" % value)
        return
    if net.start() is None:
        print("kernel: netrepl=%d needs a NIC; no REPL over TCP" % port)
        return
    import _netrepl

    if _netrepl.start(port):
        print("netrepl: the REPL on tcp port %d too (no authentication)" % port)


def _start_webrepl(password):
    """webrepl=PASSWORD: WebREPL on TCP 8266 (frozen webrepl.py)."""
    if net.start() is None:
        print("kernel: webrepl= needs a NIC; no WebREPL")
        return
    import webrepl

    try:
        webrepl.start(password)
    except (ValueError, OSError) as e:
        print("kernel: webrepl: %s; no WebREPL" % e)
        return
    print("webrepl: WebREPL on tcp port %d (password from the command line)" % webrepl.PORT)


def _check_placement(placed):
    """CPU 0's check of app=: an unknown app powers the machine off (EXIT_UNKNOWN_APP); a bad
    placement is reported and that app left out. Returns (the names to start on CPU 0,
    ["name@cpu" started elsewhere])."""
    known = frozen_apps()
    unknown = [name for name, where in placed if name not in known and not fs.find_app(name)]
    if unknown:
        print("kernel: unknown app%s %s; the frozen apps are: %s"
              % ("s" if len(unknown) > 1 else "", ", ".join("'%s'" % n for n in unknown),
                 ", ".join(known) or "(none)"))
        print("kernel: apps in %s: %s" % (fs.APPS_DIR, ", ".join(fs.disk_apps()) or "(none)"))
        power_off(EXIT_UNKNOWN_APP)

    cpus = smp.cpus()
    names = []
    elsewhere = []
    for name, where in placed:
        error = smp.placement_error(name, where, cpus)
        if error is None and where not in (None, 0) and name not in known:
            error = "app '%s' is on the filesystem, which is CPU 0's: place it there" % name
        if error is not None:
            print("kernel: %s; not started (the other apps start)" % error)
        elif where is None or where == 0:
            names.append(name)
        else:
            elsewhere.append("%s@%d" % (name, where))
    return names, elsewhere


def _boottrace(phase=None):
    """boottrace=1 (arch/x86_64/boottrace.h): mark the end of a boot phase; no phase: print
    the timeline (once, before the REPL's prompt or the apps' first output)."""
    if _kernel is not None:
        if phase is None:
            _kernel.boottrace()
        else:
            _kernel.boottrace(phase)


def main(cmdline=None):
    options = config.load(cmdline)
    cpu = smp.cpu_id()
    smp.init()
    placed = smp.parse_placement(options.get("app", ""))
    if cpu != 0:
        devices.probe()
        main_other_cpu(cpu, placed, options)
        return
    _boottrace("config")
    devices.probe()
    _boottrace("devices")
    fs.mount_root(options)  # / is CPU 0's (kernel/fs.py), then its boot.py and main.py
    _boottrace("mount")
    fs.run_boot_scripts(options)
    _boottrace("boot.py")
    want_repl = _want_repl(options, placed)
    here = repl_cpu(options)
    if here is None:
        print("kernel: replcpu=%s is not an online CPU; the REPL stays on CPU 0"
              % options.get("replcpu"))
        here = 0

    names, elsewhere = _check_placement(placed) if placed else ([], [])

    if names:
        net.start()
        _boottrace("net")
    started = start(names)
    _boottrace("apps")
    _boottrace()
    if started:
        print("kernel: started %s%s" % (", ".join(app.name for app in started),
                                         " (REPL beside them)" if want_repl else ""))
    if elsewhere:
        print("kernel: placed on other CPUs: %s" % ", ".join(elsewhere))
    if want_repl and here != 0 and _console_taken_by(here):
        # The REPL is another CPU's: this one runs its apps (and lwIP) for good.
        print("kernel: the REPL runs on CPU %d" % here)
        _smp.set_ready()  # CPU 0's boot lines are out: the REPL's CPU may show its prompt
        import asyncio
        from asyncio import core

        sched = _scheduler()
        core.run_until_complete(sched._asyncio_create_task(asyncio.Event().wait()))
        # Back here when nothing is left to wait for (asyncio returns when no task can be
        # woken). The console is not this CPU's, so main.c halts it between wake-ups.
        return
    if want_repl and here != 0:
        print("kernel: CPU %d did not take the console; the REPL stays on CPU 0" % here)
    if want_repl:
        if options.get("netrepl"):
            _start_netrepl(options["netrepl"])
        if options.get("webrepl"):
            _start_webrepl(options["webrepl"])
        start_repl()
        return
    if not started and not elsewhere:
        power_off(0)

    # No REPL: the loop runs until the last app on any CPU ends; then the machine goes off.
    # The other CPUs wake this one (an IPI) when one of their apps ends.
    from asyncio import core

    sched = _scheduler()
    async def until_all_ended():
        while sched.live_apps() or not _others_done():
            await smp.wait_wake(500)

    def on_end(app):
        smp.wake(0)

    sched._end_hooks.append(on_end)
    try:
        core.run_until_complete(sched._asyncio_create_task(until_all_ended()))
    except KeyboardInterrupt:
        print("kernel: interrupted; the REPL takes over, the apps go on beside it")
        start_repl()
        return
    power_off(_last_exit_code())


if "kernel.sched" in sys.modules:  # loaded before this module (host tests import it first)
    scheduler_loaded(sys.modules["kernel.sched"])
