// PCI and PCI Express enumeration: finds every function behind the host bridge, with its ids,
// class, BARs and capabilities, and gives drivers configuration-space access. See pci.h.
#include "drivers/pci/pci.h"

#include <stddef.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/smp.h"

// Configuration Mechanism #1 (PCI 3.0, 3.2.2.3.2, Figure 3-2): the CONFIG_ADDRESS register
// at 0xCF8 selects enable | bus | device | function | dword; CONFIG_DATA at 0xCFC moves it.
enum {
    PCI_CONFIG_ADDRESS = 0xcf8,
    PCI_CONFIG_DATA = 0xcfc,
    PCI_CONFIG_ENABLE = 0x80000000u,
};

// Base Address Register bits (PCI 3.0, 6.2.5.1, Figures 6-5 and 6-6) and the expansion ROM
// BAR (6.2.5.2, Figure 6-7).
enum {
    PCI_BAR_SPACE_IO = 0x1,
    PCI_BAR_MEM_TYPE_MASK = 0x6,
    PCI_BAR_MEM_TYPE_64 = 0x4,
    PCI_BAR_MEM_PREFETCH = 0x8,
    PCI_BAR_IO_MASK = ~0x3u,
    PCI_BAR_MEM_MASK = ~0xfu,
    PCI_ROM_ENABLE = 0x1,
    PCI_ROM_MASK = ~0x7ffu,
};

enum pci_access {
    ACCESS_NONE,
    ACCESS_LEGACY,
    ACCESS_ECAM,
};

struct pci_device pci_devices[PCI_MAX_DEVICES];
int pci_device_count;

static enum pci_access access;
static const struct acpi_ecam *ecam_region;   // segment 0's region
static volatile uint8_t *ecam_base;           // its mapping (identity)
static int devices_dropped;

// --- raw configuration access by bus/device/function -------------------------------------

static volatile uint8_t *ecam_address(unsigned bus, unsigned dev, unsigned fn) {
    // PCIe 4.0, 7.2.2, Table 7-1: bus << 20 | device << 15 | function << 12 | offset.
    if (bus < ecam_region->bus_start || bus > ecam_region->bus_end) {
        return NULL;
    }
    return ecam_base + (((uint64_t)(bus - ecam_region->bus_start) << 20) | (dev << 15) | (fn << 12));
}

// 0xCF8 then 0xCFC is two accesses: keep an interrupt handler (cli) and the other CPUs (the
// lock: the address register is the machine's one, and any CPU's `pci` module may ask) from
// slipping in between.
static smp_spinlock_t legacy_config_lock;

static uint32_t legacy_read(unsigned bus, unsigned dev, unsigned fn, unsigned offset, int width) {
    uint64_t flags = smp_lock_irqsave(&legacy_config_lock);
    outl(PCI_CONFIG_ADDRESS, PCI_CONFIG_ENABLE | (bus << 16) | (dev << 11) | (fn << 8) | (offset & 0xfc));
    uint32_t value;
    if (width == 1) {
        value = inb(PCI_CONFIG_DATA + (offset & 3));
    } else if (width == 2) {
        value = inw(PCI_CONFIG_DATA + (offset & 2));
    } else {
        value = inl(PCI_CONFIG_DATA);
    }
    smp_unlock_irqrestore(&legacy_config_lock, flags);
    return value;
}

static void legacy_write(unsigned bus, unsigned dev, unsigned fn, unsigned offset, uint32_t value, int width) {
    uint64_t flags = smp_lock_irqsave(&legacy_config_lock);
    outl(PCI_CONFIG_ADDRESS, PCI_CONFIG_ENABLE | (bus << 16) | (dev << 11) | (fn << 8) | (offset & 0xfc));
    if (width == 1) {
        outb(PCI_CONFIG_DATA + (offset & 3), value);
    } else if (width == 2) {
        outw(PCI_CONFIG_DATA + (offset & 2), value);
    } else {
        outl(PCI_CONFIG_DATA, value);
    }
    smp_unlock_irqrestore(&legacy_config_lock, flags);
}

