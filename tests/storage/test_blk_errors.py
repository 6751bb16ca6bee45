"""Device errors reach Python as OSError(EIO) and nothing else breaks: QEMU's blkdebug
driver injects EIO on chosen sectors of a real virtio-blk disk, under the raw block device
and under littlefs at `/`."""

from __future__ import annotations

import pytest

from storagetools import disk, fs_lines, guest

pytestmark = pytest.mark.timeout(120)


def blkdebug_disk(tmp_path, img, rules):
    conf = tmp_path / "blkdebug.conf"
    conf.write_text("".join(f'[inject-error]\nevent = "{event}"\nerrno = "5"\nsector = "{s}"\n\n'
                            for event, s in rules))
    return ["-drive", f"if=none,id=e0,format=raw,file=blkdebug:{conf}:{img}",
            "-device", "virtio-blk-pci,drive=e0"]


def test_injected_errors_are_eio(boot, tmp_path):
    img = tmp_path / "e.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    vm = boot(append="root=ram",
              extra_args=blkdebug_disk(tmp_path, img, [("read_aio", 2048), ("pwritev", 4096)]))
    out = guest(vm, """
import blk, errno
d = blk.Disk(0)
b = bytearray(512)
def e(f):
    try:
        f()
        return 'ok'
    except OSError as x:
        return errno.errorcode.get(x.errno, x.errno)
print(e(lambda: d.readblocks(0, b)), e(lambda: d.readblocks(2048, b)),
      e(lambda: d.readblocks(2049, b)), e(lambda: d.writeblocks(4096, b)),
      e(lambda: d.writeblocks(10, b)), d.info()['errors'], d.info()['broken'])
""")
    assert out == "ok EIO ok EIO ok 2 False", out


def test_eio_under_littlefs_root(boot, tmp_path):
    (tmp_path / "bad.bin").write_bytes(b"BADBLOCK" * 2048)
    (tmp_path / "good.txt").write_text("fine")
    img = tmp_path / "l.img"
    disk.make(img, "1M", "lfs", [(tmp_path / "bad.bin", "/bad.bin"),
                                 (tmp_path / "good.txt", "/good.txt")])
    data = img.read_bytes()
    sector = data.index(b"BADBLOCK" * 64) // 512 + 2   # inside the file's data, not metadata
    vm = boot(extra_args=blkdebug_disk(tmp_path, img, [("read_aio", sector)]))
    assert any(line.startswith("fs: / is vda (lfs2") for line in fs_lines(vm)), fs_lines(vm)
    out = guest(vm, """
import errno
try:
    open('/bad.bin', 'rb').read()
    print('read it')
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
print(open('/good.txt').read())
""")
    assert out.splitlines() == ["EIO", "fine"], out
