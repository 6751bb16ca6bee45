// The local APIC, each CPU's own interrupt controller: it accepts interrupts from the I/O
// APIC and from MSI-capable devices, delivers them to the core by vector, and owns the
// per-CPU timer. Every CPU has one; the boot CPU sets the mode up (lapic_init) and each
// application processor enables its own (lapic_init_ap). Inter-processor interrupts (INIT,
// STARTUP, NMI, fixed) are sent through the interrupt command register (10.6).
//
// Intel SDM Vol. 3A chapter 10 (in recent editions chapter 11) "Advanced Programmable
// Interrupt Controller (APIC)": register map Table 10-1, x2APIC MSRs Table 10-6, LVT 10.5.1,
// spurious interrupt vector register 10.9, MSI format 10.11.
#include "arch/x86_64/lapic.h"

#include <stddef.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupts.h"
#include "arch/x86_64/paging.h"

// Register offsets in the xAPIC MMIO page (Table 10-1); the x2APIC MSR for register `r` is
// 0x800 + r / 16 (Table 10-6).
enum lapic_register {
    LAPIC_ID = 0x020,
    LAPIC_VERSION = 0x030,
    LAPIC_TPR = 0x080,
    LAPIC_EOI = 0x0b0,
    LAPIC_SVR = 0x0f0,
    LAPIC_ESR = 0x280,
    LAPIC_ICR_LOW = 0x300,      // interrupt command register (10.6.1, Figure 10-12)
    LAPIC_ICR_HIGH = 0x310,     // xAPIC: destination in bits 24-31
    LAPIC_LVT_TIMER = 0x320,
    LAPIC_LVT_THERMAL = 0x330,
    LAPIC_LVT_PERFORMANCE = 0x340,
    LAPIC_LVT_LINT0 = 0x350,
    LAPIC_LVT_LINT1 = 0x360,
    LAPIC_LVT_ERROR = 0x370,
    LAPIC_TIMER_INITIAL_COUNT = 0x380,
    LAPIC_TIMER_CURRENT_COUNT = 0x390,
    LAPIC_TIMER_DIVIDE = 0x3e0,
};

enum lapic_bits {
    APIC_BASE_X2APIC_ENABLE = 1u << 10,   // IA32_APIC_BASE.EXTD (10.12.1, Table 10-5)
    APIC_BASE_GLOBAL_ENABLE = 1u << 11,   // IA32_APIC_BASE.EN
    X2APIC_MSR_BASE = 0x800,
    SVR_SOFTWARE_ENABLE = 1u << 8,        // 10.9, Figure 10-23
    LVT_MASKED = 1u << 16,                // 10.5.1, Figure 10-8
    LVT_LEVEL = 1u << 15,
    LVT_ACTIVE_LOW = 1u << 13,
    LVT_DELIVERY_NMI = 4u << 8,
    LVT_DELIVERY_EXTINT = 7u << 8,
    LVT_TIMER_MODE_SHIFT = 17,
    CPUID_1_ECX_X2APIC = 1u << 21,
    CPUID_1_EDX_APIC = 1u << 9,
    // MSI address (10.11.1, Figure 10-24) and data (10.11.2, Figure 10-25).
    MSI_ADDRESS_BASE = 0xfee00000u,
    MSI_DESTINATION_SHIFT = 12,
    MSI_DATA_DELIVERY_FIXED = 0u << 8,
    MSI_DATA_EDGE = 0u << 15,
    // Interrupt command register (10.6.1, Figure 10-12).
    ICR_DELIVERY_PENDING = 1u << 12,     // xAPIC only: the previous IPI is still being sent
    ICR_LEVEL_ASSERT = 1u << 14,
    ICR_DESTINATION_SHIFT_XAPIC = 24,
    X2APIC_ICR_MSR = 0x830,              // x2APIC: one 64-bit MSR, destination in 32-63
};

static bool x2apic;
static volatile uint32_t *mmio;
static uint64_t spurious_count;

