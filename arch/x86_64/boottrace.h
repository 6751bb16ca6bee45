// A boot-phase timeline from the TSC: boottrace_mark("phase") at the end of each phase of the
// boot, boottrace_report() prints the timeline once the TSC is calibrated, when the command
// line has `boottrace=1` (`invoke bench boot` records it).
#ifndef ARCH_X86_64_BOOTTRACE_H
#define ARCH_X86_64_BOOTTRACE_H

#include <stdint.h>

// Record the TSC now under `phase` (a string literal); cheap, no output. Only the first
// BOOTTRACE_MAX marks are kept. Under boottrace=1 it also calls the mark's own stub, which
// splits QEMU's translation log by phase (boottrace.c).
void boottrace_mark(const char *phase);

// The same with a TSC value read earlier (boot.S's first reading, before .bss is zeroed).
void boottrace_mark_at(const char *phase, uint64_t tsc);

// The TSC when boot.S began (its first instruction after the loader's jump).
extern uint64_t boot_entry_tsc;

// Once: print "boottrace: PHASE +DELTA_us @SINCE_RESET_us" for each mark, if the command line
// says boottrace=1. The TSC counts from the VM's reset, so @ is time since the machine started
// (firmware and boot loader included).
void boottrace_report(void);

#endif
