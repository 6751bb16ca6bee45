// PCI and PCI Express, the bus every device of a QEMU PC (virtio, e1000, AHCI, bridges) sits
// on: each function has a 256-byte (PCIe: 4 KiB) configuration space with its ids, class,
// Base Address Registers and a linked list of capabilities. pci_init finds every function
// once at boot, through ECAM (ACPI MCFG) or the legacy 0xCF8/0xCFC ports, and drivers then
// look devices up in pci_devices[] by vendor/device id.
//
// References: PCI Local Bus Specification 3.0 (chapter 6 "Configuration Space", 3.2.2.3.2
// "Configuration Mechanism #1"), PCI-to-PCI Bridge Architecture Specification 1.2 (chapter 3),
// PCI Express Base Specification 4.0 (7.2.2 "PCI Express Enhanced Configuration Access
// Mechanism (ECAM)").
#ifndef DRIVERS_PCI_PCI_H
#define DRIVERS_PCI_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86_64/smp.h"

#define PCI_MAX_DEVICES (64)
#define PCI_MAX_CAPS (16)
#define PCI_BAR_COUNT (6)
#define PCI_ROM_SLOT (6)            // bars[6] is the expansion ROM (like QEMU's query-pci)

// Type 0/1 configuration header offsets (PCI 3.0, 6.1, Figure 6-1; PCI-to-PCI Bridge 1.2,
// 3.2, Figure 3-1).
enum pci_config_offset {
    PCI_VENDOR_ID = 0x00,
    PCI_DEVICE_ID = 0x02,
    PCI_COMMAND = 0x04,
    PCI_STATUS = 0x06,
    PCI_REVISION_ID = 0x08,
    PCI_CLASS_PROG = 0x09,          // class code: prog-if 0x09, subclass 0x0a, base 0x0b
    PCI_CACHE_LINE_SIZE = 0x0c,
    PCI_LATENCY_TIMER = 0x0d,
    PCI_HEADER_TYPE = 0x0e,
    PCI_BAR0 = 0x10,
    PCI_SUBSYSTEM_VENDOR_ID = 0x2c, // type 0
    PCI_SUBSYSTEM_ID = 0x2e,        // type 0
    PCI_ROM_ADDRESS = 0x30,         // type 0
    PCI_CAPABILITY_LIST = 0x34,
    PCI_INTERRUPT_LINE = 0x3c,
    PCI_INTERRUPT_PIN = 0x3d,
    // Type 1 (PCI-to-PCI bridge).
    PCI_PRIMARY_BUS = 0x18,
    PCI_SECONDARY_BUS = 0x19,
    PCI_SUBORDINATE_BUS = 0x1a,
    PCI_ROM_ADDRESS1 = 0x38,
};

// Command register bits (PCI 3.0, 6.2.2, Figure 6-2).
enum pci_command_bits {
    PCI_COMMAND_IO = 1u << 0,
    PCI_COMMAND_MEMORY = 1u << 1,
    PCI_COMMAND_MASTER = 1u << 2,
    PCI_COMMAND_INTX_DISABLE = 1u << 10,
};

// Status register (PCI 3.0, 6.2.3, Figure 6-3).
enum pci_status_bits {
    PCI_STATUS_INTERRUPT = 1u << 3,
    PCI_STATUS_CAP_LIST = 1u << 4,
};

// Header type register (PCI 3.0, 6.2.1): layout in bits 6:0, multi-function in bit 7.
enum {
    PCI_HEADER_TYPE_MASK = 0x7f,
    PCI_HEADER_TYPE_NORMAL = 0,
    PCI_HEADER_TYPE_BRIDGE = 1,
    PCI_HEADER_TYPE_CARDBUS = 2,
    PCI_HEADER_MULTI_FUNCTION = 0x80,
};

// Capability ids (PCI Code and ID Assignment Specification 1.11, chapter 2).
enum pci_capability_id {
    PCI_CAP_POWER_MANAGEMENT = 0x01,
    PCI_CAP_AGP = 0x02,
    PCI_CAP_VPD = 0x03,
    PCI_CAP_SLOT_ID = 0x04,
    PCI_CAP_MSI = 0x05,
    PCI_CAP_HOTSWAP = 0x06,
    PCI_CAP_PCIX = 0x07,
    PCI_CAP_HYPERTRANSPORT = 0x08,
    PCI_CAP_VENDOR = 0x09,
    PCI_CAP_DEBUG_PORT = 0x0a,
    PCI_CAP_HOTPLUG = 0x0c,
    PCI_CAP_SUBSYSTEM_VENDOR = 0x0d,
    PCI_CAP_AGP8X = 0x0e,
    PCI_CAP_SECURE = 0x0f,
    PCI_CAP_EXPRESS = 0x10,
    PCI_CAP_MSIX = 0x11,
    PCI_CAP_SATA = 0x12,
    PCI_CAP_AF = 0x13,
    PCI_CAP_EA = 0x14,
};

