"""The Linux peer image: what a user would run instead of manticore, for the benchmarks.

A minimal Linux guest running MicroPython's unix port, under the same QEMU with the same
options as manticore (VMConfig/build_command; only -kernel, -initrd and -append differ):

  kernel     Debian's linux-image (pinned; debbin.py), booted directly with -kernel
  initramfs  busybox-static (pinned), the virtio-net modules in the order their .modinfo
             gives (kmod.py), the storage modules (virtio-blk, ext4, vfat; /init loads
             them only when a virtio-blk disk is there), tools/linuxpeer/init and its
             udhcpc script, and
  micropython  the unix port from the same MicroPython tree as manticore, standard variant
             (its optimisation and features), linked statically, with ssl over the same
             mbedTLS tree and settings as manticore, asyncio, the unchanged apps/echod.py,
             frozen/ssl.py and the shims of tools/linuxpeer/ frozen in

`ensure_image()` builds it into build/peer/ once and returns the cached PeerImage while
no input changed (the pins, tools/linuxpeer/*, apps/echod.py, the micropython binary);
`peer_config()` gives the VMConfig to boot it in one of three modes:

    repl   MicroPython's own REPL on the serial console (`>>> `)
    raw    the raw REPL protocol of MicroPython's tools/pyboard.py (rawrepl.py)
    app    app=NAME: asyncio.run(apps.NAME.main()), e.g. echod on 7777/udp and /tcp

    python3 -m manticore_host.linuxpeer build       # build (or check) the image
    python3 -m manticore_host.linuxpeer run [--mode raw] [--app echod] [--publish 7777/udp]

`host_micropython()` is the same static binary, for running the same code on the host.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from manticore_host import debbin, initramfs, kmod
from manticore_host.fetch import STAMP, micropython_dir
from manticore_host.qemu import VMConfig, repo_root

ROOT = repo_root()
PEER_SRC = ROOT / "tools" / "linuxpeer"
MANIFEST = PEER_SRC / "manifest.py"
BUILD = ROOT / "build" / "peer"
UNIX_STATIC = BUILD / "unix-static"
UNIX_DYNAMIC = BUILD / "unix"
IMAGE_JSON = BUILD / "image.json"

KERNEL_PIN = debbin.DebPin(
    name="linux-image-6.12.117+deb13-amd64",
    version="6.12.117-1",
    sha256="ca712d36790184f6ac125ce2b20ea4e2202ae6bb7817b7de268f1f0115ccda73",
    fallback="linux-image-amd64", follows="linux-image-")
BUSYBOX_PIN = debbin.DebPin(
    name="busybox-static",
    version="1:1.37.0-6+b9",
    sha256="598a3fd92bdafc34cd81196b2952ad36e910e47a4ecf162f8ce5e8e262598e53")
PINS = {"kernel": KERNEL_PIN, "busybox": BUSYBOX_PIN}

# The drivers the image needs beyond the kernel's built-ins: virtio-net (virtio and
# virtio_pci are built into Debian's kernel, so they resolve to nothing).
MODULES = ("virtio_pci", "virtio_net")
# Storage, loaded by /init only when a virtio-blk PCI function is present (as udev would
# load them on a modalias): virtio-blk, and the filesystems `invoke bench storage` puts on
# its disks (ext4, Linux's own; vfat, the same on-disk format as manticore's FAT), with
# the code pages vfat asks for at mount time (CONFIG_FAT_DEFAULT_CODEPAGE=437,
# _IOCHARSET="ascii" in Debian's config), and the crc32c that ext4 asks the crypto API for
# at mount time (generic, and the SSE4.2 one the kernel prefers when the CPU has it), which
# no .modinfo names as a dependency either.
BLOCK_MODULES = ("virtio_blk", "crc32c_generic", "crc32c_intel", "ext4", "vfat", "nls_cp437",
                 "nls_ascii")

# The frozen inputs of the MicroPython build (besides the MicroPython tree itself).
FROZEN = ("manifest.py", "kernel/__init__.py", "kernel/syscalls.py", "peersocket.py",
          "peer_run.py", "rawrepl.py", "mbedtls_config_peer.h")
FROZEN_APPS = ("apps/__init__.py", "apps/echod.py", "frozen/ssl.py")
# Options beside the unix port's standard variant: no libffi or Berkeley DB (the Debian
# source tree carries neither), so the binary links statically; and the optimisation level
# of ports/manticore (-O2; vm.c and gc.c get -O3 in both through py/mkrules.mk) instead of
# the unix port's default -Os, so that the benchmarks compare the two environments, not two
# compiler settings (-Os costs the unix port about 14% on the host in perf_bench).
MAKE_OPTIONS = ("VARIANT=standard", "PROG=micropython", "MICROPY_PY_FFI=0",
                "MICROPY_PY_BTREE=0", "MICROPY_SSL_AXTLS=0",
                "COPT=-O2 -DNDEBUG -fdata-sections -ffunction-sections")
# ssl: the same mbedTLS tree as manticore (Debian's, fetch.mbedtls_dir()) with the peer's
# config (tools/linuxpeer/mbedtls_config_peer.h: manticore's settings on a hosted libc;
# MICROPY_TRACKED_ALLOC for its GC-heap allocator).  extmod.mk names the library's sources
# $(MBEDTLS_DIR)/library/*.c: an absolute MBEDTLS_DIR puts their objects under
# BUILD/<that path>/, never into the shared tree, and its include directory is given here
# because extmod.mk's own -I is relative to the MicroPython tree.
MBEDTLS_CONFIG = PEER_SRC / "mbedtls_config_peer.h"


def ssl_options(mbedtls: Path) -> list[str]:
    return ["MICROPY_PY_SSL=1", "MICROPY_SSL_MBEDTLS=1", f"MBEDTLS_DIR={mbedtls}",
            f'MBEDTLS_CONFIG_FILE=\\"{MBEDTLS_CONFIG}\\"',
            f"CFLAGS_EXTRA=-I{mbedtls}/include -DMICROPY_TRACKED_ALLOC=1"]

CMDLINE = "console=ttyS0,115200 quiet panic=-1"
MODES = ("repl", "raw", "app")
READY = {"repl": b">>> ", "raw": b"rawrepl: ready", "app": b": listening on"}
APP_READY = {"echod": b"echod: listening on 7777/tcp"}


class PeerBuildError(RuntimeError):
    """The peer image could not be built; the message says why."""


@dataclass
class PeerImage:
    """A built peer image (everything under build/peer/)."""

    vmlinuz: Path
    initrd: Path
    micropython: Path
    kernel_version: str
    modules: list[str]                  # insmod order
    provenance: list[dict]              # per package: name, version, sha256, pinned
    vmlinuz_bytes: int
    initrd_bytes: int
    micropython_bytes: int
    key: str = ""                       # digest of every input
    block_modules: list[str] = dataclasses.field(default_factory=list)  # with a disk
    built_seconds: float | None = None  # None: taken from the cache

    def pinned(self) -> bool:
        return all(p.get("pinned") for p in self.provenance)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("vmlinuz", "initrd", "micropython"):
            d[k] = str(d[k])
        d.pop("built_seconds")
        return d

    @classmethod
    def from_json(cls, d: dict) -> "PeerImage":
        d = dict(d)
        for k in ("vmlinuz", "initrd", "micropython"):
            d[k] = Path(d[k])
        return cls(**d)


# -- MicroPython's unix port ---------------------------------------------------------------

def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _tree_identity(tree: Path) -> str:
    stamp = tree / STAMP
    return stamp.read_text().strip() if stamp.is_file() else str(tree)


def frozen_inputs() -> list[Path]:
    return [PEER_SRC / f for f in FROZEN] + [ROOT / f for f in FROZEN_APPS]


def make_command(tree: Path, build: Path, static: bool = True,
                 mbedtls: Path | None = None) -> list[str]:
    """The make command line for the peer's unix port (static: LDFLAGS_EXTRA=-static), with
    ssl over the mbedTLS tree `mbedtls` (default: the fetched one)."""
    if mbedtls is None:
        from manticore_host.fetch import mbedtls_dir
        mbedtls = mbedtls_dir(quiet=True)
    return ["make", "-C", str(tree / "ports" / "unix"), "-j2", f"BUILD={build}",
            *MAKE_OPTIONS, *ssl_options(mbedtls), f"FROZEN_MANIFEST={MANIFEST}",
            f"MPY_LIB_DIR={build / 'no-micropython-lib'}",
            *(["LDFLAGS_EXTRA=-static"] if static else [])]


def mpy_cross_command(tree: Path) -> list[str]:
    """make for the tree's own mpy-cross (in tree/mpy-cross/build, its default place, where
    the unix port's Makefile looks for it); a no-op once it is built."""
    return ["make", "-C", str(tree / "mpy-cross"), "-j2"]


