// The Interrupt Descriptor Table and the C half of interrupt dispatch. Every vector has a
// gate to its isr.S stub; exceptions (0-31) end in the panic report, external interrupts
// (32-255) go to whatever handler a driver registered.
#include "arch/x86_64/interrupts.h"

#include <stddef.h>

#include "arch/x86_64/gdt.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/pic.h"

// 64-bit interrupt gate (SDM Vol. 3A 6.14.1, Figure 6-8 "64-Bit IDT Gate Descriptors").
struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;            // bits 0-2: IST slot, 0 = stay on the current stack
    uint8_t type_attributes;
    uint16_t offset_middle;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

enum idt_gate_bits {
    IDT_GATE_INTERRUPT = 0x0e,  // type 1110b: interrupt gate, clears IF on entry (Table 3-2)
    IDT_GATE_PRESENT   = 0x80,
};

enum { ISR_STUB_STRIDE = 16 };  // must match the .balign in isr.S

extern char isr_stub_table[];

static struct idt_gate idt[INTERRUPT_VECTOR_COUNT] __attribute__((aligned(16)));

static struct {
    interrupt_handler_t handler;
    void *context;
} handlers[INTERRUPT_VECTOR_COUNT];

uint64_t interrupt_count[INTERRUPT_VECTOR_COUNT];
uint64_t interrupt_spurious_count;

static uint8_t ist_slot_for_vector(unsigned vector) {
    // Faults that can arrive when the current stack cannot be trusted (a double fault from a
    // stack overflow) or at any instant (NMI, machine check) get known-good stacks.
    switch (vector) {
        case EXCEPTION_DOUBLE_FAULT:
            return IST_DOUBLE_FAULT;
        case EXCEPTION_NMI:
            return IST_NMI;
        case EXCEPTION_MACHINE_CHECK:
            return IST_MACHINE_CHECK;
        default:
            return 0;
    }
}

void idt_init(void) {
    for (unsigned vector = 0; vector < INTERRUPT_VECTOR_COUNT; vector++) {
        uint64_t stub = (uintptr_t)isr_stub_table + vector * ISR_STUB_STRIDE;
        idt[vector] = (struct idt_gate){
            .offset_low = stub & 0xffff,
            .selector = GDT_KERNEL_CODE,
            .ist = ist_slot_for_vector(vector),
            .type_attributes = IDT_GATE_PRESENT | IDT_GATE_INTERRUPT,
            .offset_middle = (stub >> 16) & 0xffff,
            .offset_high = stub >> 32,
            .reserved = 0,
        };
    }
    idt_load();
}

// One IDT for every CPU: each loads the same table (an AP calls this alone).
void idt_load(void) {
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) pointer = { sizeof(idt) - 1, (uintptr_t)idt };
    __asm__ volatile ("lidt %0" : : "m"(pointer) : "memory");
}

int interrupt_register(uint8_t vector, interrupt_handler_t handler, void *context) {
    if (vector < FIRST_EXTERNAL_VECTOR || handler == NULL) {
        return -1;
    }
    if (handlers[vector].handler != NULL
        && (handlers[vector].handler != handler || handlers[vector].context != context)) {
        return -1;
    }
    // Context before handler: an interrupt between the two stores must not see a handler
    // with a stale context.
    handlers[vector].context = context;
    __asm__ volatile ("" : : : "memory");
    handlers[vector].handler = handler;
    return 0;
}

void interrupt_unregister(uint8_t vector) {
    handlers[vector].handler = NULL;
    __asm__ volatile ("" : : : "memory");
    handlers[vector].context = NULL;
}

void interrupt_dispatch(struct interrupt_frame *frame) {
    unsigned vector = frame->vector & 0xff;
    __atomic_fetch_add(&interrupt_count[vector], 1, __ATOMIC_RELAXED);   // shared by all CPUs
    smp_count_interrupt();
    if (vector < FIRST_EXTERNAL_VECTOR) {
        panic_exception(frame);
    }
    interrupt_handler_t handler = handlers[vector].handler;
    if (handler != NULL) {
        handler(frame, handlers[vector].context);
        return;
    }
    __atomic_fetch_add(&interrupt_spurious_count, 1, __ATOMIC_RELAXED);
    if (pic_active() && vector >= PIC_VECTOR_BASE && vector < PIC_VECTOR_BASE + PIC_IRQ_COUNT) {
        pic_acknowledge_unhandled(vector - PIC_VECTOR_BASE);
    } else if (lapic_enabled() && vector != LAPIC_SPURIOUS_VECTOR) {
        // A stray APIC interrupt (e.g. on a vector just freed) still sets its in-service
        // bit; without an EOI it would block every lower-priority vector.
        lapic_eoi();
    }
}
