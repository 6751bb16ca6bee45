"""The kernel's pure-Python parts (scheduler fairness, failure isolation, event queues, device
exclusivity, the DMA pool) under MicroPython's unix port, built from the same source tree
into build/unix/ on first use (about a minute; skipped if it cannot be built)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIX_BUILD = REPO / "build" / "unix"
MICROPYTHON = UNIX_BUILD / "micropython"

pytestmark = pytest.mark.timeout(400)


def micropython_tree() -> Path | None:
    env = os.environ.get("MICROPY_DIR")
    if env:
        return Path(env)
    try:
        from manticore_host import fetch
        return Path(fetch.micropython_dir())
    except Exception:
        default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "manticore" / "micropython-1.25.0+ds"
        return default if default.exists() else None


@pytest.fixture(scope="module")
def unix_micropython() -> tuple[Path, Path]:
    tree = micropython_tree()
    if tree is None or not (tree / "ports" / "unix").is_dir():
        pytest.skip("no MicroPython source tree (invoke deps)")
    if not MICROPYTHON.exists():
        cmd = ["make", "-C", str(tree / "ports" / "unix"), f"-j{os.cpu_count() or 2}",
               f"BUILD={UNIX_BUILD}", "PROG=micropython", "FROZEN_MANIFEST=",
               "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0", "MICROPY_SSL_AXTLS=0"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=360)
        if proc.returncode != 0 or not MICROPYTHON.exists():
            pytest.skip(f"cannot build the unix port ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
    return MICROPYTHON, tree


def test_kernel_units_under_micropython(unix_micropython):
    exe, tree = unix_micropython
    env = dict(os.environ, MICROPYPATH=f"{REPO}:{tree / 'extmod'}")
    proc = subprocess.run([str(exe), str(Path(__file__).with_name("kernel_unit.py"))],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    out = proc.stdout + proc.stderr
    passed = [line.split()[1] for line in out.splitlines() if line.startswith("PASS ")]
    failed = [line for line in out.splitlines() if line.startswith("FAIL ")]
    assert "DONE" in out, f"the unit run did not finish (status {proc.returncode}):\n{out}"
    assert not failed and proc.returncode == 0, f"failed under MicroPython's unix port:\n{out}"
    assert len(passed) >= 10, f"expected at least 10 unit tests, got {passed}:\n{out}"
