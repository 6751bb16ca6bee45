// Message-signalled interrupts for PCI devices: with MSI-X (PCI 3.0, 6.8.2) a device has a
// table in one of its BARs with an address/data pair and a mask bit per interrupt source, so
// each queue can raise its own CPU vector; MSI (6.8.1) gives one vector from configuration
// space, and INTx is the shared, level-triggered pin routed through the I/O APIC.
// pci_irq_attach picks the best of the three for a device and wires a handler to it.
#ifndef DRIVERS_PCI_MSIX_H
#define DRIVERS_PCI_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/pci/pci.h"

enum pci_irq_mode {
    PCI_IRQ_NONE = 0,   // nothing attached yet
    PCI_IRQ_MSIX,
    PCI_IRQ_MSI,
    PCI_IRQ_INTX,
};

// --- MSI-X, entry by entry -----------------------------------------------------------------

// Number of MSI-X table entries the device has, 0 without the capability.
int msix_table_size(const struct pci_device *dev);

// Map the table and pending-bit array, mask every entry, then set MSI-X Enable (with the
// function mask held during the switch, 6.8.2.3). INTx is disabled. Returns the table size,
// or -1 when the device has no MSI-X or its table BAR is unusable.
int msix_enable(struct pci_device *dev);
void msix_disable(struct pci_device *dev);

// Point table entry `entry` at `vector` on the local APIC `apic_id` (lapic_msi_address/data).
// The entry's mask bit is left as it was. Returns 0, or -1 for a bad entry.
int msix_program(struct pci_device *dev, unsigned entry, uint8_t vector, uint32_t apic_id);
void msix_mask(struct pci_device *dev, unsigned entry);
void msix_unmask(struct pci_device *dev, unsigned entry);
bool msix_is_masked(const struct pci_device *dev, unsigned entry);
// The entry's bit in the Pending Bit Array: an interrupt arrived while it was masked.
bool msix_pending(const struct pci_device *dev, unsigned entry);

// --- MSI -----------------------------------------------------------------------------------

// Program the MSI capability with one message (`vector` on `apic_id`) and enable it; INTx is
// disabled. Returns 0, or -1 without the capability.
int msi_enable(struct pci_device *dev, uint8_t vector, uint32_t apic_id);
void msi_disable(struct pci_device *dev);

// --- choosing and wiring -------------------------------------------------------------------

// Give interrupt source `entry` of `dev` a fresh CPU vector running handler(context) (with
// interrupts off; dispatch sends the EOI). The first call picks the device's mode: MSI-X when
// the device has it, else MSI, else INTx through the I/O APIC (the interrupt line register
// firmware programmed, level triggered). MSI and INTx carry one source only: entry must be 0.
// The MSI-X entry is unmasked. Returns the CPU vector, or -1.
int pci_irq_attach(struct pci_device *dev, unsigned entry, void (*handler)(void *context),
                   void *context, const char *name);

// "msix", "msi", "intx" or "none".
const char *pci_irq_mode_name(const struct pci_device *dev);

#endif
