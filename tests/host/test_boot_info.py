"""Host unit test of arch/x86_64/boot_info.c: the loader-information parser compiled for the
host (kprintf to stdout, no fw_cfg) and fed crafted multiboot2 blocks, GRUB-under-UEFI
style EFI memory maps and PVH start info. Bad input (a tag running past the block, an
absurd block size, zero-length, overlapping, beyond-2^52 and surplus memory entries, an EFI
map with a bad descriptor size) is reported and skipped; good input is taken as given."""

from __future__ import annotations

from pathlib import Path

import pytest

import hostcc

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)

HARNESS = r"""
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "arch/x86_64/boot_info.h"

""" + hostcc.KPRINTF_STUB + r"""
void panic(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("PANIC ");
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(3);
}
long fw_cfg_read_file(const char *name, void *buf, size_t max) {
    (void)name; (void)buf; (void)max;
    return -1;
}

// A multiboot2 information block under construction (8-byte aligned tags).
static _Alignas(8) unsigned char mbi[8192];
static size_t used;

static void *tag(unsigned type, size_t size) {
    unsigned char *t = mbi + used;
    memset(t, 0, size);
    ((unsigned *)t)[0] = type;
    ((unsigned *)t)[1] = (unsigned)size;
    used += (size + 7) & ~(size_t)7;
    return t;
}
static void begin(void) { used = 8; memset(mbi, 0, sizeof(mbi)); }
static void finish(void) {
    tag(0, 8);
    ((unsigned *)mbi)[0] = (unsigned)used;
}
static void mmap_tag(int n, const unsigned long long (*e)[3]) {
    unsigned char *t = tag(6, 16 + 24 * (size_t)n);
    ((unsigned *)t)[2] = 24;
    for (int i = 0; i < n; i++) {
        unsigned long long *entry = (unsigned long long *)(t + 16 + 24 * i);
        entry[0] = e[i][0];
        entry[1] = e[i][1];
        ((unsigned *)(entry + 2))[0] = (unsigned)e[i][2];
    }
}
// EFI descriptors: type, start, pages (descriptor size 48, as OVMF reports).
static void efi_tag(int n, const unsigned long long (*d)[3], unsigned desc_size) {
    unsigned char *t = tag(17, 16 + (size_t)desc_size * n);
    ((unsigned *)t)[2] = desc_size;
    ((unsigned *)t)[3] = 1;
    for (int i = 0; i < n; i++) {
        unsigned char *p = t + 16 + (size_t)desc_size * i;
        *(unsigned *)p = (unsigned)d[i][0];
        *(unsigned long long *)(p + 8) = d[i][1];
        *(unsigned long long *)(p + 24) = d[i][2];
    }
}
static void dump(const char *name) {
    printf("CASE %s loader=%s firmware=%s count=%d skipped=%d rsdp=%d cmdline=[%s]\n", name,
        boot_info.loader, boot_info.firmware, boot_info.mem_count, boot_info.mem_skipped,
        boot_info.rsdp_phys != 0, boot_info.cmdline);
    for (int i = 0; i < boot_info.mem_count; i++) {
        printf("MEM %s %llx %llx %u\n", name, (unsigned long long)boot_info.mem[i].base,
            (unsigned long long)boot_info.mem[i].length, boot_info.mem[i].type);
    }
}
static void run(const char *name) {
    memset(&boot_info, 0, sizeof(boot_info));
    boot_info_parse(0x36d76289, (unsigned long long)(unsigned long)mbi);
    dump(name);
}

int main(void) {
    // A BIOS boot: E820-style map, old RSDP, command line.
    begin();
    strcpy((char *)tag(1, 8 + 12) + 8, "app=echod x");
    static const unsigned long long bios[][3] = {
        {0, 0x9fc00, 1}, {0x9fc00, 0x400, 2}, {0xf0000, 0x10000, 2}, {0x100000, 0x7ee0000, 1},
    };
    mmap_tag(4, bios);
    memcpy((char *)tag(14, 8 + 20) + 8, "RSD PTR ", 8);
    finish();
    run("bios");

    // GRUB under UEFI: EFI64 system table tag, both maps, new RSDP; the EFI one is used and
    // neighbours of one kind are joined.
    begin();
    tag(12, 16);
    static const unsigned long long e820[][3] = {{0, 0xa0000, 1}, {0x100000, 0x100000, 1}};
    mmap_tag(2, e820);
    static const unsigned long long efi[][3] = {
        {7, 0, 0xa0}, {3, 0x100000, 0x10}, {4, 0x110000, 0x10}, {7, 0x120000, 0x100},
        {9, 0x220000, 1}, {10, 0x221000, 1}, {6, 0x222000, 2}, {11, 0xffc00000, 0x400},
    };
    efi_tag(8, efi, 48);
    memcpy((char *)tag(15, 8 + 36) + 8, "RSD PTR ", 8);
    finish();
    run("uefi");

    // Bad memory entries: zero length, overlap (usable inside usable; reserved inside
    // usable, which makes the usable one reserved), beyond 2^52, wrapping past 2^64.
    begin();
    static const unsigned long long bad[][3] = {
        {0x100000, 0x100000, 1}, {0x200000, 0, 1}, {0x180000, 0x1000, 1},
        {0x400000, 0x100000, 1}, {0x450000, 0x1000, 2},
        {0x10000000000000ULL, 0x1000, 1}, {0xfffffffffffff000ULL, 0x2000, 1},
        {0x800000, 0x100000, 1},
    };
    mmap_tag(8, bad);
    finish();
    run("badmem");

    // Too many entries: the surplus is reported and skipped, the first 64 kept.
    begin();
    static unsigned long long many[80][3];
    for (int i = 0; i < 80; i++) {
        many[i][0] = 0x100000ULL * (unsigned long long)(i + 1);
        many[i][1] = 0x1000;
        many[i][2] = 1;
    }
    mmap_tag(80, many);
    finish();
    run("many");

    // A tag whose size runs past the block: parsing stops there, what came before stands.
    begin();
    strcpy((char *)tag(1, 8 + 4) + 8, "ok");
    unsigned char *t = tag(6, 16);
    ((unsigned *)t)[1] = 4000;
    finish();
    run("tagpast");

    // An absurd total size: nothing is read.
    begin();
    finish();
    ((unsigned *)mbi)[0] = 0x7fffffff;
    run("hugeblock");

    // An EFI map with a descriptor size smaller than the descriptor: ignored, the E820 map
    // is used instead; an absurd page count is skipped.
    begin();
    tag(12, 16);
    mmap_tag(2, e820);
    efi_tag(1, efi, 24);
    finish();
    run("efibadsize");
    begin();
    static const unsigned long long efi_absurd[][3] = {
        {7, 0x100000, 0x100}, {7, 0x300000, 0xffffffffffffULL},
    };
    efi_tag(2, efi_absurd, 48);
    finish();
    run("efiabsurd");

    // A command line tag without its terminating NUL: never read past the tag.
    begin();
    unsigned char *c = tag(1, 8 + 8);
    memcpy(c + 8, "abcdefgh", 8);
    memcpy(mbi + used, "XYZ", 3);   // bytes after the tag must not be taken
    finish();
    run("cmdline");
    return 0;
}
"""


