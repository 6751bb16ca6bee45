// The kernel's one-shot timer on the local APIC: TSC-deadline mode when the CPU has it, else
// one-shot countdown calibrated against the TSC. Tickless: an interrupt only fires when a
// deadline is armed, so an idle CPU stays halted.
#ifndef ARCH_X86_64_TIMER_H
#define ARCH_X86_64_TIMER_H

#include <stdint.h>

// After irq_init: pick the mode, allocate the vector, measure the LAPIC timer if needed.
void timer_init(void);
const char *timer_mode(void);                     // "tsc-deadline" | "one-shot"
                                                  // ("none" without a local APIC: sleeps spin)
void timer_arm_at(uint64_t tsc_deadline);         // fire an interrupt at/after this TSC value (0 = disarm)
uint64_t timer_interrupt_count(void);
int timer_vector(void);                           // -1 without a timer
uint64_t timer_lapic_hz(void);                    // one-shot mode: countdown rate, else 0
// Halts (sti; hlt) until the deadline passes or any interrupt arrives; caller loops. May be
// called with interrupts disabled (so the caller can check for pending work first without a
// race: the sti;hlt pair cannot miss a wake-up); returns with interrupts enabled.
void timer_sleep_until(uint64_t tsc_deadline);

#endif
