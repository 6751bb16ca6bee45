// The kernel's one-shot timer on the local APIC: TSC-deadline mode when the CPU has it, else
// one-shot countdown calibrated against the TSC. Tickless: an interrupt only fires when a
// deadline is armed, so an idle CPU stays halted.
#ifndef ARCH_X86_64_TIMER_H
#define ARCH_X86_64_TIMER_H

#include <stdint.h>

// After irq_init: pick the mode, allocate the vector, measure the LAPIC timer if needed.
void timer_init(void);
// One-shot mode without the hypervisor's rate: timer_init starts measuring the countdown
// against the TSC and this ends it (after tsc_calibrate_finish; arch_calibration_finish calls
// both). Deadlines armed in between take effect here.
void timer_calibrate_finish(void);
void timer_init_ap(void);                         // on each application processor
const char *timer_mode(void);                     // "tsc-deadline" | "one-shot"
                                                  // ("none" without a local APIC: sleeps spin)
// The sleeper's deadline: fire an interrupt at/after this TSC value (0 = disarm). The
// hardware is programmed for the earliest of this and the armed timer events below.
void timer_arm_at(uint64_t tsc_deadline);
uint64_t timer_interrupt_count(void);
int timer_vector(void);                           // -1 without a timer
uint64_t timer_lapic_hz(void);                    // one-shot mode: countdown rate, else 0
// Halts (sti; hlt) until the deadline passes or any interrupt arrives; caller loops. May be
// called with interrupts disabled (so the caller can check for pending work first without a
// race: the sti;hlt pair cannot miss a wake-up); returns with interrupts enabled.
void timer_sleep_until(uint64_t tsc_deadline);

// One-shot timer events, multiplexed on the one hardware timer: any number of subsystems
// (lwIP's timeouts, later the scheduler) each keep a deadline without clobbering each other's
// or the sleeper's. The handler runs in hard IRQ context with interrupts off, once, after the
// deadline passed: keep it short (raise a soft IRQ). The struct is the caller's (static);
// the fields are private to timer.c.
struct timer_event {
    uint64_t deadline;                  // TSC; 0 = not armed
    void (*handler)(void *context);
    void *context;
    struct timer_event *next;           // the armed list, earliest first
};
void timer_event_init(struct timer_event *event, void (*handler)(void *context), void *context);
// (Re)arm at an absolute TSC deadline (one in the past fires at once); 0 cancels.
void timer_event_arm(struct timer_event *event, uint64_t tsc_deadline);
void timer_event_cancel(struct timer_event *event);

#endif
