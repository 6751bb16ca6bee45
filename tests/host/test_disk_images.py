"""The host's disk image tool (manticore_host/disk.py) on its own: littlefs2 and FAT images
made, listed, extracted and added to; what the guest's rules call each image; errors a user
can act on; and never a format of an image it cannot read."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from manticore_host import disk

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.py").write_text("print('a')\n")
    (tmp_path / "blob.bin").write_bytes(os.urandom(50_000))
    return tmp_path


@pytest.mark.parametrize("fs", ["lfs", "fat"])
def test_make_ls_get_put_roundtrip(tmp_path, files, fs):
    img = tmp_path / f"{fs}.img"
    disk.make(img, "2M", fs, [(files / "a.py", "/a.py"), (files / "blob.bin", "/d/e/blob.bin")])
    assert img.stat().st_size == 2 << 20
    assert disk.detect(img) == fs
    assert disk.listing(img) == [("/a.py", 11), ("/d/e/blob.bin", 50_000)]
    disk.put(img, [(files / "a.py", "/apps/a.py")])
    out = disk.extract(img, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out) == \
        ["a.py", "apps/a.py", "d/e/blob.bin"]
    assert (tmp_path / "out/d/e/blob.bin").read_bytes() == (files / "blob.bin").read_bytes()
    assert disk.read(img, "/apps/a.py") == b"print('a')\n"


def test_detect_zero_unknown_and_no_format_of_unreadable(tmp_path):
    zero = disk.make(tmp_path / "z.img", "1M", "none")
    assert disk.detect(zero) == "zero"
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(1 << 20))
    before = hashlib.sha256(junk.read_bytes()).hexdigest()
    assert disk.detect(junk) == "unknown"
    with pytest.raises(disk.DiskError, match="neither littlefs2 nor FAT"):
        disk.listing(junk)
    with pytest.raises(disk.DiskError):
        disk.put(junk, [(junk, "/x")])
    assert hashlib.sha256(junk.read_bytes()).hexdigest() == before


def test_bad_sizes_and_specs(tmp_path):
    for bad in ("12", "abc", "1001K"):
        with pytest.raises(disk.DiskError, match="size"):
            disk.make(tmp_path / "x.img", bad)
    assert disk.parse_size("64M") == 64 << 20 and disk.parse_size("1G") == 1 << 30
    with pytest.raises(disk.DiskError, match="no such file"):
        disk.parse_file_spec(str(tmp_path / "missing.py"))
    (tmp_path / "m.py").write_text("")
    assert disk.parse_file_spec(f"{tmp_path}/m.py")[1] == "/m.py"
    assert disk.parse_file_spec(f"{tmp_path}/m.py:apps/m.py")[1] == "/apps/m.py"


def test_command_line(tmp_path, files):
    img = tmp_path / "cli.img"
    run = [sys.executable, "-m", "manticore_host.disk"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run(run + ["make", str(img), "--size", "1M", f"{files}/a.py:/apps/a.py"],
                       capture_output=True, text=True, cwd=root)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(run + ["ls", str(img)], capture_output=True, text=True, cwd=root)
    assert p.returncode == 0 and "/apps/a.py" in p.stdout, p.stdout + p.stderr
    p = subprocess.run(run + ["ls", str(tmp_path / "nope.img")], capture_output=True, text=True,
                       cwd=root)
    assert p.returncode == 1 and "disk:" in p.stderr, p.stderr


def test_launcher_disk_arguments(tmp_path):
    from manticore_host.qemu import Disk, VMConfig, build_command
    a, b = tmp_path / "a,b.img", tmp_path / "b.img"
    a.write_bytes(b"")
    b.write_bytes(b"")
    cfg = VMConfig(disks=[a, Disk(b, readonly=True, modern_only=True, vectors=0)])
    cmd = build_command(cfg, None, tmp_path / "s.sock", accel="tcg")
    i = cmd.index("-drive")
    assert cmd[i:i + 8] == [
        "-drive", f"if=none,id=disk0,format=raw,file={str(a).replace(',', ',,')}",
        "-device", "virtio-blk-pci,drive=disk0",
        "-drive", f"if=none,id=disk1,format=raw,file={b},readonly=on",
        "-device", "virtio-blk-pci,drive=disk1,disable-legacy=on,vectors=0"]
    with pytest.raises(ValueError, match="no such image"):
        VMConfig(disks=[tmp_path / "missing.img"]).validate()
    # microvm has no PCI: the disk is a virtio-blk-device on a virtio-mmio transport.
    cmd = build_command(VMConfig(machine="microvm", disks=[b]), None, tmp_path / "m.sock",
                        accel="tcg")
    i = cmd.index("-drive")
    assert cmd[i + 2:i + 4] == ["-device", "virtio-blk-device,drive=disk0"], cmd
