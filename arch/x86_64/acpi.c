// ACPI, the firmware's description of the machine: a tree of checksummed tables that says how
// many CPUs there are, where the interrupt controllers and PCI Express configuration space
// live, and how to power off or reset. This is the kernel's one ACPI table parser.
//
// ACPI Specification 6.5: RSDP (5.2.5), RSDT/XSDT (5.2.7, 5.2.8), FADT (5.2.9, Table 5.9),
// MADT (5.2.12, Tables 5.19-5.33), the \_S5 object in the DSDT (7.4.2, AML encoding in 20.2);
// MCFG from the PCI Firmware Specification 3.2, 4.1.2 (Table 4-3). Every table is checked
// (signature, length, checksum, mapped memory) before it is read; a missing or malformed one
// gives one "acpi: ..." line and a fallback, never a fault. Without a usable MADT the CPUs
// and I/O APICs come from the MP table (Intel MultiProcessor Specification 1.4, chapter 4),
// checked the same way, which BIOSes and VMMs without ACPI (SeaBIOS, qboot under QEMU's
// acpi=off, Firecracker) still provide.
#include "arch/x86_64/acpi.h"

#include <stddef.h>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/paging.h"

struct acpi_info acpi_info;

struct __attribute__((packed)) acpi_rsdp {
    char signature[8];          // "RSD PTR "
    uint8_t checksum;           // over the first 20 bytes
    char oem_id[6];
    uint8_t revision;           // 0: ACPI 1.0 (RSDT only), 2+: XSDT fields valid
    uint32_t rsdt_address;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum;  // over `length` bytes
    uint8_t reserved[3];
};

// System Description Table header (5.2.6, Table 5.4).
struct __attribute__((packed)) acpi_header {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    uint32_t creator_id;
    uint32_t creator_revision;
};

// FADT field offsets (5.2.9, Table 5.9).
enum fadt_offset {
    FADT_DSDT = 40,                 // u32
    FADT_SCI_INT = 46,              // u16
    FADT_PM1A_CNT_BLK = 64,         // u32 I/O port
    FADT_PM1B_CNT_BLK = 68,         // u32 I/O port
    FADT_FLAGS = 112,               // u32
    FADT_RESET_REG = 116,           // GAS
    FADT_RESET_VALUE = 128,         // u8
    FADT_X_DSDT = 140,              // u64
    FADT_X_PM1A_CNT_BLK = 172,      // GAS
    FADT_X_PM1B_CNT_BLK = 184,      // GAS
    FADT_SLEEP_CONTROL_REG = 244,   // GAS
};

// FADT Flags (Table 5.10).
enum fadt_flags {
    FADT_FLAG_RESET_REG_SUP = 1u << 10,
    FADT_FLAG_HW_REDUCED_ACPI = 1u << 20,
};

// MADT (5.2.12): header, Local Interrupt Controller Address (u32), Flags (u32), then
// Interrupt Controller Structures, each starting with type and length (Table 5.21).
enum madt_layout {
    MADT_LAPIC_ADDRESS = 36,
    MADT_FLAGS = 40,
    MADT_ENTRIES = 44,
    MADT_FLAG_PCAT_COMPAT = 1u << 0,
};

enum madt_entry_type {
    MADT_LOCAL_APIC = 0,            // Table 5.22
    MADT_IO_APIC = 1,               // Table 5.24
    MADT_INTERRUPT_OVERRIDE = 2,    // Table 5.25
    MADT_NMI_SOURCE = 3,            // Table 5.27
    MADT_LOCAL_APIC_NMI = 4,        // Table 5.28
    MADT_LOCAL_APIC_OVERRIDE = 5,   // Table 5.29
    MADT_LOCAL_X2APIC = 9,          // Table 5.37
};

// Local APIC Flags (Table 5.23).
enum madt_lapic_flags {
    MADT_LAPIC_ENABLED = 1u << 0,
    MADT_LAPIC_ONLINE_CAPABLE = 1u << 1,
};

// MCFG: header, 8 reserved bytes, then 16-byte allocation structures (PCI Firmware 4.1.2).
enum mcfg_layout {
    MCFG_ENTRIES = 44,
    MCFG_ENTRY_SIZE = 16,
};

// AML opcodes used by `Name(_S5_, Package() {...})` (20.2.3, 20.2.5).
enum aml_opcode {
    AML_ZERO = 0x00,
    AML_ONE = 0x01,
    AML_NAME = 0x08,
    AML_BYTE_PREFIX = 0x0a,
    AML_WORD_PREFIX = 0x0b,
    AML_DWORD_PREFIX = 0x0c,
    AML_PACKAGE = 0x12,
    AML_ONES = 0xff,
};

