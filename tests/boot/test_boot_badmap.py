"""Bad loader input, booted for real: tools/mb2shim (built from this repository) is booted by
QEMU (PVH, -kernel) with the real build/kernel.elf as its initrd, loads it and enters its
multiboot2 entry with a crafted information block: the true memory map plus an overlapping,
a zero-length, a beyond-2^52 and a wrapping entry (E820-style tag on microvm; EFI memory map
tag, as GRUB passes under UEFI, on q35) and a last tag running past the block. Each is
reported and skipped, the kernel reaches the REPL with all of its RAM and nothing more, takes
the command line and the ACPI RSDP from the block, and its devices work."""

import re

import pytest

from manticore_host import image

pytestmark = pytest.mark.timeout(90)

MEMORY_MIB = 128


@pytest.fixture(scope="module")
def shim():
    return image.make_mb2shim()


@pytest.mark.parametrize("machine, mode", [("microvm", "mb2"), ("q35", "efi")])
def test_bad_memory_map_entries_are_reported_and_skipped(boot, shim, machine, mode):
    vm = boot(machine=machine, memory=f"{MEMORY_MIB}M", kernel=shim,
              initrd=image.KERNEL, append=f"shim.map={mode} badmap.word=1")
    banner = vm.banner
    assert f"{'EFI' if mode == 'efi' else 'E820'} memory map with" in banner, banner
    expected = ["the rest of the block is ignored",         # the runaway last tag
                "(type 1) overlaps 0x",                     # a copy of a piece of RAM
                "has length 0: skipped"]
    if mode == "efi":
        expected.append("pages is absurd: skipped")
    else:
        expected.append("lies beyond the 2^52 physical address limit: skipped")
    for text in expected:
        assert text in banner, f"expected {text!r} reported:\n{banner}"
    assert f"boot multiboot2 ({'uefi' if mode == 'efi' else 'bios'})" in banner, banner
    assert "cmdline 'badmap.word=1'" in banner, f"the shim's command line tag:\n{banner}"
    # RAM is the true amount: the overlapping copy was not counted twice, the absurd ones
    # not at all (the firmware keeps a few hundred KiB below -m).
    ram = int(re.search(r"RAM (\d+) MiB", banner).group(1))
    assert MEMORY_MIB - 4 <= ram <= MEMORY_MIB, banner
    # ACPI from the RSDP tag the shim copied: the I/O APIC is found.
    assert re.search(r"acpi: 1 CPU, \d I/O APIC", banner), banner
    # The heap is real memory: fill 48 MiB of it and read it back.
    assert vm.repl("b = bytearray(48 << 20); b[-1] = 7; print(b[-1] + len(b) // (1 << 20))") \
        == "55"
    if machine == "microvm":
        # The virtio-mmio devices found through the DSDT work: virtio-rng feeds os.urandom.
        assert "virtio-rng: mmio@" in banner, banner
        got = vm.repl("import os, pci; n = len(os.urandom(32)); print(n, pci.virtio_rng()"
                      "['interrupts'] > 0)")
        assert got == "32 True", got
