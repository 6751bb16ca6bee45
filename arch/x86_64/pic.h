// The pair of 8259A programmable interrupt controllers that deliver the PC's 16 legacy ISA
// IRQs. The kernel remaps them above the CPU exception vectors (IRQ n -> vector 0x20 + n) and
// masks them all once the I/O APIC takes over; they deliver IRQs only without an I/O APIC.
#ifndef ARCH_X86_64_PIC_H
#define ARCH_X86_64_PIC_H

#include <stdbool.h>

enum {
    PIC_VECTOR_BASE = 0x20,  // IRQ 0-7 on vectors 0x20-0x27, IRQ 8-15 on 0x28-0x2f
    PIC_IRQ_COUNT = 16,
};

// Reprogram both controllers (master at 0x20, slave at 0x28) with every line masked.
void pic_init(void);
void pic_unmask(unsigned irq);
void pic_mask(unsigned irq);
// End of interrupt for `irq`: tells the slave too when the IRQ came through it.
void pic_eoi(unsigned irq);
// Mask everything and stop treating vectors 0x20-0x2f as PIC interrupts (for the APIC).
void pic_disable(void);
bool pic_active(void);

// For the dispatcher: an interrupt on PIC vector `irq` with no handler. Distinguishes the
// 8259's spurious IRQ 7/15 (which must not be acknowledged) from a real one (which must).
void pic_acknowledge_unhandled(unsigned irq);

#endif