static uint32_t lapic_read(enum lapic_register reg) {
    if (x2apic) {
        return rdmsr(X2APIC_MSR_BASE + reg / 16);
    }
    return mmio[reg / 4];
}

static void lapic_write(enum lapic_register reg, uint32_t value) {
    if (x2apic) {
        wrmsr(X2APIC_MSR_BASE + reg / 16, value);
        return;
    }
    mmio[reg / 4] = value;
}

// The spurious vector needs no EOI (10.9): just count it.
static void spurious_interrupt(struct interrupt_frame *frame, void *context) {
    (void)frame;
    (void)context;
    __atomic_fetch_add(&spurious_count, 1, __ATOMIC_RELAXED);   // any CPU
}

static void lapic_enable_local(void);

static uint32_t lint_flags(uint16_t inti_flags) {
    uint32_t bits = 0;
    if ((inti_flags & ACPI_INTI_POLARITY_MASK) == ACPI_INTI_POLARITY_ACTIVE_LOW) {
        bits |= LVT_ACTIVE_LOW;
    }
    return bits;   // NMI delivery is always edge-sensitive (10.5.1)
}

void lapic_init(void) {
    if (!(cpuid(1, 0).edx & CPUID_1_EDX_APIC)) {
        return;
    }
    uint64_t base = rdmsr(MSR_IA32_APIC_BASE);
    // xAPIC first (the only legal way into x2APIC mode, 10.12.5 Figure 10-27), then EXTD.
    base |= APIC_BASE_GLOBAL_ENABLE;
    wrmsr(MSR_IA32_APIC_BASE, base);
    if (cpuid(1, 0).ecx & CPUID_1_ECX_X2APIC) {
        wrmsr(MSR_IA32_APIC_BASE, base | APIC_BASE_X2APIC_ENABLE);
        x2apic = true;
    } else {
        uint64_t phys = acpi_info.lapic_address ? acpi_info.lapic_address
                                                : (base & 0xffffff000ull);
        mmio = paging_map_mmio(phys, PAGING_PAGE_SIZE);
    }
    interrupt_register(LAPIC_SPURIOUS_VECTOR, spurious_interrupt, NULL);

    // Everything masked but NMI on the LINT pin the MADT names; the 8259's ExtINT path
    // (LINT0 virtual wire) is closed because the I/O APIC delivers the legacy IRQs.
    lapic_enable_local();
}

// Application processors: the mode (xAPIC or x2APIC) and the MMIO mapping are the boot
// CPU's; each CPU switches its own APIC on (IA32_APIC_BASE is per CPU) and programs its own
// local vector table.
void lapic_init_ap(void) {
    if (!lapic_enabled()) {
        return;
    }
    uint64_t base = rdmsr(MSR_IA32_APIC_BASE) | APIC_BASE_GLOBAL_ENABLE;
    wrmsr(MSR_IA32_APIC_BASE, base);
    if (x2apic) {
        wrmsr(MSR_IA32_APIC_BASE, base | APIC_BASE_X2APIC_ENABLE);
    }
    lapic_enable_local();
}

// Everything masked but NMI on the LINT pin the MADT names; the spurious vector set.
static void lapic_enable_local(void) {
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED);
    lapic_write(LAPIC_LVT_THERMAL, LVT_MASKED);
    lapic_write(LAPIC_LVT_PERFORMANCE, LVT_MASKED);
    lapic_write(LAPIC_LVT_ERROR, LVT_MASKED);
    uint32_t nmi = LVT_DELIVERY_NMI | lint_flags(acpi_info.lapic_nmi_flags);
    lapic_write(LAPIC_LVT_LINT0, acpi_info.lapic_nmi_lint == 0 ? nmi : LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, acpi_info.lapic_nmi_lint == 1 ? nmi : LVT_MASKED);
    lapic_write(LAPIC_ESR, 0);   // back-to-back writes clear the error status (10.5.3)
    lapic_write(LAPIC_ESR, 0);
    lapic_write(LAPIC_TPR, 0);   // accept every priority class
    lapic_write(LAPIC_SVR, SVR_SOFTWARE_ENABLE | LAPIC_SPURIOUS_VECTOR);
    lapic_eoi();                 // in case anything was left in service
}

