// The time-stamp counter, the CPU's free-running cycle counter: the kernel's clock for short
// intervals. Its rate comes from CPUID when the CPU states it, else from a measurement
// against the HPET or the 8254 PIT.
#ifndef ARCH_X86_64_TSC_H
#define ARCH_X86_64_TSC_H

#include <stdint.h>

// Ticks per second: exact from tsc_calibrate_finish on (provisional, within ~1%, between
// tsc_calibrate_begin and it).
extern uint64_t tsc_hz;
// Where tsc_hz came from: "cpuid", "hypervisor", "hpet", "pit" or "guess".
extern const char *tsc_calibration_source;

// CPUID leaves, else a measurement against the HPET (needs acpi_init first) or the PIT that
// runs beside the rest of the boot: begin opens the window and sets a provisional tsc_hz
// (0.25 ms of busy-waiting), finish closes it and sets the rate over the whole window.
// arch_start64 calls begin; the port calls finish (through arch_calibration_finish) before
// anything needs exact time: other CPUs, interrupts, Python.
void tsc_calibrate_begin(void);
void tsc_calibrate_finish(void);

uint64_t tsc_read(void);
uint64_t tsc_to_us(uint64_t ticks);
void tsc_delay_us(uint64_t us);

#endif
