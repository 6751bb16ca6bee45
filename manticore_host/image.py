"""Build the images: build/kernel.elf (the port's Makefile), build/kernel.iso
(GRUB, multiboot2), the floor image of tools/floor/ and the test-only multiboot2 shim
of tools/mb2shim/."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from manticore_host.qemu import repo_root

ROOT = repo_root()
BUILD = ROOT / "build"
KERNEL = BUILD / "kernel.elf"
ISO = BUILD / "kernel.iso"
FLOOR = BUILD / "floor" / "floor.elf"
FLOOR_ISO = BUILD / "bench" / "floor.iso"
MB2SHIM = BUILD / "mb2shim" / "mb2shim.elf"
PORT = ROOT / "ports" / "manticore"


class BuildError(RuntimeError):
    pass


def grub_cfg(cmdline: str = "") -> str:
    line = f"multiboot2 /boot/kernel.elf {cmdline}".rstrip()
    return ("set timeout=0\n"
            "set gfxpayload=keep\n"
            "set default=0\n"
            'menuentry "manticore" {\n'
            f"    {line}\n"
            "    boot\n"
            "}\n")


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def boot_copy(elf: Path) -> bytes:
    """The ELF the ISO carries: `elf` without its debug sections (objcopy --strip-debug),
    symbols kept. GRUB's multiboot2 loader reads every section that is not loaded into
    memory (for the ELF-symbols tag) through the firmware's disk calls, so the ~5.6 MiB of
    DWARF cost ~170 ms of a BIOS boot and ~130 ms of a UEFI one under TCG. The kernel does
    not read them; panics are symbolized on the host from build/kernel.elf."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / elf.name
        result = subprocess.run(["objcopy", "--strip-debug", str(elf), str(out)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"objcopy --strip-debug {elf} failed:\n{result.stderr.strip()}")
        return out.read_bytes()


def _source_date_epoch() -> str:
    """SOURCE_DATE_EPOCH for reproducible ISO timestamps: the environment's,
    else the last commit's time, else a fixed date."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "log", "-1",
                              "--format=%ct"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip().isdigit():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "1735689600"                 # 2025-01-01


# grub-mkrescue formats the El Torito EFI image (efi.img) with mformat, which picks a
# random FAT volume serial; this fixed one makes the ISO reproducible ("MANT").
FAT_SERIAL = "4d414e54"
GRUB_LIB = Path("/usr/lib/grub")


def _mformat_wrapper(directory: Path) -> Path:
    """A directory holding an `mformat` that passes a fixed serial (-N) to the
    real one; put first on grub-mkrescue's PATH."""
    real = shutil.which("mformat")
    script = f'#!/bin/sh\nexec {real} -N {FAT_SERIAL} "$@"\n'.encode()
    _write_if_changed(directory / "mformat", script)
    (directory / "mformat").chmod(0o755)
    return directory


def _pin_mtimes(tree: Path, epoch: int) -> None:
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_iso(elf: Path = KERNEL, iso: Path = ISO, staging: Path | None = None,
             cmdline: str = "", quiet: bool = False) -> bool:
    """GRUB ISO booting `elf` (its boot_copy) via multiboot2 under BIOS (i386-pc)
    and UEFI (x86_64-efi); rebuilt only when the ELF or grub.cfg changed.  Returns
    True if it was (re)built.

    Reproducible: every date in it (ISO 9660, Rock Ridge, HFS+, GPT and
    volume UUIDs, the files' dates, efi.img's FAT) comes from
    SOURCE_DATE_EPOCH, and efi.img's FAT serial is fixed."""
    if not elf.is_file():
        raise BuildError(f"{elf} does not exist: run `invoke build` first")
    for tool in ("grub-mkrescue", "xorriso", "mformat", "objcopy"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} not found: run `invoke deps` (needs "
                             "grub-pc-bin grub-efi-amd64-bin grub-common "
                             "xorriso mtools binutils)")
    for platform, package in (("i386-pc", "grub-pc-bin"),
                              ("x86_64-efi", "grub-efi-amd64-bin")):
        if not (GRUB_LIB / platform).is_dir():
            raise BuildError(f"{GRUB_LIB / platform} missing: the ISO would "
                             f"not boot that firmware; run `invoke deps` "
                             f"(needs {package})")
    staging = staging or iso.parent / "iso"
    changed = _write_if_changed(staging / "boot" / "kernel.elf", boot_copy(elf))
    changed |= _write_if_changed(staging / "boot" / "grub" / "grub.cfg",
                                 grub_cfg(cmdline).encode())
    if iso.is_file() and not changed:
        return False
    epoch = int(_source_date_epoch())
    _pin_mtimes(staging, epoch)
    wrapper = _mformat_wrapper(iso.parent / ".iso-tools")
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch),
               PATH=f"{wrapper}{os.pathsep}{os.environ.get('PATH', '')}")
    # xorriso 1.5 commands after grub-mkrescue's `--`: the volume dates and
    # UUID (from which the GPT GUIDs derive), the files grub-mkrescue copies
    # in with today's mtime, and "now" itself.
    stamp = time.strftime("%Y%m%d%H%M%S00", time.gmtime(epoch))
    tmp = iso.with_suffix(".iso.tmp")
    result = subprocess.run(
        ["grub-mkrescue", "-o", str(tmp), str(staging),
         "--locales=", "--fonts=", "--themes=",
         "--", "-volid", "MANTICORE",
         "-volume_date", "uuid", stamp,
         "-volume_date", "all_file_dates", f"={epoch}",
         "-iso_nowtime", f"={epoch}"],
        env=env, capture_output=True, text=True)
    if result.returncode != 0 or not tmp.is_file():
        raise BuildError(f"grub-mkrescue failed:\n{result.stderr.strip()}")
    tmp.replace(iso)
    if not quiet:
        name = iso.relative_to(ROOT) if iso.is_relative_to(ROOT) else iso
        print(f"iso: {name} ({iso.stat().st_size // 1024} KiB)")
    return True


def make_floor() -> Path:
    """Build tools/floor -> build/floor/floor.elf (make, so incremental)."""
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "tools" / "floor")],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"floor image build failed:\n{result.stdout}"
                         f"{result.stderr}")
    return FLOOR


def make_mb2shim() -> Path:
    """Build tools/mb2shim -> build/mb2shim/mb2shim.elf (boots the kernel with a crafted
    multiboot2 block, for the bad-loader-input boot tests)."""
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "tools" / "mb2shim")],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"mb2shim build failed:\n{result.stdout}{result.stderr}")
    return MB2SHIM


def make_floor_iso() -> Path:
    make_floor()
    make_iso(FLOOR, FLOOR_ISO, staging=BUILD / "bench" / "floor-iso",
             quiet=True)
    return FLOOR_ISO