static uint32_t all_ones(int width) {
    return width == 4 ? 0xffffffffu : (1u << (8 * width)) - 1;
}

static uint32_t raw_read(unsigned bus, unsigned dev, unsigned fn, unsigned offset, int width) {
    if (access == ACCESS_ECAM) {
        volatile uint8_t *cfg = ecam_address(bus, dev, fn);
        if (cfg == NULL) {
            return all_ones(width);
        }
        if (width == 1) {
            return *(volatile uint8_t *)(cfg + offset);
        } else if (width == 2) {
            return *(volatile uint16_t *)(cfg + offset);
        }
        return *(volatile uint32_t *)(cfg + offset);
    }
    if (access == ACCESS_LEGACY && offset < 256) {
        return legacy_read(bus, dev, fn, offset, width);
    }
    return all_ones(width);
}

static void raw_write(unsigned bus, unsigned dev, unsigned fn, unsigned offset, uint32_t value, int width) {
    if (access == ACCESS_ECAM) {
        volatile uint8_t *cfg = ecam_address(bus, dev, fn);
        if (cfg == NULL) {
            return;
        }
        if (width == 1) {
            *(volatile uint8_t *)(cfg + offset) = value;
        } else if (width == 2) {
            *(volatile uint16_t *)(cfg + offset) = value;
        } else {
            *(volatile uint32_t *)(cfg + offset) = value;
        }
    } else if (access == ACCESS_LEGACY && offset < 256) {
        legacy_write(bus, dev, fn, offset, value, width);
    }
}

uint32_t pci_config_read(const struct pci_device *dev, uint16_t offset, int width) {
    return raw_read(dev->bus, dev->device, dev->function, offset, width);
}

void pci_config_write(const struct pci_device *dev, uint16_t offset, uint32_t value, int width) {
    raw_write(dev->bus, dev->device, dev->function, offset, value, width);
}

const char *pci_access_method(void) {
    return access == ACCESS_ECAM ? "ecam" : access == ACCESS_LEGACY ? "legacy" : "none";
}

// --- choosing the access method -----------------------------------------------------------

// Mechanism #1 is present when CONFIG_ADDRESS holds what was written to it (the check Linux
// calls pci_check_type1); on a machine without a PCI host (microvm) the port floats.
static bool legacy_present(void) {
    uint32_t saved = inl(PCI_CONFIG_ADDRESS);
    outl(PCI_CONFIG_ADDRESS, PCI_CONFIG_ENABLE);
    bool present = inl(PCI_CONFIG_ADDRESS) == PCI_CONFIG_ENABLE;
    outl(PCI_CONFIG_ADDRESS, saved);
    return present;
}

// A vendor id of all ones is "no device" (PCI 3.0, 6.2.1); all zeros is not a valid vendor
// either and is what a window with nothing behind it reads as.
static bool vendor_absent(uint32_t vendor_id) {
    return vendor_id == 0xffff || vendor_id == 0x0000;
}

// A firmware MCFG can point at a window where nothing answers (a bad or hand-made table).
// Where configuration mechanism #1 exists too, the host bridge at 00:00.0 must look the same
// through both; if it does not, the MCFG is not trusted.
static bool ecam_agrees_with_legacy(void) {
    if (!legacy_present()) {
        return true;
    }
    uint32_t through_ecam = raw_read(0, 0, 0, PCI_VENDOR_ID, 4);
    uint32_t through_cf8 = legacy_read(0, 0, 0, PCI_VENDOR_ID, 4);
    if (through_ecam == through_cf8 && !vendor_absent(through_ecam & 0xffff)) {
        return true;
    }
    kprintf("pci: ECAM at 0x%lx disagrees with 0xCF8 at 00:00.0 (ids %08x vs %08x): "
        "MCFG ignored, using 0xCF8\n", (unsigned long)ecam_region->base, through_ecam, through_cf8);
    return false;
}

