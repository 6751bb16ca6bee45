"""The ISO carries the kernel without its DWARF: GRUB's multiboot2 loader reads every
section that is not loaded (for the ELF-symbols tag) through the firmware's disk calls, which
cost a BIOS boot ~170 ms under TCG. What the kernel runs must be exactly what was built, and
the symbols stay, so that the ISO's own ELF still names a panic's addresses."""

from __future__ import annotations

import io
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from manticore_host import image

pytestmark = pytest.mark.timeout(120)


def _segments(data: bytes) -> list[tuple[int, int, bytes]]:
    elf = ELFFile(io.BytesIO(data))
    return [(seg["p_vaddr"], seg["p_memsz"], seg.data())
            for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]


def _section_names(data: bytes) -> set[str]:
    return {section.name for section in ELFFile(io.BytesIO(data)).iter_sections()}


def _built(path):
    if not path.is_file():
        pytest.fail(f"{path} does not exist: run `invoke build iso` (invoke test does)")
    return path


def test_the_boot_copy_is_the_kernel_without_debug_sections():
    built = _built(image.KERNEL).read_bytes()
    copy = image.boot_copy(image.KERNEL)
    assert any(name.startswith(".debug_") for name in _section_names(built)), (
        "build/kernel.elf has no DWARF: this test would prove nothing")
    names = _section_names(copy)
    assert not [n for n in names if n.startswith(".debug_")], sorted(names)
    assert {".symtab", ".strtab"} <= names, sorted(names)
    assert _segments(copy) == _segments(built), "the loaded segments differ from the build's"
    assert ELFFile(io.BytesIO(copy)).header["e_entry"] == \
        ELFFile(io.BytesIO(built)).header["e_entry"]
    assert len(copy) < len(built) // 3, (len(copy), len(built))


def test_the_iso_holds_the_boot_copy(tmp_path):
    iso = _built(image.ISO)
    out = tmp_path / "kernel.elf"
    result = subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso),
                             "-extract", "/boot/kernel.elf", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and out.is_file(), result.stderr
    assert out.read_bytes() == image.boot_copy(_built(image.KERNEL)), (
        "build/kernel.iso does not hold build/kernel.elf's boot copy: stale ISO?")
