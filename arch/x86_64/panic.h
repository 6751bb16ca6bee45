// The kernel's last words: the panic report on the serial console (CPU exception or software
// panic), its exact format being a contract with the tests and the host symbolizer, followed
// by an exit through QEMU's isa-debug-exit device.
#ifndef ARCH_X86_64_PANIC_H
#define ARCH_X86_64_PANIC_H

#include <stdint.h>

#include "arch/x86_64/interrupts.h"

// Print "*** MANTICORE PANIC: <message> ***", the registers as captured at the call, and a
// backtrace starting at the caller; then exit QEMU with status 3 (or halt forever).
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

// The report for CPU exception `frame->vector` (0-31). Called by the interrupt dispatcher.
void panic_exception(struct interrupt_frame *frame) __attribute__((noreturn));

// The backtrace only follows frame pointers that lie inside known stacks (the kernel stack
// and the IST stacks). A port that runs code on another stack can add its range here (up
// to 8 ranges).
void panic_register_stack(uintptr_t bottom, uintptr_t top);

// QEMU's isa-debug-exit device (-device isa-debug-exit,iobase=0xf4,iosize=0x04) ends QEMU
// with exit status (value << 1) | 1. Returns if the device is absent.
enum { DEBUG_EXIT_PORT = 0xf4 };
void debug_exit(uint32_t value);

#endif
