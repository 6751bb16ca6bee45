// Interrupt and exception entry: the Interrupt Descriptor Table sends all 256 vectors through
// one assembly path that saves the interrupted state as a struct interrupt_frame. Vectors
// 0-31 are CPU exceptions and end in the panic report; vectors 32-255 go to the handler a
// driver registered for them.
#ifndef ARCH_X86_64_INTERRUPTS_H
#define ARCH_X86_64_INTERRUPTS_H

#include <stdint.h>

// The interrupted state, lowest address first: what isr.S pushes (r15..rax, vector, error
// code) followed by what the CPU pushes (SDM Vol. 3A 6.14.2, Figure 6-9). `error_code` is 0
// for vectors where the CPU pushes none. Handlers may modify it; iretq restores from it.
struct interrupt_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

typedef void (*interrupt_handler_t)(struct interrupt_frame *frame, void *context);

// Exception vectors (SDM Vol. 3A 6.3.1, Table 6-1).
enum exception_vector {
    EXCEPTION_DIVIDE_ERROR        = 0,
    EXCEPTION_DEBUG               = 1,
    EXCEPTION_NMI                 = 2,
    EXCEPTION_BREAKPOINT          = 3,
    EXCEPTION_OVERFLOW            = 4,
    EXCEPTION_BOUND_RANGE         = 5,
    EXCEPTION_INVALID_OPCODE      = 6,
    EXCEPTION_DEVICE_NOT_AVAILABLE = 7,
    EXCEPTION_DOUBLE_FAULT        = 8,
    EXCEPTION_INVALID_TSS         = 10,
    EXCEPTION_SEGMENT_NOT_PRESENT = 11,
    EXCEPTION_STACK_FAULT         = 12,
    EXCEPTION_GENERAL_PROTECTION  = 13,
    EXCEPTION_PAGE_FAULT          = 14,
    EXCEPTION_X87_FPU             = 16,
    EXCEPTION_ALIGNMENT_CHECK     = 17,
    EXCEPTION_MACHINE_CHECK       = 18,
    EXCEPTION_SIMD_FPU            = 19,
    EXCEPTION_VIRTUALIZATION      = 20,
    EXCEPTION_CONTROL_PROTECTION  = 21,
};

enum {
    INTERRUPT_VECTOR_COUNT = 256,
    FIRST_EXTERNAL_VECTOR = 32,   // below this the vectors belong to CPU exceptions
};

// Load the IDT. arch_start64 does this before anything else can fault.
void idt_init(void);
void idt_load(void);

// Route `vector` (32-255) to `handler(frame, context)`, called with interrupts disabled.
// The handler acknowledges its device and interrupt controller (e.g. pic_eoi). Returns 0, or
// -1 when the vector is an exception vector or already taken by a different handler
// (registering the same handler and context again is allowed).
int interrupt_register(uint8_t vector, interrupt_handler_t handler, void *context);
void interrupt_unregister(uint8_t vector);

// How often each vector fired, and how many interrupts arrived with no handler registered
// (those are counted and otherwise ignored).
extern uint64_t interrupt_count[INTERRUPT_VECTOR_COUNT];
extern uint64_t interrupt_spurious_count;

// Called by isr.S only.
void interrupt_dispatch(struct interrupt_frame *frame);

#endif
