// Per-CPU variables: a static marked PER_CPU lives in the per-CPU window of kernel.ld, so
// every CPU has its own copy at the same address (each CPU's page tables map the window to
// its own physical pages; smp.c). Plain statics stay shared by all CPUs.
//
// A PER_CPU variable starts out zero (or with its initializer) on every CPU: whatever the
// boot CPU stored in its copy before an AP started is NOT in the AP's copy. Configuration
// that one CPU sets up for all (a vector number, a mode) must therefore stay shared.
#ifndef ARCH_X86_64_PERCPU_H
#define ARCH_X86_64_PERCPU_H

#include <stdint.h>

#define PER_CPU __attribute__((section(".bss.percpu")))

// The window's bounds (kernel.ld): [__percpu_start, __percpu_end), page aligned; its
// initialized part [__percpu_start, __percpu_data_end), its zeroed part
// [__percpu_bss_start, __percpu_bss_end).
extern char __percpu_start[], __percpu_data_end[], __percpu_bss_start[], __percpu_bss_end[],
    __percpu_end[];

#endif
