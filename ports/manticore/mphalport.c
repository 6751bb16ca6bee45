// The HAL: serial console with an interrupt-fed receive ring, TSC time, idle and atomics.
#include <string.h>

#include "py/runtime.h"
#include "py/stream.h"
#include "py/mphal.h"
#include "shared/runtime/interrupt_char.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/rtc.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/timer.h"
#include "arch/x86_64/tsc.h"
#include "drivers/serial/uart16550.h"
#include "ports/manticore/manticore.h"

volatile int mp_hal_last_rx_char = -1;

// ---------------------------------------------------------------------------------------
// Console input.
//
// The UART's receive interrupt pushes bytes into this ring; the REPL pops them. When the ring
// is nearly full the receive interrupt is switched off, so the bytes wait in the UART and
// QEMU holds back the rest (it only offers a byte when the FIFO has room): fast input is
// throttled, never dropped. The slack covers one 16-byte FIFO drained after the switch-off.

#define RX_RING_SIZE (4096)
#define RX_RING_SLACK (32)

static uint8_t rx_ring[RX_RING_SIZE];
static volatile uint32_t rx_head; // written by the interrupt handler
static volatile uint32_t rx_tail; // written by the reader
static volatile bool rx_throttled;

static uint32_t rx_ring_used(void) {
    return rx_head - rx_tail;
}

static void console_rx_byte(uint8_t byte) {
    if (byte == mp_interrupt_char) {
        // Ctrl-C: raise KeyboardInterrupt in whatever Python code runs now, at the next
        // bytecode branch; pending input before it is discarded as a terminal would.
        rx_tail = rx_head;
        mp_sched_keyboard_interrupt();
        return;
    }
    if (rx_ring_used() < RX_RING_SIZE) {
        rx_ring[rx_head % RX_RING_SIZE] = byte;
        rx_head++;
    }
    // When an app owns the console (the kernel's "console" device), wake it (modkernel.c).
    manticore_console_input_irq();
    if (RX_RING_SIZE - rx_ring_used() <= RX_RING_SLACK && !rx_throttled) {
        rx_throttled = true;
        uart_disable_rx_interrupt();
    }
}

// The CPU that reads the console and runs the REPL (CPU 0 unless replcpu= moved it).
volatile unsigned mp_hal_console_cpu;

int mp_hal_console_move(unsigned cpu) {
    // The route and mp_hal_console_cpu change together: two moves at once must not leave the
    // interrupt on one CPU and the REPL on another.
    static smp_spinlock_t move_lock;
    smp_lock(&move_lock);
    // Without an I/O APIC (8259 only) the interrupt reaches CPU 0 whatever is asked.
    int result = -1;
    if (uart_route_rx_to(smp_apic_id(cpu)) == 0 || cpu == 0) {
        mp_hal_console_cpu = cpu;
        result = 0;
    }
    smp_unlock(&move_lock);
    return result;
}

void mp_hal_console_init(void) {
    uart_set_rx_callback(console_rx_byte);
    uart_enable_rx_interrupt();
}

int mp_hal_console_pop(void) {
    // The ring is the console CPU's: its receive interrupt fills it, its reads empty it. A
    // second reader elsewhere would race it (and the throttle below drains the UART).
    if (smp_cpu_id() != mp_hal_console_cpu) {
        return -1;
    }
    uint64_t state = mp_hal_disable_irq();
    int c = -1;
    if (rx_ring_used() > 0) {
        c = rx_ring[rx_tail % RX_RING_SIZE];
        rx_tail++;
    }
    if (rx_throttled && RX_RING_SIZE - rx_ring_used() > RX_RING_SIZE / 2) {
        rx_throttled = false;
        uart_enable_rx_interrupt();
    }
    mp_hal_restore_irq(state);
    return c;
}

void mp_hal_console_require_input_here(void) {
    if (smp_cpu_id() != mp_hal_console_cpu) {
        mp_raise_msg_varg(&mp_type_OSError, MP_ERROR_TEXT("console input is CPU %u's"),
            mp_hal_console_cpu);
    }
}

int mp_hal_stdin_rx_chr(void) {
    for (;;) {
        if (mp_interrupt_char != -1) {
            // input() in running code, on a CPU the console is not on: no byte would ever
            // come (the receive interrupt goes to the console CPU), so say so. (The REPL's own
            // read, interrupt character off, only gets here if the console moved away while
            // it waited: it waits for the console to come back.)
            mp_hal_console_require_input_here();
        }
        int c = mp_hal_console_pop();
        if (c < 0) {
            c = manticore_netrepl_rx_chr();   // the REPL over TCP, os.dupterm (netrepl.c)
        }
        if (c >= 0) {
            mp_hal_last_rx_char = c;
            return c;
        }
        // The REPL waits for a key: the kernel's event loop runs meanwhile (the idle hook
        // returns once input is there), else just sleep.
        if (manticore_run_idle_hook()) {
            continue;
        }
        // Runs pending callbacks (and raises a pending KeyboardInterrupt), then sleeps
        // until the next interrupt.
        mp_event_wait_indefinite();
    }
}

uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) {
    uintptr_t ret = 0;
    bool here = smp_cpu_id() == mp_hal_console_cpu;
    if ((poll_flags & MP_STREAM_POLL_RD) && here && (rx_ring_used() > 0 || manticore_netrepl_rx_pending())) {
        ret |= MP_STREAM_POLL_RD;
    }
    if ((poll_flags & MP_STREAM_POLL_RD) && !here && mp_interrupt_char != -1) {
        // Running code (an app, a command) polling stdin where the console is not: no byte
        // will ever come here (the receive interrupt is the console CPU's). An error wakes
        // the poller (asyncio's StreamReader, select.poll), and the read that follows says
        // why: "console input is CPU k's" (mp_hal_stdin_rx_chr). The REPL's own wait, with
        // the interrupt character off, still waits for the console to come back.
        ret |= MP_STREAM_POLL_ERR;
    }
    if (poll_flags & MP_STREAM_POLL_WR) {
        ret |= MP_STREAM_POLL_WR;
    }
    return ret;
}

// Every CPU prints to the one console: a lock keeps each write whole. The console CPU (the
// REPL's) writes through at once; the others collect a line first (print() writes its text and its
// newline separately), so that lines from different CPUs never mix. A partial line is
// written when the buffer fills or before the CPU halts.
#define AP_LINE_MAX (256)
static smp_spinlock_t console_tx_lock;
static PER_CPU char ap_line[AP_LINE_MAX];
static PER_CPU size_t ap_line_len;

static void console_write(const char *str, size_t len) {
    uint64_t flags = smp_lock_irqsave(&console_tx_lock);
    uart_write(str, len);
    smp_unlock_irqrestore(&console_tx_lock, flags);
}

static void ap_line_flush(void) {
    if (ap_line_len > 0) {
        console_write(ap_line, ap_line_len);
        ap_line_len = 0;
    }
}

mp_uint_t mp_hal_stdout_tx_strn(const char *str, size_t len) {
    if (smp_cpu_id() == mp_hal_console_cpu) {
        ap_line_flush();
        console_write(str, len);
        manticore_netrepl_tx(str, len);
        return len;
    }
    for (size_t i = 0; i < len; i++) {
        ap_line[ap_line_len++] = str[i];
        if (str[i] == '\n' || ap_line_len == AP_LINE_MAX) {
            ap_line_flush();
        }
    }
    return len;
}

// ---------------------------------------------------------------------------------------
// Time, from the TSC (calibrated at boot).

mp_uint_t mp_hal_ticks_cpu(void) {
    return (mp_uint_t)tsc_read();
}

mp_uint_t mp_hal_ticks_us(void) {
    return (mp_uint_t)tsc_to_us(tsc_read());
}

mp_uint_t mp_hal_ticks_ms(void) {
    return (mp_uint_t)(tsc_to_us(tsc_read()) / 1000);
}

// The wall clock: the CMOS RTC, read on the first call (time.time(), a FAT timestamp, a
// certificate's validity) and then advanced by the TSC. Not read at boot: a boot that never
// asks the time does not pay for it (~190 guest instructions to translate and ~40 port
// reads, ~0.3 ms of a TCG boot: boottrace). Whichever CPU asks first reads it, under the
// lock: the RTC's index and data ports are a pair.
static struct {
    smp_spinlock_t lock;
    volatile bool known;
    int64_t unix_minus_uptime_us;   // Unix time at uptime 0 (whole RTC seconds: <= 1 s behind)
} wall_clock;

uint64_t mp_hal_time_ns(void) {
    if (!__atomic_load_n(&wall_clock.known, __ATOMIC_ACQUIRE)) {
        uint64_t flags = smp_lock_irqsave(&wall_clock.lock);
        if (!wall_clock.known) {
            // -1 when the RTC cannot be read (microvm,rtc=off): the clock then starts at
            // 1970-01-01 00:00 at boot. (Taking -1 as seconds made it negative for a second,
            // which read as the year 2554.)
            int64_t rtc_seconds = rtc_read_unix_time();
            wall_clock.unix_minus_uptime_us = rtc_seconds < 0 ? 0
                : rtc_seconds * 1000000 - (int64_t)mp_hal_ticks_us();
            __atomic_store_n(&wall_clock.known, true, __ATOMIC_RELEASE);
        }
        smp_unlock_irqrestore(&wall_clock.lock, flags);
    }
    return (uint64_t)(wall_clock.unix_minus_uptime_us + (int64_t)mp_hal_ticks_us()) * 1000ULL;
}

