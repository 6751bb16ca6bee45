"""`invoke run --app ./file.py` and `invoke run --disk FILE`, as a user types them: the host
file goes on the run's disk as /apps/NAME.py, runs with the frozen apps' main() contract (its
exit code is QEMU's status), and what it writes is on the disk afterwards."""

from __future__ import annotations

import subprocess
import sys

import pytest

from storagetools import disk

pytestmark = pytest.mark.timeout(120)

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def invoke_run(*args, timeout=90):
    cmd = [sys.executable, "-m", "invoke", "run", "--boot", "kernel", "--accel", "tcg", *args]
    return subprocess.run(cmd, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def test_run_host_app_on_a_new_disk(tmp_path):
    app = tmp_path / "hostapp.py"
    app.write_text("import os\n\ndef main():\n    print('hostapp: running from', __file__)\n"
                   "    with open('/result.txt', 'w') as f:\n        f.write('written by hostapp')\n"
                   "    return 5\n")
    img = tmp_path / "run.img"
    proc = invoke_run("--app", str(app), "--disk", str(img), "--disk-size", "4M")
    out = proc.stdout
    assert "hostapp: running from /apps/hostapp.py" in out, out + proc.stderr
    assert proc.returncode == (5 << 1) | 1, f"expected QEMU status 11 (exit code 5):\n{out}"
    assert img.stat().st_size == 4 << 20
    assert disk.read(img, "/result.txt") == b"written by hostapp"
    assert disk.read(img, "/apps/hostapp.py") == app.read_bytes()

    # The same disk again, an app given by name: found in /apps on the disk.
    proc = invoke_run("--app", "hostapp", "--disk", str(img))
    assert proc.returncode == 11 and "hostapp: running from" in proc.stdout, proc.stdout


def test_run_missing_app_file_is_a_clear_error(tmp_path):
    proc = invoke_run("--app", str(tmp_path / "nope.py"), "--dry-run")
    assert proc.returncode == 2 and "no such file" in proc.stderr, proc.stdout + proc.stderr