def build_micropython(static: bool = True, log: Callable[[str], None] = print) -> Path:
    """build/peer/unix-static/micropython (or unix/ without -static), built with make -j2
    only when an input changed since the last build (the tree, the frozen files, the make
    options); make itself is incremental within a build."""
    tree = micropython_dir(quiet=True)
    build = UNIX_STATIC if static else UNIX_DYNAMIC
    exe = build / "micropython"
    from manticore_host.fetch import mbedtls_dir
    mbedtls = mbedtls_dir(quiet=True)
    cmd = make_command(tree, build, static, mbedtls)
    key = _digest(_tree_identity(tree), _tree_identity(mbedtls), *cmd,
                  *(p.read_bytes() for p in frozen_inputs()))
    stamp = build / ".manticore-inputs"
    if exe.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        return exe
    if build.exists():
        # make compares timestamps only: changed options (COPT, a MICROPY_* switch) or a
        # different tree would leave stale objects behind, so start from nothing.
        shutil.rmtree(build)
    # The Debian source tree has no micropython-lib; freezing only insists that the
    # directory looks like one (as ports/manticore/Makefile does).
    lib = build / "no-micropython-lib"
    lib.mkdir(parents=True, exist_ok=True)
    (lib / "README.md").write_text("Placeholder: the peer freezes nothing from "
                                   "micropython-lib.\n")
    log(f"linuxpeer: building MicroPython's unix port ({'static' if static else 'dynamic'}) "
        f"into {build}")
    logfile = build / "make.log"
    with open(logfile, "w") as out:
        # mpy-cross first, on its own: the unix port's make builds it as a sub-make when it is
        # missing (a fresh tree), and that sub-make inherits BUILD= and PROG= from this
        # command line, so it compiled into the port's build directory and linked its objects
        # as `micropython` (undefined mp_qstr_frozen_const_pool, on a fresh machine only).
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        result = subprocess.run(mpy_cross_command(tree), stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        if result.returncode == 0:
            result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0 or not exe.is_file():
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
        raise PeerBuildError(f"{' '.join(cmd)} failed (status {result.returncode}; "
                             f"log in {logfile}):\n{tail}")
    stamp.write_text(key + "\n")
    return exe


def host_micropython(log: Callable[[str], None] = print) -> Path:
    """The peer's MicroPython for runs on the host: the very same static binary as in the
    image (statically linked, so it runs on any x86-64 Linux; same frozen modules)."""
    return build_micropython(static=True, log=log)


# -- the kernel and busybox -----------------------------------------------------------------

def _fetch(log: Callable[[str], None]) -> dict[str, tuple[debbin.Provenance, Path]]:
    got = {}
    for what, pin in PINS.items():
        prov = debbin.fetch_deb(pin, key=what, warn=log)
        got[what] = (prov, debbin.unpack(prov))
    return got


def kernel_files(root: Path) -> tuple[Path, Path]:
    """(vmlinuz, usr/lib/modules/<release>) of an unpacked linux-image package."""
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    modules = sorted((root / "usr" / "lib" / "modules").glob("*"))
    if len(vmlinuz) != 1 or len(modules) != 1:
        raise PeerBuildError(f"{root}: expected one boot/vmlinuz-* and one "
                             f"usr/lib/modules/<release>, found {vmlinuz} and {modules}")
    return vmlinuz[0], modules[0]


def busybox_applets(busybox: Path) -> list[str]:
    """The applets' install paths (bin/sh, sbin/ip, ...), from `busybox --list-full` run on
    the host: the binary is static x86-64, like the host."""
    result = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                            timeout=30)
    if result.returncode != 0:
        raise PeerBuildError(f"{busybox} --list-full failed: {result.stderr.strip()}")
    return sorted(line.strip() for line in result.stdout.splitlines() if line.strip())