enum {
    BIOS_DATA_EBDA_SEGMENT = 0x40e,      // BIOS data area word: EBDA segment
    TABLE_MAX_LENGTH = 16 * 1024 * 1024, // anything longer is corrupt
};

// ---------------------------------------------------------------------------------------
// Safe access to firmware memory.

static bool checksum_ok(const void *data, size_t length) {
    const uint8_t *bytes = data;
    uint8_t sum = 0;
    for (size_t i = 0; i < length; i++) {
        sum += bytes[i];
    }
    return sum == 0;
}

static bool same_bytes(const void *a, const char *b, size_t length) {
    const char *left = a;
    for (size_t i = 0; i < length; i++) {
        if (left[i] != b[i]) {
            return false;
        }
    }
    return true;
}

// Firmware tables normally lie in the identity-mapped first 4 GiB; a table above that is
// mapped on demand. The null page and non-canonical addresses count as absent.
static bool readable(uint64_t phys, uint64_t length) {
    if (phys < PAGING_PAGE_SIZE || length == 0 || phys + length < phys
        || phys + length > (1ull << 40)) {
        return false;
    }
    uint64_t first_page = phys & ~(uint64_t)(PAGING_PAGE_SIZE - 1);
    for (uint64_t page = first_page; page < phys + length; page += PAGING_PAGE_SIZE) {
        if (!paging_is_mapped(page)) {
            paging_map_mmio(page, phys + length - page);
            return true;
        }
    }
    return true;
}

// Reads at small constant addresses, hidden from the compiler's array-bounds reasoning.
static uint16_t read_physical_u16(uint64_t phys) {
    __asm__ ("" : "+r"(phys));
    return *(const volatile uint16_t *)(uintptr_t)phys;
}

// ---------------------------------------------------------------------------------------
// RSDP and the root table.

static const struct acpi_rsdp *rsdp_at(uint64_t phys) {
    if (!readable(phys, 20)) {
        return NULL;
    }
    const struct acpi_rsdp *rsdp = (const void *)(uintptr_t)phys;
    if (!same_bytes(rsdp->signature, "RSD PTR ", 8) || !checksum_ok(rsdp, 20)) {
        return NULL;
    }
    return rsdp;
}

// Where BIOS firmware puts the RSDP (5.2.5.1): the first KiB of the EBDA, whose segment is
// at 0x40e, or on a 16-byte boundary in 0xe0000-0xfffff.
static const struct acpi_rsdp *find_rsdp(void) {
    const struct acpi_rsdp *rsdp = rsdp_at(boot_info.rsdp_phys);
    if (rsdp) {
        return rsdp;
    }
    if (readable(BIOS_DATA_EBDA_SEGMENT, 2)) {
        uint64_t ebda = (uint64_t)read_physical_u16(BIOS_DATA_EBDA_SEGMENT) << 4;
        for (uint64_t address = ebda; ebda >= 0x80000 && address < ebda + 1024; address += 16) {
            if ((rsdp = rsdp_at(address)) != NULL) {
                return rsdp;
            }
        }
    }
    for (uint64_t address = 0xe0000; address < 0x100000; address += 16) {
        if ((rsdp = rsdp_at(address)) != NULL) {
            return rsdp;
        }
    }
    return NULL;
}

// The table at `phys` when its header is readable and its length sane, else NULL; whether
// the checksum holds goes to *sum_ok.
static const struct acpi_header *header_at(uint64_t phys, bool *sum_ok) {
    *sum_ok = false;
    if (!readable(phys, sizeof(struct acpi_header))) {
        return NULL;
    }
    const struct acpi_header *header = (const void *)(uintptr_t)phys;
    if (header->length < sizeof(*header) || header->length > TABLE_MAX_LENGTH
        || !readable(phys, header->length)) {
        return NULL;
    }
    *sum_ok = checksum_ok(header, header->length);
    return header;
}

