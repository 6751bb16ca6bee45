// The local APIC, each CPU's own interrupt controller: it accepts interrupts from the I/O
// APIC and from MSI-capable devices, delivers them to the core by vector, and owns the
// per-CPU timer. Used in x2APIC mode (MSRs) when the CPU offers it, else xAPIC (MMIO).
#ifndef ARCH_X86_64_LAPIC_H
#define ARCH_X86_64_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

enum {
    LAPIC_SPURIOUS_VECTOR = 0xff,
};

// Enable the local APIC of the boot CPU (after acpi_init): x2APIC when CPUID.01H:ECX[21],
// spurious vector 0xFF, software enable, TPR 0, LINT0/LINT1 per the MADT (LINT1 NMI).
void lapic_init(void);
// An application processor's own local APIC, in the mode the boot CPU chose.
void lapic_init_ap(void);
// Interrupt command register (Intel SDM Vol. 3A 10.6.1, Figure 10-12): delivery modes and
// flags for lapic_send_ipi's `command` (the vector, if any, in bits 0-7).
enum lapic_ipi {
    LAPIC_IPI_FIXED = 0u << 8,
    LAPIC_IPI_NMI = 4u << 8,
    LAPIC_IPI_INIT = 5u << 8,
    LAPIC_IPI_STARTUP = 6u << 8,
    LAPIC_IPI_ASSERT = 1u << 14,
    LAPIC_IPI_LEVEL = 1u << 15,
    LAPIC_IPI_ALL_BUT_SELF = 3u << 18,   // destination shorthand (the id is ignored)
};
// Send an inter-processor interrupt to the CPU whose local APIC id is `apic_id`.
void lapic_send_ipi(uint32_t apic_id, uint32_t command);
uint32_t lapic_id(void);
void lapic_eoi(void);
bool lapic_x2apic(void);
// False when the CPU has no local APIC (then legacy IRQs stay on the 8259 PIC).
bool lapic_enabled(void);
uint32_t lapic_version(void);
// Open LINT0 as ExtINT (virtual wire, MP Spec 1.4 3.6.2.2): the fallback when no I/O APIC
// answers and the 8259 PIC must deliver legacy IRQs.
void lapic_route_extint(void);
// Count of interrupts that arrived on the spurious vector.
uint64_t lapic_spurious_count(void);

// MSI address/data for a vector on an APIC id (Intel SDM vol. 3A 10.11.1/10.11.2): fixed
// delivery, physical destination, edge trigger.
uint64_t lapic_msi_address(uint32_t apic_id);
uint32_t lapic_msi_data(uint8_t vector);

// LAPIC timer registers (SDM Vol. 3A 10.5.4), for timer.c.
enum lapic_timer_mode {
    LAPIC_TIMER_ONE_SHOT = 0,
    LAPIC_TIMER_PERIODIC = 1,
    LAPIC_TIMER_TSC_DEADLINE = 2,
};
void lapic_timer_setup(uint8_t vector, enum lapic_timer_mode mode, unsigned divide);
void lapic_timer_set_initial_count(uint32_t count);
uint32_t lapic_timer_current_count(void);

#endif