# -- the initramfs -----------------------------------------------------------------------------

def initramfs_entries(busybox: bytes, applets: list[str], micropython: bytes,
                      modules: list[tuple[str, bytes]], release: str,
                      block_modules: list[tuple[str, bytes]] = ()) -> list[initramfs.Entry]:
    """Every member of the peer's initramfs (block_modules: loaded only with a disk)."""
    e = initramfs
    entries = [
        e.file("init", (PEER_SRC / "init").read_bytes(), 0o755),
        e.file("bin/busybox", busybox, 0o755),
        e.file("bin/micropython", micropython, 0o755),
        e.file("usr/share/udhcpc/default.script", (PEER_SRC / "udhcpc.script").read_bytes(),
               0o755),
        e.chardev("dev/console", 5, 1),   # init's stdio, before devtmpfs is mounted
        e.directory("proc"), e.directory("sys"), e.directory("tmp", 0o1777),
        e.directory("root", 0o700), e.directory("etc"),
    ]
    have = {"bin/busybox", "bin/micropython"}
    for path in applets:
        path = path.lstrip("/")
        if path not in have:
            have.add(path)
            entries.append(e.symlink(path, "/bin/busybox"))
    order = []
    for name, elf in modules:
        rel = f"{release}/{name}.ko"
        entries.append(e.file(f"lib/modules/{rel}", elf))
        order.append(rel)
    entries.append(e.file("lib/modules/load-order", "".join(f"{r}\n" for r in order).encode()))
    loaded = {name for name, _ in modules}
    order = []
    for name, elf in block_modules:
        if name in loaded:
            continue
        rel = f"{release}/{name}.ko"
        entries.append(e.file(f"lib/modules/{rel}", elf))
        order.append(rel)
    entries.append(e.file("lib/modules/load-order-blk",
                          "".join(f"{r}\n" for r in order).encode()))
    return entries


