// ACPI, the firmware's description of the machine: a tree of checksummed tables (RSDP ->
// RSDT/XSDT -> MADT, MCFG, FADT, DSDT) that says how many CPUs there are, where the interrupt
// controllers and PCI Express configuration space live, and how to power off or reset.
// acpi_init parses them once at boot into acpi_info; nothing else in the kernel walks tables.
// A machine without a MADT (QEMU's -machine acpi=off, Firecracker-style VMMs) may still have
// an MP table (Intel MultiProcessor Specification 1.4): acpi_init reads the CPUs, I/O APICs and
// ISA interrupt routing from it instead.
#ifndef ARCH_X86_64_ACPI_H
#define ARCH_X86_64_ACPI_H

#include <stdbool.h>
#include <stdint.h>

#define ACPI_MAX_CPUS 64
#define ACPI_MAX_IOAPICS 8
#define ACPI_MAX_OVERRIDES 16
#define ACPI_MAX_ECAM 4
#define ACPI_MAX_TABLES 32
#define ACPI_MAX_NMIS 8

// Fallbacks when the MADT is missing (the architectural defaults, SDM Vol. 3A 10.4.1 and the
// 82093AA datasheet 3.0).
#define ACPI_DEFAULT_LAPIC_ADDRESS 0xFEE00000u
#define ACPI_DEFAULT_IOAPIC_ADDRESS 0xFEC00000u

// MPS INTI flags of an interrupt source override or NMI source (ACPI 6.5, Table 5.26).
enum acpi_inti_flags {
    ACPI_INTI_POLARITY_MASK = 0x3,          // 0 bus default, 1 active high, 3 active low
    ACPI_INTI_POLARITY_ACTIVE_HIGH = 0x1,
    ACPI_INTI_POLARITY_ACTIVE_LOW = 0x3,
    ACPI_INTI_TRIGGER_MASK = 0xc,           // 0 bus default, 4 edge, 0xc level
    ACPI_INTI_TRIGGER_EDGE = 0x4,
    ACPI_INTI_TRIGGER_LEVEL = 0xc,
};

// Generic Address Structure (ACPI 6.5, 5.2.3.2, Table 5.1).
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

struct acpi_ecam { uint64_t base; uint16_t segment; uint8_t bus_start, bus_end; };
struct acpi_ioapic { uint8_t id; uint32_t address; uint32_t gsi_base; };
struct acpi_override { uint8_t source_irq; uint32_t gsi; uint16_t flags; };  // MPS INTI flags
struct acpi_nmi { uint32_t gsi; uint16_t flags; };            // NMI source (5.2.12.6)
struct acpi_table_info {
    char signature[5]; uint64_t address; uint32_t length; uint8_t revision; char oem_id[7];
    bool checksum_ok;
};

struct acpi_info {
    bool present;                 // RSDP found and valid
    uint64_t rsdp_address; uint8_t revision;
    int table_count; struct acpi_table_info tables[ACPI_MAX_TABLES];
    bool has_madt;                // false: the fields below hold the fallback (1 CPU, ...)
    uint64_t lapic_address;       // from MADT (default 0xFEE00000)
    int cpu_count; uint32_t apic_ids[ACPI_MAX_CPUS];   // enabled CPUs (os.cpu_count())
    int online_capable_count;     // present in the MADT but not enabled (hot-pluggable)
    uint8_t lapic_nmi_lint;       // Local APIC NMI structure: which LINTn carries NMI (1)
    uint16_t lapic_nmi_flags;     // its MPS INTI flags
    int ioapic_count; struct acpi_ioapic ioapics[ACPI_MAX_IOAPICS];
    int override_count; struct acpi_override overrides[ACPI_MAX_OVERRIDES];
    int nmi_count; struct acpi_nmi nmis[ACPI_MAX_NMIS];
    int ecam_count; struct acpi_ecam ecam[ACPI_MAX_ECAM];
    bool has_8259;                // MADT flags PCAT_COMPAT
    // FADT: power-off and reset (ACPI 6.5, 5.2.9, Table 5.9).
    bool has_fadt;
    bool hardware_reduced;        // FADT flag HW_REDUCED_ACPI: no PM1 blocks
    uint16_t pm1a_control;        // I/O ports, 0 if absent
    uint16_t pm1b_control;
    struct acpi_gas sleep_control;    // address 0 if absent (HW-reduced platforms)
    bool reset_supported;         // FADT flag RESET_REG_SUP
    struct acpi_gas reset_register;
    uint8_t reset_value;
    uint64_t dsdt_address;
    int slp_typ_a, slp_typ_b;     // \_S5 package from the DSDT, -1 when not found
    uint16_t sci_interrupt;
    // The MP table (MPS 1.4), read only when there is no usable MADT.
    uint64_t mp_table_address;    // its configuration table, 0 if none was used (it gives no
                                  // GSI bases: ioapic_init numbers the pins in table order)
    uint8_t mp_spec_revision;     // 1 (MPS 1.1) or 4 (MPS 1.4)
    bool imcr_present;            // PIC mode at reset: ioapic_init switches the IMCR (3.6.2.1)
};

extern struct acpi_info acpi_info;

// Little-endian fields of firmware tables and AML, byte by byte: tables need not be aligned,
// nor the fields inside them (UBSan caught misaligned loads in the HPET table and the DSDT).
static inline uint16_t acpi_get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t acpi_get_u32(const uint8_t *p) {
    return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t acpi_get_u64(const uint8_t *p) {
    return acpi_get_u32(p) | (uint64_t)acpi_get_u32(p + 4) << 32;
}

// Find and parse the tables (boot_info.rsdp_phys, else the EBDA and BIOS area). Never
// crashes on bad tables: a missing/malformed table prints one "acpi: ..." line and leaves the
// fallback. Call after paging_init.
void acpi_init(void);

// The first valid table with this 4-character signature, NULL if absent. "DSDT" works too.
const void *acpi_find_table(const char *signature);

// Write `value` to a register given by a Generic Address Structure (I/O or memory space).
void acpi_gas_write(const struct acpi_gas *gas, uint32_t value);

#endif
