"""Fixtures that boot the real Manticore image under QEMU and talk to its serial console.

Every VM comes from the one host launcher, ``manticore_host.qemu`` (serial console on a unix
socket, QMP on another).  Accel is TCG unless ``MANTICORE_ACCEL`` says otherwise (auto|kvm|tcg).

Fixtures:
  boot        factory: ``boot(machine="q35", boot="kernel", memory="128M", append="", **kw)``
              returns a started VM that has printed its banner and reached ``>>> ``.
  vm          a fresh VM (q35, direct boot) for destructive tests.
  repl_vm     the module's shared VM (booted once per test module) for cheap read-only tests;
              it is brought back to a clean prompt before each test, rebooted if it died.
  shared_boot factory: ``shared_boot(machine="q35", **kw)`` (the ``boot`` keywords) returns the
              module's shared VM for that configuration, booted on first use and then brought
              back to a clean prompt like ``repl_vm``.  Read-only tests only.

When a test fails (or hangs past its timeout), the serial log of every VM it used, with panic
addresses symbolized, is attached to the report as a section.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from vmtools import LOG_TAIL_CHARS, REPO, file_tail, kill_pidfile  # noqa: F401 (re-exported)

ACCEL = os.environ.get("MANTICORE_ACCEL", "tcg")
BOOT_TIMEOUT = float(os.environ.get("MANTICORE_BOOT_TIMEOUT", "60"))
PROMPT = b">>> "

_VMS = pytest.StashKey[list]()  # per test item: [(label, Booted), ...]
_SUMMARY = pytest.StashKey[list]()  # per session: lines for the terminal summary


# --------------------------------------------------------------------------- launcher access


def launcher():
    """The host launcher module; a clear failure if it is not there yet."""
    try:
        from manticore_host import qemu
    except ImportError as e:  # pragma: no cover - depends on the checkout
        pytest.fail(f"cannot import the QEMU launcher manticore_host.qemu: {e}", pytrace=False)
    return qemu


def require_image(boot: str) -> Path:
    path = REPO / "build" / ("kernel.iso" if boot == "iso" else "kernel.elf")
    if not path.exists():
        what = "invoke build iso" if boot == "iso" else "invoke build"
        pytest.fail(f"{path} does not exist: build the image first ({what})", pytrace=False)
    return path


# --------------------------------------------------------------------------- a booted VM


class Booted:
    """A started VM at its prompt: the launcher's VM plus the banner and a few REPL helpers.

    Attribute access falls through to the launcher's VM (``console``, ``qmp``, ``wait``,
    ``kill``, ``returncode``...).
    """

    def __init__(self, vm, cfg, label: str):
        self.vm = vm
        self.cfg = cfg
        self.label = label
        self.banner = ""
        self.boot_seconds: float | None = None

    def __getattr__(self, name):
        return getattr(self.vm, name)

    # -- REPL helpers -------------------------------------------------------------------

    def repl(self, line: str, timeout: float = 30) -> str:
        """Type one line at the friendly REPL; return its output (without echo and prompt)."""
        return self.vm.console.repl(line, timeout=timeout)

    def sync(self, timeout: float = 10) -> None:
        """Consume everything pending up to a fresh prompt, by printing a unique number."""
        n = 100_000_000 + secrets.randbelow(800_000_000)
        self.vm.console.write(f"print({n}+1)\r")
        self.vm.console.read_until(re.compile(rb"%d\r?\n>>> " % (n + 1)), timeout=timeout)

    def alive(self) -> bool:
        rc = getattr(self.vm, "returncode", None)
        return rc is None

    def log_text(self) -> str:
        console = getattr(self.vm, "console", None)
        if console is None:
            return f"(no serial log: the console is serial={self.cfg.serial!r})"
        try:
            text = console.symbolized_log()
        except Exception as e:  # a broken symbolizer must not hide the log
            text = console.log.decode("utf-8", "replace") + f"\n[symbolizer failed: {e!r}]"
        if len(text) > LOG_TAIL_CHARS:
            omitted = len(text) - LOG_TAIL_CHARS
            text = f"[... {omitted} earlier characters omitted ...]\n" + text[-LOG_TAIL_CHARS:]
        return text


def _start(cfg, log_path: Path, label: str, stack: ExitStack, item=None,
           timeout: float = BOOT_TIMEOUT, wait_prompt: bool = True) -> Booted:
    qemu = launcher()
    vm = qemu.VM(cfg, log_path=log_path)
    stack.push(vm)  # __exit__ kills QEMU and removes its sockets, whatever happens
    booted = Booted(vm, cfg, label)
    if item is not None:
        track(item, booted)
    t0 = time.monotonic()
    vm.start()
    if wait_prompt and cfg.serial.startswith("unix"):
        banner = vm.console.read_until(PROMPT, timeout=timeout)
        booted.boot_seconds = time.monotonic() - t0
        booted.banner = banner.decode("utf-8", "replace")
    return booted


def make_config(machine="q35", boot="kernel", memory="128M", append="", **kw):
    qemu = launcher()
    require_image(boot)
    kw.setdefault("accel", ACCEL)
    return qemu.VMConfig(machine=machine, boot=boot, memory=memory, append=append, **kw)


@pytest.fixture
def vm_config():
    """make_config, for a test that launches QEMU through other code (the bench's)."""
    return make_config


def track(item, booted: Booted) -> None:
    """Remember that this test used this VM (for the failure report)."""
    vms = item.stash.setdefault(_VMS, [])
    if all(b is not booted for _, b in vms):
        vms.append((booted.label, booted))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def boot(request, tmp_path):
    """Factory: boot(machine="q35", boot="kernel", memory="128M", append="", **kw) -> Booted.

    Extra keywords go to the launcher's VMConfig (serial, debug_exit, fw_cfg_cmdline, cpus,
    extra_args, ...).  ``timeout`` bounds the wait for the first prompt; ``wait_prompt=False``
    returns right after QEMU started (for serial="pty" or a VM expected to die).
    """
    counter = iter(range(1, 1000))
    with ExitStack() as stack:

        def _boot(machine="q35", boot="kernel", memory="128M", append="", *,
                  timeout=BOOT_TIMEOUT, wait_prompt=True, **kw) -> Booted:
            cfg = make_config(machine, boot, memory, append, **kw)
            n = next(counter)
            label = f"vm{n} {machine}/{boot} -m {memory}" + (f" -append {append!r}" if append else "")
            for k, v in kw.items():
                label += f" {k}={v!r}"
            return _start(cfg, tmp_path / f"vm{n}.log", label, stack, request.node,
                          timeout=timeout, wait_prompt=wait_prompt)

        yield _boot


@pytest.fixture
def vm(boot) -> Booted:
    """A fresh default VM (q35, direct boot, 128M) at its prompt, for destructive tests."""
    return boot()


class _SharedVM:
    """Holder for a module's shared VM, rebooted when a test leaves it dead or wedged."""

    def __init__(self, tmp_dir: Path, name: str = "shared", **config):
        self.tmp_dir = tmp_dir
        self.name = name
        self.config = config            # make_config() keywords
        self.stack = ExitStack()
        self.booted: Booted | None = None
        self.boots = 0

    def get(self, item) -> Booted:
        if self.booted is not None and self.booted.alive():
            try:
                self.booted.console.write(b"\x03")  # interrupt whatever may still run
                self.booted.sync()
                return self.booted
            except Exception:
                try:  # maybe a test left it in the raw REPL
                    self.booted.console.write(b"\x02")
                    self.booted.sync()
                    return self.booted
                except Exception:
                    pass
            self.booted.vm.kill()
        self.boots += 1
        cfg = make_config(**self.config)
        label = f"{self.name} vm #{self.boots} {cfg.machine}/{cfg.boot} -m {cfg.memory}"
        for k, v in self.config.items():
            if k not in ("machine", "boot", "memory") and v not in ("", None):
                label += f" {k}={v!r}"
        self.booted = _start(cfg, self.tmp_dir / f"{self.name}{self.boots}.log", label,
                             self.stack, item)
        return self.booted

    def close(self):
        self.stack.close()


@pytest.fixture(scope="module")
def shared_vm(tmp_path_factory):
    holder = _SharedVM(tmp_path_factory.mktemp("shared-vm"))
    yield holder
    holder.close()


@pytest.fixture(scope="module")
def _shared_vms(tmp_path_factory):
    holders: dict[str, _SharedVM] = {}
    yield holders
    for holder in holders.values():
        holder.close()


@pytest.fixture
def shared_boot(request, _shared_vms, tmp_path_factory):
    """Factory: shared_boot(machine="q35", boot="kernel", memory="128M", append="", **kw) ->
    the module's shared VM for that configuration at a clean prompt (read-only tests only)."""

    def _get(machine="q35", boot="kernel", memory="128M", append="", **kw) -> Booted:
        config = dict(machine=machine, boot=boot, memory=memory, append=append, **kw)
        key = repr(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items()))
        holder = _shared_vms.get(key)
        if holder is None:
            n = len(_shared_vms) + 1
            holder = _SharedVM(tmp_path_factory.mktemp(f"shared-{n}"), f"shared{n}", **config)
            _shared_vms[key] = holder
        booted = holder.get(request.node)
        track(request.node, booted)
        return booted

    return _get


