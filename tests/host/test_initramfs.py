"""The newc cpio writer of the Linux peer's initramfs (manticore_host/initramfs.py): what it
writes reads back, byte for byte and bit for bit of mode, and the same input always gives
the same archive (no QEMU, no downloads)."""

import gzip
import shutil
import stat
import subprocess

import pytest

from manticore_host import initramfs as cpio

pytestmark = pytest.mark.timeout(30)


def sample():
    return [
        cpio.file("init", b"#!/bin/sh\necho hi\n", 0o755),
        cpio.file("bin/busybox", bytes(range(256)) * 3 + b"x", 0o755),
        cpio.symlink("bin/sh", "/bin/busybox"),
        cpio.file("lib/modules/6.1/a.ko", b""),          # empty file
        cpio.file("etc/odd-length", b"abc"),              # data needing padding
        cpio.chardev("dev/console", 5, 1),
        cpio.directory("tmp", 0o1777),
    ]


def test_round_trip_keeps_paths_modes_data_and_devices():
    entries = cpio.read_newc(cpio.write_newc(sample()))
    by_path = {e.path: e for e in entries}
    for want in sample():
        got = by_path[want.path]
        assert (got.mode, got.data, got.rdev) == (want.mode, want.data, want.rdev), want.path
    # parents were added as directories
    for d in ("bin", "lib", "lib/modules", "lib/modules/6.1", "etc", "dev"):
        assert stat.S_ISDIR(by_path[d].mode), d
    assert stat.S_ISLNK(by_path["bin/sh"].mode) and by_path["bin/sh"].data == b"/bin/busybox"
    assert stat.S_ISCHR(by_path["dev/console"].mode)


def test_sorted_parents_first_and_4_byte_aligned():
    raw = cpio.write_newc(sample())
    assert len(raw) % 4 == 0
    paths = [e.path for e in cpio.read_newc(raw)]
    assert paths == sorted(paths)
    assert paths.index("bin") < paths.index("bin/busybox")
    assert raw.rstrip(b"\0").endswith(b"TRAILER!!!")


def test_deterministic_bytes_including_gzip():
    a = cpio.build(sample())
    b = cpio.build(list(reversed(sample())))
    assert a == b, "input order must not matter"
    assert a[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    assert gzip.decompress(a) == cpio.write_newc(sample())
    assert cpio.read_newc(a) == cpio.read_newc(cpio.write_newc(sample()))


def test_headers_have_zero_mtime_and_owner():
    raw = cpio.write_newc(sample())
    pos = 0
    while True:
        h = raw[pos:pos + 110]
        fields = [int(h[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        uid, gid, mtime, namesize, filesize = fields[2], fields[3], fields[5], fields[11], fields[6]
        assert (uid, gid, mtime) == (0, 0, 0)
        name = raw[pos + 110:pos + 110 + namesize - 1]
        if name == b"TRAILER!!!":
            break
        pos += 110 + namesize
        pos += -pos % 4
        pos += filesize
        pos += -pos % 4


def test_duplicates_and_dotdot_are_refused():
    with pytest.raises(ValueError, match="twice"):
        cpio.write_newc([cpio.file("a", b"1"), cpio.file("/a", b"2")])
    with pytest.raises(ValueError, match=r"\.\."):
        cpio.write_newc([cpio.file("a/../b", b"")])


def test_malformed_archive_is_an_error():
    with pytest.raises(ValueError):
        cpio.read_newc(b"070707" + b"0" * 200)
    raw = cpio.write_newc([cpio.file("f", b"hello world")])
    with pytest.raises(ValueError):
        cpio.read_newc(raw[:120 + 12])


@pytest.mark.skipif(shutil.which("cpio") is None, reason="no cpio tool on this machine "
                    "(the round trip above parses the format itself)")
def test_gnu_cpio_lists_the_archive(tmp_path):
    raw = cpio.write_newc(sample())
    out = subprocess.run(["cpio", "-t", "--quiet"], input=raw, capture_output=True,
                         timeout=10)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.decode().split()
    assert set(e.path for e in sample()) <= set(listed)
