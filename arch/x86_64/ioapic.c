// The I/O APIC, the chipset's interrupt router (Intel 82093AA): each input pin (a global
// system interrupt, GSI) has a redirection entry that turns a device's interrupt line into a
// message with a vector for a local APIC. Legacy ISA IRQs and PCI INTx arrive here.
//
// Register interface from the Intel 82093AA I/O APIC datasheet (order no. 290566): indirect
// access through IOREGSEL/IOWIN (3.0, Table 1), IOAPICVER (3.2.2), redirection table entries
// (3.2.4). QEMU's model reports version 0x20 and 24 pins.
#include "arch/x86_64/ioapic.h"

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/smp.h"

enum ioapic_mmio {
    IOAPIC_IOREGSEL = 0x00 / 4,
    IOAPIC_IOWIN = 0x10 / 4,
    IOAPIC_MMIO_SIZE = 0x20,
};

enum ioapic_register {
    IOAPIC_ID = 0x00,
    IOAPIC_VERSION = 0x01,          // bits 0-7 version, 16-23 maximum redirection entry
    IOAPIC_REDIRECTION = 0x10,      // entry n: low dword at 0x10 + 2n, high at 0x11 + 2n
};

// Redirection table entry bits (datasheet 3.2.4).
enum ioapic_redirection_bits {
    IOREDTBL_DELIVERY_FIXED = 0u << 8,
    IOREDTBL_DESTINATION_PHYSICAL = 0u << 11,
    IOREDTBL_ACTIVE_LOW = 1u << 13,
    IOREDTBL_LEVEL = 1u << 15,
    IOREDTBL_MASKED = 1u << 16,
    IOREDTBL_DESTINATION_SHIFT = 56 - 32,   // in the high dword
};

// The IMCR (Intel MultiProcessor Specification 1.4, 3.6.2.1): on a board that starts in PIC
// mode, the 8259's output goes to the CPU directly until register 0x70 behind ports 0x22/0x23
// says to send interrupts through the APICs.
enum imcr {
    IMCR_ADDRESS_PORT = 0x22,
    IMCR_DATA_PORT = 0x23,
    IMCR_REGISTER = 0x70,
    IMCR_APIC_MODE = 0x01,
};

struct ioapic {
    volatile uint32_t *mmio;
    uint32_t gsi_base;
    uint32_t pins;
    uint8_t version;
};

static struct ioapic ioapics[ACPI_MAX_IOAPICS];
static int count;
// IOREGSEL then IOWIN is two accesses, and a route or a mask change several: after boot any
// CPU may change an entry (replcpu= moving the console, a NIC queue steered to its app's CPU,
// an interrupt handler masking its line), so each change holds this lock with interrupts off.
static smp_spinlock_t entry_lock;

static uint32_t ioapic_read(const struct ioapic *io, uint32_t reg) {
    io->mmio[IOAPIC_IOREGSEL] = reg;
    return io->mmio[IOAPIC_IOWIN];
}

static void ioapic_write(const struct ioapic *io, uint32_t reg, uint32_t value) {
    io->mmio[IOAPIC_IOREGSEL] = reg;
    io->mmio[IOAPIC_IOWIN] = value;
}

void ioapic_init(void) {
    count = 0;
    if (acpi_info.imcr_present) {
        outb(IMCR_ADDRESS_PORT, IMCR_REGISTER);
        outb(IMCR_DATA_PORT, IMCR_APIC_MODE);
    }
    uint32_t next_gsi = 0;
    for (int i = 0; i < acpi_info.ioapic_count; i++) {
        const struct acpi_ioapic *a = &acpi_info.ioapics[i];
        // The MP table gives no GSI bases: each I/O APIC's pins follow the previous one's, in
        // table order (the numbering Linux gives them too).
        struct ioapic io = { .mmio = paging_map_mmio(a->address, IOAPIC_MMIO_SIZE),
                             .gsi_base = acpi_info.mp_table_address ? next_gsi : a->gsi_base };
        uint32_t version = ioapic_read(&io, IOAPIC_VERSION);
        if (version == 0xffffffffu) {
            kprintf("acpi: no I/O APIC answers at 0x%x, ignored\n", (unsigned)a->address);
            continue;
        }
        io.version = version & 0xff;
        io.pins = ((version >> 16) & 0xff) + 1;
        next_gsi = io.gsi_base + io.pins;
        for (uint32_t pin = 0; pin < io.pins; pin++) {
            ioapic_write(&io, IOAPIC_REDIRECTION + 2 * pin, IOREDTBL_MASKED);
            ioapic_write(&io, IOAPIC_REDIRECTION + 2 * pin + 1, 0);
        }
        ioapics[count++] = io;
    }
}

int ioapic_count(void) {
    return count;
}

static struct ioapic *ioapic_for(uint32_t gsi, uint32_t *pin) {
    for (int i = 0; i < count; i++) {
        if (gsi >= ioapics[i].gsi_base && gsi < ioapics[i].gsi_base + ioapics[i].pins) {
            *pin = gsi - ioapics[i].gsi_base;
            return &ioapics[i];
        }
    }
    return NULL;
}

int ioapic_route(uint32_t gsi, uint8_t vector, uint32_t apic_id, bool level, bool active_low,
                 bool masked) {
    uint32_t pin;
    struct ioapic *io = ioapic_for(gsi, &pin);
    if (!io) {
        return -1;
    }
    uint32_t low = vector | IOREDTBL_DELIVERY_FIXED | IOREDTBL_DESTINATION_PHYSICAL
                   | (level ? IOREDTBL_LEVEL : 0) | (active_low ? IOREDTBL_ACTIVE_LOW : 0)
                   | (masked ? IOREDTBL_MASKED : 0);
    // Masked while the two halves are inconsistent.
    uint64_t flags = smp_lock_irqsave(&entry_lock);
    ioapic_write(io, IOAPIC_REDIRECTION + 2 * pin, IOREDTBL_MASKED);
    ioapic_write(io, IOAPIC_REDIRECTION + 2 * pin + 1, (apic_id & 0xff) << IOREDTBL_DESTINATION_SHIFT);
    ioapic_write(io, IOAPIC_REDIRECTION + 2 * pin, low);
    smp_unlock_irqrestore(&entry_lock, flags);
    return 0;
}

static void set_mask(uint32_t gsi, bool masked) {
    uint32_t pin;
    struct ioapic *io = ioapic_for(gsi, &pin);
    if (!io) {
        return;
    }
    uint64_t flags = smp_lock_irqsave(&entry_lock);
    uint32_t low = ioapic_read(io, IOAPIC_REDIRECTION + 2 * pin);
    low = masked ? (low | IOREDTBL_MASKED) : (low & ~IOREDTBL_MASKED);
    ioapic_write(io, IOAPIC_REDIRECTION + 2 * pin, low);
    smp_unlock_irqrestore(&entry_lock, flags);
}

void ioapic_mask(uint32_t gsi) {
    set_mask(gsi, true);
}

void ioapic_unmask(uint32_t gsi) {
    set_mask(gsi, false);
}

uint32_t ioapic_pins(int index) {
    return index >= 0 && index < count ? ioapics[index].pins : 0;
}

uint8_t ioapic_version(int index) {
    return index >= 0 && index < count ? ioapics[index].version : 0;
}
