// The kernel's one-shot timer on the local APIC: TSC-deadline mode when the CPU has it, else
// one-shot countdown calibrated against the TSC. Tickless: nothing is periodic, an interrupt
// fires only when someone armed a deadline, so an idle CPU stays halted.
//
// Intel SDM Vol. 3A 10.5.4 "APIC Timer" (divide configuration Figure 10-10, LVT timer modes
// Figure 10-8) and 10.5.4.1 "TSC-Deadline Mode" (IA32_TSC_DEADLINE, MSR 0x6E0; CPUID.01H:
// ECX[24] says the mode exists). The hypervisor CPUID leaf 0x40000010 (VMware/KVM "timing
// information": EAX TSC kHz, EBX APIC bus kHz) gives the timer rate when present.
#include "arch/x86_64/timer.h"

#include <stdbool.h>
#include <stddef.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupts.h"
#include "arch/x86_64/irq.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/tsc.h"

enum {
    MSR_IA32_TSC_DEADLINE = 0x6e0,
    CPUID_1_ECX_TSC_DEADLINE = 1u << 24,
    CPUID_1_ECX_HYPERVISOR = 1u << 31,
    CPUID_HYPERVISOR_BASE = 0x40000000,
    CPUID_HYPERVISOR_TIMING = 0x40000010,
    ONE_SHOT_DIVIDE = 16,
    MIN_CALIBRATION_MS = 2,       // the shortest window: tight end points keep it to
                                  // ~0.05% under TCG (the boot usually gives more)
    SAMPLE_PAIRS = 4,
    MAX_ONE_SHOT_SECONDS = 30,   // longer sleeps are a chain of one-shots (the caller loops)
};

static enum { TIMER_NONE, TIMER_TSC_DEADLINE, TIMER_ONE_SHOT } mode;
static int vector = -1;
static uint64_t lapic_timer_hz;   // one-shot mode: countdown rate after the divider

// Multiplexing: the sleeper's deadline (timer_arm_at) and a list of armed events, earliest
// first. The hardware always holds the earliest of them. Touched with interrupts off only.
// Each CPU has its own LAPIC timer, so these are per CPU (an event fires on the CPU that
// armed it); the mode, vector and rate above are the boot CPU's, shared by all.
static PER_CPU uint64_t sleep_deadline;
static PER_CPU struct timer_event *events;

static void program_hardware(uint64_t tsc_deadline);

static void reprogram(void) {
    uint64_t next = sleep_deadline;
    if (events != NULL && (next == 0 || events->deadline < next)) {
        next = events->deadline;
    }
    program_hardware(next);
}

static void timer_interrupt(void *context) {
    (void)context;
    // Run the events that are due (each once; a handler may re-arm its own or another event),
    // then program the next deadline. The sleeper needs nothing: the interrupt ended its HLT.
    // Dispatch counts the interrupt and sends EOI.
    uint64_t now = rdtsc();
    while (events != NULL && events->deadline <= now) {
        struct timer_event *due = events;
        events = due->next;
        due->next = NULL;
        due->deadline = 0;
        due->handler(due->context);
    }
    if (sleep_deadline != 0 && sleep_deadline <= now) {
        sleep_deadline = 0;
    }
    reprogram();
}

static uint64_t hypervisor_apic_bus_hz(void) {
    if (!(cpuid(1, 0).ecx & CPUID_1_ECX_HYPERVISOR)
        || cpuid(CPUID_HYPERVISOR_BASE, 0).eax < CPUID_HYPERVISOR_TIMING) {
        return 0;
    }
    return (uint64_t)cpuid(CPUID_HYPERVISOR_TIMING, 0).ebx * 1000;
}

// One end point: a (TSC, current count) pair, the tightest of SAMPLE_PAIRS reads, so a host
// that deschedules the vCPU between the two reads (common under TCG) does not skew it.
static void lapic_timer_sample(uint64_t *tsc, uint32_t *count) {
    uint64_t tightest = ~0ull;
    for (int i = 0; i < SAMPLE_PAIRS; i++) {
        uint64_t before = rdtsc();
        uint32_t now = lapic_timer_current_count();
        uint64_t after = rdtsc();
        if (after - before < tightest) {
            tightest = after - before;
            *tsc = before + (after - before) / 2;
            *count = now;
        }
    }
}

// Calibration of the one-shot countdown against the TSC, beside the boot like the TSC's own
// (tsc.h): timer_init lets the LAPIC timer count down from its maximum and samples it, and
// timer_calibrate_finish samples it again at the end of the boot. The count cannot reach
// zero meanwhile (2^32 at 1 GHz / 16 is > 60 s), so no interrupt fires; until then nothing
// may reprogram the timer (program_hardware waits, and reprograms at the finish).
static struct {
    bool pending;
    uint64_t tsc;
    uint32_t count;
} calibration;

static void lapic_timer_calibrate_begin(void) {
    lapic_timer_set_initial_count(0xffffffffu);
    lapic_timer_sample(&calibration.tsc, &calibration.count);
    calibration.pending = true;
}

void timer_calibrate_finish(void) {
    if (!calibration.pending) {
        return;
    }
    uint64_t min_window = tsc_hz / 1000 * MIN_CALIBRATION_MS;
    while (rdtsc() - calibration.tsc < min_window) {
        cpu_relax();
    }
    uint64_t end = 0;
    uint32_t count = 0;
    lapic_timer_sample(&end, &count);
    lapic_timer_set_initial_count(0);
    calibration.pending = false;
    uint64_t counted = calibration.count - count;
    // tsc_hz is final here (tsc_calibrate_finish ran first), so the TSC ticks of the window
    // convert exactly.
    lapic_timer_hz = end > calibration.tsc
        ? (uint64_t)((unsigned __int128)counted * tsc_hz / (end - calibration.tsc)) : 0;
    if (lapic_timer_hz == 0) {
        mode = TIMER_NONE;
        return;
    }
    reprogram();   // whatever was armed during the window
}

