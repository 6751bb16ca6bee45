# What is at `/`: the first virtio-blk disk (vda) as littlefs2, or FAT when the disk holds
# FAT; else a RAM filesystem, so that open() always works. Then boot.py and main.py from it,
# and apps kept on it (/apps/NAME.py or the package /apps/NAME/).
#
# The rules a disk is handled by (one boot line says which applied):
#   - littlefs2 or FAT on it: mounted at / (read-only when the disk is, VIRTIO_BLK_F_RO).
#   - every byte zero (a new disk): formatted with `rootfs=` (lfs, the default, or fat) and
#     mounted; the boot line says so.
#   - anything else, or a filesystem that will not mount: NEVER formatted. The boot line says
#     why, / is a RAM filesystem and the disk is not written. Formatting it takes a call
#     (kernel.fs.format("vda")) or the command-line word mkfs=lfs|fat.
#
# Command line: root=vda|vdb|ram (default: the first disk), rootfs=lfs|fat (for a new disk),
# mkfs=lfs|fat (format the root disk first, whatever it holds), ramfs=SIZE (RAM filesystem,
# default 1M; K and M suffixes), safemode=1 (skip boot.py and main.py).
import os
import sys

import vfs

try:
    import blk
except ImportError:  # the unix port (host tests)
    blk = None

LFS_BLOCK_SIZE = 4096  # littlefs block (the host's disk tool uses the same)
# littlefs reads whole blocks (a request costs the same for 512 or 4096 bytes, and a
# metadata block then comes in one: 3x the small-file rate of 512-byte reads) and programs
# sectors (a commit is padded to the prog size: small commits keep metadata blocks from
# filling and compacting). Its cache is then one block.
LFS_READ_SIZE = 4096
LFS_PROG_SIZE = 512
LFS_LOOKAHEAD = 512  # bytes of the allocator's bitmap: 4096 blocks (16 MiB) a scan
RAMFS_DEFAULT = 1024 * 1024
ZERO_CHUNK = 256 * 1024

# What mount_root() did, for kernel.fs.status and the tests:
# {"root": "vda"|"ram", "fs": "lfs2"|"fat", "formatted": bool, "why": str, "readonly": bool}
status = {}


# ---------------------------------------------------------------------------------------
# Block devices