static void choose_access(void) {
    for (int i = 0; i < acpi_info.ecam_count; i++) {
        const struct acpi_ecam *e = &acpi_info.ecam[i];
        if (e->segment != 0 || e->bus_start != 0 || e->base == 0) {
            continue;   // only segment 0 starting at bus 0 is enumerated
        }
        uint64_t size = ((uint64_t)(e->bus_end - e->bus_start) + 1) << 20;
        if (!paging_is_mapped(e->base) || !paging_is_mapped(e->base + size - 1)
            || e->base + size > 0x100000000ull) {
            paging_map_mmio(e->base, size);
        }
        ecam_region = e;
        ecam_base = (volatile uint8_t *)(uintptr_t)e->base;
        access = ACCESS_ECAM;
        if (ecam_agrees_with_legacy()) {
            return;
        }
        break;
    }
    ecam_region = NULL;
    ecam_base = NULL;
    access = legacy_present() ? ACCESS_LEGACY : ACCESS_NONE;
}

// --- BARs and capabilities ------------------------------------------------------------------

// Size one BAR (PCI 3.0, 6.2.5.1 "Address Maps"): write all ones, read back the mask of
// writable address bits, restore. The caller has turned decoding off in the command register,
// so the device never answers at the transient all-ones address. Returns the slots used.
static int size_bar(struct pci_device *d, int index) {
    uint16_t offset = PCI_BAR0 + 4 * index;
    struct pci_bar *bar = &d->bars[index];
    uint32_t original = pci_read32(d, offset);
    pci_write32(d, offset, 0xffffffffu);
    uint32_t mask = pci_read32(d, offset);
    pci_write32(d, offset, original);
    if (mask == 0 || mask == 0xffffffffu) {
        return 1;   // not implemented (or nothing answering)
    }
    if (original & PCI_BAR_SPACE_IO) {
        // I/O BARs may implement only the low 16 bits (6.2.5.1): ignore the upper half.
        uint32_t bits = mask & PCI_BAR_IO_MASK;
        if ((bits & 0xffff0000u) == 0) {
            bits |= 0xffff0000u;
        }
        bar->kind = PCI_BAR_IO;
        bar->address = original & PCI_BAR_IO_MASK;
        bar->size = (uint32_t)(~bits + 1);
        return 1;
    }
    bar->prefetchable = (original & PCI_BAR_MEM_PREFETCH) != 0;
    if ((original & PCI_BAR_MEM_TYPE_MASK) == PCI_BAR_MEM_TYPE_64 && index + 1 < PCI_BAR_COUNT) {
        uint32_t original_high = pci_read32(d, offset + 4);
        pci_write32(d, offset + 4, 0xffffffffu);
        uint32_t mask_high = pci_read32(d, offset + 4);
        pci_write32(d, offset + 4, original_high);
        uint64_t bits = ((uint64_t)mask_high << 32) | (mask & PCI_BAR_MEM_MASK);
        bar->kind = PCI_BAR_MEM64;
        bar->address = ((uint64_t)original_high << 32) | (original & PCI_BAR_MEM_MASK);
        bar->size = ~bits + 1;
        return 2;
    }
    bar->kind = PCI_BAR_MEM32;
    bar->address = original & PCI_BAR_MEM_MASK;
    bar->size = (uint32_t)(~(mask & PCI_BAR_MEM_MASK) + 1);
    return 1;
}

static void size_rom(struct pci_device *d, uint16_t offset) {
    uint32_t original = pci_read32(d, offset);
    pci_write32(d, offset, PCI_ROM_MASK);
    uint32_t mask = pci_read32(d, offset) & PCI_ROM_MASK;
    pci_write32(d, offset, original);
    if (mask == 0) {
        return;
    }
    struct pci_bar *bar = &d->bars[PCI_ROM_SLOT];
    bar->kind = PCI_BAR_ROM;
    bar->address = original & PCI_ROM_MASK;
    bar->size = (uint32_t)(~mask + 1);
}

