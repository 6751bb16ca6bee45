// The time-stamp counter, the CPU's free-running cycle counter: the kernel's clock for short
// intervals. Its rate comes from CPUID when the CPU states it, else from the 8254 PIT.
#ifndef ARCH_X86_64_TSC_H
#define ARCH_X86_64_TSC_H

#include <stdint.h>

// Ticks per second; set by tsc_calibrate (arch_start64 calls it before kernel_main).
extern uint64_t tsc_hz;
// Where tsc_hz came from: "cpuid", "hypervisor", "hpet", "pit" or "guess".
extern const char *tsc_calibration_source;

// CPUID leaves, else the HPET (needs acpi_init first), else the PIT.
void tsc_calibrate(void);
uint64_t tsc_read(void);
uint64_t tsc_to_us(uint64_t ticks);
void tsc_delay_us(uint64_t us);

#endif
