"""Disk images for the guest's virtio-blk disks, made and read on the host.

The guest (kernel/fs.py) mounts littlefs2 with 4096-byte blocks, or FAT; this module writes
and reads both so that a file goes either way: littlefs through the littlefs-python package
(the same littlefs on-disk version 2.1 as MicroPython's lib/littlefs), FAT through mtools
(mkfs.fat from dosfstools makes the filesystem).

    python3 -m manticore_host.disk make disk.img --size 64M [--fs lfs|fat] [FILE[:GUEST]]...
    python3 -m manticore_host.disk ls disk.img
    python3 -m manticore_host.disk get disk.img OUTDIR
    python3 -m manticore_host.disk put disk.img FILE[:GUEST]...

`invoke disk ...` runs the same commands.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LFS_BLOCK_SIZE = 4096  # kernel/fs.py LFS_BLOCK_SIZE
LFS_READ_SIZE = 4096  # kernel/fs.py (not stored on disk; the same for symmetry)
LFS_PROG_SIZE = 512
SECTOR = 512
DEFAULT_SIZE = 64 * 1024 * 1024


class DiskError(RuntimeError):
    """A user-facing error: bad size, unknown filesystem, missing tool or file."""


def parse_size(text: str | int) -> int:
    """'64M' -> 67108864; plain numbers are bytes; K, M, G suffixes (powers of 1024)."""
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    for suffix, factor in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if s.endswith(suffix):
            s, scale = s[:-1], factor
            break
    try:
        size = int(float(s) * scale)
    except ValueError:
        raise DiskError(f"size {text!r}: expected e.g. 64M, 512K or 1G") from None
    if size < 64 * 1024 or size % LFS_BLOCK_SIZE:
        raise DiskError(f"size {text!r}: expected at least 64K and a multiple of 4K")
    return size


# -- what an image holds (the guest's rules, kernel/fs.py) ------------------------------------

def detect(image: Path) -> str:
    """'lfs', 'fat', 'zero' (a new disk) or 'unknown'."""
    with open(image, "rb") as f:
        head = f.read(8192)
        for base in (0, 512, 4096):
            if head[base + 8:base + 16] == b"littlefs":
                return "lfs"
        if head[510:512] == b"\x55\xaa":
            return "fat"
        f.seek(0)
        while chunk := f.read(1 << 20):
            if chunk.count(0) != len(chunk):
                return "unknown"
    return "zero"


def _lfs_block_size(image: Path) -> int:
    with open(image, "rb") as f:
        head = f.read(8192)
    for base in (0, 512, 4096):
        if head[base + 8:base + 16] == b"littlefs":
            return int.from_bytes(head[base + 24:base + 28], "little")
    return LFS_BLOCK_SIZE


# -- littlefs -------------------------------------------------------------------------------

def _lfs_context(image: Path):
    from littlefs.context import UserContext

    class FileContext(UserContext):
        """Blocks read and written in place in the image file (no copy in memory)."""

        def __init__(self, path: Path):
            self.fd = os.open(path, os.O_RDWR)
            self.in_size = os.fstat(self.fd).st_size
            self.buffer = None

        def read(self, cfg, block, off, size):
            return bytearray(os.pread(self.fd, size, block * cfg.block_size + off))

        def prog(self, cfg, block, off, data):
            os.pwrite(self.fd, bytes(data), block * cfg.block_size + off)
            return 0

        def erase(self, cfg, block):
            return 0  # a disk needs no erase (the guest's ioctl 6 does nothing either)

        def sync(self, cfg):
            os.fsync(self.fd)
            return 0

        def close(self):
            os.close(self.fd)

    return FileContext(image)


class _Lfs:
    def __init__(self, image: Path, mkfs: bool = False):
        from littlefs import LittleFS
        size = image.stat().st_size
        bs = LFS_BLOCK_SIZE if mkfs else _lfs_block_size(image)
        self.ctx = _lfs_context(image)
        # mount=False: LittleFS() would otherwise format an image it cannot mount.
        self.fs = LittleFS(context=self.ctx, mount=False, block_size=bs,
                           block_count=size // bs, read_size=LFS_READ_SIZE,
                           prog_size=LFS_PROG_SIZE, lookahead_size=512)
        if mkfs:
            self.fs.format()
        self.fs.mount()

    def close(self):
        self.fs.unmount()
        self.ctx.close()

    def put(self, data: bytes, guest: str):
        parent = guest.rsplit("/", 1)[0]
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        with self.fs.open(guest, "wb") as f:
            f.write(data)

    def walk(self):
        for root, dirs, files in self.fs.walk("/"):
            for name in sorted(files):
                path = (root.rstrip("/") + "/" + name)
                yield path, self.fs.stat(path).size

    def read(self, guest: str) -> bytes:
        with self.fs.open(guest, "rb") as f:
            return f.read()


# -- FAT (mtools) ---------------------------------------------------------------------------

def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                  else None)
    if path is None:
        package = "dosfstools" if name.startswith(("mkfs", "fsck")) else "mtools"
        raise DiskError(f"{name} not found: install {package} (invoke deps)")
    return path


def _mtools(*args: str) -> subprocess.CompletedProcess:
    # MTOOLS_SKIP_CHECK: an image file has no disk geometry for mtools to check against.
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLS_NO_VFAT="0")
    proc = subprocess.run([_tool(args[0]), *args[1:]], capture_output=True, env=env)
    if proc.returncode != 0:
        raise DiskError(f"{' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc


class _Fat:
    def __init__(self, image: Path, mkfs: bool = False):
        self.image = str(image)
        if mkfs:
            proc = subprocess.run([_tool("mkfs.fat"), "-n", "MANTICORE", self.image],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise DiskError(f"mkfs.fat: {proc.stderr.strip()}")

    def close(self):
        pass

    def put(self, data: bytes, guest: str):
        parts = guest.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            try:
                _mtools("mmd", "-D", "s", "-i", self.image, f"::/{d}")
            except DiskError as e:
                if "exists" not in str(e).lower():
                    raise
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            _mtools("mcopy", "-o", "-i", self.image, tmp.name, f"::/{guest.strip('/')}")

    def _extract(self, dest: Path):
        listing = _mtools("mdir", "-b", "-i", self.image, "::/").stdout.decode().splitlines()
        if listing:
            _mtools("mcopy", "-s", "-n", "-i", self.image, *listing, str(dest))

    def walk(self):
        with tempfile.TemporaryDirectory() as tmp:
            self._extract(Path(tmp))
            for root, dirs, files in os.walk(tmp):
                dirs.sort()
                for name in sorted(files):
                    p = Path(root) / name
                    yield "/" + str(p.relative_to(tmp)), p.stat().st_size

    def read(self, guest: str) -> bytes:
        return _mtools("mtype", "-i", self.image, f"::/{guest.strip('/')}").stdout


def _open(image: Path):
    kind = detect(image)
    if kind == "lfs":
        return _Lfs(image)
    if kind == "fat":
        return _Fat(image)
    raise DiskError(f"{image}: holds neither littlefs2 nor FAT ({kind})")


# -- the commands -----------------------------------------------------------------------------

def parse_file_spec(spec: str) -> tuple[Path, str]:
    """'dir/app.py' -> (dir/app.py, '/app.py'); 'dir/app.py:/apps/app.py' -> the given path."""
    host, sep, guest = spec.partition(":")
    path = Path(host)
    if not sep:
        guest = "/" + path.name
    if not guest.startswith("/"):
        guest = "/" + guest
    if not path.is_file():
        raise DiskError(f"{host}: no such file")
    return path, guest


def make(image: Path, size="64M", fs: str = "lfs", files=()) -> Path:
    """A new image of `size` with an empty filesystem ('lfs', 'fat', or 'none': all zeros,
    which the guest formats on first boot), then `files` ([(host path, guest path)]) on it."""
    if fs not in ("lfs", "fat", "none"):
        raise DiskError(f"fs {fs!r}: expected lfs, fat or none")
    nbytes = parse_size(size)
    image = Path(image)
    with open(image, "wb") as f:
        f.truncate(nbytes)  # sparse: zeros cost nothing
    if fs == "none":
        if files:
            raise DiskError("files need a filesystem: --fs lfs or fat")
        return image
    handle = _Lfs(image, mkfs=True) if fs == "lfs" else _Fat(image, mkfs=True)
    try:
        for host, guest in files:
            handle.put(Path(host).read_bytes(), guest)
    finally:
        handle.close()
    return image


def put(image: Path, files) -> None:
    handle = _open(Path(image))
    try:
        for host, guest in files:
            handle.put(Path(host).read_bytes(), guest)
    finally:
        handle.close()


def listing(image: Path) -> list[tuple[str, int]]:
    handle = _open(Path(image))
    try:
        return list(handle.walk())
    finally:
        handle.close()


def read(image: Path, guest: str) -> bytes:
    handle = _open(Path(image))
    try:
        return handle.read(guest)
    finally:
        handle.close()


def extract(image: Path, dest: Path) -> list[Path]:
    dest = Path(dest)
    handle = _open(Path(image))
    out = []
    try:
        for guest, _ in list(handle.walk()):
            target = dest / guest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(handle.read(guest))
            out.append(target)
    finally:
        handle.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="manticore_host.disk", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make", help="a new image (littlefs2 by default)")
    p.add_argument("image")
    p.add_argument("--size", default="64M")
    p.add_argument("--fs", default="lfs", choices=("lfs", "fat", "none"))
    p.add_argument("files", nargs="*", help="FILE or FILE:/guest/path")
    p = sub.add_parser("ls", help="the files in an image, with sizes")
    p.add_argument("image")
    p = sub.add_parser("get", help="copy every file out of an image")
    p.add_argument("image")
    p.add_argument("outdir")
    p = sub.add_parser("put", help="copy host files into an image")
    p.add_argument("image")
    p.add_argument("files", nargs="+")
    args, rest = ap.parse_known_args(argv)  # files may come after --size/--fs too
    if rest and hasattr(args, "files") and not any(r.startswith("-") for r in rest):
        args.files += rest
    elif rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.cmd == "make":
            make(Path(args.image), args.size, args.fs, [parse_file_spec(s) for s in args.files])
            print(f"disk: {args.image}: {args.size} {args.fs}")
        elif args.cmd == "ls":
            print(f"disk: {args.image}: {detect(Path(args.image))}")
            for path, size in listing(Path(args.image)):
                print(f"{size:10d}  {path}")
        elif args.cmd == "get":
            for path in extract(Path(args.image), Path(args.outdir)):
                print(path)
        elif args.cmd == "put":
            put(Path(args.image), [parse_file_spec(s) for s in args.files])
    except (DiskError, OSError) as e:
        print(f"disk: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