static void size_bars(struct pci_device *d) {
    int count = d->header_type == PCI_HEADER_TYPE_NORMAL ? 6
        : d->header_type == PCI_HEADER_TYPE_BRIDGE ? 2 : 0;
    if (count == 0) {
        return;
    }
    uint16_t command = pci_read16(d, PCI_COMMAND);
    uint64_t flags = read_rflags();
    cli();
    pci_write16(d, PCI_COMMAND, command & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
    for (int i = 0; i < count;) {
        i += size_bar(d, i);
    }
    size_rom(d, d->header_type == PCI_HEADER_TYPE_NORMAL ? PCI_ROM_ADDRESS : PCI_ROM_ADDRESS1);
    pci_write16(d, PCI_COMMAND, command);
    if (flags & RFLAGS_IF) {
        sti();
    }
}

// The capability list (PCI 3.0, 6.7): a chain of (id, next) pairs starting at 0x34 when the
// status register says there is one. Bounded, so a looping list cannot hang the boot.
static void walk_capabilities(struct pci_device *d) {
    if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST)) {
        return;
    }
    uint8_t offset = pci_read8(d, PCI_CAPABILITY_LIST) & 0xfc;
    for (int guard = 0; offset >= 0x40 && guard < 48; guard++) {
        // A list that comes back to an offset already seen is cut there: each offset once,
        // so pci_find_capability(dev, id, previous) always moves forward (a looping list
        // would otherwise make the drivers' "next capability" loops run forever).
        for (int i = 0; i < d->cap_count; i++) {
            if (d->caps[i].offset == offset) {
                return;
            }
        }
        if (d->cap_count < PCI_MAX_CAPS) {
            d->caps[d->cap_count].id = pci_read8(d, offset);
            d->caps[d->cap_count].offset = offset;
            d->cap_count++;
        }
        offset = pci_read8(d, offset + 1) & 0xfc;
    }
}

uint8_t pci_find_capability(const struct pci_device *dev, uint8_t id, uint8_t after) {
    // List order, not offset order: lists often run downwards (QEMU's virtio: 0x98, 0x84, ...).
    int i = 0;
    if (after != 0) {
        while (i < dev->cap_count && dev->caps[i].offset != after) {
            i++;
        }
        i++;
    }
    for (; i < dev->cap_count; i++) {
        if (dev->caps[i].id == id) {
            return dev->caps[i].offset;
        }
    }
    return 0;
}

const char *pci_capability_name(uint8_t id) {
    static const char *const names[] = {
        [PCI_CAP_POWER_MANAGEMENT] = "pm", [PCI_CAP_AGP] = "agp", [PCI_CAP_VPD] = "vpd",
        [PCI_CAP_SLOT_ID] = "slot-id", [PCI_CAP_MSI] = "msi", [PCI_CAP_HOTSWAP] = "hotswap",
        [PCI_CAP_PCIX] = "pci-x", [PCI_CAP_HYPERTRANSPORT] = "hypertransport",
        [PCI_CAP_VENDOR] = "vendor", [PCI_CAP_DEBUG_PORT] = "debug-port",
        [PCI_CAP_HOTPLUG] = "hotplug", [PCI_CAP_SUBSYSTEM_VENDOR] = "ssvid",
        [PCI_CAP_AGP8X] = "agp8x", [PCI_CAP_SECURE] = "secure", [PCI_CAP_EXPRESS] = "pcie",
        [PCI_CAP_MSIX] = "msix", [PCI_CAP_SATA] = "sata", [PCI_CAP_AF] = "af",
        [PCI_CAP_EA] = "ea",
    };
    if (id < sizeof(names) / sizeof(names[0]) && names[id] != NULL) {
        return names[id];
    }
    return "unknown";
}

// --- names for the boot log -----------------------------------------------------------------

static const char *virtio_type_name(unsigned type) {
    // virtio 1.2, 5 "Device Types" (device id 0x1040 + type; transitional ids 4.1.2.1).
    switch (type) {
        case 1: return "virtio-net";
        case 2: return "virtio-blk";
        case 3: return "virtio-console";
        case 4: return "virtio-rng";
        case 5: return "virtio-balloon";
        case 8: return "virtio-scsi";
        case 9: return "virtio-9p";
        case 16: return "virtio-gpu";
        case 18: return "virtio-input";
        case 19: return "virtio-vsock";
        default: return "virtio";
    }
}

