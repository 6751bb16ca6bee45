// The Global Descriptor Table and the 64-bit Task State Segment. In long mode segmentation is
// mostly gone; what remains is the code/data selectors and the TSS, whose Interrupt Stack
// Table gives the double-fault, NMI and machine-check handlers stacks of their own.
#ifndef ARCH_X86_64_GDT_H
#define ARCH_X86_64_GDT_H

#include <stdint.h>

// Selectors (the same values boot.S uses, so reloading the GDT changes nothing in flight).
enum gdt_selector {
    GDT_KERNEL_CODE = 0x08,
    GDT_KERNEL_DATA = 0x10,
    GDT_TSS         = 0x18,
};

// Interrupt Stack Table slots (SDM Vol. 3A 6.14.5): an IDT gate naming slot n makes the CPU
// switch to TSS.IST[n] unconditionally, even when the current stack is unusable.
enum ist_slot {
    IST_DOUBLE_FAULT  = 1,
    IST_NMI           = 2,
    IST_MACHINE_CHECK = 3,
    IST_SLOT_COUNT    = 3,
};

enum { IST_STACK_SIZE = 16 * 1024 };

void gdt_init(void);

// Lowest and one-past-highest address of the stack for IST slot `slot` (1..IST_SLOT_COUNT).
void gdt_ist_stack_bounds(int slot, uintptr_t *bottom, uintptr_t *top);
// The guard page below IST stack `slot` (paging_init unmaps it).
uintptr_t gdt_ist_guard_page(int slot);

#endif
