// Driver for the 16550 UART, the PC's serial port (COM1 at I/O port 0x3f8, IRQ 4). It is the
// kernel's console: polled output, polled or interrupt-driven input.
#ifndef DRIVERS_SERIAL_UART16550_H
#define DRIVERS_SERIAL_UART16550_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    UART_COM1_BASE = 0x3f8,
    UART_COM1_IRQ = 4,      // ISA IRQ; irq_route_legacy picks the vector
};

// True when a 16550-compatible UART answers at `base` (its scratch register holds a value).
bool uart_present(uint16_t base);

// Program the UART at `base` for `baud` 8N1 with FIFOs on, receive interrupts off, and make
// it the console UART used by the functions below. Safe to call again (e.g. on soft reset).
void uart_init(uint16_t base, uint32_t baud);

// Write one byte, waiting until the transmit holding register is empty. No translation:
// the caller turns "\n" into "\r\n" where it wants that.
// Waits for room in the transmitter FIFO; the write goes out whole, never mixed with another
// CPU's (a lock, taken with interrupts off).
void uart_write(const char *s, size_t n);
// From now on writes take no lock: the panic report, once the other CPUs are stopped (one may
// have stopped while holding it).
void uart_force_output(void);

// The next received byte, or -1 when none is waiting.
int uart_getc_nonblock(void);

// Receive by interrupt: the callback runs in interrupt context (interrupts disabled) once
// per received byte. Set the callback first, then enable; the first enable routes ISA IRQ 4
// through the I/O APIC (irq_route_legacy, after irq_init), and every enable sets IER.ERBFI and
// MCR.OUT2. The caller still has to `sti`.
void uart_set_rx_callback(void (*callback)(uint8_t byte));
void uart_enable_rx_interrupt(void);

// Stop receive interrupts (flow control; callable from the callback itself, which then is not
// called again until uart_enable_rx_interrupt). Bytes wait in the UART's FIFO meanwhile;
// enabling again first delivers whatever is waiting.
void uart_disable_rx_interrupt(void);

// Deliver the receive interrupt to the CPU with local APIC id `apic_id` (the one that runs
// the REPL). Returns 0, or -1 when the interrupt is not routed through an I/O APIC.
int uart_route_rx_to(uint32_t apic_id);

#endif
