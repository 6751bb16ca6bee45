"""Build and run the host unit tests of the kernel's C parts (drivers, boot information) under
AddressSanitizer and UndefinedBehaviorSanitizer, the same way for every one: a sanitizer report
aborts the harness (-fno-sanitize-recover=all, halt_on_error) and fails the test, rather than
being printed beside a passing run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer"]
CFLAGS = ["-std=gnu11", "-O1", "-g", "-Wall", "-Werror", *SANITIZE]
# Rings and buffers are never freed, by design (mm/mm.h): no leak report.
ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
       "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


# The kernel's kprintf for a harness: each message on stdout after "LOG ", for the test to
# find among the harness's own output lines. (Needs <stdarg.h> and <stdio.h>.)
KPRINTF_STUB = r"""
void kprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("LOG ");
    vprintf(fmt, ap);
    va_end(ap);
}
"""


def build(exe: Path, sources: list, includes: list = ()) -> Path:
    """Compile `sources` (harness first, then the kernel's files) into `exe`; the test fails
    with the compiler's message if that does not work."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the host harness")
    cmd = ["gcc", *CFLAGS]
    for inc in (*includes, REPO):
        cmd += ["-I", str(inc)]
    cmd += [str(s) for s in sources] + ["-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"
    return exe


def run(exe: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a sanitized harness; fails the test on a non-zero status or any sanitizer report."""
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ, **ENV))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, out
    return result
