"""MicroPython's own test suite (tests/run-tests.py of the fetched source) against the image.

run-tests.py boots the image itself through ``-t execpty:<qemu command>``: the command comes
from the launcher's build_command (serial on a pty), and run-tests.py talks to the guest's
raw REPL over that pty, one soft reset per test.  Each suite is its own pytest test.
The few tests that cannot pass here are excluded in expected_failures.py (with reasons);
run-tests.py's own skips (feature absent) are counted and printed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmtools import file_tail, kill_pidfile
from expected_failures import excluded

REPO = Path(__file__).resolve().parents[2]
# Some upstream tests fill the whole heap on purpose (micropython/extreme_exc.py); under TCG
# that takes time in proportion to the heap, and run-tests.py gives a test 10 s of silence.
# 64 MiB is plenty for every test and keeps those well inside the limit.
GUEST_MEMORY = "64M"
MAX_DIFFS = 5  # expected-vs-got diffs shown for a failing suite

# name: (run-tests.py arguments, native?, pytest timeout in seconds)
SUITES = {
    "basics": (["-d", "basics"], False, 600),
    "micropython": (["-d", "micropython"], False, 300),
    "misc": (["-d", "misc"], False, 300),
    "extmod": (["-d", "extmod"], False, 600),
    "float": (["-d", "float"], False, 300),
    "stress": (["-d", "stress"], False, 300),
    "native-basics": (["--via-mpy", "--emit", "native", "-d", "basics"], True, 600),
    "native-micropython": (["--via-mpy", "--emit", "native", "-d", "micropython"], True, 300),
}

pytestmark = pytest.mark.conformance


# --------------------------------------------------------------------------- the MicroPython tree


def micropython_dir() -> Path:
    """MICROPY_DIR, else the project's fetched tree, else the development tree in /tmp/mp."""
    env = os.environ.get("MICROPY_DIR")
    if env:
        return Path(env)
    try:
        from manticore_host.fetch import micropython_dir as fetched
        return Path(fetched(quiet=True))
    except Exception as e:
        dev = Path("/tmp/mp/micropython-1.25.0")
        if dev.is_dir():
            return dev
        pytest.fail(f"no MicroPython tree: set MICROPY_DIR or run `invoke deps` ({e})", pytrace=False)


def ensure_mpy_cross(tree: Path) -> Path:
    exe = tree / "mpy-cross" / "build" / "mpy-cross"
    if not exe.exists():
        subprocess.run(["make", "-C", str(tree / "mpy-cross"), "-j2"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=600)
    assert exe.exists(), f"expected mpy-cross at {exe} after building it"
    return exe


# --------------------------------------------------------------------------- the target command


def qemu_target(pty_qemu) -> tuple[str, Path, Path]:
    """``execpty:<qemu command>`` for run-tests.py, plus the serial log and the pid file."""
    cmd, serial_log, pidfile = pty_qemu(boot="kernel", machine="q35", memory=GUEST_MEMORY)
    spaced = [c for c in cmd if " " in c or not c]
    assert not spaced, f"execpty: splits the command on spaces; these arguments can't pass: {spaced}"
    return "execpty:" + " ".join(cmd), serial_log, pidfile


# --------------------------------------------------------------------------- result parsing


def parse(output: str) -> dict[str, list[str]]:
    res = {"pass": [], "FAIL": [], "skip": []}
    for line in output.splitlines():
        m = re.match(r"^(pass|FAIL|skip) +(\S+)", line)
        if m:
            res[m.group(1)].append(m.group(2))
    return res


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize(
    "suite",
    [pytest.param(name, marks=pytest.mark.timeout(spec[2]), id=name) for name, spec in SUITES.items()],
)
def test_micropython_suite(suite, tmp_path, summary, pty_qemu):
    args, native, timeout = SUITES[suite]
    tree = micropython_dir()
    tests_dir = tree / "tests"
    assert (tests_dir / "run-tests.py").exists(), f"no tests/run-tests.py in {tree}"
    env = dict(os.environ)
    if native:
        env["MICROPY_MPYCROSS"] = str(ensure_mpy_cross(tree))

    target, serial_log, pidfile = qemu_target(pty_qemu)
    skipped_by_us = excluded(native)
    excludes = []
    for path in sorted(skipped_by_us):
        excludes += ["-e", "^" + re.escape(path) + "$"]
    result_dir = tmp_path / "results"
    cmd = [sys.executable, "run-tests.py", "-t", target, "-r", str(result_dir)] + excludes + args

    out_file = tmp_path / "run-tests.out"
    t0 = time.monotonic()
    try:
        with open(out_file, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=tests_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout - 30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = None
    finally:
        kill_pidfile(pidfile)
    took = time.monotonic() - t0
    output = out_file.read_text("utf-8", "replace")
    res = parse(output)

    # Which excluded tests exist in this run's directories (for the count).
    dirs = [a for a in args if not a.startswith("-") and (tests_dir / a).is_dir()]
    n_excluded = sum(1 for p in skipped_by_us if p.split("/")[0] in dirs and (tests_dir / p).exists())
    line = (f"conformance {suite}: {len(res['pass'])} passed, {len(res['FAIL'])} failed, "
            f"{len(res['skip'])} skipped by run-tests.py, {n_excluded} excluded (expected_failures.py), "
            f"{took:.0f} s")
    summary(line)
    if res["skip"]:
        summary(f"  skipped by run-tests.py in {suite}: " + " ".join(sorted(res["skip"])))
    print(line)

    diffs = ""
    if res["FAIL"]:
        diffs = subprocess.run([sys.executable, "run-tests.py", "-r", str(result_dir), "--print-failures"],
                               cwd=tests_dir, capture_output=True, text=True, timeout=60).stdout
        summary(f"  FAILED in {suite}: " + " ".join(res["FAIL"]))

    assert rc is not None, (
        f"run-tests.py {suite} did not finish within {timeout - 30} s\n--- output tail:\n{output[-4000:]}"
        f"\n--- serial log tail:\n{file_tail(serial_log)}")
    if res["FAIL"]:
        chunks = diffs.split("\nFAILURE ")
        shown = "\nFAILURE ".join(chunks[:MAX_DIFFS + 1])[:20000]
        more = f"\n... and {len(chunks) - 1 - MAX_DIFFS} more diffs" if len(chunks) - 1 > MAX_DIFFS else ""
        pytest.fail(
            f"{len(res['FAIL'])} MicroPython tests failed in {suite}: {' '.join(res['FAIL'][:40])}"
            f"{' ...' if len(res['FAIL']) > 40 else ''}\n{shown}{more}"
            f"\n--- serial log tail:\n{file_tail(serial_log, 3000)}", pytrace=False)
    assert rc == 0 and res["pass"], (
        f"run-tests.py {suite} exited with status {rc} (expected 0 with passing tests)\n"
        f"--- output tail:\n{output[-4000:]}\n--- serial log tail:\n{file_tail(serial_log)}")