enum pci_bar_kind {
    PCI_BAR_NONE = 0,               // not implemented
    PCI_BAR_IO,
    PCI_BAR_MEM32,
    PCI_BAR_MEM64,                  // occupies this slot and the next
    PCI_BAR_ROM,                    // expansion ROM (bars[PCI_ROM_SLOT])
};

struct pci_bar {
    uint64_t address;               // as firmware programmed it (0: unassigned)
    uint64_t size;                  // bytes decoded, 0 when the BAR is not implemented
    uint8_t kind;                   // enum pci_bar_kind
    bool prefetchable;
};

struct pci_capability {
    uint8_t id;                     // enum pci_capability_id
    uint8_t offset;                 // in configuration space
};

struct pci_device {
    uint16_t segment;
    uint8_t bus, device, function;
    uint16_t vendor_id, device_id;
    uint32_t class_code;            // base class << 16 | subclass << 8 | prog-if
    uint8_t revision;
    uint8_t header_type;            // without the multi-function bit
    bool multi_function;
    uint16_t subsystem_vendor_id, subsystem_id;
    uint8_t irq_line, irq_pin;      // irq_pin: 0 none, 1-4 INTA#-INTD#
    uint8_t secondary_bus, subordinate_bus;   // bridges only
    struct pci_bar bars[PCI_BAR_COUNT + 1];   // [PCI_ROM_SLOT] is the expansion ROM
    int cap_count;
    struct pci_capability caps[PCI_MAX_CAPS];
    volatile uint8_t *ecam;         // this function's 4 KiB of ECAM, NULL with 0xCF8 access
    // Interrupt state, owned by drivers/pci/msix.c.
    uint8_t irq_mode;               // enum pci_irq_mode (msix.h)
    uint16_t msix_size;
    volatile uint32_t *msix_table;
    volatile uint64_t *msix_pba;
    // Held across an MSI-X entry's read-modify-write: acquire() steering a queue's entry to
    // its CPU and Device.msix_mask() at a REPL may run on two CPUs at once.
    smp_spinlock_t msix_lock;
};

extern struct pci_device pci_devices[PCI_MAX_DEVICES];
extern int pci_device_count;

// Enumerate every bus reachable from bus 0 (following bridges to the secondary bus numbers
// firmware assigned), size the BARs, walk capability lists and print one boot line per
// function. Needs acpi_init (for MCFG) and paging. Without any PCI host (microvm) it finds
// nothing and says so in one line.
void pci_init(void);

// "ecam", "legacy" (0xCF8/0xCFC) or "none".
const char *pci_access_method(void);

// Configuration space access; width is 1, 2 or 4 and the offset must be aligned to it.
// Offsets >= 256 need ECAM (legacy access reads them as all ones and ignores writes).
uint32_t pci_config_read(const struct pci_device *dev, uint16_t offset, int width);
void pci_config_write(const struct pci_device *dev, uint16_t offset, uint32_t value, int width);
static inline uint8_t pci_read8(const struct pci_device *d, uint16_t o) { return pci_config_read(d, o, 1); }
static inline uint16_t pci_read16(const struct pci_device *d, uint16_t o) { return pci_config_read(d, o, 2); }
static inline uint32_t pci_read32(const struct pci_device *d, uint16_t o) { return pci_config_read(d, o, 4); }
static inline void pci_write8(const struct pci_device *d, uint16_t o, uint8_t v) { pci_config_write(d, o, v, 1); }
static inline void pci_write16(const struct pci_device *d, uint16_t o, uint16_t v) { pci_config_write(d, o, v, 2); }
static inline void pci_write32(const struct pci_device *d, uint16_t o, uint32_t v) { pci_config_write(d, o, v, 4); }

// The index-th function (0, 1, ...) with this vendor id and (when device_id != 0xffff) device
// id; NULL when there is none.
struct pci_device *pci_find(uint16_t vendor_id, uint16_t device_id, int index);

// Offset of the first capability with `id` that follows the capability at offset `after` in
// list order (after = 0: from the start of the list); 0 when absent.
uint8_t pci_find_capability(const struct pci_device *dev, uint8_t id, uint8_t after);
const char *pci_capability_name(uint8_t id);

// A short human name ("virtio-net", "e1000", "PCI bridge", ...), never NULL.
const char *pci_device_name(const struct pci_device *dev);

// Set command register bits (PCI_COMMAND_MEMORY, _IO, _MASTER, ...).
void pci_enable(const struct pci_device *dev, uint16_t command_bits);

// The virtual address of a memory BAR, mapped uncached when not mapped already; NULL for an
// I/O or absent BAR.
volatile void *pci_map_bar(const struct pci_device *dev, int bar);

#endif
