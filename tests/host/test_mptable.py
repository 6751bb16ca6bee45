"""Host unit test of the MP table fallback in arch/x86_64/acpi.c (Intel MultiProcessor
Specification 1.4, chapter 4): acpi_init compiled for the host without an RSDP, fed crafted
floating pointers and configuration tables at the physical addresses firmware uses (qboot's
at 639 KiB, SeaBIOS's in the F-segment). Good tables give the CPUs, I/O APICs, ISA IRQ
routing, NMI line and IMCR flag; bad ones (checksums, signature, lengths, null or unmapped
table pointers, default configurations, unknown or truncated entries, too many CPUs or I/O
APICs) give one boot line and the 1-CPU fallback, never a fault or a sanitizer report.

Memory outside the harness's mappings is "mapped on demand" by the paging_map_mmio stub, as
the kernel maps device memory, and reads as 0xff, as absent physical memory does on a PC."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import hostcc

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)

HARNESS = r"""
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "arch/x86_64/acpi.h"
#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/paging.h"

enum { LOW_PAGE = 0x9f000, BIOS = 0xe0000, BIOS_END = 0x101000, MAX_EXTRA = 40 };
struct boot_info boot_info;
static uint64_t extra[MAX_EXTRA];      // pages paging_map_mmio mapped on demand
static int extras;

""" + hostcc.KPRINTF_STUB + r"""
static void *map_fixed(uint64_t at, size_t size) {
    void *p = mmap((void *)(uintptr_t)at, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != (void *)(uintptr_t)at) {
        printf("cannot map 0x%llx\n", (unsigned long long)at);
        abort();
    }
    return p;
}
bool paging_is_mapped(uint64_t virt) {
    bool mapped = (virt >= LOW_PAGE && virt < LOW_PAGE + 0x1000)
                  || (virt >= BIOS && virt < BIOS_END);
    for (int i = 0; i < extras; i++) {
        mapped |= (virt & ~0xfffull) == extra[i];
    }
    return mapped;
}
// Like the kernel: map what is asked for. The null page or a size beyond any MP table is a
// parser gone astray: abort.
void *paging_map_mmio(uint64_t phys, uint64_t size) {
    printf("MAP 0x%llx 0x%llx\n", (unsigned long long)phys, (unsigned long long)size);
    if (phys < 0x1000 || size == 0 || size > 0x11000) {
        abort();
    }
    for (uint64_t page = phys & ~0xfffull; page < phys + size; page += 0x1000) {
        if (!paging_is_mapped(page) && extras < MAX_EXTRA) {
            memset(map_fixed(page, 0x1000), 0xff, 0x1000);
            extra[extras++] = page;
        }
    }
    return (void *)(uintptr_t)phys;
}

static uint8_t *at(uint64_t phys) { return (uint8_t *)(uintptr_t)phys; }
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void fix(uint8_t *p, size_t n, size_t sum_at) {
    uint8_t sum = 0;
    p[sum_at] = 0;
    for (size_t i = 0; i < n; i++) {
        sum += p[i];
    }
    p[sum_at] = (uint8_t)-sum;
}

// Floating pointer: "_MP_", table, length 1 (paragraph), MPS 1.4, checksum, features.
static void floating(uint64_t phys, uint32_t table, uint8_t feature1, uint8_t feature2) {
    uint8_t f[16] = { '_', 'M', 'P', '_', 0, 0, 0, 0, 1, 4, 0, feature1, feature2 };
    put32(f + 4, table);
    fix(f, 16, 10);
    memcpy(at(phys), f, 16);
}

