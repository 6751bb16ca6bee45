// Multiprocessor services: which CPU is running, how many there are, and how to reach one.
// CPUs are numbered 0..smp_cpu_count()-1 in MADT order (CPU 0 is the boot CPU); a CPU's
// local APIC id is what MSI/MSI-X messages and I/O APIC entries name as their destination
// (Intel SDM Vol. 3A 10.11.1, 10.6.2). See docs/multicore.md.
#ifndef ARCH_X86_64_SMP_H
#define ARCH_X86_64_SMP_H

#include <stdbool.h>
#include <stdint.h>

#define SMP_MAX_CPUS (16)

// The index of the CPU executing this code (0 on the boot CPU).
unsigned smp_cpu_id(void);
// CPUs that are online (started and running the kernel).
unsigned smp_cpu_count(void);
// True when `cpu` is a started CPU.
bool smp_cpu_online(unsigned cpu);
// The local APIC id of `cpu`: the destination to program into an MSI-X entry or an I/O APIC
// redirection entry so that the interrupt is taken on that CPU.
uint32_t smp_apic_id(unsigned cpu);

#endif