// ---------------------------------------------------------------------------------------
// Sleeping: halt the CPU until the LAPIC timer (armed for the deadline) or another interrupt
// wakes it. Tickless: nothing fires unless a sleep armed the timer.

static uint64_t deadline_after_us(uint64_t us) {
    return tsc_read() + (us / 1000000) * tsc_hz + (us % 1000000) * tsc_hz / 1000000;
}

// Whether the caller has work waiting: input for the REPL, or a scheduled callback or
// KeyboardInterrupt. Called with interrupts disabled, so nothing can slip in before the halt.
static bool work_pending(bool console_input) {
    // Console input is the console CPU's (its interrupt is routed there, the REPL is there).
    console_input = console_input && smp_cpu_id() == mp_hal_console_cpu;
    return (console_input && rx_ring_used() > 0) || MP_STATE_VM(sched_state) != MP_SCHED_IDLE;
}

// One halt, at most until `deadline`: returns when it passed or any interrupt arrived (the
// caller loops). With interrupts disabled by the caller (machine.disable_irq()) it must not
// enable them, so it spins instead.
static void halt_until(uint64_t deadline, bool console_input) {
    if (!interrupts_enabled()) {
        cpu_relax();
        return;
    }
    cli();
    if (work_pending(console_input)) {
        sti();
        return;
    }
    timer_sleep_until(deadline);   // arm; sti; hlt (returns with interrupts enabled)
}

void mp_hal_delay_us(mp_uint_t us) {
    // Short waits spin: a halt and its timer interrupt cost more than a few microseconds.
    if (us < 100) {
        tsc_delay_us(us);
        return;
    }
    uint64_t deadline = deadline_after_us(us);
    while (tsc_read() < deadline) {
        halt_until(deadline, false);
    }
}

void mp_hal_delay_ms(mp_uint_t ms) {
    // Stay responsive during long sleeps: Ctrl-C and scheduled callbacks run between halts.
    uint64_t deadline = deadline_after_us((uint64_t)ms * 1000);
    for (;;) {
        mp_event_handle_nowait();
        if (tsc_read() >= deadline) {
            break;
        }
        halt_until(deadline, false);
    }
}

// ---------------------------------------------------------------------------------------
// Idle and atomics.

static PER_CPU bool event_signalled;   // each CPU's interpreter waits on its own

void mp_hal_signal_event(void) {
    event_signalled = true;
}

// MICROPY_INTERNAL_WFE: wait for an interrupt, at most timeout_ms (< 0: no limit). The core
// calls it after running pending callbacks (mp_event_wait_*); select.poll and asyncio sleeps
// end up here. When those callbacks signalled an event, return without halting: what they
// did (data for a socket) is what the caller waits for, and no further interrupt may come.
void mp_hal_wait_for_event(int timeout_ms) {
    if (event_signalled) {
        event_signalled = false;
        return;
    }
    if (timeout_ms == 0) {
        return;
    }
    ap_line_flush();
    if (timeout_ms < 0) {
        // Check for work with interrupts masked, then "sti; hlt" back to back: STI delays
        // interrupt delivery by one instruction (Intel SDM vol. 3A, section 6.8.3), so an
        // interrupt arriving after the check still wakes the HLT instead of being missed.
        if (!interrupts_enabled()) {
            cpu_relax();
            return;
        }
        cli();
        if (work_pending(true)) {
            sti();
        } else {
            smp_idle_halt();   // sti; hlt, counted as idle time
        }
        return;
    }
    halt_until(deadline_after_us((uint64_t)timeout_ms * 1000), true);
}

uint64_t mp_hal_disable_irq(void) {
    uint64_t rflags;
    __asm__ volatile ("pushfq; pop %0; cli" : "=r" (rflags) :: "memory");
    return rflags;
}

void mp_hal_restore_irq(uint64_t state) {
    // RFLAGS.IF is bit 9 (Intel SDM vol. 1, section 3.4.3).
    if (state & (1 << 9)) {
        __asm__ volatile ("sti" ::: "memory");
    }
}

// The random module's seed: virtio-rng, else RDSEED/RDRAND, else the TSC (modos.c).
uint64_t mp_hal_random_seed(void) {
    return manticore_random_seed();
}