static uint8_t *cfg;                   // the configuration table under construction
static uint32_t len;
static void begin(uint64_t phys, uint32_t lapic) {
    cfg = at(phys);
    memcpy(cfg, "PCMP\0\0\4\0TESTOEM 0.1         ", 28);
    memset(cfg + 28, 0, 16);
    put32(cfg + 36, lapic);
    len = 44;
}
static uint8_t *entry(uint8_t type, uint8_t b1, uint32_t size) {
    uint8_t *e = cfg + len;
    memset(e, 0, size);
    e[0] = type;
    e[1] = b1;
    len += size;
    return e;
}
static void cpu(uint8_t id, uint8_t flags) { entry(0, id, 20)[3] = flags; }  // 1 EN, 2 BSP
static void bus(uint8_t id, const char *type) { memcpy(entry(1, id, 8) + 2, type, 6); }
static void ioapic(uint8_t id, uint8_t flags, uint32_t address) {
    uint8_t *e = entry(2, id, 8);
    e[3] = flags;
    put32(e + 4, address);
}
// I/O (type 3) or local (type 4) interrupt: kind 0 INT, 1 NMI, 3 ExtINT.
static void intr(uint8_t type, uint8_t kind, uint16_t flags, uint8_t src_bus, uint8_t irq,
                 uint8_t dst, uint8_t pin) {
    uint8_t *e = entry(type, kind, 8);
    put16(e + 2, flags);
    memcpy(e + 4, (uint8_t[]){ src_bus, irq, dst, pin }, 4);
}
static void end(uint16_t count) {
    put16(cfg + 4, (uint16_t)len);
    put16(cfg + 34, count);
    fix(cfg, len, 7);
}

// qboot: 2 CPUs, ISA bus 0, I/O APIC 3, IRQ 0 -> pin 2, the rest identity; count left 0.
static void qboot(void) {
    floating(0x9fc00, 0x9fc10, 0, 0);
    begin(0x9fc10, 0xfee00000);
    cpu(0, 3);
    cpu(1, 1);
    bus(0, "ISA   ");
    ioapic(3, 1, 0xfec00000);
    for (int irq = 0; irq < 16; irq++) {
        intr(3, 0, 0, 0, irq, 3, irq == 0 ? 2 : irq);
    }
    intr(4, 3, 0, 0, 0, 0xff, 0);
    intr(4, 1, 0, 0, 0, 0xff, 1);
    end(0);
}
// SeaBIOS: 4 CPUs, PCI bus 0 + ISA bus 1 (no IRQ 2), IMCR; PCI-routed IRQs 9 (level,
// active high, QEMU's SCI) and 11 (level, active low).
static void seabios(void) {
    floating(0xf5bb0, 0xf5bc0, 0, 0x80);
    begin(0xf5bc0, 0xfee00000);
    for (int i = 0; i < 4; i++) {
        cpu(i, i == 0 ? 3 : 1);
    }
    bus(0, "PCI   ");
    bus(1, "ISA   ");
    ioapic(4, 1, 0xfec00000);
    intr(3, 0, 0xf, 0, 1 << 2, 4, 11);          // PCI 00:01 INTA#, not ISA IRQ 4
    for (int irq = 0; irq < 16; irq++) {
        if (irq != 2) {
            intr(3, 0, irq == 9 ? 0xd : irq == 11 ? 0xf : 0, 1, irq, 4, irq == 0 ? 2 : irq);
        }
    }
    intr(4, 3, 0, 1, 0, 0xff, 0);
    intr(4, 1, 0, 1, 0, 0xff, 1);
    end((len - 44 - 80) / 8 + 4);
}

