// Hardware abstraction for MicroPython's core on manticore: console, time and interrupts.
#ifndef MICROPY_INCLUDED_MANTICORE_MPHALPORT_H
#define MICROPY_INCLUDED_MANTICORE_MPHALPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "shared/runtime/interrupt_char.h"

// The REPL over TCP and os.dupterm streams beside the serial console (netrepl.c): the next
// byte they received (-1: none), whether one is waiting, and a copy of the REPL's output.
int manticore_netrepl_rx_chr(void);
bool manticore_netrepl_rx_pending(void);
void manticore_netrepl_tx(const char *str, size_t len);

void mp_hal_console_init(void);
void mp_hal_set_interrupt_char(int c);

mp_uint_t mp_hal_ticks_ms(void);
mp_uint_t mp_hal_ticks_us(void);
mp_uint_t mp_hal_ticks_cpu(void);
uint64_t mp_hal_time_ns(void);
void mp_hal_delay_ms(mp_uint_t ms);
void mp_hal_delay_us(mp_uint_t us);

// The wait latch, like the event register that ARM's SEV/WFE use: work done in thread context
// that may have made a waited-for condition true (a soft IRQ handing frames to a socket) calls
// mp_hal_signal_event, and the next MICROPY_INTERNAL_WFE returns at once instead of halting,
// so the waiting loop (select.poll, a blocking recv) re-checks its condition first.
void mp_hal_signal_event(void);

// The CPU that owns the console (reads it, runs the REPL); mp_hal_console_move hands it to
// another CPU, routing the serial interrupt there. Returns 0, or -1 if it cannot.
extern volatile unsigned mp_hal_console_cpu;
int mp_hal_console_move(unsigned cpu);
// OSError("console input is CPU k's") unless this CPU is the console's: its receive
// interrupt and ring are that CPU's alone.
void mp_hal_console_require_input_here(void);

#endif // MICROPY_INCLUDED_MANTICORE_MPHALPORT_H
