"""mpremote's file workflow over the serial pty, on a disk at `/`: fs mkdir/cp/ls/cat/
sha256sum/rm, run, mount . (including seek and tell on a remote file, which mpremote does
with machine.mem32 as on a 32-bit board), and reset: a file copied with `fs cp` is there
after the reboot."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys

import pytest

from vmtools import file_tail, wait_for

pytestmark = pytest.mark.timeout(240)

PTY_RE = re.compile(rb"/dev/pts/\d+")


def mpremote(pts, *args, timeout=60):
    exe = shutil.which("mpremote")
    cmd = ([exe] if exe else [sys.executable, "-m", "mpremote"]) + ["connect", pts, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def start(pty_qemu, img):
    cmd, serial_log, _ = pty_qemu(disks=[img])
    qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    m = PTY_RE.search(qemu.stdout.readline())
    assert m, "expected QEMU to announce its pty"
    assert wait_for(serial_log, b">>> ", 30), f"no prompt:\n{file_tail(serial_log)}"
    return qemu, m.group().decode(), serial_log


def ok(proc, serial_log, what):
    assert proc.returncode == 0, (f"mpremote {what} failed ({proc.returncode}):\nstdout:\n"
                                  f"{proc.stdout}\nstderr:\n{proc.stderr}\nserial log:\n"
                                  f"{file_tail(serial_log, 3000)}")
    return proc.stdout


def test_mpremote_fs_run_mount_reset(pty_qemu, tmp_path):
    img = tmp_path / "mp.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    payload = tmp_path / "tool.py"
    payload.write_text("".join(f"LINE_{i} = {i * i}\n" for i in range(500)))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    qemu, pts, log = start(pty_qemu, img)
    try:
        ok(mpremote(pts, "fs", "mkdir", ":/lib"), log, "fs mkdir")
        ok(mpremote(pts, "fs", "cp", str(payload), ":/lib/tool.py"), log, "fs cp")
        ok(mpremote(pts, "fs", "cp", str(payload), ":/scratch.py"), log, "fs cp")
        out = ok(mpremote(pts, "fs", "ls", ":/lib"), log, "fs ls")
        assert re.search(rf"\b{payload.stat().st_size} tool\.py", out), out
        out = ok(mpremote(pts, "fs", "cat", ":/lib/tool.py"), log, "fs cat")
        assert out.replace("\r\n", "\n") == payload.read_text(), out[:200]
        out = ok(mpremote(pts, "fs", "sha256sum", ":/lib/tool.py"), log, "fs sha256sum")
        assert digest in out, (digest, out)
        ok(mpremote(pts, "fs", "rm", ":/scratch.py"), log, "fs rm")
        out = ok(mpremote(pts, "fs", "ls", ":/"), log, "fs ls")
        assert "scratch.py" not in out and "lib/" in out, out

        script = tmp_path / "script.py"
        script.write_text("import sys\nsys.path.append('/lib')\nimport tool\n"
                          "print('run:', tool.LINE_12)\n")
        out = ok(mpremote(pts, "run", str(script)), log, "run")
        assert "run: 144" in out, out

        # mount: the host directory becomes /remote; import from it, and seek in a file.
        share = tmp_path / "share"
        share.mkdir()
        (share / "data.bin").write_bytes(bytes(range(100)))
        (share / "hostmod.py").write_text("VALUE = 'imported from the host'\n")
        # RemoteFile.seek() is plain Python; C code that seeks a Python stream (py/stream.c
        # mp_stream_seek) calls its ioctl(MP_STREAM_SEEK, &seek) with a struct
        # mp_stream_seek_t {mp_off_t offset; int whence}, which mpremote reads and writes with
        # machine.mem32 at arg and arg + 4. The same struct, built here in a bytearray, goes
        # through that code: right only because this port's mp_off_t is 32 bits.
        code = ("import io, hostmod, struct, uctypes; print(hostmod.VALUE)\n"
                "f = open('data.bin', 'rb'); f.seek(10); a = f.read(3)\n"
                "f.seek(-2, 2); b = f.read(); f.seek(40); f.seek(5, 1)\n"
                "print(list(a), list(b), f.seek(0, 1), f.seek(0, 2))\n"
                "def cseek(f, off, whence):\n"
                "    s = bytearray(struct.pack('<ii', off, whence))\n"
                "    assert f.ioctl(2, uctypes.addressof(s)) == 0\n"
                "    return struct.unpack('<i', s[:4])[0]\n"
                "g = open('data.bin', 'rb'); g.read(7)\n"
                "t = cseek(g, 0, 1); e = cseek(g, -5, 2); c = list(g.read())\n"
                "print('cseek', t, e, c, cseek(g, 3, 0), cseek(g, 4, 1))\n")
        out = ok(mpremote(pts, "mount", str(share), "exec", code), log, "mount")
        assert "imported from the host" in out, out
        assert "[10, 11, 12] [98, 99] 45 100" in out, out
        assert "cseek 7 95 [95, 96, 97, 98, 99] 3 7" in out, out

        # reset: the machine restarts (QEMU -no-reboot exits); the copied file is there after.
        mpremote(pts, "reset", timeout=30)
        qemu.wait(timeout=30)
    finally:
        qemu.kill()
        qemu.wait()

    qemu, pts, log = start(pty_qemu, img)
    try:
        out = ok(mpremote(pts, "fs", "sha256sum", ":/lib/tool.py"), log, "fs sha256sum")
        assert digest in out, (digest, out)
    finally:
        qemu.kill()
        qemu.wait()
