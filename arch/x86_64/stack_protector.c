// The stack protector. The kernel is built with -fstack-protector-strong (ports/manticore/
// Makefile): every function with a local array or an address-taken local keeps a copy of
// __stack_chk_guard between its locals and its saved frame pointer and return address, and
// calls __stack_chk_fail if the copy changed by the time it returns, so a C buffer overrun
// is a panic naming the function instead of a jump through a corrupted return address.
// -mstack-protector-guard=global: one guard in .data for every CPU (the default reads it from
// %fs:0x28, thread-local storage the kernel does not have).
//
// The guard is a fixed value until stack_protector_init replaces it, first thing at boot,
// with 64 bits from RDSEED, else RDRAND (Intel SDM Vol. 1 7.3.17, Vol. 2 "RDRAND", "RDSEED";
// the DRNG guide's advice of retrying a few times), else the TSC: only functions that
// return before it runs, or never return, may be protected, which holds for everything on
// the boot CPU's stack at that point (arch_start64 never returns).
#include "arch/x86_64/stack_protector.h"

#include <stdbool.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/panic.h"

enum {
    CPUID_1_ECX_RDRAND = 1u << 30,
    CPUID_7_EBX_RDSEED = 1u << 18,
    RANDOM_RETRIES = 10,
};

uintptr_t __stack_chk_guard = 0x00e3a1b4c59d6f27ull;
static const char *guard_source = "fixed";

static bool rdseed64(uint64_t *value) {
    for (int i = 0; i < RANDOM_RETRIES; i++) {
        bool ok;
        __asm__ volatile ("rdseed %0; setc %1" : "=r"(*value), "=qm"(ok) : : "cc");
        if (ok) {
            return true;
        }
    }
    return false;
}

static bool rdrand64(uint64_t *value) {
    for (int i = 0; i < RANDOM_RETRIES; i++) {
        bool ok;
        __asm__ volatile ("rdrand %0; setc %1" : "=r"(*value), "=qm"(ok) : : "cc");
        if (ok) {
            return true;
        }
    }
    return false;
}

__attribute__((no_stack_protector)) void stack_protector_init(void) {
    uint64_t value = 0;
    bool have7 = cpuid(0, 0).eax >= 7;
    if (have7 && (cpuid(7, 0).ebx & CPUID_7_EBX_RDSEED) && rdseed64(&value)) {
        guard_source = "RDSEED";
    } else if ((cpuid(1, 0).ecx & CPUID_1_ECX_RDRAND) && rdrand64(&value)) {
        guard_source = "RDRAND";
    } else {
        // Not secret, but different on every boot: the TSC's low bits, spread over 64.
        value = rdtsc() * 0x9e3779b97f4a7c15ull;
        value ^= value >> 29;
        guard_source = "TSC";
    }
    // A zero low byte, as glibc's: an overrun by a string copy stops at the NUL and cannot
    // write the guard back.
    __stack_chk_guard = (uintptr_t)(value & ~(uint64_t)0xff);
}

const char *stack_protector_source(void) {
    return guard_source;
}

void stack_protector_report(void) {
    kprintf("stack protector: -fstack-protector-strong, guard from %s\n", guard_source);
}

// Called from the epilogue of the function whose guard copy was overwritten: the return
// address is inside that function, and it is frame #1 of the backtrace, which the host
// symbolizer names (manticore_host/symbolize.py).
__attribute__((noreturn)) void __stack_chk_fail(void) {
    panic("stack smashing detected: the guard of the function at 0x%016lx (backtrace #1) "
          "was overwritten", (unsigned long)__builtin_return_address(0));
}
