// The time-stamp counter, the CPU's free-running cycle counter: the kernel's clock for short
// intervals. Its rate is measured once at boot against the 8254 PIT (or read from CPUID).
#ifndef ARCH_X86_64_TSC_H
#define ARCH_X86_64_TSC_H

#include <stdint.h>

// Ticks per second; set by tsc_calibrate (arch_start64 calls it before kernel_main).
extern uint64_t tsc_hz;

void tsc_calibrate(void);
uint64_t tsc_read(void);
uint64_t tsc_to_us(uint64_t ticks);
void tsc_delay_us(uint64_t us);

#endif
