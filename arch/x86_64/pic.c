// The pair of 8259A programmable interrupt controllers that deliver the PC's 16 legacy ISA
// IRQs. The kernel remaps them above the CPU exception vectors (IRQ n -> vector 0x20 + n) and
// unmasks only the lines a driver asked for.
//
// Command words follow the Intel 8259A datasheet (order no. 231468), "Programming the 8259A".
// The local APIC is touched only to let the 8259's output through (virtual-wire mode).
#include "arch/x86_64/pic.h"

#include <stdint.h>

#include "arch/x86_64/cpu.h"

enum pic_port {
    PIC_MASTER_COMMAND = 0x20,
    PIC_MASTER_DATA    = 0x21,
    PIC_SLAVE_COMMAND  = 0xa0,
    PIC_SLAVE_DATA     = 0xa1,
};

enum pic_command {
    PIC_ICW1_INIT      = 0x10,  // ICW1: start initialization
    PIC_ICW1_ICW4      = 0x01,  // ICW1: ICW4 follows
    PIC_ICW4_8086      = 0x01,  // ICW4: 8086/88 mode
    PIC_OCW2_EOI       = 0x20,  // OCW2: non-specific end of interrupt
    PIC_OCW3_READ_ISR  = 0x0b,  // OCW3: next read of the command port returns the ISR
    PIC_SLAVE_ON_IRQ   = 2,     // the slave cascades into master input 2
};

// Local APIC registers for virtual-wire mode (SDM Vol. 3A 11.4.1 "The Local APIC Block
// Diagram", Table 11-1 "Local APIC Register Address Map"; 11.5.1 "Local Vector Table").
enum lapic_register {
    LAPIC_SPURIOUS_VECTOR = 0x0f0,
    LAPIC_LVT_LINT0 = 0x350,
};

enum lapic_bits {
    APIC_BASE_X2APIC_ENABLE = 1u << 10,   // IA32_APIC_BASE: x2APIC mode (registers are MSRs)
    APIC_BASE_GLOBAL_ENABLE = 1u << 11,   // IA32_APIC_BASE: the local APIC is on
    APIC_BASE_ADDRESS_MASK = 0xfffff000u,
    LAPIC_SOFTWARE_ENABLE = 1u << 8,      // spurious-interrupt vector register
    LAPIC_SPURIOUS_VECTOR_NUMBER = 0xff,
    LAPIC_LVT_MASKED = 1u << 16,
    LAPIC_LVT_DELIVERY_EXTINT = 7u << 8,  // the 8259 supplies the vector
    X2APIC_MSR_BASE = 0x800,              // x2APIC register n lives at MSR 0x800 + n / 16
    CPUID_1_EDX_APIC = 1u << 9,
};

static bool pic_in_use;

static uint32_t lapic_read(uint64_t apic_base, enum lapic_register reg) {
    if (apic_base & APIC_BASE_X2APIC_ENABLE) {
        return rdmsr(X2APIC_MSR_BASE + reg / 16);
    }
    return *(volatile uint32_t *)(uintptr_t)((apic_base & APIC_BASE_ADDRESS_MASK) + reg);
}

static void lapic_write(uint64_t apic_base, enum lapic_register reg, uint32_t value) {
    if (apic_base & APIC_BASE_X2APIC_ENABLE) {
        wrmsr(X2APIC_MSR_BASE + reg / 16, value);
        return;
    }
    *(volatile uint32_t *)(uintptr_t)((apic_base & APIC_BASE_ADDRESS_MASK) + reg) = value;
}

