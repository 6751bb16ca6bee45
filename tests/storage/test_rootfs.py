"""What is at `/`: a new disk is formatted once and says so, a host-made littlefs or FAT image
is mounted, boot.py/main.py/apps on it run, a disk that holds anything else is never written
(sha256 before and after), no disk means a RAM filesystem; files go host -> guest and
guest -> host for both formats, and guest-written FAT passes fsck.vfat."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from storagetools import (Disk, disk, fs_lines, guest, log_text, power_off, sha256,
                          sigkill)

pytestmark = pytest.mark.timeout(120)


def zero_image(path, size=8 << 20):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_new_disk_formatted_once_and_guest_files_read_on_host(boot, tmp_path):
    img = zero_image(tmp_path / "new.img")
    vm = boot(disks=[img])
    lines = fs_lines(vm)
    assert "fs: vda was all zeros: formatted it as lfs2" in lines, lines
    assert any(line.startswith("fs: / is vda (lfs2") for line in lines), lines
    guest(vm, """
import os
os.mkdir('/logs')
with open('/logs/day1.txt', 'w') as f:
    f.write('guest wrote this\\n' * 100)
os.rename('/logs/day1.txt', '/logs/day2.txt')
with open('/gone', 'w') as f:
    f.write('x')
os.remove('/gone')
os.sync()
print(sorted(os.listdir('/')), os.statvfs('/')[0])
""")
    assert power_off(vm) == 0
    assert disk.detect(img) == "lfs"
    assert disk.listing(img) == [("/logs/day2.txt", 1700)]
    assert disk.read(img, "/logs/day2.txt") == b"guest wrote this\n" * 100

    # Second boot: mounted as it is, not formatted again; the file is there.
    vm = boot(disks=[img])
    assert not any("formatted" in line for line in fs_lines(vm)), fs_lines(vm)
    assert guest(vm, "print(open('/logs/day2.txt').read().count('guest'))") == "100"


def test_host_image_boot_py_main_py_and_disk_app(boot, tmp_path):
    (tmp_path / "boot.py").write_text("print('boot.py ran')\nBOOTED = 1\n")
    (tmp_path / "main.py").write_text("print('main.py ran')\nraise ValueError('main.py broke')\n")
    (tmp_path / "diskapp.py").write_text(
        "import helper\n\ndef main():\n    print('diskapp:', helper.WORD, open('/data.txt').read())\n"
        "    return 0\n")
    (tmp_path / "helper.py").write_text("WORD = 'from a sibling module'\n")
    (tmp_path / "data.txt").write_text("host data")
    img = tmp_path / "host.img"
    disk.make(img, "4M", "lfs", [(tmp_path / "boot.py", "/boot.py"),
                                 (tmp_path / "main.py", "/main.py"),
                                 (tmp_path / "diskapp.py", "/apps/diskapp.py"),
                                 (tmp_path / "helper.py", "/apps/helper.py"),
                                 (tmp_path / "data.txt", "/data.txt")])
    vm = boot(disks=[img], fw_cfg_cmdline="app=diskapp", wait_prompt=False)
    status = vm.wait(timeout=60)
    log = log_text(vm)
    assert status == 0, f"expected the disk app to exit 0, got {status}:\n{log}"
    order = [log.find(s) for s in ("fs: / is vda", "boot.py ran", "main.py ran",
                                   "ValueError: main.py broke", "kernel: started diskapp",
                                   "diskapp: from a sibling module host data")]
    assert -1 not in order and order == sorted(order), f"expected boot.py, main.py (whose " \
        f"traceback does not stop the boot), then the app from /apps, in order:\n{log}"
    assert 'File "/main.py", line 2' in log, log


@pytest.mark.skipif(shutil.which("fsck.vfat") is None and not
                    __import__("os").path.exists("/usr/sbin/fsck.vfat"),
                    reason="dosfstools missing: invoke deps installs it")
def test_fat_both_ways_and_fsck(boot, tmp_path):
    (tmp_path / "hello.txt").write_text("from the host")
    img = tmp_path / "fat.img"
    disk.make(img, "16M", "fat", [(tmp_path / "hello.txt", "/docs/hello.txt")])
    vm = boot(disks=[img])
    assert any(line.startswith("fs: / is vda (fat") for line in fs_lines(vm)), fs_lines(vm)
    out = guest(vm, """
import os
print(open('/docs/hello.txt').read())
os.mkdir('/out')
for i in range(20):
    with open('/out/file%02d.bin' % i, 'wb') as f:
        f.write(bytes([i]) * (1000 * i + 1))
with open('/Long File Name.txt', 'w') as f:
    f.write('lfn')
