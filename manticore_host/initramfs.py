"""A deterministic initramfs: the "newc" cpio format written in Python, gzip-compressed.

The same inputs give the same bytes (entries sorted by path, every mtime 0, uid/gid 0,
inode numbers in order, gzip header mtime 0), so the peer image's cache key can be the
archive's content and a rebuild that changed nothing changes nothing.  No external cpio
tool is needed; `read_newc` parses the format back (for the tests and for inspection).

newc (see the kernel's Documentation/driver-api/early-userspace/buffer-format.rst): per
entry a 110-byte ASCII header ("070701" and 13 eight-digit hex fields), the NUL-terminated
name, padding to 4 bytes, the data, padding to 4 bytes; the archive ends with the entry
"TRAILER!!!".
"""

from __future__ import annotations

import gzip
import io
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
HEADER_LEN = 110


@dataclass(frozen=True)
class Entry:
    """One archive member: a regular file (data), directory, symlink (data is the
    target) or character device (rdev = (major, minor))."""

    path: str
    mode: int                       # including the file type bits (stat.S_IFREG, ...)
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def chardev(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | perm, rdev=(major, minor))


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, entry: Entry, name_len: int) -> bytes:
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0,
              entry.rdev[0], entry.rdev[1], name_len, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _normalise(path: str) -> str:
    p = PurePosixPath("/" + path.lstrip("/"))
    if ".." in p.parts:
        raise ValueError(f"{path!r}: '..' in an archive path")
    return str(p)[1:]


def with_parents(entries: list[Entry]) -> list[Entry]:
    """`entries` plus a directory entry for every parent not given (0755)."""
    have = {_normalise(e.path) for e in entries}
    extra = []
    for e in entries:
        for parent in PurePosixPath(_normalise(e.path)).parents:
            p = str(parent)
            if p not in (".", "") and p not in have:
                have.add(p)
                extra.append(directory(p))
    return entries + extra


def write_newc(entries: list[Entry]) -> bytes:
    """The uncompressed newc archive of `entries` (parents added, sorted by path so a
    directory precedes its contents; a path given twice is an error)."""
    entries = with_parents(list(entries))
    by_path: dict[str, Entry] = {}
    for e in entries:
        p = _normalise(e.path)
        if p in by_path:
            raise ValueError(f"{p!r} appears twice in the archive")
        by_path[p] = e
    out = io.BytesIO()
    for ino, path in enumerate(sorted(by_path), start=1):
        entry = by_path[path]
        name = path.encode() + b"\0"
        out.write(_header(ino, entry, len(name)))
        out.write(name + _pad(HEADER_LEN + len(name)))
        out.write(entry.data + _pad(len(entry.data)))
    name = TRAILER.encode() + b"\0"
    out.write(_header(0, Entry(TRAILER, 0), len(name)))
    out.write(name + _pad(HEADER_LEN + len(name)))
    return out.getvalue()


def gzip_bytes(data: bytes, level: int = 9) -> bytes:
    """gzip with header mtime 0 and no file name: the same input, the same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=level,
                       mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def build(entries: list[Entry], level: int = 9) -> bytes:
    """The gzip-compressed newc archive, ready for QEMU's -initrd."""
    return gzip_bytes(write_newc(entries), level)


def read_newc(data: bytes) -> list[Entry]:
    """Parse an uncompressed (or gzip-compressed) newc archive back into entries (the
    trailer left out).  Raises ValueError on anything malformed."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    entries, pos = [], 0
    while True:
        header = data[pos:pos + HEADER_LEN]
        if len(header) < HEADER_LEN or header[:6] != MAGIC:
            raise ValueError(f"bad newc header at offset {pos}: {header[:6]!r}")
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmajor, rminor, namesize = (fields[1], fields[6], fields[9],
                                                    fields[10], fields[11])
        pos += HEADER_LEN
        name = data[pos:pos + namesize]
        if not name.endswith(b"\0"):
            raise ValueError(f"entry name at offset {pos} is not NUL-terminated")
        name = name[:-1].decode()
        pos += namesize + len(_pad(HEADER_LEN + namesize))
        if name == TRAILER:
            return entries
        body = data[pos:pos + filesize]
        if len(body) != filesize:
            raise ValueError(f"{name}: truncated data")
        pos += filesize + len(_pad(filesize))
        entries.append(Entry(name, mode, body, (rmajor, rminor)))