void timer_init(void) {
    if (!lapic_enabled()) {
        mode = TIMER_NONE;
        return;
    }
    vector = irq_alloc_vector();
    if (vector < 0 || irq_install(vector, timer_interrupt, NULL, "timer") != 0) {
        mode = TIMER_NONE;
        return;
    }
    if (cpuid(1, 0).ecx & CPUID_1_ECX_TSC_DEADLINE) {
        lapic_timer_setup(vector, LAPIC_TIMER_TSC_DEADLINE, 1);
        wrmsr(MSR_IA32_TSC_DEADLINE, 0);
        mode = TIMER_TSC_DEADLINE;
        return;
    }
    lapic_timer_setup(vector, LAPIC_TIMER_ONE_SHOT, ONE_SHOT_DIVIDE);
    mode = TIMER_ONE_SHOT;
    uint64_t bus_hz = hypervisor_apic_bus_hz();
    if (bus_hz) {
        lapic_timer_hz = bus_hz / ONE_SHOT_DIVIDE;
    } else {
        lapic_timer_calibrate_begin();
    }
}

// An application processor's LAPIC timer, in the mode timer_init chose (the same vector:
// each CPU's timer interrupts only that CPU).
void timer_init_ap(void) {
    if (mode == TIMER_TSC_DEADLINE) {
        lapic_timer_setup(vector, LAPIC_TIMER_TSC_DEADLINE, 1);
        wrmsr(MSR_IA32_TSC_DEADLINE, 0);
    } else if (mode == TIMER_ONE_SHOT) {
        lapic_timer_setup(vector, LAPIC_TIMER_ONE_SHOT, ONE_SHOT_DIVIDE);
    }
}

const char *timer_mode(void) {
    switch (mode) {
        case TIMER_TSC_DEADLINE:
            return "tsc-deadline";
        case TIMER_ONE_SHOT:
            return "one-shot";
        default:
            return "none";
    }
}

uint64_t timer_lapic_hz(void) {
    return lapic_timer_hz;
}

int timer_vector(void) {
    return vector;
}

uint64_t timer_interrupt_count(void) {
    return vector >= 0 ? interrupt_count[vector] : 0;
}

static void program_hardware(uint64_t tsc_deadline) {
    if (mode == TIMER_TSC_DEADLINE) {
        wrmsr(MSR_IA32_TSC_DEADLINE, tsc_deadline);
        return;
    }
    if (mode != TIMER_ONE_SHOT || calibration.pending) {
        return;
    }
    if (tsc_deadline == 0) {
        lapic_timer_set_initial_count(0);   // writing 0 stops the countdown (10.5.4)
        return;
    }
    uint64_t now = rdtsc();
    uint64_t delta = tsc_deadline > now ? tsc_deadline - now : 0;
    uint64_t max_delta = tsc_hz * MAX_ONE_SHOT_SECONDS;
    if (delta > max_delta) {
        delta = max_delta;
    }
    // Round up: waking a little late is fine, early costs another round trip.
    uint64_t count = (uint64_t)(((unsigned __int128)delta * lapic_timer_hz + tsc_hz - 1) / tsc_hz);
    if (count == 0) {
        count = 1;
    } else if (count > 0xffffffffu) {
        count = 0xffffffffu;
    }
    lapic_timer_set_initial_count((uint32_t)count);
}

void timer_arm_at(uint64_t tsc_deadline) {
    uint64_t flags = read_rflags();
    cli();
    sleep_deadline = tsc_deadline;
    reprogram();
    if (flags & RFLAGS_IF) {
        sti();
    }
}

static void unlink_event(struct timer_event *event) {
    for (struct timer_event **link = &events; *link != NULL; link = &(*link)->next) {
        if (*link == event) {
            *link = event->next;
            break;
        }
    }
    event->next = NULL;
    event->deadline = 0;
}

void timer_event_init(struct timer_event *event, void (*handler)(void *context), void *context) {
    event->deadline = 0;
    event->handler = handler;
    event->context = context;
    event->next = NULL;
}

void timer_event_arm(struct timer_event *event, uint64_t tsc_deadline) {
    uint64_t flags = read_rflags();
    cli();
    uint64_t old_head = events != NULL ? events->deadline : 0;
    unlink_event(event);
    if (tsc_deadline != 0) {
        struct timer_event **link = &events;
        while (*link != NULL && (*link)->deadline <= tsc_deadline) {
            link = &(*link)->next;
        }
        event->deadline = tsc_deadline;
        event->next = *link;
        *link = event;
    }
    // The hardware only needs touching when the earliest deadline changed.
    if ((events != NULL ? events->deadline : 0) != old_head) {
        reprogram();
    }
    if (flags & RFLAGS_IF) {
        sti();
    }
}

void timer_event_cancel(struct timer_event *event) {
    timer_event_arm(event, 0);
}

void timer_sleep_until(uint64_t tsc_deadline) {
    cli();
    // While the boot's calibration window is open the countdown is the measurement and no
    // deadline can be armed (a device probe waiting for its first reply gets here): spin,
    // as without a timer; the caller loops until its deadline.
    if (mode == TIMER_NONE || calibration.pending) {
        sti();
        cpu_relax();
        return;
    }
    if (rdtsc() < tsc_deadline) {
        sleep_deadline = tsc_deadline;
        reprogram();
        smp_idle_halt();
    } else {
        sti();
    }
}
