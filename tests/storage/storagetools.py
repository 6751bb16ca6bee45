"""Helpers for the storage tests: disk images on the host, guest code over the raw REPL."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from manticore_host import disk  # noqa: E402
from manticore_host.qemu import Disk  # noqa: E402

EXIT_TIMEOUT = 60


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def log_text(vm) -> str:
    return vm.console.log.decode("utf-8", "replace").replace("\r\n", "\n")


def fs_lines(vm) -> list[str]:
    return [line for line in log_text(vm).splitlines() if line.startswith("fs: ")]


def guest(vm, code: str, timeout: float = 60) -> str:
    """Run `code` in the guest (raw REPL); its output, or AssertionError with the traceback."""
    out, err = vm.console.raw_exec(code, timeout=timeout)
    assert not err, f"guest code raised:\n{err}\ncode:\n{code}\nserial log:\n{log_text(vm)[-3000:]}"
    return out.strip()


def power_off(vm, timeout: float = EXIT_TIMEOUT) -> int:
    """A clean power-off from the REPL (files closed first by the caller); QEMU's status."""
    vm.console.write(b"import machine; machine.poweroff()\r")
    return vm.wait(timeout=timeout)


def boot_disk(boot, *disks, append: str = "", **kw):
    """Boot with these disks (paths or qemu.Disk) and wait for the prompt."""
    return boot(disks=list(disks), append=append, **kw)


def wait_for(vm, pattern: str, timeout: float = 30) -> bytes:
    return vm.console.read_until(re.compile(pattern.encode()), timeout=timeout)


def sigkill(vm) -> None:
    """QEMU killed outright (SIGKILL): no flush, no clean exit, as a power cut."""
    vm.proc.kill()
    vm.proc.wait()