class RAMDisk:
    """A block device in a bytearray (vfs.AbstractBlockDev, extended form)."""

    def __init__(self, size, block_size=512):
        self.block_size = block_size
        self.data = bytearray(size - size % block_size)

    def readblocks(self, n, buf, offset=0):
        start = n * self.block_size + offset
        buf[:] = memoryview(self.data)[start:start + len(buf)]

    def writeblocks(self, n, buf, offset=0):
        start = n * self.block_size + offset
        self.data[start:start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block_size
        if op == 5:
            return self.block_size
        if op in (1, 2, 3, 6):
            return 0
        return None


class LazyRAMRoot:
    """The RAM root filesystem, empty until something is written: littlefs formats the
    RAM disk on the first write (or statvfs), not at boot. A boot that never writes a file
    does not pay for it (boottrace: about 6 ms, 25 ms cold under TCG, of a ~100 ms boot).
    Until then it answers as the empty filesystem it is: no such file, an empty /."""

    def __init__(self, size):
        self.size = size - size % 512
        self.fs = None

    def _real(self):
        if self.fs is None:
            fs = _lfs(RAMDisk(self.size), mkfs=True)
            fs.mount(False, False)
            self.fs = fs
        return self.fs

    @staticmethod
    def _is_root(path):
        return path in ("", "/", ".")

    def _absent(self, path):
        if self.fs is None and not self._is_root(path):
            raise OSError(2)    # ENOENT, as littlefs says it: an empty filesystem holds nothing

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        if self.fs is not None:
            self.fs.umount()

    def open(self, path, mode="r"):
        if self.fs is None and not any(c in mode for c in "wax+"):
            self._absent(path if path else "?")
        return self._real().open(path, mode)

    def ilistdir(self, path="/"):
        if self.fs is None:
            self._absent(path)
            return iter(())
        return self.fs.ilistdir(path)

    def stat(self, path):
        if self.fs is None:
            self._absent(path)
        return self._real().stat(path)

    def chdir(self, path):
        if self.fs is None:
            self._absent(path)
            return
        self.fs.chdir(path)

    def getcwd(self):
        return "/" if self.fs is None else self.fs.getcwd()

    def mkdir(self, path):
        return self._real().mkdir(path)

    def remove(self, path):
        self._absent(path)
        return self._real().remove(path)

    def rmdir(self, path):
        self._absent(path)
        return self._real().rmdir(path)

    def rename(self, old, new):
        self._absent(old)
        return self._real().rename(old, new)

    def statvfs(self, path):
        return self._real().statvfs(path)


def disks():
    """The disk names, in bus order: ['vda', 'vdb']."""
    return blk.disks() if blk is not None else []


def _lfs(disk_or_name, mkfs=False):
    disk = disk_or_name
    if isinstance(disk, str):
        disk = blk.Disk(disk, block_size=LFS_BLOCK_SIZE)
    if mkfs:
        vfs.VfsLfs2.mkfs(disk, readsize=LFS_READ_SIZE, progsize=LFS_PROG_SIZE,
                         lookahead=LFS_LOOKAHEAD)
    return vfs.VfsLfs2(disk, readsize=LFS_READ_SIZE, progsize=LFS_PROG_SIZE,
                       lookahead=LFS_LOOKAHEAD, mtime=True)


def _fat(name, mkfs=False):
    disk = blk.Disk(name)
    if mkfs:
        vfs.VfsFat.mkfs(disk)
    return vfs.VfsFat(disk)


def _head(name, size):
    buf = bytearray(size)
    blk.Disk(name).readblocks(0, buf)
    return buf


def _lfs_block_size(head):
    """The block size in a littlefs2 superblock at the start of the disk, else 0.

    A metadata block starts with a 4-byte revision and the superblock's name tag, then
    "littlefs", then the inline struct's tag and version, block_size, block_count (littlefs
    SPEC.md, LFS_TYPE_SUPERBLOCK); block 1 of the pair holds it when it is the newer copy."""
    for base in (0, 512, 4096):
        if head[base + 8:base + 16] == b"littlefs":
            size = int.from_bytes(head[base + 24:base + 28], "little")
            if size >= 128 and size & (size - 1) == 0:
                return size
    return 0


def _is_fat(head):
    # A FAT boot sector (or an MBR in front of one) ends with 0x55 0xAA (FAT spec, 3.1).
    return head[510:512] == b"\x55\xaa"


def _all_zero(name):
    disk = blk.Disk(name)
    size = disk.info()["size"]
    buf = bytearray(ZERO_CHUNK)
    zero = bytes(ZERO_CHUNK)
    pos = 0
    while pos < size:
        n = min(ZERO_CHUNK, size - pos)
        if n < ZERO_CHUNK:
            buf = bytearray(n)
            zero = bytes(n)
        disk.readblocks(pos // 512, buf)
        if buf != zero:
            return False
        pos += n
    return True


def _describe(head):
    return " ".join("%02x" % b for b in head[:8])


def format(name="vda", fs="lfs"):
    """Make a new, empty filesystem on disk `name` (everything on it is lost). If it is
    mounted at /, / is remounted on the new filesystem."""
    if fs not in ("lfs", "fat"):
        raise ValueError("fs: 'lfs' or 'fat'")
    if name not in disks():
        raise OSError(19, "no disk %r" % name)  # ENODEV
    remount = status.get("root") == name
    if remount:
        try:
            vfs.umount("/")
        except OSError:
            pass
    if fs == "lfs":
        obj = _lfs(name, mkfs=True)
    else:
        obj = _fat(name, mkfs=True)
    if remount:
        _mount(obj, name, "lfs2" if fs == "lfs" else "fat", False)
        status["formatted"] = True
        status["why"] = "formatted"
    return obj


# ---------------------------------------------------------------------------------------
# Mounting /


def parse_size(text, default):
    if not text:
        return default
    scale = 1
    if text[-1] in "kK":
        scale, text = 1024, text[:-1]
    elif text[-1] in "mM":
        scale, text = 1024 * 1024, text[:-1]
    try:
        return int(text) * scale
    except ValueError:
        return default


def _mount(obj, root, kind, readonly):
    vfs.mount(obj, "/", readonly=readonly)
    os.chdir("/")
    status.update(root=root, fs=kind, readonly=readonly)


_ram_root = None  # the LazyRAMRoot at /, when / is in RAM


def _mount_ram(size, why):
    global _ram_root
    root = _ram_root = LazyRAMRoot(size)
    _mount(root, "ram", "lfs2", False)
    status["why"] = why
    status["size"] = root.size
    # Joined, not %-formatted: the first `%` of a boot costs ~0.5 ms of a cold TCG boot
    # (boottrace), and on the default boot this is the only one before the prompt.
    print("fs: / is a " + str(root.size // 1024) + " KiB RAM filesystem (" + why + ")")


def _free_text():
    st = os.statvfs("/")
    return "%d KiB free of %d KiB" % (st[0] * st[3] // 1024, st[0] * st[2] // 1024)


def _try_disk(name, options):
    """Mount disk `name` at / following the rules above. Returns None, or why not."""
    info = blk.Disk(name).info()
    ro = info["readonly"]
    mkfs = options.get("mkfs")
    if mkfs:
        if mkfs not in ("lfs", "fat"):
            return "mkfs=%s: expected lfs or fat" % mkfs
        if ro:
            return "mkfs=%s: the disk is read-only" % mkfs
        print("fs: mkfs=%s: formatting %s" % (mkfs, name))
        format(name, mkfs)
        status["formatted"] = True
    head = _head(name, 8192 if info["size"] >= 8192 else info["size"] - info["size"] % 512)
    lfs_bs = _lfs_block_size(head)
    kind = "lfs2" if lfs_bs else "fat" if _is_fat(head) else None
    if kind is None:
        if not _all_zero(name):
            return ("holds neither littlefs2 nor FAT (it starts %s); it was not written"
                    % _describe(head))
        if ro:
            return "all zeros but read-only: nothing to mount"
        kind = "fat" if options.get("rootfs") == "fat" else "lfs2"
        format(name, "fat" if kind == "fat" else "lfs")
        status["formatted"] = True
        print("fs: %s was all zeros: formatted it as %s" % (name, kind))
    try:
        if kind == "lfs2":
            disk = blk.Disk(name, block_size=lfs_bs or LFS_BLOCK_SIZE)
            obj = _lfs(disk)
        else:
            obj = _fat(name)
        _mount(obj, name, kind, ro)
    except OSError as e:
        try:
            vfs.umount("/")
        except OSError:
            pass
        return ("looks like %s but does not mount (%s); it was not written"
                % (kind, e))
    return None


def mount_root(options):
    """Mount / as the command line and the disks say; print one boot line."""
    global _ram_root
    status.clear()
    status["formatted"] = False
    _ram_root = None
    # Nothing is mounted here: every (soft) reset starts MicroPython with an empty mount
    # table (mp_init), and this runs once after it.
    ram = parse_size(options.get("ramfs"), RAMFS_DEFAULT)
    names = disks()
    root = options.get("root") or (names[0] if names else "ram")
    if root == "ram":
        _mount_ram(ram, "root=ram" if names else "no disk")
        return status
    if root not in names:
        _mount_ram(ram, "root=%s: no such disk (disks: %s)" % (root, ", ".join(names) or "none"))
        return status
    try:
        why = _try_disk(root, options)
    except OSError as e:
        why = "I/O error (%s)" % e
    if why is not None:
        print("fs: %s not mounted: %s" % (root, why))
        _mount_ram(ram, "%s not mounted" % root)
        status["why"] = why
        status["disk"] = root
        return status
    status["why"] = "mounted"
    print("fs: / is %s (%s%s, %s)" % (root, status["fs"], ", read-only" if status["readonly"]
                                      else "", _free_text()))
    return status


# ---------------------------------------------------------------------------------------
# boot.py, main.py and apps on the filesystem


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def run_script(path):
    """Run a script from the filesystem as __main__; an exception prints a traceback and
    returns False (the kernel carries on). True when it ran, None when there is none."""
    if not _exists(path):
        return None
    try:
        with open(path) as f:
            source = f.read()
        code = compile(source, path, "exec")
        exec(code, {"__name__": "__main__", "__file__": path})
        return True
    except BaseException as e:  # noqa: B036 (SystemExit/KeyboardInterrupt too: boot goes on)
        print("fs: %s raised:" % path)
        sys.print_exception(e)
        return False


def run_boot_scripts(options):
    if options.get("safemode", "0") not in ("0", ""):
        print("fs: safemode: boot.py and main.py not run")
        return
    if _ram_root is not None and _ram_root.fs is None:
        return  # a RAM root nothing has written to yet holds no scripts (and asking costs
        # two OSErrors, ~1 ms of a cold TCG boot)
    run_script("/boot.py")
    run_script("/main.py")


# Apps on the filesystem come before the frozen ones, as on every MicroPython port (sys.path
# puts the filesystem ahead of .frozen): a user's app replaces a built-in one of the same name
# without a rebuild. /apps/NAME.py first, then the package /apps/NAME/__init__.py.
APPS_DIR = "/apps"


def find_app(name):
    """The path of app `name` on the filesystem, or None."""
    for path in ("%s/%s.py" % (APPS_DIR, name), "%s/%s/__init__.py" % (APPS_DIR, name)):
        if _exists(path):
            return path
    return None


def disk_apps():
    try:
        entries = os.listdir(APPS_DIR)
    except OSError:
        return []
    names = []
    for entry in entries:
        name = entry[:-3] if entry.endswith(".py") else entry
        if name not in names and find_app(name):
            names.append(name)
    names.sort()
    return names


def import_app(name):
    """Import app `name` from /apps (its siblings there are importable too); None when it is
    not on the filesystem."""
    if find_app(name) is None:
        return None
    if APPS_DIR not in sys.path:
        sys.path.insert(0, APPS_DIR)
    return __import__(name)