void lapic_route_extint(void) {
    if (x2apic || mmio) {
        lapic_write(LAPIC_LVT_LINT0, LVT_DELIVERY_EXTINT);
    }
}

bool lapic_x2apic(void) {
    return x2apic;
}

bool lapic_enabled(void) {
    return x2apic || mmio != NULL;
}

uint32_t lapic_id(void) {
    if (x2apic) {
        return lapic_read(LAPIC_ID);
    }
    if (mmio) {
        return lapic_read(LAPIC_ID) >> 24;
    }
    return cpuid(1, 0).ebx >> 24;   // initial APIC id
}

void lapic_eoi(void) {
    lapic_write(LAPIC_EOI, 0);
}

uint64_t lapic_spurious_count(void) {
    return spurious_count;
}

uint64_t lapic_msi_address(uint32_t apic_id) {
    // Physical destination mode (DM=0), no redirection hint; 8-bit destination id.
    return MSI_ADDRESS_BASE | ((apic_id & 0xff) << MSI_DESTINATION_SHIFT);
}

uint32_t lapic_msi_data(uint8_t vector) {
    return MSI_DATA_EDGE | MSI_DATA_DELIVERY_FIXED | vector;
}

// Divide configuration register encoding (10.5.4, Figure 10-10): bits 0, 1 and 3.
static uint32_t divide_bits(unsigned divide) {
    switch (divide) {
        case 1: return 0xb;
        case 2: return 0x0;
        case 4: return 0x1;
        case 8: return 0x2;
        case 16: return 0x3;
        case 32: return 0x8;
        case 64: return 0x9;
        default: return 0xa;   // 128
    }
}

void lapic_timer_setup(uint8_t vector, enum lapic_timer_mode mode, unsigned divide) {
    lapic_write(LAPIC_TIMER_INITIAL_COUNT, 0);
    lapic_write(LAPIC_TIMER_DIVIDE, divide_bits(divide));
    lapic_write(LAPIC_LVT_TIMER, vector | ((uint32_t)mode << LVT_TIMER_MODE_SHIFT));
    // A WRMSR to IA32_TSC_DEADLINE after switching to TSC-deadline mode must be ordered
    // after the LVT write (10.5.4.1): serialise with MFENCE in the x2APIC case.
    __asm__ volatile ("mfence" : : : "memory");
}

void lapic_timer_set_initial_count(uint32_t count) {
    lapic_write(LAPIC_TIMER_INITIAL_COUNT, count);
}

uint32_t lapic_timer_current_count(void) {
    return lapic_read(LAPIC_TIMER_CURRENT_COUNT);
}

uint32_t lapic_version(void) {
    return lapic_enabled() ? lapic_read(LAPIC_VERSION) : 0;
}

void lapic_send_ipi(uint32_t apic_id, uint32_t command) {
    if (x2apic) {
        // One WRMSR sends it; x2APIC has no delivery-status bit to wait for (10.12.9).
        __asm__ volatile ("mfence" : : : "memory");
        wrmsr(X2APIC_ICR_MSR, ((uint64_t)apic_id << 32) | command);
        return;
    }
    if (mmio == NULL) {
        return;
    }
    // Two writes make one IPI (SDM Vol. 3A 10.6.1): an interrupt handler that sends one of
    // its own in between (virtio-rng waking a reader on another CPU) would overwrite the
    // destination, and this IPI would go to that handler's CPU instead. Interrupts stay off
    // until the low word is written.
    uint64_t flags = read_rflags();
    cli();
    lapic_write(LAPIC_ICR_HIGH, apic_id << ICR_DESTINATION_SHIFT_XAPIC);
    lapic_write(LAPIC_ICR_LOW, command);   // writing the low word sends the IPI
    if (flags & RFLAGS_IF) {
        sti();
    }
    for (int spins = 0; spins < 1000000 && (lapic_read(LAPIC_ICR_LOW) & ICR_DELIVERY_PENDING); spins++) {
        cpu_relax();
    }
}
