"""Build the images: build/kernel.elf (the port's Makefile), build/kernel.iso
(GRUB, multiboot2) and the floor image of tools/floor/."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from manticore_host.qemu import repo_root

ROOT = repo_root()
BUILD = ROOT / "build"
KERNEL = BUILD / "kernel.elf"
ISO = BUILD / "kernel.iso"
FLOOR = BUILD / "floor" / "floor.elf"
FLOOR_ISO = BUILD / "bench" / "floor.iso"
PORT = ROOT / "ports" / "manticore"


class BuildError(RuntimeError):
    pass


def grub_cfg(cmdline: str = "") -> str:
    line = f"multiboot2 /boot/kernel.elf {cmdline}".rstrip()
    return ("set timeout=0\n"
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


def make_iso(elf: Path = KERNEL, iso: Path = ISO, staging: Path | None = None,
             cmdline: str = "", quiet: bool = False) -> bool:
    """GRUB ISO booting `elf` via multiboot2; rebuilt only when the ELF or
    grub.cfg changed.  Returns True if it was (re)built."""
    if not elf.is_file():
        raise BuildError(f"{elf} does not exist: run `invoke build` first")
    for tool in ("grub-mkrescue", "xorriso", "mformat"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} not found: run `invoke deps` (needs "
                             "grub-pc-bin grub-common xorriso mtools)")
    staging = staging or iso.parent / "iso"
    changed = _write_if_changed(staging / "boot" / "kernel.elf",
                                elf.read_bytes())
    changed |= _write_if_changed(staging / "boot" / "grub" / "grub.cfg",
                                 grub_cfg(cmdline).encode())
    if iso.is_file() and not changed:
        return False
    env = dict(os.environ, SOURCE_DATE_EPOCH=_source_date_epoch())
    tmp = iso.with_suffix(".iso.tmp")
    result = subprocess.run(
        ["grub-mkrescue", "-o", str(tmp), str(staging),
         "--locales=", "--fonts=", "--themes=",
         "--", "-volid", "MANTICORE"],
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


def make_floor_iso() -> Path:
    make_floor()
    make_iso(FLOOR, FLOOR_ISO, staging=BUILD / "bench" / "floor-iso",
             quiet=True)
    return FLOOR_ISO
