// MSI-X, MSI and INTx for PCI devices: programs the message address/data that make a device
// write straight to a local APIC, or routes its interrupt pin through the I/O APIC. See msix.h.
#include "drivers/pci/msix.h"

#include <stddef.h>

#include "arch/x86_64/irq.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/smp.h"

// MSI-X capability layout (PCI 3.0, 6.8.2, Figure 6-10) and Message Control (6.8.2.3).
enum {
    MSIX_CONTROL = 0x02,
    MSIX_TABLE = 0x04,              // table offset | BIR
    MSIX_PBA = 0x08,                // pending bit array offset | BIR
    MSIX_CONTROL_SIZE_MASK = 0x07ff, // table size - 1
    MSIX_CONTROL_FUNCTION_MASK = 1u << 14,
    MSIX_CONTROL_ENABLE = 1u << 15,
    MSIX_BIR_MASK = 0x7,
};

// One 16-byte table entry (6.8.2.6-6.8.2.9), as 32-bit words; bit 0 of vector control masks.
enum {
    MSIX_ENTRY_ADDRESS_LOW = 0,
    MSIX_ENTRY_ADDRESS_HIGH = 1,
    MSIX_ENTRY_DATA = 2,
    MSIX_ENTRY_VECTOR_CONTROL = 3,
    MSIX_ENTRY_WORDS = 4,
    MSIX_VECTOR_MASKED = 1u << 0,
};

// MSI capability (6.8.1, Figures 6-9; Message Control 6.8.1.3).
enum {
    MSI_CONTROL = 0x02,
    MSI_ADDRESS_LOW = 0x04,
    MSI_ADDRESS_HIGH = 0x08,        // 64-bit capable only
    MSI_DATA_32 = 0x08,
    MSI_DATA_64 = 0x0c,
    MSI_CONTROL_ENABLE = 1u << 0,
    MSI_CONTROL_MME_MASK = 0x7u << 4,   // multiple message enable: 0 = one message
    MSI_CONTROL_64BIT = 1u << 7,
};

int msix_table_size(const struct pci_device *dev) {
    uint8_t cap = pci_find_capability(dev, PCI_CAP_MSIX, 0);
    if (cap == 0) {
        return 0;
    }
    return (pci_read16(dev, cap + MSIX_CONTROL) & MSIX_CONTROL_SIZE_MASK) + 1;
}

static volatile void *region_address(struct pci_device *dev, uint32_t offset_bir) {
    volatile uint8_t *base = pci_map_bar(dev, offset_bir & MSIX_BIR_MASK);
    if (base == NULL) {
        return NULL;
    }
    return base + (offset_bir & ~(uint32_t)MSIX_BIR_MASK);
}

static volatile uint32_t *entry_words(const struct pci_device *dev, unsigned entry) {
    if (dev->msix_table == NULL || entry >= dev->msix_size) {
        return NULL;
    }
    return dev->msix_table + entry * MSIX_ENTRY_WORDS;
}

