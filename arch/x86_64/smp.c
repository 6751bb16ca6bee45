// Multiprocessor services (see smp.h). Only the boot CPU runs so far.
#include "arch/x86_64/smp.h"

#include "arch/x86_64/lapic.h"

unsigned smp_cpu_id(void) {
    return 0;
}

unsigned smp_cpu_count(void) {
    return 1;
}

bool smp_cpu_online(unsigned cpu) {
    return cpu == 0;
}

uint32_t smp_apic_id(unsigned cpu) {
    (void)cpu;
    return lapic_id();
}