#define IS(n) (!strcmp(name, n))
static void run(const char *name) {
    if (IS("qboot")) {
        qboot();
    } else if (IS("seabios")) {
        seabios();
    } else if (IS("both")) {
        seabios();
        qboot();
    } else if (IS("badfloatsum")) {
        qboot();
        at(0x9fc00)[10]++;
    } else if (IS("badfloatlen")) {
        qboot();
        at(0x9fc00)[8] = 2;
        fix(at(0x9fc00), 16, 10);
    } else if (IS("badsum")) {
        qboot();
        cfg[7]++;
    } else if (IS("badsig")) {
        qboot();
        cfg[3] = 'Q';
        fix(cfg, len, 7);
    } else if (IS("shortlen")) {
        qboot();
        put16(cfg + 4, 40);
        fix(cfg, 40, 7);
    } else if (IS("lenpast")) {
        // The header is the last bytes firmware wrote in the page; its length says 8 KiB.
        floating(0x9fc00, 0x9ffd0, 0, 0);
        begin(0x9ffd0, 0xfee00000);
        put16(cfg + 4, 0x2000);
        fix(cfg, 44, 7);
    } else if (IS("nullptr")) {
        floating(0x9fc00, 0, 0, 0);
    } else if (IS("unmapped")) {
        floating(0x9fc00, 0x5000000, 0, 0);
    } else if (IS("default5")) {
        floating(0x9fc00, 0, 5, 0);
    } else if (IS("unknowntype") || IS("truncated") || IS("truncated2") || IS("disabled")
               || IS("dupids") || IS("routing")) {
        floating(0x9fc00, 0x9fc10, 0, 0);
        begin(0x9fc10, IS("routing") ? 0 : 0xfee00000);  // 0: the default
        if (IS("unknowntype")) {
            cpu(0, 3);
            entry(7, 0, 8);
            cpu(1, 1);
        } else if (IS("truncated")) {
            cpu(7, 3);
            len -= 8;
        } else if (IS("truncated2")) {
            cpu(2, 3);
            cpu(7, 1);
            len -= 8;
        } else if (IS("disabled")) {
            cpu(0, 0);
            cpu(1, 0);
            ioapic(2, 1, 0xfec00000);
        } else if (IS("dupids")) {
            static const uint8_t ids[] = { 0, 1, 0, 1, 2 };
            for (int i = 0; i < 5; i++) {
                cpu(ids[i], 1);
            }
        } else {
            cpu(0, 3);
            bus(0, "ISA   ");
            bus(1, "EISA  ");
            bus(40, "ISA   ");                  // beyond the 32 buses tracked
            ioapic(3, 1, 0xfec00000);
            ioapic(9, 1, 0xfec01000);
            intr(3, 0, 0, 0, 5, 9, 3);          // to the second I/O APIC: no GSI known
            intr(3, 0, 0, 0, 6, 0xff, 7);       // to every I/O APIC: the first's pin 7
            intr(3, 1, 0, 0, 7, 3, 8);          // an NMI, not an INT
            intr(3, 0, 5, 0, 20, 3, 20);        // not an ISA IRQ number
            intr(3, 0, 0, 1, 10, 3, 12);        // EISA bus
            intr(3, 0, 0, 40, 4, 3, 13);        // bus 40
            intr(3, 0, 0, 0, 3, 3, 3);          // identity, default flags
            intr(4, 1, 5, 0, 0, 0xff, 0);       // NMI on LINT0, edge active-high
        }
        end(0);
    } else if (IS("manycpus") || IS("manyioapics")) {
        floating(0x9fc00, 0xe1000, 0, 0);
        begin(0xe1000, 0xfee00000);
        if (IS("manycpus")) {
            for (int i = 0; i < 70; i++) {
                cpu(i, i == 0 ? 3 : 1);
            }
        } else {
            cpu(0, 3);
            ioapic(1, 0, 0xfebff000);           // disabled
            for (int i = 2; i < 12; i++) {
                ioapic(i, 1, 0xfec00000 + 0x1000 * (i - 2));
            }
        }
        end(0);
    } else if (!IS("none")) {
        abort();
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    map_fixed(LOW_PAGE, 0x1000);
    map_fixed(BIOS, BIOS_END - BIOS);
    boot_info.rsdp_phys = 0;
    run(argc == 2 ? argv[1] : "");
    acpi_init();
    printf("CPUS %d", acpi_info.cpu_count);
    for (int i = 0; i < acpi_info.cpu_count && i < ACPI_MAX_CPUS; i++) {
        printf(" %u", acpi_info.apic_ids[i]);
    }
    for (int i = 0; i < acpi_info.ioapic_count && i < ACPI_MAX_IOAPICS; i++) {
        printf("\nIOAPIC %u 0x%x %u", acpi_info.ioapics[i].id, acpi_info.ioapics[i].address,
               acpi_info.ioapics[i].gsi_base);
    }
    for (int i = 0; i < acpi_info.override_count && i < ACPI_MAX_OVERRIDES; i++) {
        printf("\nOVERRIDE %u %u %u", acpi_info.overrides[i].source_irq,
               acpi_info.overrides[i].gsi, acpi_info.overrides[i].flags);
    }
    printf("\nLAPIC 0x%llx\nNMI_LINT %u %u\nMPTABLE 0x%llx %u\nIMCR %d\nINORDER %d\n",
           (unsigned long long)acpi_info.lapic_address, acpi_info.lapic_nmi_lint,
           acpi_info.lapic_nmi_flags, (unsigned long long)acpi_info.mp_table_address,
           acpi_info.mp_spec_revision, acpi_info.imcr_present,
           acpi_info.mp_table_address != 0);   // what ioapic_init numbers GSIs in order by
    return 0;
}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mptable")
    src = tmp / "harness.c"
    src.write_text(HARNESS)
    return hostcc.build(tmp / "harness", [src, REPO / "arch" / "x86_64" / "acpi.c"])


def run_case(exe: Path, name: str) -> SimpleNamespace:
    """Run one case (hostcc.run's checks, with the case name as argument) and parse it."""
    result = subprocess.run([str(exe), name], capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, **hostcc.ENV))
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"case {name}: harness exited {result.returncode}\n{out}"
    assert "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, out
    r = SimpleNamespace(out=out, logs=[], cpus=None, ioapics=[], overrides=[], maps=[])
    lists = {"IOAPIC": r.ioapics, "OVERRIDE": r.overrides, "MAP": r.maps}
    for line in result.stdout.splitlines():
        key, _, rest = line.partition(" ")
        nums = [int(x, 0) for x in rest.split()] if key != "LOG" else []
        if key == "LOG":
            r.logs.append(rest)
        elif key in lists:
            lists[key].append(tuple(nums))
        elif key == "CPUS":
            assert nums[0] == len(nums) - 1, f"cpu_count {nums[0]} but ids {nums[1:]}\n{out}"
            r.cpus = nums[1:]
        else:   # LAPIC, IMCR, INORDER: a number; NMI_LINT (lint, flags); MPTABLE (addr, rev)
            setattr(r, key.lower(), nums[0] if len(nums) == 1 else tuple(nums))
    assert r.cpus is not None, f"case {name}: no results printed\n{out}"
    return r