const char *pci_device_name(const struct pci_device *d) {
    if (d->vendor_id == 0x1af4 && d->device_id >= 0x1000 && d->device_id <= 0x107f) {
        if (d->device_id >= 0x1040) {
            return virtio_type_name(d->device_id - 0x1040);
        }
        // Transitional devices: the subsystem id is the virtio device type (4.1.2.1).
        return virtio_type_name(d->subsystem_id);
    }
    static const struct { uint16_t vendor, device; const char *name; } known[] = {
        { 0x8086, 0x100e, "e1000" },
        { 0x8086, 0x10d3, "e1000e" },
        { 0x8086, 0x1237, "i440fx host bridge" },
        { 0x8086, 0x7000, "piix3 isa bridge" },
        { 0x8086, 0x7010, "piix3 ide" },
        { 0x8086, 0x7113, "piix4 acpi" },
        { 0x8086, 0x29c0, "q35 host bridge" },
        { 0x8086, 0x2918, "ich9 lpc bridge" },
        { 0x8086, 0x2922, "ich9 ahci" },
        { 0x8086, 0x2930, "ich9 smbus" },
        { 0x1234, 0x1111, "vga" },
        { 0x1b36, 0x0001, "pci bridge" },
        { 0x1b36, 0x000c, "pcie root port" },
        { 0x1b36, 0x000d, "xhci" },
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (known[i].vendor == d->vendor_id && known[i].device == d->device_id) {
            return known[i].name;
        }
    }
    // Base classes (PCI Code and ID Assignment 1.11, chapter 1).
    static const char *const classes[] = {
        "unclassified", "storage", "network", "display", "multimedia", "memory", "bridge",
        "communication", "system", "input", "docking", "processor", "serial bus", "wireless",
        "intelligent i/o", "satellite", "crypto", "signal processing",
    };
    unsigned base = d->class_code >> 16;
    return base < sizeof(classes) / sizeof(classes[0]) ? classes[base] : "device";
}

// --- enumeration ----------------------------------------------------------------------------

static uint8_t buses_seen[256 / 8];

static void scan_bus(unsigned bus, int depth);

static void add_function(unsigned bus, unsigned dev, unsigned fn, int depth) {
    if (pci_device_count >= PCI_MAX_DEVICES) {
        devices_dropped++;
        return;
    }
    struct pci_device *d = &pci_devices[pci_device_count++];
    *d = (struct pci_device){ .bus = bus, .device = dev, .function = fn };
    if (access == ACCESS_ECAM) {
        d->ecam = ecam_address(bus, dev, fn);
    }
    uint32_t id = pci_read32(d, PCI_VENDOR_ID);
    d->vendor_id = id & 0xffff;
    d->device_id = id >> 16;
    uint32_t class_rev = pci_read32(d, PCI_REVISION_ID);
    d->revision = class_rev & 0xff;
    d->class_code = class_rev >> 8;
    uint8_t header = pci_read8(d, PCI_HEADER_TYPE);
    d->header_type = header & PCI_HEADER_TYPE_MASK;
    d->multi_function = (header & PCI_HEADER_MULTI_FUNCTION) != 0;
    d->irq_line = pci_read8(d, PCI_INTERRUPT_LINE);
    d->irq_pin = pci_read8(d, PCI_INTERRUPT_PIN);
    if (d->header_type == PCI_HEADER_TYPE_NORMAL) {
        d->subsystem_vendor_id = pci_read16(d, PCI_SUBSYSTEM_VENDOR_ID);
        d->subsystem_id = pci_read16(d, PCI_SUBSYSTEM_ID);
    } else if (d->header_type == PCI_HEADER_TYPE_BRIDGE) {
        d->secondary_bus = pci_read8(d, PCI_SECONDARY_BUS);
        d->subordinate_bus = pci_read8(d, PCI_SUBORDINATE_BUS);
    }
    size_bars(d);
    walk_capabilities(d);

    kprintf("pci: %02x:%02x.%x %04x:%04x class %06x %s\n", bus, dev, fn, d->vendor_id,
        d->device_id, d->class_code, pci_device_name(d));

    // A bridge's secondary bus as firmware numbered it (PCI-to-PCI Bridge 1.2, 3.2.5.4);
    // 0 means firmware left it unconfigured, and a bus seen before means a loop.
    if (d->header_type == PCI_HEADER_TYPE_BRIDGE && d->secondary_bus > bus) {
        scan_bus(d->secondary_bus, depth + 1);
    }
}

