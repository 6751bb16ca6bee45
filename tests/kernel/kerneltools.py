"""Helpers for the kernel tests: boot the image with apps on the command line and collect what
they print until QEMU exits."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from platformtools import cpu_share, qemu_pid  # noqa: E402,F401

EXIT_TIMEOUT = 60


def start_apps(boot, cmdline: str, **kw):
    """A VM booted with this kernel command line (through fw_cfg), not waiting for a prompt:
    with app=... and no repl=1 there is none."""
    kw.setdefault("wait_prompt", False)
    return boot(fw_cfg_cmdline=cmdline, **kw)


def log_text(vm) -> str:
    return vm.console.log.decode("utf-8", "replace").replace("\r\n", "\n")


def run_to_exit(boot, cmdline: str, timeout: float = EXIT_TIMEOUT, **kw) -> tuple[int, str]:
    """Boot with this command line, wait for QEMU to exit; (exit status, serial log)."""
    vm = start_apps(boot, cmdline, **kw)
    status = vm.wait(timeout=timeout)
    return status, log_text(vm)


def wait_for(vm, pattern, timeout: float = 30) -> bytes:
    return vm.console.read_until(re.compile(pattern.encode() if isinstance(pattern, str) else pattern),
                                 timeout=timeout)
