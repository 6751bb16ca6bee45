# The scheduler: apps as tasks on MicroPython's asyncio event loop.
#
# Apps use the ordinary asyncio API. What the kernel adds:
# - every coroutine of an app is wrapped in an AppCoro, so each resume is timed (ticks_us),
#   counted as a wake-up, and the kernel knows which app runs (the syscalls' caller);
#   asyncio.create_task is replaced so that tasks an app creates belong to that app;
# - an exception that ends an app's main coroutine prints a traceback naming the app, marks
#   it failed and releases what it held; the other apps keep running;
# - exit(code) from any task of an app ends the whole app with that code.
#
# Tickless: when no task is runnable asyncio waits in select.poll, which ends in the port's
# MICROPY_INTERNAL_WFE: arm the LAPIC timer for the next deadline, then sti; hlt. Device
# interrupts reach a waiting task through the soft-IRQ path: the C handler schedules a Python
# callback (micropython.schedule), which posts to an EventQueue and sets its ThreadSafeFlag;
# the poll sees the flag and the waiting task runs.
import sys
from time import ticks_ms, ticks_us, ticks_diff

import asyncio
from asyncio import core

from . import smp
from .events import EventQueue

try:
    import _smp
except ImportError:  # the unix port (host tests)
    _smp = None

_STATE_CODES = {"runnable": 0, "waiting": 1, "done": 2, "failed": 3}
BOARD_PERIOD_MS = 100  # how stale another CPU's view of an app's accounting may get

RUNNABLE = "runnable"
WAITING = "waiting"
DONE = "done"
FAILED = "failed"

# ---------------------------------------------------------------------------------------
# Apps


class App:
    """One app (or the REPL / kernel pseudo-apps): its tasks, resources, events, accounting."""

    def __init__(self, name, entry=None):
        self.name = name
        self.entry = entry  # the module's main, or None for pseudo-apps
        self.state = RUNNABLE
        self.wakeups = 0
        self.cpu_us = 0
        self.exit_code = None
        self.error = None
        self.tasks = []  # its asyncio Tasks, the main one first
        self.resources = []  # objects with a detach() method, detached at the end
        self.events = EventQueue()
        self.dma_bytes = 0
        self.started_ms = ticks_ms()
        self.ended_ms = None
        self.cpu = smp.cpu_id()
        self.board_slot = -1  # its entry in the board all CPUs see (_smp), -1 if none
        self.board_ms = 0

    def ended(self):
        return self.state is DONE or self.state is FAILED

    def run_state(self):
        """runnable / waiting / done / failed, from the app's tasks as asyncio sees them."""
        if self.ended():
            return self.state
        now = ticks_ms()
        for task in self.tasks:
            # On the run queue (data is None) with a deadline that has passed: runnable.
            if not task.done() and task.data is None and ticks_diff(task.ph_key, now) <= 0:
                return RUNNABLE
        return WAITING

    def add_task(self, task):
        tasks = self.tasks
        if len(tasks) >= 16:
            self.tasks = tasks = [t for t in tasks if not t.done()]
        tasks.append(task)

    def __repr__(self):
        return "<app %s %s>" % (self.name, self.state)


# All apps that were started since boot, in start order, and the pseudo-apps for code that
# runs outside any app (the REPL, the kernel itself).
apps = []
kernel_app = App("kernel")
repl_app = None
current = None  # the app whose coroutine runs now; None outside the loop
last_ended = None  # the app that ended last (its exit code is the VM's)

# Called with (app) when an app ends (releases, exit policy).
_end_hooks = []


def caller():
    """The app that makes a syscall now: the running app, else the REPL, else the kernel."""
    return current or repl_app or kernel_app


def find(name):
    for app in apps:
        if app.name == name:
            return app
    return None


# ---------------------------------------------------------------------------------------
# The coroutine wrapper


class AppCoro:
    """Stands in for an app's coroutine on the asyncio run queue; every resume goes through it."""

    def __init__(self, app, coro, main=False):
        self.app = app
        self.coro = coro
        self.main = main

    def send(self, value):
        return _resume(self, self.coro.send, value)

    def throw(self, exc):
        return _resume(self, self.coro.throw, exc)

    def close(self):
        self.coro.close()

    def __repr__(self):
        return "<%s coroutine of app %s>" % ("main" if self.main else "task", self.app.name)


def _resume(wrapper, step, arg):
    global current
    app = wrapper.app
    previous = current
    current = app
    app.wakeups += 1
    if app.wakeups == 1 and app.board_slot >= 0:
        publish(app, RUNNABLE)  # an app that never yields is seen running, not waiting
    start = ticks_us()
    try:
        return step(arg)
    except StopIteration as stop:
        if wrapper.main and not app.ended():
            code = stop.value
            _finish(app, code if isinstance(code, int) else 0)
        raise
    except SystemExit as request:
        # exit(code) from any task of the app ends the app; this coroutine just returns.
        if not app.ended():
            _finish(app, _exit_code(request))
        raise StopIteration
    except core.CancelledError:
        if wrapper.main and not app.ended():
            _finish(app, 1, DONE)
        raise
    except Exception as error:
        if not wrapper.main:
            raise  # a sub-task: asyncio semantics (await / the exception handler)
        if not app.ended():
            _fail(app, error)
        raise StopIteration
    finally:
        app.cpu_us += ticks_diff(ticks_us(), start)
        current = previous
        if app.board_slot >= 0 and ticks_diff(ticks_ms(), app.board_ms) >= BOARD_PERIOD_MS:
            publish(app)


