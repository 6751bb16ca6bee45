// The kernel's interrupt vectors above the CPU exceptions: an allocator for vectors
// 0x30..0xEF, a table of handlers with names and counts, and routing of legacy ISA IRQs and
// GSIs through the I/O APIC. Dispatch sends the local APIC EOI after the handler returns.
#ifndef ARCH_X86_64_IRQ_H
#define ARCH_X86_64_IRQ_H

#include <stdbool.h>
#include <stdint.h>

enum {
    IRQ_VECTOR_FIRST = 0x30,
    IRQ_VECTOR_LAST = 0xef,
};

// After lapic_init and ioapic_init: the PIC is masked, the APIC path is live.
void irq_init(void);

// vectors 0x30..0xEF allocatable; 0xFF spurious; a handler runs with interrupts off and must
// NOT send EOI itself: irq dispatch does the LAPIC EOI after it.
int irq_alloc_vector(void);                       // -1 when exhausted
void irq_free_vector(int vector);                 // also uninstalls its handler
int irq_install(int vector, void (*handler)(void *context), void *context, const char *name);
uint64_t irq_count(int vector);                   // per-vector counts (also interrupt_count[])
const char *irq_name(int vector);                 // NULL when nothing is installed
// Via the I/O APIC, honouring MADT overrides; returns the vector, or -1.
int irq_route_legacy(unsigned isa_irq, void (*handler)(void *context), void *context, const char *name);
int irq_route_gsi(uint32_t gsi, bool level, bool active_low, void (*handler)(void *), void *ctx, const char *name);
// The GSI a legacy ISA IRQ arrives on after MADT overrides, and its vector (-1 if not routed).
uint32_t irq_legacy_gsi(unsigned isa_irq);
// Deliver an already routed legacy IRQ to the CPU with local APIC id `apic_id` from now on
// (I/O APIC only). Returns 0, or -1 when it is not routed through an I/O APIC.
int irq_set_legacy_destination(unsigned isa_irq, uint32_t apic_id);
int irq_legacy_vector(unsigned isa_irq);
// True when the I/O APIC routes legacy IRQs; false in the 8259 fallback (no I/O APIC).
bool irq_apic_routing(void);
// Mask/unmask the I/O APIC pin behind a routed GSI (for flow control).
void irq_mask_gsi(uint32_t gsi);
void irq_unmask_gsi(uint32_t gsi);

#endif