def logged(r: SimpleNamespace, text: str) -> bool:
    return any(text in line for line in r.logs)


def assert_fallback(r: SimpleNamespace, why: str) -> None:
    """The MP table was not used: 1 CPU, the default I/O APIC, a boot line saying `why`."""
    assert logged(r, why), f"expected a boot line with {why!r}\n{r.out}"
    assert r.cpus == [0] and r.ioapics == [(0, 0xFEC00000, 0)], f"expected the fallback\n{r.out}"
    assert r.mptable == (0, 0) and r.overrides == [], f"expected no MP table used\n{r.out}"
    assert r.lapic == 0xFEE00000 and r.nmi_lint[0] == 1 and r.inorder == 0, r.out


def test_qboot_table(harness):
    r = run_case(harness, "qboot")
    assert r.cpus == [0, 1], f"expected CPUs [0, 1]\n{r.out}"
    assert r.ioapics == [(3, 0xFEC00000, 0)], f"expected I/O APIC 3 at 0xfec00000\n{r.out}"
    assert r.overrides == [(0, 2, 0)], f"expected only IRQ 0 -> GSI 2\n{r.out}"
    assert (r.mptable, r.imcr, r.inorder) == ((0x9FC10, 4), 0, 1), r.out
    assert r.lapic == 0xFEE00000 and r.nmi_lint == (1, 0), r.out
    assert logged(r, "acpi: no RSDP; 2 CPUs and 1 I/O APIC from the MP table at 0x9fc10 "
                     "(MPS 1.4)"), f"expected the MP table boot line\n{r.out}"
    assert r.maps == [], f"expected nothing mapped on demand\n{r.out}"
    assert not logged(r, "malformed"), r.out


def test_seabios_table_in_f_segment(harness):
    r = run_case(harness, "seabios")
    assert r.cpus == [0, 1, 2, 3] and r.ioapics == [(4, 0xFEC00000, 0)], r.out
    # The PCI bus's entry (bus 0, "IRQ" 4 = device 1 INTA#) is no ISA override.
    assert r.overrides == [(0, 2, 0), (9, 9, 0xD), (11, 11, 0xF)], \
        f"expected IRQ 0 -> 2 and level-triggered IRQs 9 and 11\n{r.out}"
    assert (r.mptable, r.imcr) == ((0xF5BC0, 4), 1), f"expected table 0xf5bc0 and IMCR\n{r.out}"
    assert logged(r, "4 CPUs and 1 I/O APIC from the MP table at 0xf5bc0"), r.out


def test_639k_searched_before_f_segment(harness):
    r = run_case(harness, "both")
    assert r.mptable[0] == 0x9FC10 and r.cpus == [0, 1], f"expected qboot's table\n{r.out}"


INVALID = ("acpi: no RSDP; the MP table at 0x9fc10 is invalid (bad signature, length or "
           "checksum), assuming 1 CPU")
NOT_FOUND = "acpi: no RSDP and no MP table found, assuming 1 CPU, LAPIC at 0xfee00000"