# -- the image ---------------------------------------------------------------------------------

def _load_cached(key: str) -> PeerImage | None:
    try:
        image = PeerImage.from_json(json.loads(IMAGE_JSON.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if image.key != key or not all(p.is_file() for p in (image.vmlinuz, image.initrd,
                                                          image.micropython)):
        return None
    return image


def ensure_image(log: Callable[[str], None] = print) -> PeerImage:
    """The peer image under build/peer/, built (downloads, static MicroPython, initramfs)
    unless the cached one's inputs are unchanged.  Raises PeerBuildError, or
    fetch.FetchError for a download problem, with the reason."""
    t0 = time.monotonic()
    try:
        got = _fetch(log)
        micropython = build_micropython(static=True, log=log)
        vmlinuz_src, module_root = kernel_files(got["kernel"][1])
        tree = kmod.ModuleTree.scan(module_root)
        modules = kmod.resolve(tree, list(MODULES))
        block_modules = kmod.resolve(tree, list(BLOCK_MODULES))
    except kmod.ModuleError as e:
        raise PeerBuildError(f"kernel modules: {e}") from e
    busybox = got["busybox"][1] / "usr" / "bin" / "busybox"
    if not busybox.is_file():
        raise PeerBuildError(f"{busybox} missing from the busybox-static package")
    provenance = [got[w][0].to_json() for w in PINS]
    mpy_bytes = micropython.read_bytes()
    key = _digest(json.dumps(provenance, sort_keys=True), json.dumps(MODULES),
                  json.dumps(BLOCK_MODULES), CMDLINE,
                  *(Path(f).read_bytes() for f in (__file__, initramfs.__file__,
                                                    kmod.__file__)),
                  (PEER_SRC / "init").read_bytes(), (PEER_SRC / "udhcpc.script").read_bytes(),
                  hashlib.sha256(mpy_bytes).hexdigest(),
                  *(f"{n}:{hashlib.sha256(b).hexdigest()}" for n, b in modules + block_modules))
    cached = _load_cached(key)
    if cached is not None:
        return cached

    log("linuxpeer: assembling the initramfs")
    entries = initramfs_entries(busybox.read_bytes(), busybox_applets(busybox), mpy_bytes,
                                modules, tree.release, block_modules)
    BUILD.mkdir(parents=True, exist_ok=True)
    initrd = BUILD / "initrd.gz"
    vmlinuz = BUILD / "vmlinuz"
    _write_atomic(initrd, initramfs.build(entries))
    shutil.copyfile(vmlinuz_src, vmlinuz)
    image = PeerImage(
        vmlinuz=vmlinuz, initrd=initrd, micropython=micropython,
        kernel_version=tree.release, modules=[n for n, _ in modules],
        block_modules=[n for n, _ in block_modules if n not in {m for m, _ in modules}],
        provenance=provenance, vmlinuz_bytes=vmlinuz.stat().st_size,
        initrd_bytes=initrd.stat().st_size, micropython_bytes=len(mpy_bytes), key=key)
    _write_atomic(IMAGE_JSON, (json.dumps(image.to_json(), indent=1) + "\n").encode())
    image.built_seconds = time.monotonic() - t0
    if not image.pinned():
        log("linuxpeer: WARNING: built from unpinned packages: " + ", ".join(
            f"{p['name']} {p['version']}" for p in provenance if not p["pinned"]))
    log(f"linuxpeer: image ready in {image.built_seconds:.1f} s: kernel "
        f"{image.kernel_version}, initrd {image.initrd_bytes} bytes, micropython "
        f"{image.micropython_bytes} bytes")
    return image


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- booting it --------------------------------------------------------------------------------

def kernel_append(mode: str = "repl", app: str | None = None, extra: str = "") -> str:
    """The kernel command line for a mode (see tools/linuxpeer/init)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "app" and not app:
        raise ValueError("mode app needs app=NAME")
    if app and mode != "app":
        raise ValueError(f"app={app} runs only in mode app (got mode {mode})")
    words = [CMDLINE, f"mode={mode}"] + ([f"app={app}"] if app else []) + [extra]
    return " ".join(w for w in words if w)


def peer_config(image: PeerImage, mode: str = "repl", app: str | None = None,
                **vmconfig_kwargs) -> VMConfig:
    """A VMConfig booting the peer image in `mode` (app=NAME for mode "app").  Other
    keywords are the launcher's own (machine, memory, accel, net, publish, serial...);
    `append` adds kernel command line words.  Not VMConfig.app: that is manticore's
    fw_cfg mechanism, which Linux ignores; app=NAME goes on the kernel command line."""
    if "app" in vmconfig_kwargs or "boot" in vmconfig_kwargs:
        raise ValueError("peer_config sets boot and the app itself")
    extra = vmconfig_kwargs.pop("append", "")
    return VMConfig(boot="kernel", kernel=image.vmlinuz, initrd=image.initrd,
                    append=kernel_append(mode, app, extra), **vmconfig_kwargs)


def ready_marker(mode: str, app: str | None = None) -> bytes:
    """What the serial console shows once the guest is ready in this mode (for app mode,
    the app's own line when known: echod is ready once both its sockets listen)."""
    if mode == "app" and app in APP_READY:
        return APP_READY[app]
    return READY[mode]


# -- command line ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m manticore_host.linuxpeer",
                                     description="Build or run the Linux peer image.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("build", help="build the image (or say it is up to date)")
    run = sub.add_parser("run", help="boot it with the console on this terminal")
    run.add_argument("--mode", choices=MODES, default="repl")
    run.add_argument("--app")
    run.add_argument("--memory", default="128M")
    run.add_argument("--machine", default="q35")
    run.add_argument("--accel", default="tcg")
    run.add_argument("--net", choices=("none", "user", "tap"), default=None)
    run.add_argument("--publish", action="append", default=[])
    run.add_argument("--append", default="")
    run.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    from manticore_host.fetch import FetchError
    try:
        image = ensure_image(log=lambda m: print(m, file=sys.stderr))
    except (PeerBuildError, FetchError) as e:
        print(f"linuxpeer: {e}", file=sys.stderr)
        return 1
    if args.command in (None, "build"):
        print(json.dumps(image.to_json(), indent=1))
        return 0
    net = args.net or ("user" if args.publish else "none")
    mode = "app" if args.app and args.mode == "repl" else args.mode
    cfg = peer_config(image, mode, args.app, memory=args.memory, machine=args.machine,
                      accel=args.accel, net=net, publish=args.publish, append=args.append,
                      serial="stdio")
    from manticore_host.qemu import build_command
    cmd = build_command(cfg, None, None)
    print(f"linuxpeer: {' '.join(cmd)}", file=sys.stderr)
    if args.dry_run:
        return 0
    if net == "tap":
        print("linuxpeer: run --net tap through the launcher's VM (it creates the "
              "namespace); use the tests or echobench", file=sys.stderr)
        return 2
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
