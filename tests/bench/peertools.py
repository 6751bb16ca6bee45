"""Helpers for the Linux peer tests (fixtures are in conftest.py)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from manticore_host import linuxpeer
from manticore_host.qemu import build_command

ACCEL = os.environ.get("MANTICORE_ACCEL", "tcg")
# A first build downloads ~110 MB and links MicroPython statically (a minute or two);
# tests that may trigger it get this much more time.  Incremental rebuilds are seconds.
BUILD_ALLOWANCE = 0 if linuxpeer.IMAGE_JSON.is_file() else 900
PTY_RE = re.compile(rb"/dev/pts/\d+")


def pyboard_module():
    """MicroPython's tools/pyboard.py from the same tree the peer is built from."""
    from manticore_host.fetch import micropython_dir
    tools = str(micropython_dir(quiet=True) / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import pyboard
    return pyboard


@contextmanager
def qemu_on_pty(cfg, tmp: Path):
    """QEMU for `cfg` with COM1 on a pty (and a logfile of it), for tools that open the
    pty themselves (pyboard.py): (pts path, serial log path, Popen).  Killed at exit."""
    cmd = build_command(dataclasses.replace(cfg, serial="pty"), None, None, accel=ACCEL)
    log = tmp / "serial.log"
    i = cmd.index("-serial")
    cmd[i:i + 2] = ["-chardev", f"pty,id=con0,logfile={log}", "-serial", "chardev:con0"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        line = proc.stdout.readline()
        m = PTY_RE.search(line)
        assert m, f"expected QEMU to announce its pty, got {line!r}"
        yield m.group().decode(), log, proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