static void scan_bus(unsigned bus, int depth) {
    if (depth > 32 || (buses_seen[bus / 8] & (1u << (bus % 8)))) {
        return;
    }
    buses_seen[bus / 8] |= 1u << (bus % 8);
    for (unsigned dev = 0; dev < 32; dev++) {
        if (vendor_absent(raw_read(bus, dev, 0, PCI_VENDOR_ID, 2))) {
            continue;
        }
        // Functions 1-7 exist only when function 0 says multi-function (PCI 3.0, 6.2.1).
        bool multi = raw_read(bus, dev, 0, PCI_HEADER_TYPE, 1) & PCI_HEADER_MULTI_FUNCTION;
        for (unsigned fn = 0; fn < (multi ? 8u : 1u); fn++) {
            if (fn > 0 && vendor_absent(raw_read(bus, dev, fn, PCI_VENDOR_ID, 2))) {
                continue;
            }
            add_function(bus, dev, fn, depth);
        }
    }
}

void pci_init(void) {
    pci_device_count = 0;
    devices_dropped = 0;
    for (size_t i = 0; i < sizeof(buses_seen); i++) {
        buses_seen[i] = 0;
    }
    choose_access();
    if (access == ACCESS_NONE) {
        kprintf("pci: no MCFG and no configuration mechanism #1: no PCI\n");
        return;
    }
    scan_bus(0, 0);
    if (devices_dropped) {
        kprintf("pci: %d functions not recorded (table holds %d)\n", devices_dropped, PCI_MAX_DEVICES);
    }
}

// --- lookup and helpers ---------------------------------------------------------------------

struct pci_device *pci_find(uint16_t vendor_id, uint16_t device_id, int index) {
    for (int i = 0; i < pci_device_count; i++) {
        struct pci_device *d = &pci_devices[i];
        if (d->vendor_id == vendor_id && (device_id == 0xffff || d->device_id == device_id)) {
            if (index-- == 0) {
                return d;
            }
        }
    }
    return NULL;
}

void pci_enable(const struct pci_device *dev, uint16_t command_bits) {
    uint16_t command = pci_read16(dev, PCI_COMMAND);
    if ((command & command_bits) != command_bits) {
        pci_write16(dev, PCI_COMMAND, command | command_bits);
    }
}

volatile void *pci_map_bar(const struct pci_device *dev, int bar) {
    if (bar < 0 || bar >= PCI_BAR_COUNT) {
        return NULL;
    }
    const struct pci_bar *b = &dev->bars[bar];
    if ((b->kind != PCI_BAR_MEM32 && b->kind != PCI_BAR_MEM64) || b->address == 0) {
        return NULL;
    }
    // Below 4 GiB everything that is not RAM is already identity mapped uncached (paging.c);
    // above, map it, rounded out to 2 MiB so that large pages do it.
    uint64_t end = b->address + b->size;
    if (end <= 0x100000000ull && paging_is_mapped(b->address) && paging_is_mapped(end - 1)) {
        return (volatile void *)(uintptr_t)b->address;
    }
    const uint64_t large = PAGING_LARGE_PAGE_SIZE;
    uint64_t start = b->address & ~(large - 1);
    end = (end + large - 1) & ~(large - 1);
    paging_map_mmio(start, end - start);
    return (volatile void *)(uintptr_t)b->address;
}
