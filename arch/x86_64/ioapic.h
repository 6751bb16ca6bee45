// The I/O APIC, the chipset's interrupt router (Intel 82093AA): each of its input pins
// (global system interrupts) has a redirection entry that turns a device's interrupt line
// into a message with a vector for a local APIC. Legacy ISA IRQs and PCI INTx arrive here.
#ifndef ARCH_X86_64_IOAPIC_H
#define ARCH_X86_64_IOAPIC_H

#include <stdbool.h>
#include <stdint.h>

// Map every I/O APIC from acpi_info (or the default one at 0xFEC00000) and mask all pins.
void ioapic_init(void);
int ioapic_count(void);
// Program the redirection entry for `gsi`: vector, fixed delivery, physical destination
// `apic_id`, trigger and polarity; the pin stays masked when `masked`. Returns 0, or -1 when
// no I/O APIC handles `gsi`.
int ioapic_route(uint32_t gsi, uint8_t vector, uint32_t apic_id, bool level, bool active_low,
                 bool masked);
// Pins and version of the index-th I/O APIC that answered (0 when there is none).
uint32_t ioapic_pins(int index);
uint8_t ioapic_version(int index);
void ioapic_mask(uint32_t gsi);
void ioapic_unmask(uint32_t gsi);

#endif