@pytest.fixture
def repl_vm(request, shared_vm) -> Booted:
    """The module's shared VM at a clean prompt.  Read-only tests only: don't break it."""
    booted = shared_vm.get(request.node)
    track(request.node, booted)
    return booted


def pty_command(tmp: Path, **kw) -> tuple[list[str], Path, Path]:
    """A QEMU command line (the launcher's build_command) with COM1 on a pty, for tools that
    open the pty themselves (run-tests.py's execpty:, mpremote).

    The launcher's VM would attach its own reader to the pty and race the tool for bytes, so
    these run QEMU directly.  The pty chardev also writes a logfile (for failure reports), and
    -pidfile lets the caller kill a QEMU whose parent was killed.  QMP is left out.
    Returns (command, serial_log, pidfile).
    """
    qemu = launcher()
    cfg = make_config(serial="pty", **kw)
    cmd = [str(c) for c in qemu.build_command(cfg, None, None)]
    serial_log, pidfile = tmp / "serial.log", tmp / "qemu.pid"
    for i in range(len(cmd) - 1):
        if cmd[i] == "-serial" and cmd[i + 1] == "pty":
            cmd[i:i + 2] = ["-chardev", f"pty,id=con0,logfile={serial_log}", "-serial", "chardev:con0"]
            break
    else:
        pytest.fail(f"expected build_command(serial='pty') to contain '-serial pty', got {cmd}")
    cmd += ["-pidfile", str(pidfile)]
    return cmd, serial_log, pidfile


@pytest.fixture
def pty_qemu(tmp_path):
    """pty_qemu(**VMConfig keywords) -> (command, serial_log, pidfile); QEMU is killed after."""
    pidfiles = []

    def _make(**kw):
        d = tmp_path / f"pty{len(pidfiles) + 1}"
        d.mkdir()
        cmd, log, pidfile = pty_command(d, **kw)
        pidfiles.append(pidfile)
        return cmd, log, pidfile

    yield _make
    for p in pidfiles:
        kill_pidfile(p)


@pytest.fixture
def summary(request):
    """summary(line): print a line in pytest's terminal summary (also with -q, even on pass)."""
    lines = request.config.stash.setdefault(_SUMMARY, [])
    return lines.append


# --------------------------------------------------------------------------- reporting hooks


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed:
        for label, booted in item.stash.get(_VMS, []):
            rc = getattr(booted.vm, "returncode", None)
            state = "running" if rc is None else f"exited with status {rc}"
            rep.sections.append((f"serial log of {label} (QEMU {state})", booted.log_text()))
    return rep


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("manticore summary")
        for line in lines:
            terminalreporter.write_line(line)
