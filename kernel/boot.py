# Starting the kernel: read the command line, start the apps it names as tasks, then either
# run the event loop until the last app ends (and power off with its exit code), or hand the
# console to the REPL and run the loop whenever the REPL waits for a key.
#
#   app=NAME | app=a,b    run apps.NAME's main() as tasks
#   repl=1                keep the REPL beside the apps (default: REPL only without apps)
#
# The REPL and the loop share the one core through the REPL's idle hook: the port's console
# read (mp_hal_stdin_rx_chr) calls _kernel's idle hook while no key is waiting, and the hook
# runs asyncio until stdin is readable (a task polling sys.stdin). So apps run while the REPL
# waits at a prompt; a command typed at the REPL runs alone until it returns (or itself
# awaits asyncio: asyncio.run() at the REPL runs the apps too).
import sys

import asyncio
from asyncio import core

from . import config, devices, fs, net, sched

EXIT_UNKNOWN_APP = 127  # QEMU status (127 << 1) | 1 = 255, as a shell's "command not found"
EXIT_FAILED = 1  # an app that raised

try:
    import _kernel
except ImportError:  # the unix port (host tests)
    _kernel = None


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
    return [sched.spawn(name, _loader(name)) for name in names]


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
    if app.state is sched.FAILED:
        print("kernel: app '%s' failed (exit code %d)" % (app.name, app.exit_code))
    else:
        print("kernel: app '%s' exited with code %d" % (app.name, app.exit_code))


sched._end_hooks.append(_report_end)

# ---------------------------------------------------------------------------------------
# The REPL beside the apps


async def _stdin_ready():
    yield core._io_queue.queue_read(sys.stdin)


def _idle():
    # Called by the REPL's console read when no key is waiting, and only for the REPL's own
    # reads (not input() in running code, see modkernel.c): the loop is not running, so a
    # cur_task left behind by Ctrl-C in asyncio.run() at the prompt is stale.
    core.cur_task = None
    task = sched._asyncio_create_task(_stdin_ready())
    try:
        core.run_until_complete(task)
    finally:
        if not task.done():
            core._io_queue.remove(task)
            task.cancel()


def start_repl():
    if sched.repl_app is None:
        sched.repl_app = sched.App("repl")
    console = devices.registry.get("console")
    if console is not None and console.owner is None:
        console.owner = sched.repl_app  # the REPL reads the console
    if _kernel is not None:
        _kernel.set_idle_hook(_idle)


# ---------------------------------------------------------------------------------------
# Boot


def main(cmdline=None):
    options = config.load(cmdline)
    devices.probe()
    fs.mount_root(options)  # / (kernel/fs.py), then its boot.py and main.py
    fs.run_boot_scripts(options)
    names = [name for name in options.get("app", "").split(",") if name]
    want_repl = options.get("repl", "0" if names else "1") not in ("0", "no", "off")

    known = frozen_apps()
    unknown = [name for name in names if name not in known and not fs.find_app(name)]
    if unknown:
        print("kernel: unknown app%s %s; the frozen apps are: %s"
              % ("s" if len(unknown) > 1 else "", ", ".join("'%s'" % n for n in unknown),
                 ", ".join(known) or "(none)"))
        print("kernel: apps in %s: %s" % (fs.APPS_DIR, ", ".join(fs.disk_apps()) or "(none)"))
        power_off(EXIT_UNKNOWN_APP)

    if names:
        net.start()
    started = start(names)
    if started:
        print("kernel: started %s%s" % (", ".join(app.name for app in started),
                                         " (REPL beside them)" if want_repl else ""))
    if want_repl:
        start_repl()
        return
    if not started:
        power_off(0)

    # No REPL: the loop runs until the last app ends; then the machine goes off.
    done = asyncio.Event()

    def on_end(app):
        if not sched.live_apps():
            done.set()

    sched._end_hooks.append(on_end)
    try:
        core.run_until_complete(sched._asyncio_create_task(done.wait()))
    except KeyboardInterrupt:
        print("kernel: interrupted; the REPL takes over, the apps go on beside it")
        start_repl()
        return
    last = sched.last_ended
    power_off(last.exit_code if last is not None else 0)