static void record_table(uint64_t phys, const struct acpi_header *header, bool sum_ok) {
    if (acpi_info.table_count >= ACPI_MAX_TABLES) {
        return;
    }
    for (int i = 0; i < acpi_info.table_count; i++) {
        if (acpi_info.tables[i].address == phys) {
            return;
        }
    }
    struct acpi_table_info *t = &acpi_info.tables[acpi_info.table_count];
    for (int i = 0; i < 4; i++) {
        char c = header->signature[i];
        t->signature[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    t->signature[4] = '\0';
    int oem_length = 0;
    for (int i = 0; i < 6; i++) {
        char c = header->oem_id[i];
        t->oem_id[i] = (c >= 0x20 && c < 0x7f) ? c : '?';
        if (c != ' ' && c != '\0') {
            oem_length = i + 1;
        }
    }
    t->oem_id[oem_length] = '\0';
    t->address = phys;
    t->length = header->length;
    t->revision = header->revision;
    t->checksum_ok = sum_ok;
    acpi_info.table_count++;
}

static void walk_root(const struct acpi_rsdp *rsdp) {
    // The XSDT (64-bit entries) supersedes the RSDT when the RSDP is revision 2 or later and
    // its extended checksum holds (5.2.5.3).
    bool use_xsdt = rsdp->revision >= 2 && readable((uintptr_t)rsdp, sizeof(*rsdp))
                    && rsdp->xsdt_address && checksum_ok(rsdp, sizeof(*rsdp));
    uint64_t root_address = use_xsdt ? rsdp->xsdt_address : rsdp->rsdt_address;
    bool sum_ok;
    const struct acpi_header *root = header_at(root_address, &sum_ok);
    const char *root_name = use_xsdt ? "XSDT" : "RSDT";
    if (!root || !same_bytes(root->signature, root_name, 4) || !sum_ok) {
        if (use_xsdt && rsdp->rsdt_address) {
            kprintf("acpi: XSDT at 0x%lx is invalid, using the RSDT\n", (unsigned long)root_address);
            use_xsdt = false;
            root_address = rsdp->rsdt_address;
            root_name = "RSDT";
            root = header_at(root_address, &sum_ok);
        }
        if (!root || !same_bytes(root->signature, root_name, 4) || !sum_ok) {
            kprintf("acpi: %s at 0x%lx is invalid (bad signature, length or checksum)\n",
                    root_name, (unsigned long)root_address);
            return;
        }
    }
    record_table(root_address, root, true);
    size_t entry_size = use_xsdt ? 8 : 4;
    size_t count = (root->length - sizeof(*root)) / entry_size;
    const uint8_t *entries = (const uint8_t *)(root + 1);
    for (size_t i = 0; i < count; i++) {
        uint64_t address = use_xsdt ? acpi_get_u64(entries + i * 8) : acpi_get_u32(entries + i * 4);
        const struct acpi_header *table = header_at(address, &sum_ok);
        if (!table) {
            kprintf("acpi: table %u at 0x%lx is unreadable, ignored\n", (unsigned)i,
                    (unsigned long)address);
            continue;
        }
        record_table(address, table, sum_ok);
    }
}

const void *acpi_find_table(const char *signature) {
    for (int i = 0; i < acpi_info.table_count; i++) {
        const struct acpi_table_info *t = &acpi_info.tables[i];
        if (t->checksum_ok && same_bytes(t->signature, signature, 4)) {
            return (const void *)(uintptr_t)t->address;
        }
    }
    return NULL;
}

// Whether the root table lists a table with this signature, valid or not.
static bool table_listed(const char *signature) {
    for (int i = 0; i < acpi_info.table_count; i++) {
        if (same_bytes(acpi_info.tables[i].signature, signature, 4)) {
            return true;
        }
    }
    return false;
}

// A table by signature, or NULL with a boot line saying why (absent or bad checksum).
static const struct acpi_header *require_table(const char *signature, const char *fallback) {
    const struct acpi_header *table = acpi_find_table(signature);
    if (table) {
        return table;
    }
    kprintf("acpi: %s %s, %s\n", signature,
            table_listed(signature) ? "has a bad checksum" : "not found", fallback);
    return NULL;
}

// ---------------------------------------------------------------------------------------
// MADT: CPUs and interrupt controllers.

static void add_cpu(uint32_t apic_id, uint32_t flags) {
    if (!(flags & (MADT_LAPIC_ENABLED | MADT_LAPIC_ONLINE_CAPABLE))) {
        return;  // neither present nor hot-pluggable
    }
    if (!(flags & MADT_LAPIC_ENABLED)) {
        acpi_info.online_capable_count++;
        return;
    }
    for (int i = 0; i < acpi_info.cpu_count; i++) {
        if (acpi_info.apic_ids[i] == apic_id) {
            return;  // listed as both Local APIC and Local x2APIC
        }
    }
    if (acpi_info.cpu_count < ACPI_MAX_CPUS) {
        acpi_info.apic_ids[acpi_info.cpu_count++] = apic_id;
    }
}

static void parse_madt(const struct acpi_header *madt) {
    const uint8_t *base = (const uint8_t *)madt;
    if (madt->length < MADT_ENTRIES) {
        return;     // use_mp_table says so
    }
    acpi_info.has_madt = true;
    acpi_info.lapic_address = acpi_get_u32(base + MADT_LAPIC_ADDRESS);
    acpi_info.has_8259 = acpi_get_u32(base + MADT_FLAGS) & MADT_FLAG_PCAT_COMPAT;
    acpi_info.cpu_count = 0;
    acpi_info.ioapic_count = 0;
    for (uint32_t offset = MADT_ENTRIES; offset + 2 <= madt->length;) {
        const uint8_t *e = base + offset;
        uint8_t type = e[0], length = e[1];
        if (length < 2 || offset + length > madt->length) {
            kprintf("acpi: MADT entry at offset %u is malformed, rest ignored\n", offset);
            break;
        }
        switch (type) {
            case MADT_LOCAL_APIC:
                if (length >= 8) {
                    add_cpu(e[3], acpi_get_u32(e + 4));
                }
                break;
            case MADT_LOCAL_X2APIC:
                if (length >= 16) {
                    add_cpu(acpi_get_u32(e + 4), acpi_get_u32(e + 8));
                }
                break;
            case MADT_IO_APIC:
                if (length >= 12 && acpi_info.ioapic_count < ACPI_MAX_IOAPICS) {
                    acpi_info.ioapics[acpi_info.ioapic_count++] = (struct acpi_ioapic){
                        .id = e[2], .address = acpi_get_u32(e + 4), .gsi_base = acpi_get_u32(e + 8),
                    };
                }
                break;
            case MADT_INTERRUPT_OVERRIDE:
                // Bus 0 is ISA, the only bus the specification defines here.
                if (length >= 10 && e[2] == 0 && acpi_info.override_count < ACPI_MAX_OVERRIDES) {
                    acpi_info.overrides[acpi_info.override_count++] = (struct acpi_override){
                        .source_irq = e[3], .gsi = acpi_get_u32(e + 4), .flags = acpi_get_u16(e + 8),
                    };
                }
                break;
            case MADT_NMI_SOURCE:
                if (length >= 8 && acpi_info.nmi_count < ACPI_MAX_NMIS) {
                    acpi_info.nmis[acpi_info.nmi_count++] = (struct acpi_nmi){
                        .gsi = acpi_get_u32(e + 4), .flags = acpi_get_u16(e + 2),
                    };
                }
                break;
            case MADT_LOCAL_APIC_NMI:
                // Processor UID 0xff means all processors; only the boot CPU runs.
                if (length >= 6) {
                    acpi_info.lapic_nmi_lint = e[5] & 1;
                    acpi_info.lapic_nmi_flags = acpi_get_u16(e + 3);
                }
                break;
            case MADT_LOCAL_APIC_OVERRIDE:
                if (length >= 12) {
                    acpi_info.lapic_address = acpi_get_u64(e + 4);
                }
                break;
            default:
                break;
        }
        offset += length;
    }
    if (acpi_info.cpu_count == 0) {
        kprintf("acpi: MADT lists no enabled CPU, assuming 1\n");
        acpi_info.cpu_count = 1;
        acpi_info.apic_ids[0] = 0;
    }
    if (acpi_info.lapic_address == 0) {
        acpi_info.lapic_address = ACPI_DEFAULT_LAPIC_ADDRESS;
    }
}

// ---------------------------------------------------------------------------------------
// MCFG: PCI Express enhanced configuration access (ECAM) regions.

static void parse_mcfg(const struct acpi_header *mcfg) {
    const uint8_t *base = (const uint8_t *)mcfg;
    if (mcfg->length < MCFG_ENTRIES || (mcfg->length - MCFG_ENTRIES) % MCFG_ENTRY_SIZE != 0) {
        kprintf("acpi: MCFG length %u is not a whole number of %u-byte entries: "
            "the partial entry is ignored\n", mcfg->length, MCFG_ENTRY_SIZE);
    }
    for (uint32_t offset = MCFG_ENTRIES; offset + MCFG_ENTRY_SIZE <= mcfg->length;
         offset += MCFG_ENTRY_SIZE) {
        const uint8_t *e = base + offset;
        struct acpi_ecam ecam = {
            .base = acpi_get_u64(e), .segment = acpi_get_u16(e + 8), .bus_start = e[10], .bus_end = e[11],
        };
        if (ecam.base == 0 || ecam.bus_end < ecam.bus_start) {
            kprintf("acpi: MCFG entry at offset %u is malformed, ignored\n", offset);
            continue;
        }
        if (acpi_info.ecam_count < ACPI_MAX_ECAM) {
            acpi_info.ecam[acpi_info.ecam_count++] = ecam;
        }
    }
}

// ---------------------------------------------------------------------------------------
// FADT and the DSDT's \_S5.

static uint32_t fadt_u32(const struct acpi_header *fadt, unsigned offset) {
    return offset + 4 <= fadt->length ? acpi_get_u32((const uint8_t *)fadt + offset) : 0;
}

static uint64_t fadt_u64(const struct acpi_header *fadt, unsigned offset) {
    return offset + 8 <= fadt->length ? acpi_get_u64((const uint8_t *)fadt + offset) : 0;
}

static struct acpi_gas fadt_gas(const struct acpi_header *fadt, unsigned offset) {
    struct acpi_gas gas = { 0 };
    if (offset + sizeof(gas) <= fadt->length) {
        const uint8_t *p = (const uint8_t *)fadt + offset;
        gas.address_space = p[0];
        gas.bit_width = p[1];
        gas.bit_offset = p[2];
        gas.access_size = p[3];
        gas.address = acpi_get_u64(p + 4);
    }
    return gas;
}

// One integer element of a package: ZeroOp, OneOp, OnesOp or a Byte/Word/DWord constant.
// Returns the number of bytes consumed, 0 if the encoding is something else.
static size_t aml_integer(const uint8_t *p, const uint8_t *end, int *value) {
    if (p >= end) {
        return 0;
    }
    switch (p[0]) {
        case AML_ZERO:
            *value = 0;
            return 1;
        case AML_ONE:
            *value = 1;
            return 1;
        case AML_ONES:
            *value = 0xff;
            return 1;
        case AML_BYTE_PREFIX:
            if (p + 2 > end) {
                return 0;
            }
            *value = p[1];
            return 2;
        case AML_WORD_PREFIX:
            if (p + 3 > end) {
                return 0;
            }
            *value = p[1] | (p[2] << 8);
            return 3;
        case AML_DWORD_PREFIX:
            if (p + 5 > end) {
                return 0;
            }
            *value = p[1] | (p[2] << 8);  // SLP_TYP is 3 bits; the high bytes do not matter
            return 5;
        default:
            return 0;
    }
}

// Find `Name(\_S5_, Package(n) {SLP_TYPa, SLP_TYPb, ...})` in the DSDT's AML by pattern:
// NameOp, the name (optionally with the root prefix '\'), PackageOp, PkgLength (1-4 bytes,
// the count of extra bytes in bits 6-7 of the first, 20.2.4), NumElements, elements.
static void find_s5(const struct acpi_header *dsdt) {
    const uint8_t *aml = (const uint8_t *)(dsdt + 1);
    const uint8_t *end = (const uint8_t *)dsdt + dsdt->length;
    for (const uint8_t *p = aml + 1; p + 4 < end; p++) {
        if (!same_bytes(p, "_S5_", 4)) {
            continue;
        }
        bool named = p[-1] == AML_NAME || (p[-1] == '\\' && p - 2 >= aml && p[-2] == AML_NAME);
        const uint8_t *q = p + 4;
        if (!named || q >= end || *q != AML_PACKAGE) {
            continue;
        }
        q++;
        if (q >= end) {
            return;
        }
        q += 1 + (*q >> 6);      // PkgLength
        q++;                     // NumElements
        int a, b;
        size_t used = aml_integer(q, end, &a);
        if (used == 0) {
            return;
        }
        acpi_info.slp_typ_a = a;
        acpi_info.slp_typ_b = aml_integer(q + used, end, &b) ? b : a;
        return;
    }
}

static void parse_fadt(const struct acpi_header *fadt) {
    acpi_info.has_fadt = true;
    uint32_t flags = fadt_u32(fadt, FADT_FLAGS);
    acpi_info.hardware_reduced = flags & FADT_FLAG_HW_REDUCED_ACPI;
    acpi_info.sci_interrupt = fadt->length >= FADT_SCI_INT + 2
                              ? acpi_get_u16((const uint8_t *)fadt + FADT_SCI_INT) : 0;
    acpi_info.pm1a_control = fadt_u32(fadt, FADT_PM1A_CNT_BLK);
    acpi_info.pm1b_control = fadt_u32(fadt, FADT_PM1B_CNT_BLK);
    // The 64-bit X_ fields take precedence when set (5.2.9); only I/O space is used here.
    struct acpi_gas x_pm1a = fadt_gas(fadt, FADT_X_PM1A_CNT_BLK);
    if (x_pm1a.address && x_pm1a.address_space == ACPI_SPACE_IO && x_pm1a.address < 0x10000) {
        acpi_info.pm1a_control = x_pm1a.address;
    }
    struct acpi_gas x_pm1b = fadt_gas(fadt, FADT_X_PM1B_CNT_BLK);
    if (x_pm1b.address && x_pm1b.address_space == ACPI_SPACE_IO && x_pm1b.address < 0x10000) {
        acpi_info.pm1b_control = x_pm1b.address;
    }
    acpi_info.sleep_control = fadt_gas(fadt, FADT_SLEEP_CONTROL_REG);
    acpi_info.reset_supported = flags & FADT_FLAG_RESET_REG_SUP;
    acpi_info.reset_register = fadt_gas(fadt, FADT_RESET_REG);
    acpi_info.reset_value = FADT_RESET_VALUE < fadt->length
                            ? ((const uint8_t *)fadt)[FADT_RESET_VALUE] : 0;

    uint64_t dsdt_address = fadt_u64(fadt, FADT_X_DSDT);
    if (!dsdt_address) {
        dsdt_address = fadt_u32(fadt, FADT_DSDT);
    }
    bool sum_ok;
    const struct acpi_header *dsdt = header_at(dsdt_address, &sum_ok);
    if (!dsdt || !same_bytes(dsdt->signature, "DSDT", 4)) {
        kprintf("acpi: DSDT not found, power-off uses QEMU's defaults\n");
        return;
    }
    acpi_info.dsdt_address = dsdt_address;
    record_table(dsdt_address, dsdt, sum_ok);
    if (!sum_ok) {
        kprintf("acpi: DSDT has a bad checksum, power-off uses QEMU's defaults\n");
        return;
    }
    find_s5(dsdt);
}

// ---------------------------------------------------------------------------------------
// The MP table (Intel MultiProcessor Specification 1.4, chapter 4): the fallback for the
// CPUs and I/O APICs when there is no usable MADT.

// MP floating pointer structure (4.1, Figure 4-2): 16 bytes on a 16-byte boundary.
enum mp_floating_layout {
    MP_FLOATING_SIZE = 16,
    MP_FLOATING_TABLE = 4,          // u32: the configuration table's physical address
    MP_FLOATING_LENGTH = 8,         // in 16-byte paragraphs: 1
    MP_FLOATING_REVISION = 9,       // 1: MPS 1.1, 4: MPS 1.4
    MP_FLOATING_FEATURE1 = 11,      // 0: a configuration table exists; n: default config n
    MP_FLOATING_FEATURE2 = 12,      // bit 7 IMCRP: the IMCR is present, PIC mode at reset
    MP_FEATURE2_IMCRP = 1u << 7,
};

// MP configuration table header (4.2, Table 4-2), then the base table's entries (4.3).
enum mp_table_layout {
    MP_TABLE_LENGTH = 4,            // u16: the base table's length, header included
    MP_TABLE_REVISION = 6,
    MP_TABLE_LAPIC_ADDRESS = 36,    // u32
    MP_TABLE_ENTRIES = 44,
};

// Base table entry types and sizes (4.3, Table 4-3).
enum mp_entry_type {
    MP_PROCESSOR = 0,               // 20 bytes (Table 4-4)
    MP_BUS = 1,                     // 8 bytes (Table 4-7)
    MP_IO_APIC = 2,                 // 8 bytes (Table 4-9)
    MP_IO_INTERRUPT = 3,            // 8 bytes (Table 4-10)
    MP_LOCAL_INTERRUPT = 4,         // 8 bytes (Table 4-12)
    MP_PROCESSOR_SIZE = 20,
    MP_OTHER_ENTRY_SIZE = 8,
    MP_PROCESSOR_ENABLED = 1u << 0,     // CPU flags EN (Table 4-5)
    MP_IO_APIC_ENABLED = 1u << 0,       // I/O APIC flags EN (Table 4-9)
    MP_INTERRUPT_INT = 0,               // a vectored interrupt (Table 4-11)
    MP_INTERRUPT_NMI = 1,
    MP_ALL_IO_APICS = 0xff,             // destination "every I/O APIC" (4.3.4)
    MP_MAX_BUSES = 32,
};

// The floating pointer at `phys`, if its signature, length and checksum hold.
static const uint8_t *mp_floating_at(uint64_t phys) {
    if (!readable(phys, MP_FLOATING_SIZE)) {
        return NULL;
    }
    const uint8_t *p = (const uint8_t *)(uintptr_t)phys;
    if (!same_bytes(p, "_MP_", 4) || p[MP_FLOATING_LENGTH] != 1
        || !checksum_ok(p, MP_FLOATING_SIZE)) {
        return NULL;
    }
    return p;
}

// Where firmware puts the floating pointer (4, "MP Floating Pointer Structure"): the first
// KiB of the EBDA, the last KiB of base memory, or the BIOS ROM at 0xf0000-0xfffff. The BIOS
// data area that says where the EBDA and the end of base memory are lies in the null page,
// which is not mapped (and qboot leaves it zero), so the first two are taken at 639 KiB, where
// SeaBIOS's EBDA, qboot and Firecracker put the structure.
static const uint8_t *find_mp_floating(void) {
    static const uint64_t areas[][2] = { { 0x9fc00, 0xa0000 }, { 0xf0000, 0x100000 } };
    for (size_t a = 0; a < sizeof(areas) / sizeof(areas[0]); a++) {
        for (uint64_t address = areas[a][0]; address < areas[a][1]; address += 16) {
            const uint8_t *p = mp_floating_at(address);
            if (p) {
                return p;
            }
        }
    }
    return NULL;
}

static bool mp_bus_is_isa(const uint8_t *isa_buses, uint8_t bus) {
    return bus < MP_MAX_BUSES && isa_buses[bus];
}

// The base table's entries into acpi_info: CPUs, I/O APICs (their GSIs numbered in table
// order by ioapic_init, as the table has no bases), the ISA IRQs that reach an I/O APIC pin
// other than their own number or with a non-default polarity or trigger (the MADT's
// interrupt source overrides: the flags are the same MPS INTI flags), and the NMI line.
// The entries run to the base table's length; its entry count is not used, since qboot
// leaves it 0 (Linux walks by the length too).
static void parse_mp_entries(const uint8_t *table, uint32_t length) {
    uint8_t isa_buses[MP_MAX_BUSES] = { 0 };
    uint32_t offset = MP_TABLE_ENTRIES;
    for (unsigned n = 0; offset < length; n++) {
        const uint8_t *e = table + offset;
        uint32_t size = e[0] == MP_PROCESSOR ? MP_PROCESSOR_SIZE : MP_OTHER_ENTRY_SIZE;
        if (e[0] > MP_LOCAL_INTERRUPT || offset + size > length) {
            kprintf("acpi: MP table entry %u (type %u) at offset %u is malformed, rest ignored\n",
                n, e[0], offset);
            break;
        }
        switch (e[0]) {
            case MP_PROCESSOR:
                add_cpu(e[1], e[3] & MP_PROCESSOR_ENABLED ? MADT_LAPIC_ENABLED : 0);
                break;
            case MP_BUS:
                if (e[1] < MP_MAX_BUSES) {
                    isa_buses[e[1]] = same_bytes(e + 2, "ISA", 3);
                }
                break;
            case MP_IO_APIC:
                if ((e[3] & MP_IO_APIC_ENABLED) && acpi_info.ioapic_count < ACPI_MAX_IOAPICS) {
                    acpi_info.ioapics[acpi_info.ioapic_count++] = (struct acpi_ioapic){
                        .id = e[1], .address = acpi_get_u32(e + 4), .gsi_base = 0,
                    };
                }
                break;
            case MP_IO_INTERRUPT: {
                // Only pins of the first I/O APIC are known GSIs here (its base is 0).
                uint16_t flags = acpi_get_u16(e + 2);
                uint8_t irq = e[5], ioapic = e[6], pin = e[7];
                bool first = acpi_info.ioapic_count > 0
                             && (ioapic == acpi_info.ioapics[0].id || ioapic == MP_ALL_IO_APICS);
                if (e[1] == MP_INTERRUPT_INT && mp_bus_is_isa(isa_buses, e[4]) && first
                    && irq < 16 && (irq != pin || flags != 0)
                    && acpi_info.override_count < ACPI_MAX_OVERRIDES) {
                    acpi_info.overrides[acpi_info.override_count++] = (struct acpi_override){
                        .source_irq = irq, .gsi = pin, .flags = flags,
                    };
                }
                break;
            }
            case MP_LOCAL_INTERRUPT:
                if (e[1] == MP_INTERRUPT_NMI) {
                    acpi_info.lapic_nmi_lint = e[7] & 1;
                    acpi_info.lapic_nmi_flags = acpi_get_u16(e + 2);
                }
                break;
        }
        offset += size;
    }
}

// The MP table instead of the MADT, when there is a valid one. `why` starts the one boot line
// either way ("no RSDP", "no MADT", ...).
static void use_mp_table(const char *why) {
    const uint8_t *floating = find_mp_floating();
    if (floating == NULL) {
        kprintf("acpi: %s and no MP table found, assuming 1 CPU, LAPIC at 0x%x, I/O APIC at "
                "0x%x\n", why, ACPI_DEFAULT_LAPIC_ADDRESS, ACPI_DEFAULT_IOAPIC_ADDRESS);
        return;
    }
    uint64_t phys = acpi_get_u32(floating + MP_FLOATING_TABLE);
    if (floating[MP_FLOATING_FEATURE1] != 0) {
        // A default configuration (5): two CPUs and fixed wiring that QEMU never describes.
        kprintf("acpi: %s; the MP table is default configuration %u, not supported: assuming "
                "1 CPU\n", why, floating[MP_FLOATING_FEATURE1]);
        return;
    }
    if (phys == 0) {
        kprintf("acpi: %s; the MP floating pointer names no configuration table: assuming "
                "1 CPU\n", why);
        return;
    }
    const uint8_t *table = readable(phys, MP_TABLE_ENTRIES) ? (const uint8_t *)(uintptr_t)phys
                                                            : NULL;
    uint32_t length = table ? acpi_get_u16(table + MP_TABLE_LENGTH) : 0;
    if (table == NULL || !same_bytes(table, "PCMP", 4) || length < MP_TABLE_ENTRIES
        || !readable(phys, length) || !checksum_ok(table, length)) {
        kprintf("acpi: %s; the MP table at 0x%lx is invalid (bad signature, length or "
                "checksum), assuming 1 CPU\n", why, (unsigned long)phys);
        return;
    }
    acpi_info.cpu_count = 0;
    acpi_info.ioapic_count = 0;
    acpi_info.override_count = 0;
    acpi_info.lapic_address = acpi_get_u32(table + MP_TABLE_LAPIC_ADDRESS);
    parse_mp_entries(table, length);
    if (acpi_info.cpu_count == 0) {
        kprintf("acpi: the MP table lists no enabled CPU, assuming 1\n");
        acpi_info.cpu_count = 1;
        acpi_info.apic_ids[0] = 0;
    }
    if (acpi_info.ioapic_count == 0) {
        kprintf("acpi: the MP table lists no I/O APIC, legacy IRQs stay on the 8259 PIC\n");
    }
    if (acpi_info.lapic_address == 0) {
        acpi_info.lapic_address = ACPI_DEFAULT_LAPIC_ADDRESS;
    }
    acpi_info.mp_table_address = phys;
    acpi_info.mp_spec_revision = table[MP_TABLE_REVISION];
    acpi_info.imcr_present = floating[MP_FLOATING_FEATURE2] & MP_FEATURE2_IMCRP;
    uint8_t revision = acpi_info.mp_spec_revision;
    kprintf("acpi: %s; %d CPU%s and %d I/O APIC%s from the MP table at 0x%lx (MPS %s)\n",
            why, acpi_info.cpu_count, acpi_info.cpu_count == 1 ? "" : "s",
            acpi_info.ioapic_count, acpi_info.ioapic_count == 1 ? "" : "s",
            (unsigned long)phys, revision == 4 ? "1.4" : revision == 1 ? "1.1" : "revision ?");
}

// ---------------------------------------------------------------------------------------

static void set_fallbacks(void) {
    acpi_info.lapic_address = ACPI_DEFAULT_LAPIC_ADDRESS;
    acpi_info.cpu_count = 1;
    acpi_info.apic_ids[0] = 0;
    acpi_info.ioapic_count = 1;
    acpi_info.ioapics[0] = (struct acpi_ioapic){
        .id = 0, .address = ACPI_DEFAULT_IOAPIC_ADDRESS, .gsi_base = 0,
    };
    acpi_info.has_8259 = true;
    acpi_info.lapic_nmi_lint = 1;   // the PC convention: NMI on LINT1
    acpi_info.slp_typ_a = acpi_info.slp_typ_b = -1;
}

void acpi_init(void) {
    acpi_info = (struct acpi_info){ 0 };
    set_fallbacks();
    const struct acpi_rsdp *rsdp = find_rsdp();
    if (!rsdp) {
        use_mp_table("no RSDP");
        return;
    }
    acpi_info.present = true;
    acpi_info.rsdp_address = (uintptr_t)rsdp;
    acpi_info.revision = rsdp->revision;
    walk_root(rsdp);

    const struct acpi_header *madt = acpi_find_table("APIC");
    if (madt) {
        parse_madt(madt);
        if (acpi_info.has_madt && acpi_info.ioapic_count == 0) {
            kprintf("acpi: MADT lists no I/O APIC, legacy IRQs stay on the 8259 PIC\n");
        }
    }
    if (!acpi_info.has_madt) {
        use_mp_table(madt ? "the MADT is too short" : table_listed("APIC")
                     ? "the MADT has a bad checksum" : "no MADT");
    }
    const struct acpi_header *mcfg = acpi_find_table("MCFG");
    if (mcfg) {
        parse_mcfg(mcfg);
    }
    const struct acpi_header *fadt = require_table("FACP", "power-off uses QEMU's defaults");
    if (fadt) {
        parse_fadt(fadt);
    }
}

void acpi_gas_write(const struct acpi_gas *gas, uint32_t value) {
    if (gas->address == 0) {
        return;
    }
    if (gas->address_space == ACPI_SPACE_IO) {
        switch (gas->bit_width) {
            case 16:
                outw(gas->address, value);
                break;
            case 32:
                outl(gas->address, value);
                break;
            default:
                outb(gas->address, value);
                break;
        }
    } else if (gas->address_space == ACPI_SPACE_MEMORY) {
        volatile void *register_address = paging_map_mmio(gas->address, 4);
        switch (gas->bit_width) {
            case 16:
                *(volatile uint16_t *)register_address = value;
                break;
            case 32:
                *(volatile uint32_t *)register_address = value;
                break;
            default:
                *(volatile uint8_t *)register_address = value;
                break;
        }
    }
}
