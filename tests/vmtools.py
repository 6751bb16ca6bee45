"""Small helpers shared by the boot and conformance tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOG_TAIL_CHARS = 20000


def kill_pidfile(pidfile: Path) -> None:
    """Kill the QEMU named by a -pidfile, if it still runs."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 9)
    except (OSError, ValueError):
        pass


def file_tail(path: Path, n: int = LOG_TAIL_CHARS) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "(no log)"
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    try:
        from manticore_host.symbolize import annotate_with
        text = annotate_with(REPO / "build" / "kernel.elf", text)
    except Exception:
        pass
    return text[-n:]


def wait_for(path: Path, needle: bytes, timeout: float) -> bool:
    """Until `needle` appears in the file at `path` (a serial log QEMU writes); False after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if needle in path.read_bytes():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False
