// Turning the machine off and resetting it: ACPI soft-off (sleep state S5) through the FADT's
// PM1 control registers or, on hardware-reduced ACPI (microvm), its sleep control register;
// resets through the FADT reset register or the legacy chipset ports.
//
// Just enough ACPI for that, self-contained (ACPI Specification 6.5): RSDP (5.2.5), RSDT/XSDT
// (5.2.7, 5.2.8), FADT (5.2.9, Table 5.9), the \_S5 object in the DSDT (7.4.2 "\_Sx (System
// States)", AML encoding in 20.2), PM1 control bits (4.8.4.2, Table 4.13) and the sleep
// control register (4.8.3.7).
#include "arch/x86_64/power.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/tsc.h"

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

// Generic Address Structure (ACPI 5.2.3.2, Table 5.1).
struct __attribute__((packed)) acpi_gas {
    uint8_t address_space;      // 0 system memory, 1 system I/O
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
};

enum acpi_address_space {
    ACPI_SPACE_MEMORY = 0,
    ACPI_SPACE_IO = 1,
};

// FADT field offsets (ACPI 5.2.9, Table 5.9).
enum fadt_offset {
    FADT_DSDT = 40,                 // u32
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

// PM1 control register (Table 4.13) and sleep control register (Table 4.21) fields.
enum sleep_bits {
    PM1_SLP_TYP_SHIFT = 10,
    PM1_SLP_EN = 1u << 13,
    SLEEP_CONTROL_SLP_TYP_SHIFT = 2,
    SLEEP_CONTROL_SLP_EN = 1u << 5,
};

// AML opcodes used by `Name(_S5_, Package() {...})` (ACPI 20.2.3, 20.2.5).
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

// QEMU's fixed values: pc (PIIX4) and q35 (ICH9) firmware put the PM I/O block at 0x600,
// PM1a_CNT at 0x604, and their DSDT's \_S5 is Package {0, 0, ...}.
enum qemu_fallback {
    QEMU_PM1A_CNT = 0x604,
    QEMU_SLP_TYP_S5 = 0,
    KEYBOARD_CONTROLLER_STATUS = 0x64,   // bit 1: input buffer full
    KEYBOARD_CONTROLLER_COMMAND = 0x64,
    KEYBOARD_CONTROLLER_PULSE_RESET = 0xfe,
    RESET_CONTROL_PORT = 0xcf9,          // Intel chipsets' Reset Control Register
    RESET_CONTROL_FULL_RESET = 0x06,     // SYS_RST | RST_CPU
    BIOS_DATA_EBDA_SEGMENT = 0x40e,      // BIOS data area word: EBDA segment
};

struct acpi_power_info {
    const uint8_t *fadt;
    uint32_t fadt_length;
    uint16_t pm1a_control;
    uint16_t pm1b_control;
    const struct acpi_gas *sleep_control;
    bool hardware_reduced;
    int slp_typ_a, slp_typ_b;  // -1 when \_S5 was not found
};

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

// Firmware tables must lie in mapped memory; anything else is treated as absent rather than
// faulting at the worst possible moment.
static bool readable(uint64_t phys, uint64_t length) {
    if (phys == 0 || phys + length < phys) {
        return false;
    }
    uint64_t first_page = phys & ~(uint64_t)(PAGING_PAGE_SIZE - 1);
    for (uint64_t page = first_page; page < phys + length; page += PAGING_PAGE_SIZE) {
        if (!paging_is_mapped(page)) {
            return false;
        }
    }
    return true;
}

// Reads at small constant addresses, hidden from the compiler's array-bounds reasoning.
static uint16_t read_physical_u16(uint64_t phys) {
    __asm__ ("" : "+r"(phys));
    return *(const volatile uint16_t *)(uintptr_t)phys;
}

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

// Where BIOS firmware puts the RSDP (ACPI 5.2.5.1): the first KiB of the EBDA, whose segment
// is at 0x40e, or on a 16-byte boundary in 0xe0000-0xfffff.
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

static const struct acpi_header *table_at(uint64_t phys, const char *signature) {
    if (!readable(phys, sizeof(struct acpi_header))) {
        return NULL;
    }
    const struct acpi_header *header = (const void *)(uintptr_t)phys;
    if ((signature && !same_bytes(header->signature, signature, 4))
        || header->length < sizeof(*header) || !readable(phys, header->length)
        || !checksum_ok(header, header->length)) {
        return NULL;
    }
    return header;
}

static const struct acpi_header *find_table(const struct acpi_rsdp *rsdp, const char *signature) {
    bool use_xsdt = rsdp->revision >= 2 && readable((uintptr_t)rsdp, sizeof(*rsdp))
                    && rsdp->xsdt_address && checksum_ok(rsdp, sizeof(*rsdp));
    const struct acpi_header *root = use_xsdt ? table_at(rsdp->xsdt_address, "XSDT")
                                              : table_at(rsdp->rsdt_address, "RSDT");
    if (!root) {
        return NULL;
    }
    size_t entry_size = use_xsdt ? 8 : 4;
    size_t count = (root->length - sizeof(*root)) / entry_size;
    const uint8_t *entries = (const uint8_t *)(root + 1);
    for (size_t i = 0; i < count; i++) {
        uint64_t address = 0;
        for (size_t b = 0; b < entry_size; b++) {
            address |= (uint64_t)entries[i * entry_size + b] << (8 * b);
        }
        const struct acpi_header *table = table_at(address, signature);
        if (table) {
            return table;
        }
    }
    return NULL;
}

static uint32_t fadt_u32(const struct acpi_power_info *acpi, unsigned offset) {
    if (offset + 4 > acpi->fadt_length) {
        return 0;
    }
    const uint8_t *p = acpi->fadt + offset;
    return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t fadt_u64(const struct acpi_power_info *acpi, unsigned offset) {
    if (offset + 8 > acpi->fadt_length) {
        return 0;
    }
    return fadt_u32(acpi, offset) | (uint64_t)fadt_u32(acpi, offset + 4) << 32;
}

static const struct acpi_gas *fadt_gas(const struct acpi_power_info *acpi, unsigned offset) {
    if (offset + sizeof(struct acpi_gas) > acpi->fadt_length) {
        return NULL;
    }
    const struct acpi_gas *gas = (const void *)(acpi->fadt + offset);
    return gas->address ? gas : NULL;
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
// the count of extra bytes in bits 6-7 of the first, ACPI 20.2.4), NumElements, elements.
static void find_s5(const struct acpi_header *dsdt, int *slp_typ_a, int *slp_typ_b) {
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
        *slp_typ_a = a;
        *slp_typ_b = aml_integer(q + used, end, &b) ? b : a;
        return;
    }
}

static bool acpi_power_info(struct acpi_power_info *acpi) {
    *acpi = (struct acpi_power_info){ .slp_typ_a = -1, .slp_typ_b = -1 };
    const struct acpi_rsdp *rsdp = find_rsdp();
    if (!rsdp) {
        return false;
    }
    const struct acpi_header *fadt = find_table(rsdp, "FACP");
    if (!fadt) {
        return false;
    }
    acpi->fadt = (const uint8_t *)fadt;
    acpi->fadt_length = fadt->length;
    acpi->hardware_reduced = fadt_u32(acpi, FADT_FLAGS) & FADT_FLAG_HW_REDUCED_ACPI;
    acpi->pm1a_control = fadt_u32(acpi, FADT_PM1A_CNT_BLK);
    acpi->pm1b_control = fadt_u32(acpi, FADT_PM1B_CNT_BLK);
    const struct acpi_gas *x_pm1a = fadt_gas(acpi, FADT_X_PM1A_CNT_BLK);
    if (!acpi->pm1a_control && x_pm1a && x_pm1a->address_space == ACPI_SPACE_IO) {
        acpi->pm1a_control = x_pm1a->address;
    }
    const struct acpi_gas *x_pm1b = fadt_gas(acpi, FADT_X_PM1B_CNT_BLK);
    if (!acpi->pm1b_control && x_pm1b && x_pm1b->address_space == ACPI_SPACE_IO) {
        acpi->pm1b_control = x_pm1b->address;
    }
    acpi->sleep_control = fadt_gas(acpi, FADT_SLEEP_CONTROL_REG);

    uint64_t dsdt_address = fadt_u64(acpi, FADT_X_DSDT);
    if (!dsdt_address) {
        dsdt_address = fadt_u32(acpi, FADT_DSDT);
    }
    const struct acpi_header *dsdt = table_at(dsdt_address, "DSDT");
    if (dsdt) {
        find_s5(dsdt, &acpi->slp_typ_a, &acpi->slp_typ_b);
    }
    return true;
}

static void gas_write(const struct acpi_gas *gas, uint32_t value) {
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

// Give the device model a moment to act on a write before trying the next method.
static void settle(void) {
    tsc_delay_us(100000);
}

void power_off(void) {
    cli();
    struct acpi_power_info acpi;
    if (acpi_power_info(&acpi)) {
        if (acpi.hardware_reduced && acpi.sleep_control) {
            // HW-reduced platforms have no PM1 blocks; QEMU's GED calls S5 SLP_TYP 5.
            int slp_typ = acpi.slp_typ_a >= 0 ? acpi.slp_typ_a : 5;
            gas_write(acpi.sleep_control,
                      ((slp_typ & 7) << SLEEP_CONTROL_SLP_TYP_SHIFT) | SLEEP_CONTROL_SLP_EN);
            settle();
        }
        if (acpi.pm1a_control) {
            int slp_typ_a = acpi.slp_typ_a >= 0 ? acpi.slp_typ_a : QEMU_SLP_TYP_S5;
            int slp_typ_b = acpi.slp_typ_b >= 0 ? acpi.slp_typ_b : slp_typ_a;
            // SLP_TYPa and SLP_TYPb go to their own blocks, PM1b first: writing SLP_EN to
            // PM1a may take effect at once (ACPI 4.8.4.2 and 7.4.2).
            if (acpi.pm1b_control) {
                outw(acpi.pm1b_control, ((slp_typ_b & 7) << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
            }
            uint16_t control = inw(acpi.pm1a_control) & ~(7u << PM1_SLP_TYP_SHIFT);
            outw(acpi.pm1a_control, control | ((slp_typ_a & 7) << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
            settle();
        }
    }
    outw(QEMU_PM1A_CNT, (QEMU_SLP_TYP_S5 << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
    settle();
    debug_exit(0);
    for (;;) {
        cli();
        hlt();
    }
}

static void triple_fault(void) {
    // With an empty IDT the breakpoint cannot be delivered, nor can the resulting #GP and
    // #DF: the CPU shuts down, which the chipset turns into a reset.
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty_idt = { 0, 0 };
    __asm__ volatile ("lidt %0; int3" : : "m"(empty_idt) : "memory");
}

void power_reset(void) {
    cli();
    struct acpi_power_info acpi;
    if (acpi_power_info(&acpi) && (fadt_u32(&acpi, FADT_FLAGS) & FADT_FLAG_RESET_REG_SUP)) {
        const struct acpi_gas *reset = fadt_gas(&acpi, FADT_RESET_REG);
        if (reset && FADT_RESET_VALUE < acpi.fadt_length) {
            gas_write(reset, acpi.fadt[FADT_RESET_VALUE]);
            settle();
        }
    }
    outb(RESET_CONTROL_PORT, 0x02);
    outb(RESET_CONTROL_PORT, RESET_CONTROL_FULL_RESET);
    settle();
    for (int polls = 0; polls < 100000 && (inb(KEYBOARD_CONTROLLER_STATUS) & 0x02); polls++) {
        cpu_relax();
    }
    outb(KEYBOARD_CONTROLLER_COMMAND, KEYBOARD_CONTROLLER_PULSE_RESET);
    settle();
    triple_fault();
}
