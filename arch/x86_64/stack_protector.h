// The stack protector's guard (-fstack-protector-strong): see stack_protector.c.
#ifndef ARCH_X86_64_STACK_PROTECTOR_H
#define ARCH_X86_64_STACK_PROTECTOR_H

#include <stdint.h>

extern uintptr_t __stack_chk_guard;

// Replace the boot-time guard with a random one (RDSEED, RDRAND, else the TSC). Call once,
// first thing in arch_start64, before any protected function that will return.
void stack_protector_init(void);
// Where the guard came from: "RDSEED", "RDRAND", "TSC" (or "fixed" before init).
const char *stack_protector_source(void);
// The boot line "stack protector: ..., guard from X".
void stack_protector_report(void);

__attribute__((noreturn)) void __stack_chk_fail(void);

#endif