# Case, the boot line expected, what paging_map_mmio is expected to be asked for.
UNUSED = [
    ("none", NOT_FOUND, []),
    ("badfloatsum", NOT_FOUND, []),             # floating pointer checksum
    ("badfloatlen", NOT_FOUND, []),             # floating pointer length 2
    ("badsum", INVALID, []),
    ("badsig", INVALID, []),                    # "PCMQ"
    ("shortlen", INVALID, []),                  # base length 40 < 44
    # Base length 8 KiB from 0x9ffd0: what lies past 0xa0000 (0xff) is mapped before it is
    # read, only as far as the length, and does not checksum.
    ("lenpast", "the MP table at 0x9ffd0 is invalid", [(0xA0000, 0x9FFD0 + 0x2000 - 0xA0000)]),
    ("nullptr", "acpi: no RSDP; the MP floating pointer names no configuration table: "
                "assuming 1 CPU", []),                  # table pointer 0: never followed
    ("unmapped", "acpi: no RSDP; the MP table at 0x5000000 is invalid", [(0x5000000, 44)]),
    ("default5", "acpi: no RSDP; the MP table is default configuration 5, not supported: "
                 "assuming 1 CPU", []),
]


@pytest.mark.parametrize("name, why, maps", UNUSED, ids=[case[0] for case in UNUSED])
def test_mp_table_not_used(harness, name, why, maps):
    r = run_case(harness, name)
    assert_fallback(r, why)
    assert r.maps == maps, f"expected paging_map_mmio calls {maps}\n{r.out}"


def test_unknown_entry_type_stops_the_walk(harness):
    r = run_case(harness, "unknowntype")
    assert r.cpus == [0], f"expected the CPU before the bad entry only\n{r.out}"
    assert logged(r, "acpi: MP table entry 1 (type 7) at offset 64 is malformed, rest "
                     "ignored"), r.out
    assert r.mptable[0] == 0x9FC10, r.out


def test_truncated_processor_entry(harness):
    r = run_case(harness, "truncated")
    assert logged(r, "entry 0 (type 0) at offset 44 is malformed, rest ignored"), r.out
    assert logged(r, "the MP table lists no enabled CPU, assuming 1"), r.out
    assert r.cpus == [0], f"expected the fallback CPU, not APIC id 7\n{r.out}"
    r = run_case(harness, "truncated2")
    assert logged(r, "entry 1 (type 0) at offset 64 is malformed"), r.out
    assert r.cpus == [2], f"expected only the complete entry's CPU\n{r.out}"


def test_no_enabled_cpu(harness):
    r = run_case(harness, "disabled")
    assert logged(r, "acpi: the MP table lists no enabled CPU, assuming 1"), r.out
    assert r.cpus == [0] and r.ioapics == [(2, 0xFEC00000, 0)], r.out
    assert r.mptable[0] == 0x9FC10, f"expected the table still used\n{r.out}"


def test_more_cpus_than_recorded(harness):
    r = run_case(harness, "manycpus")
    assert r.cpus == list(range(64)), f"expected the first 64 of 70 CPUs\n{r.out}"
    assert logged(r, "64 CPUs and 0 I/O APICs from the MP table at 0xe1000"), r.out


def test_more_ioapics_than_recorded(harness):
    r = run_case(harness, "manyioapics")
    expected = [(i, 0xFEC00000 + 0x1000 * (i - 2), 0) for i in range(2, 10)]
    assert r.ioapics == expected, f"expected the first 8 enabled I/O APICs\n{r.out}"


def test_duplicate_apic_ids_counted_once(harness):
    r = run_case(harness, "dupids")
    assert r.cpus == [0, 1, 2], f"expected each APIC id once\n{r.out}"


def test_routing_only_isa_ints_to_the_first_ioapic(harness):
    r = run_case(harness, "routing")
    assert r.overrides == [(6, 7, 0)], \
        f"expected only ISA IRQ 6 -> pin 7 (destination 0xff)\n{r.out}"
    assert r.ioapics == [(3, 0xFEC00000, 0), (9, 0xFEC01000, 0)], r.out
    assert r.nmi_lint == (0, 5), f"expected NMI on LINT0, flags 5\n{r.out}"
    assert r.lapic == 0xFEE00000, f"expected the default LAPIC for address 0\n{r.out}"
    assert logged(r, "1 CPU and 2 I/O APICs from the MP table"), r.out