os.remove('/out/file03.bin')
os.sync()
print(len(os.listdir('/out')))
""")
    assert out.splitlines() == ["from the host", "19"], out
    assert power_off(vm) == 0
    fsck = shutil.which("fsck.vfat") or "/usr/sbin/fsck.vfat"
    proc = subprocess.run([fsck, "-n", str(img)], capture_output=True, text=True)
    assert proc.returncode == 0, f"fsck.vfat -n failed on the guest's FAT:\n{proc.stdout}{proc.stderr}"
    files = dict(disk.listing(img))
    assert files["/Long File Name.txt"] == 3 and "/out/file03.bin" not in files, files
    assert disk.read(img, "/out/file07.bin") == bytes([7]) * 7001


def test_garbage_disk_reported_untouched_ram_root(boot, tmp_path):
    img = tmp_path / "garbage.img"
    img.write_bytes(__import__("os").urandom(2 << 20))
    before = sha256(img)
    vm = boot(disks=[img], append="ramfs=256K")
    lines = fs_lines(vm)
    assert any(line.startswith("fs: vda not mounted: holds neither littlefs2 nor FAT")
               for line in lines), lines
    assert "fs: / is a 256 KiB RAM filesystem (vda not mounted)" in lines, lines
    assert guest(vm, "with open('/t', 'w') as f: f.write('ok')\nprint(open('/t').read())") == "ok"
    assert power_off(vm) == 0
    assert sha256(img) == before, "the garbage disk was modified"

    # A damaged littlefs (magic present, metadata broken) is not formatted either.
    lfs = tmp_path / "broken.img"
    disk.make(lfs, "1M", "lfs")
    data = bytearray(lfs.read_bytes())
    for base in (0, 4096):
        data[base + 40:base + 400] = b"\xa5" * 360
    lfs.write_bytes(bytes(data))
    before = sha256(lfs)
    vm = boot(disks=[lfs])
    assert any("vda not mounted: looks like lfs2 but does not mount" in line
               for line in fs_lines(vm)), fs_lines(vm)
    sigkill(vm)
    assert sha256(lfs) == before, "the damaged littlefs disk was modified"

    # The explicit word formats it.
    vm = boot(disks=[lfs], append="mkfs=lfs")
    assert any(line.startswith("fs: / is vda (lfs2") for line in fs_lines(vm)), fs_lines(vm)


def test_no_disk_ram_root_and_os_calls(boot):
    vm = boot(append="ramfs=512K")
    assert "fs: / is a 512 KiB RAM filesystem (no disk)" in fs_lines(vm), fs_lines(vm)
    out = guest(vm, """
import os
os.mkdir('/d'); open('/d/a', 'w').write('1'); os.rename('/d/a', '/d/b')
print(os.listdir('/d'), os.statvfs('/')[0] * os.statvfs('/')[2]); os.remove('/d/b'); os.sync()
print(os.listdir('/d'))
""")
    assert out.splitlines() == ["['b'] 524288", "[]"], out


def test_readonly_disk_erofs(boot, tmp_path):
    (tmp_path / "keep.txt").write_text("keep")
    img = tmp_path / "ro.img"
    disk.make(img, "1M", "lfs", [(tmp_path / "keep.txt", "/keep.txt")])
    before = sha256(img)
    vm = boot(disks=[Disk(img, readonly=True)])
    assert any(line.startswith("fs: / is vda (lfs2, read-only") for line in fs_lines(vm)), \
        fs_lines(vm)
    out = guest(vm, """
import errno, os
print(open('/keep.txt').read())
for f in (lambda: open('/new', 'w'), lambda: os.mkdir('/x'), lambda: os.remove('/keep.txt')):
    try:
        f()
        print('no error')
    except OSError as e:
        print(errno.errorcode[e.errno])
""")
    assert out.splitlines() == ["keep", "EROFS", "EROFS", "EROFS"], out
    sigkill(vm)
    assert sha256(img) == before


def test_full_disk_enospc_keeps_files(boot, tmp_path):
    (tmp_path / "precious.bin").write_bytes(bytes(range(256)) * 64)
    img = tmp_path / "small.img"
    disk.make(img, "256K", "lfs", [(tmp_path / "precious.bin", "/precious.bin")])
    vm = boot(disks=[img])
    out = guest(vm, """
import errno, os, hashlib
n = 0
try:
    while True:  # one committed block at a time, so that the disk ends up really full
        with open('/filler', 'ab') as f:
            f.write(b'z' * 4096)
        n += 1
except OSError as e:
    print(errno.errorcode[e.errno])
try:
    open('/another', 'w').write('y' * 10000)
except OSError as e:
    print(errno.errorcode[e.errno])
print(n > 10, open('/precious.bin', 'rb').read() == bytes(range(256)) * 64)
""")
    assert out.splitlines() == ["ENOSPC", "ENOSPC", "True True"], out
    assert power_off(vm) == 0
    assert disk.read(img, "/precious.bin") == bytes(range(256)) * 64


def test_synced_file_survives_sigkill(boot, tmp_path):
    img = zero_image(tmp_path / "k.img", 4 << 20)
    vm = boot(disks=[img])
    guest(vm, """
import os
with open('/synced.txt', 'w') as f:
    f.write('durable ' * 500)
os.sync()
print('synced')
""")
    sigkill(vm)
    assert disk.read(img, "/synced.txt") == b"durable " * 500
