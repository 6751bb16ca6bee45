"""The virtio-blk driver and the blk module against real QEMU disks: several disks, capacity,
read-only, MSI-X and the INTx fallback, modern-only devices, bytes landing where the host
sees them, errors as OSError, and MicroPython's own VfsLfs2/VfsFat mounting a disk."""

from __future__ import annotations

import os

import pytest

from storagetools import Disk, guest

pytestmark = pytest.mark.timeout(120)


def test_disks_capacity_readonly_irq_modes_and_raw_blocks(boot, tmp_path):
    a, b, c = tmp_path / "a.img", tmp_path / "b.img", tmp_path / "c.img"
    with open(a, "wb") as f:
        f.truncate(4 << 20)
    b.write_bytes(bytes(range(256)) * 4096)          # 1 MiB of a known pattern
    with open(c, "wb") as f:
        f.truncate(2 << 20)
    vm = boot(disks=[Disk(a), Disk(b, readonly=True, modern_only=True),
                     Disk(c, vectors=0)])
    assert guest(vm, "import blk; print(blk.disks())") == "['vda', 'vdb', 'vdc']"
    info = eval(guest(vm, "print([blk.Disk(i).info() for i in range(3)])"))
    assert [d["size"] for d in info] == [4 << 20, 1 << 20, 2 << 20], info
    assert [d["readonly"] for d in info] == [False, True, False], info
    assert [d["irq_mode"] for d in info] == ["msix", "msix", "intx"], info
    assert all(d["flush"] for d in info), info

    # Reads: whole blocks, and the extended form at any byte offset (bounce sector).
    out = guest(vm, """
d = blk.Disk('vdb')
buf = bytearray(1024); d.readblocks(3, buf)
print(buf == bytes(range(256)) * 4)
small = bytearray(7); d.readblocks(1, small, 300)
print(list(small))
print(d.ioctl(4, 0), d.ioctl(5, 0), blk.Disk('vdb', block_size=4096).ioctl(4, 0))
""")
    assert out.splitlines() == ["True", str([(512 + 300 + i) % 256 for i in range(7)]),
                                 "2048 512 256"], out

    # Writes on every disk with an interrupt mode of its own land where the host reads them.
    guest(vm, """
for name in ('vda', 'vdc'):
    d = blk.Disk(name)
    d.writeblocks(2, b'M' * 512 + b'N' * 512)
    d.writeblocks(5, b'partial', 100)        # read-modify-write inside a sector
    d.ioctl(3, 0)
""")
    for img in (a, c):
        data = img.read_bytes()
        assert data[1024:2048] == b"M" * 512 + b"N" * 512, img
        assert data[2560 + 100:2560 + 107] == b"partial" and data[2560:2660] == bytes(100), img

    # The read cache (aligned 4 KiB reads) never serves data older than a write through any
    # Disk object of the same disk, aligned or not.
    out = guest(vm, """
d4, d = blk.Disk('vda', block_size=4096), blk.Disk('vda')
b4 = bytearray(4096)
d4.readblocks(0, b4); d4.readblocks(0, b4)
hits = d.info()['cache_hits']
d.writeblocks(1, b'new', 100)
d4.readblocks(0, b4)
print(hits > 0, bytes(b4[612:615]), d.info()['cache_hits'] == hits)
d4.writeblocks(0, b'W' * 4096); d4.readblocks(0, b4); print(b4 == b'W' * 4096)
""")
    assert out.splitlines() == ["True b'new' True", "True"], out

    # Errors: EROFS on the read-only disk, EINVAL past the end, ENODEV for no such disk.
    out = guest(vm, """
import errno
def err(f):
    try:
        f()
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
    return None
print(err(lambda: blk.Disk('vdb').writeblocks(0, b'x' * 512)),
      err(lambda: blk.Disk('vda').readblocks(8192, bytearray(512))),
      err(lambda: blk.Disk('vdz')))
""")
    assert out == "EROFS EINVAL ENODEV", out
    assert b.read_bytes() == bytes(range(256)) * 4096, "the read-only disk changed"
    counts = eval(guest(vm, "print([blk.Disk(i).info()['interrupts'] for i in range(3)])"))
    assert all(n > 0 for n in counts), f"expected completions by interrupt on every disk: {counts}"


def test_more_disks_than_the_driver_takes_are_said(boot, tmp_path):
    """Nine disks: the driver binds VIRTIO_BLK_MAX_DEVICES (8) and says the ninth is left
    out, rather than leaving it unseen without a word."""
    disks = []
    for i in range(9):
        path = tmp_path / f"d{i}.img"
        with open(path, "wb") as f:
            f.truncate(1 << 20)
        disks.append(Disk(path))
    vm = boot(disks=disks)
    assert "virtio-blk: 9 disks, only the first 8 are used (VIRTIO_BLK_MAX_DEVICES)" \
        in vm.banner, vm.banner
    assert guest(vm, "import blk; print(len(blk.disks()))") == "8"


@pytest.mark.parametrize("fs", ["VfsLfs2", "VfsFat"])
def test_micropython_filesystems_mount_a_disk(boot, tmp_path, fs):
    img = tmp_path / "d.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    vm = boot(disks=[img], append="root=ram")
    bs = ", block_size=4096" if fs == "VfsLfs2" else ""
    out = guest(vm, f"""
import blk, vfs, os
d = blk.Disk('vda'{bs})
vfs.{fs}.mkfs(d)
vfs.mount(vfs.{fs}(d), '/data')
with open('/data/f.bin', 'wb') as f:
    f.write(bytes(range(256)) * 400)
os.mkdir('/data/sub'); os.rename('/data/f.bin', '/data/sub/g.bin')
os.sync()
print(os.listdir('/data'), os.listdir('/data/sub'), os.stat('/data/sub/g.bin')[6])
vfs.umount('/data')
vfs.mount(vfs.{fs}(d), '/data')
print(open('/data/sub/g.bin', 'rb').read() == bytes(range(256)) * 400)
""")
    assert out.splitlines() == ["['sub'] ['g.bin'] 102400", "True"], out
    assert os.path.getsize(img) == 8 << 20


def test_disks_are_cpu0s_with_two_cpus(boot, tmp_path):
    img = tmp_path / "smp.img"
    with open(img, "wb") as f:
        f.truncate(4 << 20)
    # The REPL on CPU 1: the disk and / belong to CPU 0, which mounted it at boot.
    vm = boot(disks=[img], cpus=2, append="repl=1 replcpu=1")
    out = guest(vm, """
import blk, os
try:
    blk.Disk(0)
except OSError as e:
    print(e)
try:
    open('/x', 'w')
except OSError as e:
    print('no filesystem here')
""")
    assert out.splitlines() == ["disk vda belongs to CPU 0", "no filesystem here"], out
    # CPU 0 mounted the disk, and said so before CPU 1's prompt.
    log = vm.console.log.decode("utf-8", "replace")
    assert log.count("fs: / is vda (lfs2") == 1, log
    assert log.index("fs: / is vda (lfs2") < log.index(">>> "), log
