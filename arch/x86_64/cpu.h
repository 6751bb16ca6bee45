// The x86-64 processor's own instructions that C cannot express: port I/O, model-specific
// registers, control registers, CPUID and the time-stamp counter. Everything here is a thin
// static inline wrapper, so the raw instruction lives in exactly one place.
#ifndef ARCH_X86_64_CPU_H
#define ARCH_X86_64_CPU_H

#include <stdbool.h>
#include <stdint.h>

// Control register bits (Intel SDM Vol. 3A, section 2.5 "Control Registers", Figure 2-7).
enum cr0_bits {
    CR0_PE = 1u << 0,   // protection enable
    CR0_MP = 1u << 1,   // monitor coprocessor: WAIT/FWAIT honour CR0.TS
    CR0_EM = 1u << 2,   // x87 emulation: must be clear for SSE (SDM Vol. 3A 13.1.3)
    CR0_TS = 1u << 3,   // task switched
    CR0_NE = 1u << 5,   // native x87 error reporting (#MF instead of IRQ13)
    CR0_WP = 1u << 16,  // supervisor writes honour read-only pages
    CR0_PG = 1u << 31,  // paging
};

enum cr4_bits {
    CR4_PAE        = 1u << 5,   // physical address extension, required for long mode
    CR4_PGE        = 1u << 7,   // global pages
    CR4_OSFXSR     = 1u << 9,   // OS supports FXSAVE/FXRSTOR and SSE
    CR4_OSXMMEXCPT = 1u << 10,  // OS handles #XM (SIMD floating-point exceptions)
};

// Model-specific registers (Intel SDM Vol. 4, Table 2-2 "IA-32 Architectural MSRs").
enum msr_index {
    MSR_IA32_APIC_BASE = 0x0000001b,
    MSR_IA32_EFER      = 0xc0000080,
    MSR_IA32_FS_BASE   = 0xc0000100,
    MSR_IA32_GS_BASE   = 0xc0000101,
};

enum efer_bits {
    EFER_SCE = 1u << 0,   // SYSCALL enable
    EFER_LME = 1u << 8,   // long mode enable
    EFER_LMA = 1u << 10,  // long mode active (read-only)
    EFER_NXE = 1u << 11,  // no-execute page bit enable
};

// RFLAGS bits (SDM Vol. 1, section 3.4.3).
enum rflags_bits {
    RFLAGS_IF = 1u << 9,  // maskable interrupts enabled
};

static inline void outb(uint16_t port, uint8_t value) {
    __asm__ volatile ("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t value) {
    __asm__ volatile ("outw %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t value) {
    __asm__ volatile ("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port) {
    uint8_t value;
    __asm__ volatile ("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline uint16_t inw(uint16_t port) {
    uint16_t value;
    __asm__ volatile ("inw %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline uint32_t inl(uint16_t port) {
    uint32_t value;
    __asm__ volatile ("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

// A write to port 0x80 (the POST diagnostic port, unused by anything) takes about a
// microsecond on real chipsets: the customary delay between accesses to slow ISA devices
// such as the 8259 PIC.
static inline void io_wait(void) {
    outb(0x80, 0);
}

static inline uint64_t rdtsc(void) {
    uint32_t low, high;
    __asm__ volatile ("rdtsc" : "=a"(low), "=d"(high));
    return ((uint64_t)high << 32) | low;
}

static inline uint64_t rdmsr(uint32_t msr) {
    uint32_t low, high;
    __asm__ volatile ("rdmsr" : "=a"(low), "=d"(high) : "c"(msr));
    return ((uint64_t)high << 32) | low;
}

static inline void wrmsr(uint32_t msr, uint64_t value) {
    __asm__ volatile ("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

struct cpuid_result {
    uint32_t eax, ebx, ecx, edx;
};

static inline struct cpuid_result cpuid(uint32_t leaf, uint32_t subleaf) {
    struct cpuid_result r;
    __asm__ volatile ("cpuid"
                      : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                      : "a"(leaf), "c"(subleaf));
    return r;
}

static inline uint64_t read_cr0(void) {
    uint64_t value;
    __asm__ volatile ("mov %%cr0, %0" : "=r"(value));
    return value;
}

static inline uint64_t read_cr2(void) {
    uint64_t value;
    __asm__ volatile ("mov %%cr2, %0" : "=r"(value));
    return value;
}

static inline uint64_t read_cr3(void) {
    uint64_t value;
    __asm__ volatile ("mov %%cr3, %0" : "=r"(value));
    return value;
}

static inline void write_cr3(uint64_t value) {
    __asm__ volatile ("mov %0, %%cr3" : : "r"(value) : "memory");
}

static inline uint64_t read_cr4(void) {
    uint64_t value;
    __asm__ volatile ("mov %%cr4, %0" : "=r"(value));
    return value;
}

static inline uint64_t read_rflags(void) {
    uint64_t value;
    __asm__ volatile ("pushfq; popq %0" : "=r"(value));
    return value;
}

static inline void cli(void) {
    __asm__ volatile ("cli" : : : "memory");
}

static inline void sti(void) {
    __asm__ volatile ("sti" : : : "memory");
}

static inline void hlt(void) {
    __asm__ volatile ("hlt" : : : "memory");
}

// `sti; hlt` back to back: STI's one-instruction interrupt shadow (SDM Vol. 2B, STI) means
// no interrupt can slip in between, so an idle loop cannot miss its wake-up.
static inline void sti_hlt(void) {
    __asm__ volatile ("sti; hlt" : : : "memory");
}

static inline bool interrupts_enabled(void) {
    return (read_rflags() & RFLAGS_IF) != 0;
}

static inline void cpu_relax(void) {
    __asm__ volatile ("pause" : : : "memory");
}

static inline void invlpg(uint64_t virt) {
    __asm__ volatile ("invlpg (%0)" : : "r"(virt) : "memory");
}

// The processor brand string from CPUID leaves 0x80000002-0x80000004 (SDM Vol. 2A, CPUID,
// "Brand String"), leading and trailing spaces removed; "unknown x86-64 CPU" when absent.
void cpu_brand_string(char out[49]);

#endif