def build_and_run(tmp_path: Path) -> str:
    src = tmp_path / "harness.c"
    src.write_text(HARNESS)
    out = hostcc.run(hostcc.build(tmp_path / "harness",
                                  [src, REPO / "arch" / "x86_64" / "boot_info.c"]), timeout=30)
    return out.stdout


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    return build_and_run(tmp_path_factory.mktemp("boot_info"))


def case(output: str, name: str) -> tuple[str, list[tuple[int, int, int]]]:
    head = next(line for line in output.splitlines() if line.startswith(f"CASE {name} "))
    mem = [tuple(int(x, 16) if i < 2 else int(x) for i, x in enumerate(line.split()[2:]))
           for line in output.splitlines() if line.startswith(f"MEM {name} ")]
    return head, mem


def logs_before(output: str, name: str) -> list[str]:
    """The LOG lines printed while parsing case `name`."""
    lines = output.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith(f"CASE {name} "))
    start = max((i for i, line in enumerate(lines[:end]) if line.startswith("CASE ")),
                default=-1) + 1
    return [line for line in lines[start:end] if line.startswith("LOG ")]


def test_bios_map_rsdp_cmdline(output):
    head, mem = case(output, "bios")
    assert "firmware=bios" in head and "rsdp=1" in head and "cmdline=[app=echod x]" in head, head
    assert mem == [(0, 0x9fc00, 1), (0x9fc00, 0x400, 2), (0xf0000, 0x10000, 2),
                   (0x100000, 0x7ee0000, 1)], mem
    assert logs_before(output, "bios") == []


def test_uefi_efi_map_preferred_and_joined(output):
    head, mem = case(output, "uefi")
    assert "loader=multiboot2 (uefi)" in head and "firmware=uefi" in head, head
    assert "rsdp=1" in head, head
    # Conventional + boot services code/data + conventional join into one usable run;
    # ACPI reclaim -> 3, ACPI NVS -> 4, runtime code and MMIO -> reserved (2).
    assert mem == [(0, 0xa0000, 1), (0x100000, 0x120000, 1), (0x220000, 0x1000, 3),
                   (0x221000, 0x1000, 4), (0x222000, 0x2000, 2),
                   (0xffc00000, 0x400000, 2)], mem
    assert logs_before(output, "uefi") == []


def test_bad_entries_reported_and_skipped(output):
    head, mem = case(output, "badmem")
    assert "skipped=5" in head, head
    # The reserved entry inside usable RAM makes that RAM reserved (which one is true is
    # unknown; the firmware's claim wins).
    assert mem == [(0x100000, 0x100000, 1), (0x400000, 0x100000, 2),
                   (0x800000, 0x100000, 1)], mem
    logs = " ".join(logs_before(output, "badmem"))
    assert "length 0" in logs and logs.count("overlaps") == 2 and logs.count("2^52") == 2, logs


def test_surplus_entries_reported(output):
    head, mem = case(output, "many")
    assert len(mem) == 64 and "skipped=16" in head, head
    assert sum("more than 64" in line for line in logs_before(output, "many")) == 16


def test_tag_past_the_block(output):
    head, mem = case(output, "tagpast")
    assert "cmdline=[ok]" in head and mem == [], head
    assert any("rest of the block is ignored" in line for line in logs_before(output, "tagpast"))


def test_absurd_block_size(output):
    head, mem = case(output, "hugeblock")
    assert mem == [] and "cmdline=[]" in head, head
    assert any("absurd" in line for line in logs_before(output, "hugeblock"))


def test_bad_efi_maps(output):
    head, mem = case(output, "efibadsize")
    assert "firmware=uefi" in head and mem == [(0, 0xa0000, 1), (0x100000, 0x100000, 1)], mem
    assert any("descriptor size 24" in line for line in logs_before(output, "efibadsize"))
    head, mem = case(output, "efiabsurd")
    assert mem == [(0x100000, 0x100000, 1)] and "skipped=1" in head, (head, mem)


def test_cmdline_not_read_past_its_tag(output):
    head, _ = case(output, "cmdline")
    assert "cmdline=[abcdefgh]" in head, head
