// The Global Descriptor Table and the 64-bit Task State Segment. In long mode segmentation is
// mostly gone; what remains is the code/data selectors and the TSS, whose Interrupt Stack
// Table gives the double-fault, NMI and machine-check handlers stacks of their own.
#include "arch/x86_64/gdt.h"

#include <stddef.h>

#include "arch/x86_64/percpu.h"

// 64-bit TSS layout (SDM Vol. 3A 9.7, Figure 9-11 "64-Bit TSS Format").
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];            // stacks for privilege changes to rings 0-2 (unused: no ring 3 yet)
    uint64_t reserved1;
    uint64_t ist[7];            // IST1..IST7
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t io_map_base;       // offset of the I/O permission bitmap; >= limit means none
} __attribute__((packed));

// Code/data descriptor bits (SDM Vol. 3A 3.4.5, Figure 3-8).
enum descriptor_bits {
    DESC_ACCESSED   = 1ull << 40,
    DESC_WRITABLE   = 1ull << 41,  // data: writable; code: readable
    DESC_EXECUTABLE = 1ull << 43,
    DESC_CODE_DATA  = 1ull << 44,  // S: code/data rather than system
    DESC_PRESENT    = 1ull << 47,
    DESC_LONG_MODE  = 1ull << 53,  // L: 64-bit code
    DESC_SIZE_32    = 1ull << 54,  // D/B
    DESC_GRANULAR   = 1ull << 55,  // limit in 4 KiB units
    DESC_LIMIT_MAX  = 0x000f00000000ffffull,
};

// System descriptor type for an available 64-bit TSS (SDM Vol. 3A 3.5, Table 3-2).
enum { DESC_TYPE_TSS64_AVAILABLE = 0x9 };

enum { GDT_ENTRIES = 5 };  // null, code, data, TSS (two slots)

// Per CPU (percpu.h): each CPU loads its own GDT and TSS, and its IST stacks are its own, at
// the same addresses on every CPU.
static PER_CPU uint64_t gdt[GDT_ENTRIES] __attribute__((aligned(16)));
static PER_CPU struct tss64 tss __attribute__((aligned(16)));
// Each IST stack has a guard page below it, unmapped by paging.c (gdt_ist_guard_page): an
// overflow faults instead of running into the stack below.
struct ist_stack {
    uint8_t guard[4096];
    uint8_t stack[IST_STACK_SIZE];
};
static PER_CPU struct ist_stack ist_stacks[IST_SLOT_COUNT] __attribute__((aligned(4096)));

struct descriptor_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

void gdt_ist_stack_bounds(int slot, uintptr_t *bottom, uintptr_t *top) {
    *bottom = (uintptr_t)ist_stacks[slot - 1].stack;
    *top = *bottom + IST_STACK_SIZE;
}

uintptr_t gdt_ist_guard_page(int slot) {
    return (uintptr_t)ist_stacks[slot - 1].guard;
}

void gdt_init(void) {
    for (int slot = 1; slot <= IST_SLOT_COUNT; slot++) {
        uintptr_t bottom, top;
        gdt_ist_stack_bounds(slot, &bottom, &top);
        tss.ist[slot - 1] = top;  // the CPU aligns RSP to 16 before pushing (SDM 6.14.2)
    }
    tss.io_map_base = sizeof(tss);

    gdt[0] = 0;
    gdt[GDT_KERNEL_CODE / 8] = DESC_LIMIT_MAX | DESC_ACCESSED | DESC_WRITABLE | DESC_EXECUTABLE
                               | DESC_CODE_DATA | DESC_PRESENT | DESC_LONG_MODE | DESC_GRANULAR;
    gdt[GDT_KERNEL_DATA / 8] = DESC_LIMIT_MAX | DESC_ACCESSED | DESC_WRITABLE | DESC_CODE_DATA
                               | DESC_PRESENT | DESC_SIZE_32 | DESC_GRANULAR;

    // A 64-bit TSS descriptor takes two slots (SDM Vol. 3A 8.2.3, Figure 8-4).
    uint64_t base = (uintptr_t)&tss;
    uint64_t limit = sizeof(tss) - 1;
    gdt[GDT_TSS / 8] = (limit & 0xffff)
                       | ((base & 0xffffff) << 16)
                       | ((uint64_t)DESC_TYPE_TSS64_AVAILABLE << 40)
                       | DESC_PRESENT
                       | (((limit >> 16) & 0xf) << 48)
                       | (((base >> 24) & 0xff) << 56);
    gdt[GDT_TSS / 8 + 1] = base >> 32;

    struct descriptor_pointer pointer = { sizeof(gdt) - 1, (uintptr_t)gdt };
    // Reload every segment register, CS through a far return, then the task register.
    __asm__ volatile (
        "lgdt %0\n\t"
        "mov %1, %%ds\n\t"
        "mov %1, %%es\n\t"
        "mov %1, %%ss\n\t"
        "pushq %2\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"
        "1:\n\t"
        "ltr %w3\n\t"
        :
        : "m"(pointer), "r"((uint64_t)GDT_KERNEL_DATA), "i"(GDT_KERNEL_CODE), "r"((uint64_t)GDT_TSS)
        : "rax", "memory");
}