def _exit_code(request):
    code = request.args[0] if request.args else 0
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def publish(app, state=None):
    """Copy the app's state and accounting to the board the other CPUs read."""
    if app.board_slot < 0:
        return
    app.board_ms = ticks_ms()
    if state is None:
        state = app.state if app.ended() else app.run_state()
    code = app.exit_code
    _smp.board_set(app.board_slot, _STATE_CODES[state], -1 if code is None else code,
                   app.wakeups, app.cpu_us)


def _fail(app, error):
    print("kernel: app '%s' failed on CPU %d:" % (app.name, app.cpu))
    sys.print_exception(error)
    app.error = error
    _finish(app, 1, FAILED)


def _finish(app, code, state=DONE):
    global last_ended
    last_ended = app
    app.state = state
    app.exit_code = code
    app.ended_ms = ticks_ms()
    # The app's other tasks end with it (not the one running now: it is ending already).
    running = core.cur_task
    for task in app.tasks:
        if task is not running and not task.done():
            try:
                task.cancel()
            except RuntimeError:
                pass
    release_all(app)
    publish(app)
    for hook in _end_hooks:
        try:
            hook(app)
        except Exception as error:
            print("kernel: end hook for app '%s' failed:" % app.name)
            sys.print_exception(error)


def release_all(app):
    resources = app.resources
    app.resources = []
    app.events.clear()
    for resource in resources:
        try:
            resource.detach()
        except Exception as error:
            print("kernel: releasing %r of app '%s' failed:" % (resource, app.name))
            sys.print_exception(error)


# ---------------------------------------------------------------------------------------
# Tasks: asyncio.create_task gives the caller's app its tasks

_asyncio_create_task = core.create_task


def create_task(coro):
    app = current
    if app is not None and not isinstance(coro, AppCoro):
        coro = AppCoro(app, coro)
    task = _asyncio_create_task(coro)
    if app is not None:
        app.add_task(task)
    return task


core.create_task = create_task
asyncio.create_task = create_task


# A sub-task of an app that ends with an exception nobody awaited gets asyncio's own report
# ("Task exception wasn't retrieved"), whose "coro=" names the app through AppCoro's repr; the
# app goes on. The kernel sets no exception handler of its own: that is the app's to set.


async def _call_main(entry):
    result = entry()
    if hasattr(result, "send"):  # async def main(): run the coroutine in this task
        result = await result
    return result


def spawn(name, entry):
    """Start an app: its main (plain or async) becomes the app's main task."""
    app = App(name, entry)
    apps.append(app)
    if _smp is not None:
        app.board_slot = _smp.board_add(name)
        publish(app)
    task = _asyncio_create_task(AppCoro(app, _call_main(entry), True))
    app.tasks.append(task)
    return app


def live_apps():
    return [app for app in apps if not app.ended()]


# ---------------------------------------------------------------------------------------
# ps


def ps_rows():
    """[(name, state, wake-ups, CPU microseconds, events posted, exit code or None, cpu)]:
    this CPU's apps as they are now, then the other CPUs' as they last published them
    (at most BOARD_PERIOD_MS old, events unknown: -1)."""
    here = smp.cpu_id()
    rows = [(app.name, app.run_state(), app.wakeups, app.cpu_us, app.events.posted,
             app.exit_code, app.cpu) for app in apps]
    for slot, cpu, name, state, code, wakeups, cpu_us, end in smp.board():
        if cpu != here:
            rows.append((name, state, wakeups, cpu_us, -1, code, cpu))
    return rows


def ps(out=print):
    """Print one line per app: name, CPU, state, wake-ups, CPU time, events posted, exit code."""
    rows = ps_rows()
    out("%-12s %3s %-9s %8s %12s %7s %s" % ("APP", "CPU", "STATE", "WAKEUPS", "CPU_US",
                                            "EVENTS", "EXIT"))
    for name, state, wakeups, cpu_us, posted, code, cpu in rows:
        out("%-12s %3d %-9s %8d %12d %7s %s" % (name, cpu, state, wakeups, cpu_us,
                                                "-" if posted < 0 else posted,
                                                "" if code is None else code))


# ---------------------------------------------------------------------------------------
# Loaded on first use: kernel/boot.py does not import this module (nor asyncio, ~3.4 ms of a
# cold TCG boot) for a boot to the bare REPL. Whatever loads it first (the apps' start,
# `import asyncio` at the REPL, kernel.ps(), the syscall layer), the boot's part attaches
# now: the apps' end reports, and the REPL as the "repl" app whose idle hook runs the loop.
_boot = sys.modules.get("kernel.boot")
if _boot is not None:
    _boot.scheduler_loaded(sys.modules[__name__])
del _boot
