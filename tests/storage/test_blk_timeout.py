"""A disk that stops answering costs a bounded wait, not a hang: QEMU throttles the disk to
one request a second, the request timeout is cut to 100 ms, and the next requests give
OSError(ETIMEDOUT), then EIO: the disk is disabled, the boot line says so, the REPL goes on."""

from __future__ import annotations

import time

import pytest

from storagetools import guest, log_text

pytestmark = pytest.mark.timeout(120)


def test_slow_disk_times_out_and_is_disabled(boot, tmp_path):
    img = tmp_path / "slow.img"
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    vm = boot(append="root=ram", extra_args=[
        "-drive", f"if=none,id=s0,format=raw,file={img},throttling.iops-total=1",
        "-device", "virtio-blk-pci,drive=s0"])
    t0 = time.monotonic()
    out = guest(vm, """
import blk, errno
d = blk.Disk(0)
d.set_timeout(100)
b = bytearray(512)
got = []
for i in range(6):
    try:
        d.readblocks(i, b)
        got.append('ok')
    except OSError as e:
        got.append(errno.errorcode.get(e.errno, e.errno))
print(got, d.info()['broken'])
""")
    elapsed = time.monotonic() - t0
    out = out.splitlines()[-1]  # the driver's line comes first, on the same console
    got = eval(out.rsplit(" ", 1)[0])
    assert "ETIMEDOUT" in got and got[got.index("ETIMEDOUT") + 1:] == \
        ["EIO"] * (5 - got.index("ETIMEDOUT")) and out.endswith("True"), out
    assert "virtio-blk: vda: no answer in 100 ms, disk disabled" in log_text(vm)
    assert elapsed < 30, f"the timeouts took {elapsed:.1f} s"
    assert vm.repl("6*7") == "42"
