"""mpremote, the standard MicroPython tool, drives the image over a pty serial console."""

import re
import shutil
import subprocess
import sys

import pytest

from vmtools import file_tail, wait_for

pytestmark = pytest.mark.timeout(120)

PTY_RE = re.compile(rb"/dev/pts/\d+")


def mpremote_cmd():
    exe = shutil.which("mpremote")
    return [exe] if exe else [sys.executable, "-m", "mpremote"]


def test_mpremote_exec_over_pty(pty_qemu):
    cmd, serial_log, _ = pty_qemu()
    qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        line = qemu.stdout.readline()
        m = PTY_RE.search(line)
        assert m, f"expected QEMU to announce its pty ('char device redirected to /dev/pts/N'), got {line!r}"
        pts = m.group().decode()
        # Not required (mpremote interrupts whatever runs), but wait for the prompt so that a
        # failure here says "did not boot" rather than "mpremote failed".
        assert wait_for(serial_log, b">>> ", 30), f"no prompt on {pts}; serial log:\n{file_tail(serial_log)}"

        for code, want in (("print(6*7)", "42"), ("import sys; print(sys.platform)", "manticore")):
            run = mpremote_cmd() + ["connect", pts, "exec", code]
            proc = subprocess.run(run, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0 and proc.stdout.strip() == want, (
                f"expected `{' '.join(run)}` to print {want!r} and succeed; got status {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\nserial log:\n{file_tail(serial_log, 3000)}")
    finally:
        qemu.kill()
        qemu.wait()
