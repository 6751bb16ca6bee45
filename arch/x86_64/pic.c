// The pair of 8259A programmable interrupt controllers that deliver the PC's 16 legacy ISA
// IRQs. The kernel remaps them above the CPU exception vectors (IRQ n -> vector 0x20 + n) and
// unmasks only the lines a driver asked for.
//
// Command words follow the Intel 8259A datasheet (order no. 231468), "Programming the 8259A".
// Once the I/O APIC routes the legacy IRQs (irq.c), the 8259 stays fully masked; only on a
// machine without an I/O APIC does it deliver them, through LINT0 (lapic_route_extint).
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

static bool pic_in_use;

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