// With a local APIC enabled, the 8259's INTR output only reaches the CPU through LINT0 set to
// ExtINT ("virtual wire" mode, MultiProcessor Specification 1.4, 3.6.2.2). PC BIOSes set that
// up; QEMU microvm's qboot firmware does not, so do it here.
static void lapic_route_pic_through_lint0(void) {
    if (!(cpuid(1, 0).edx & CPUID_1_EDX_APIC)) {
        return;
    }
    uint64_t apic_base = rdmsr(MSR_IA32_APIC_BASE);
    if (!(apic_base & APIC_BASE_GLOBAL_ENABLE)) {
        return;  // APIC off: the 8259 drives the CPU's INTR pin directly
    }
    uint32_t spurious = lapic_read(apic_base, LAPIC_SPURIOUS_VECTOR);
    if (!(spurious & LAPIC_SOFTWARE_ENABLE)) {
        // A software-disabled APIC forces every LVT entry masked (SDM 11.4.7.2).
        lapic_write(apic_base, LAPIC_SPURIOUS_VECTOR,
                    LAPIC_SOFTWARE_ENABLE | LAPIC_SPURIOUS_VECTOR_NUMBER);
    }
    lapic_write(apic_base, LAPIC_LVT_LINT0, LAPIC_LVT_DELIVERY_EXTINT);
}

static uint16_t pic_data_port(unsigned irq) {
    return irq < 8 ? PIC_MASTER_DATA : PIC_SLAVE_DATA;
}

void pic_init(void) {
    outb(PIC_MASTER_COMMAND, PIC_ICW1_INIT | PIC_ICW1_ICW4);
    io_wait();
    outb(PIC_SLAVE_COMMAND, PIC_ICW1_INIT | PIC_ICW1_ICW4);
    io_wait();
    outb(PIC_MASTER_DATA, PIC_VECTOR_BASE);              // ICW2: vector offset
    io_wait();
    outb(PIC_SLAVE_DATA, PIC_VECTOR_BASE + 8);
    io_wait();
    outb(PIC_MASTER_DATA, 1u << PIC_SLAVE_ON_IRQ);       // ICW3: which input has the slave
    io_wait();
    outb(PIC_SLAVE_DATA, PIC_SLAVE_ON_IRQ);              // ICW3: the slave's cascade identity
    io_wait();
    outb(PIC_MASTER_DATA, PIC_ICW4_8086);
    io_wait();
    outb(PIC_SLAVE_DATA, PIC_ICW4_8086);
    io_wait();
    // OCW1: mask every line except the cascade, which slave IRQs need to get through.
    outb(PIC_MASTER_DATA, 0xff & ~(1u << PIC_SLAVE_ON_IRQ));
    outb(PIC_SLAVE_DATA, 0xff);
    lapic_route_pic_through_lint0();
    pic_in_use = true;
}

void pic_disable(void) {
    outb(PIC_MASTER_DATA, 0xff);
    outb(PIC_SLAVE_DATA, 0xff);
    pic_in_use = false;
}

bool pic_active(void) {
    return pic_in_use;
}

void pic_unmask(unsigned irq) {
    if (irq >= PIC_IRQ_COUNT) {
        return;
    }
    uint16_t port = pic_data_port(irq);
    outb(port, inb(port) & ~(1u << (irq & 7)));
}

void pic_mask(unsigned irq) {
    if (irq >= PIC_IRQ_COUNT || irq == PIC_SLAVE_ON_IRQ) {
        return;
    }
    uint16_t port = pic_data_port(irq);
    outb(port, inb(port) | (1u << (irq & 7)));
}

void pic_eoi(unsigned irq) {
    if (irq >= 8) {
        outb(PIC_SLAVE_COMMAND, PIC_OCW2_EOI);
    }
    outb(PIC_MASTER_COMMAND, PIC_OCW2_EOI);
}

static uint8_t pic_in_service(uint16_t command_port) {
    outb(command_port, PIC_OCW3_READ_ISR);
    return inb(command_port);
}

void pic_acknowledge_unhandled(unsigned irq) {
    // A spurious interrupt (the request went away before the INTA cycle) arrives as the
    // lowest-priority line, 7 or 15, without its in-service bit set; it gets no EOI, except
    // that the master did see a real request on the cascade line for a slave spurious one.
    if (irq == 7 && !(pic_in_service(PIC_MASTER_COMMAND) & 0x80)) {
        return;
    }
    if (irq == 15 && !(pic_in_service(PIC_SLAVE_COMMAND) & 0x80)) {
        outb(PIC_MASTER_COMMAND, PIC_OCW2_EOI);
        return;
    }
    pic_eoi(irq);
}