int msix_enable(struct pci_device *dev) {
    uint8_t cap = pci_find_capability(dev, PCI_CAP_MSIX, 0);
    if (cap == 0) {
        return -1;
    }
    if (dev->msix_table != NULL) {
        return dev->msix_size;
    }
    uint16_t control = pci_read16(dev, cap + MSIX_CONTROL);
    volatile uint32_t *table = region_address(dev, pci_read32(dev, cap + MSIX_TABLE));
    volatile uint64_t *pba = region_address(dev, pci_read32(dev, cap + MSIX_PBA));
    if (table == NULL || pba == NULL) {
        return -1;
    }
    pci_enable(dev, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    // Function mask on while switching (6.8.2.3), so that no entry fires half-programmed.
    pci_write16(dev, cap + MSIX_CONTROL, control | MSIX_CONTROL_FUNCTION_MASK);
    dev->msix_size = (control & MSIX_CONTROL_SIZE_MASK) + 1;
    dev->msix_table = table;
    dev->msix_pba = pba;
    for (unsigned i = 0; i < dev->msix_size; i++) {
        table[i * MSIX_ENTRY_WORDS + MSIX_ENTRY_VECTOR_CONTROL] |= MSIX_VECTOR_MASKED;
    }
    // With MSI-X enabled the device no longer uses INTx (6.8.2.3), but say so explicitly.
    pci_enable(dev, PCI_COMMAND_INTX_DISABLE);
    pci_write16(dev, cap + MSIX_CONTROL,
        (control | MSIX_CONTROL_ENABLE) & ~MSIX_CONTROL_FUNCTION_MASK);
    dev->irq_mode = PCI_IRQ_MSIX;
    return dev->msix_size;
}

void msix_disable(struct pci_device *dev) {
    uint8_t cap = pci_find_capability(dev, PCI_CAP_MSIX, 0);
    if (cap == 0) {
        return;
    }
    uint16_t control = pci_read16(dev, cap + MSIX_CONTROL);
    pci_write16(dev, cap + MSIX_CONTROL, control & ~MSIX_CONTROL_ENABLE);
    if (dev->irq_mode == PCI_IRQ_MSIX) {
        dev->irq_mode = PCI_IRQ_NONE;
    }
}

int msix_program(struct pci_device *dev, unsigned entry, uint8_t vector, uint32_t apic_id) {
    volatile uint32_t *e = entry_words(dev, entry);
    if (e == NULL) {
        return -1;
    }
    // Mask while the address and data change (6.8.2.9), then restore the mask bit.
    uint64_t address = lapic_msi_address(apic_id);
    uint64_t flags = smp_lock_irqsave(&dev->msix_lock);
    uint32_t control = e[MSIX_ENTRY_VECTOR_CONTROL];
    e[MSIX_ENTRY_VECTOR_CONTROL] = control | MSIX_VECTOR_MASKED;
    e[MSIX_ENTRY_ADDRESS_LOW] = (uint32_t)address;
    e[MSIX_ENTRY_ADDRESS_HIGH] = (uint32_t)(address >> 32);
    e[MSIX_ENTRY_DATA] = lapic_msi_data(vector);
    e[MSIX_ENTRY_VECTOR_CONTROL] = control;
    smp_unlock_irqrestore(&dev->msix_lock, flags);
    return 0;
}

static void set_mask_bit(struct pci_device *dev, unsigned entry, bool masked) {
    volatile uint32_t *e = entry_words(dev, entry);
    if (e == NULL) {
        return;
    }
    uint64_t flags = smp_lock_irqsave(&dev->msix_lock);
    uint32_t control = e[MSIX_ENTRY_VECTOR_CONTROL];
    e[MSIX_ENTRY_VECTOR_CONTROL] = masked ? control | MSIX_VECTOR_MASKED
                                          : control & ~MSIX_VECTOR_MASKED;
    smp_unlock_irqrestore(&dev->msix_lock, flags);
}

void msix_mask(struct pci_device *dev, unsigned entry) {
    set_mask_bit(dev, entry, true);
}

void msix_unmask(struct pci_device *dev, unsigned entry) {
    set_mask_bit(dev, entry, false);
}

bool msix_is_masked(const struct pci_device *dev, unsigned entry) {
    volatile uint32_t *e = entry_words(dev, entry);
    return e == NULL || (e[MSIX_ENTRY_VECTOR_CONTROL] & MSIX_VECTOR_MASKED);
}

bool msix_pending(const struct pci_device *dev, unsigned entry) {
    if (dev->msix_pba == NULL || entry >= dev->msix_size) {
        return false;
    }
    // The PBA is an array of QWORDs, one bit per entry (6.8.2.10).
    return (dev->msix_pba[entry / 64] >> (entry % 64)) & 1;
}

int msi_enable(struct pci_device *dev, uint8_t vector, uint32_t apic_id) {
    uint8_t cap = pci_find_capability(dev, PCI_CAP_MSI, 0);
    if (cap == 0) {
        return -1;
    }
    uint16_t control = pci_read16(dev, cap + MSI_CONTROL);
    uint64_t address = lapic_msi_address(apic_id);
    pci_write32(dev, cap + MSI_ADDRESS_LOW, (uint32_t)address);
    if (control & MSI_CONTROL_64BIT) {
        pci_write32(dev, cap + MSI_ADDRESS_HIGH, (uint32_t)(address >> 32));
        pci_write16(dev, cap + MSI_DATA_64, lapic_msi_data(vector));
    } else {
        pci_write16(dev, cap + MSI_DATA_32, lapic_msi_data(vector));
    }
    pci_enable(dev, PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
    pci_write16(dev, cap + MSI_CONTROL, (control & ~MSI_CONTROL_MME_MASK) | MSI_CONTROL_ENABLE);
    dev->irq_mode = PCI_IRQ_MSI;
    return 0;
}

void msi_disable(struct pci_device *dev) {
    uint8_t cap = pci_find_capability(dev, PCI_CAP_MSI, 0);
    if (cap != 0) {
        uint16_t control = pci_read16(dev, cap + MSI_CONTROL);
        pci_write16(dev, cap + MSI_CONTROL, control & ~MSI_CONTROL_ENABLE);
    }
    if (dev->irq_mode == PCI_IRQ_MSI) {
        dev->irq_mode = PCI_IRQ_NONE;
    }
}

// INTx: firmware (SeaBIOS) wrote the legacy IRQ the pin is routed to into the interrupt line
// register (PCI 3.0, 6.2.4); 0xff or 0 with no pin means unrouted. QEMU's DSDT declares
// these PCI link interrupts level triggered, active high (PIIX LNKx, ICH9 GSIx), so the
// I/O APIC pin is programmed that way.
static int attach_intx(struct pci_device *dev, void (*handler)(void *), void *context,
                       const char *name) {
    if (dev->irq_pin == 0 || dev->irq_line == 0xff || dev->irq_line >= 16) {
        return -1;
    }
    int vector = irq_route_gsi(irq_legacy_gsi(dev->irq_line), true, false, handler, context, name);
    if (vector < 0) {
        return -1;
    }
    uint16_t command = pci_read16(dev, PCI_COMMAND);
    pci_write16(dev, PCI_COMMAND, command & ~PCI_COMMAND_INTX_DISABLE);
    pci_enable(dev, PCI_COMMAND_MASTER);
    dev->irq_mode = PCI_IRQ_INTX;
    return vector;
}

int pci_irq_attach(struct pci_device *dev, unsigned entry, void (*handler)(void *context),
                   void *context, const char *name) {
    if (dev->irq_mode == PCI_IRQ_NONE) {
        if (msix_enable(dev) < 0) {
            dev->irq_mode = pci_find_capability(dev, PCI_CAP_MSI, 0) ? PCI_IRQ_MSI : PCI_IRQ_INTX;
        }
    }
    if (dev->irq_mode == PCI_IRQ_INTX) {
        return entry == 0 ? attach_intx(dev, handler, context, name) : -1;
    }
    if (dev->irq_mode == PCI_IRQ_MSIX && entry >= dev->msix_size) {
        return -1;
    }
    if (dev->irq_mode == PCI_IRQ_MSI && entry != 0) {
        return -1;
    }
    int vector = irq_alloc_vector();
    if (vector < 0) {
        return -1;
    }
    if (irq_install(vector, handler, context, name) < 0) {
        irq_free_vector(vector);
        return -1;
    }
    if (dev->irq_mode == PCI_IRQ_MSIX) {
        msix_program(dev, entry, vector, lapic_id());
        msix_unmask(dev, entry);
    } else {
        msi_enable(dev, vector, lapic_id());
    }
    return vector;
}

const char *pci_irq_mode_name(const struct pci_device *dev) {
    switch (dev->irq_mode) {
        case PCI_IRQ_MSIX: return "msix";
        case PCI_IRQ_MSI: return "msi";
        case PCI_IRQ_INTX: return "intx";
        default: return "none";
    }
}
