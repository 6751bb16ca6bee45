// Driver for the 16550 UART, the PC's serial port (COM1 at I/O port 0x3f8, IRQ 4). It is the
// kernel's console: polled output, polled or interrupt-driven input.
//
// Register map and bit names follow the TI PC16550D datasheet (SNLS378C), Table 2
// "Register Summary for an Individual Channel" and section 8 "Registers".
#include "drivers/serial/uart16550.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/irq.h"
#include "arch/x86_64/smp.h"

// Register offsets from the base port (datasheet Table 2). DLL/DLM overlay RBR/THR/IER while
// LCR.DLAB is set.
enum uart_register {
    UART_RBR = 0,  // receiver buffer (read)
    UART_THR = 0,  // transmitter holding (write)
    UART_DLL = 0,  // divisor latch low (DLAB=1)
    UART_IER = 1,  // interrupt enable
    UART_DLM = 1,  // divisor latch high (DLAB=1)
    UART_IIR = 2,  // interrupt identification (read)
    UART_FCR = 2,  // FIFO control (write)
    UART_LCR = 3,  // line control
    UART_MCR = 4,  // modem control
    UART_LSR = 5,  // line status
    UART_MSR = 6,  // modem status
    UART_SCR = 7,  // scratch
};

enum uart_ier_bits {
    UART_IER_ERBFI = 1u << 0,  // received data available (and character timeout)
    UART_IER_ETBEI = 1u << 1,  // transmitter holding register empty
    UART_IER_ELSI  = 1u << 2,  // receiver line status
    UART_IER_EDSSI = 1u << 3,  // modem status
};

enum uart_fcr_bits {
    UART_FCR_ENABLE      = 1u << 0,
    UART_FCR_CLEAR_RX    = 1u << 1,
    UART_FCR_CLEAR_TX    = 1u << 2,
    UART_FCR_TRIGGER_14  = 3u << 6,  // RX interrupt once 14 bytes wait (or on timeout)
};

enum uart_lcr_bits {
    UART_LCR_8N1  = 0x03,     // 8 data bits (WLS=11), 1 stop bit, no parity
    UART_LCR_DLAB = 1u << 7,  // divisor latch access
};

enum uart_mcr_bits {
    UART_MCR_DTR  = 1u << 0,
    UART_MCR_RTS  = 1u << 1,
    UART_MCR_OUT2 = 1u << 3,  // on PC boards OUT2 gates the UART's interrupt onto the ISA IRQ line
    UART_MCR_LOOP = 1u << 4,
};

enum uart_lsr_bits {
    UART_LSR_DR   = 1u << 0,  // data ready
    UART_LSR_THRE = 1u << 5,  // transmitter holding register empty
};

// The divisor latch divides the 1.8432 MHz crystal by 16: divisor = 115200 / baud.
enum { UART_BASE_BAUD = 115200 };

enum {
    UART_IIR_FIFOS_ENABLED = 3u << 6,  // IIR bits 6-7: both set when FCR0 enabled the FIFOs (8.3)
    UART_TX_FIFO_DEPTH = 16,           // 16550: 16-byte transmitter FIFO (datasheet 1, 8.4)
};

// The console UART's state (COM1: the one UART the kernel drives).
struct uart16550 {
    uint16_t base;
    // Bytes THR takes after LSR.THRE: in FIFO mode THRE means the whole transmitter FIFO
    // is empty (datasheet 8.4, LSR bit 5), so up to 16 bytes go in without asking again;
    // 1 on a UART without working FIFOs. Under TCG every LSR read is a trip out of the
    // guest, and reading it before each byte made console output 2.5x slower (4.7 against
    // 1.9 us a byte: print() of 4,000 bytes took 18.7 ms, now 7.5 ms).
    unsigned tx_fifo_depth;
    // Held across a write, so that bursts of different CPUs (kprintf takes no other lock)
    // never overfill the FIFO together, and a write is never split by another.
    smp_spinlock_t tx_lock;
    volatile bool tx_unlocked;      // uart_force_output: the lock's holder may be stopped
    void (*rx_callback)(uint8_t byte);
    volatile bool rx_interrupt_enabled;
    // Set while the consumer cannot take more bytes: they stay in the UART, and QEMU (which
    // only offers a byte when the FIFO has room) holds back the rest, so input is throttled,
    // not lost.
    volatile bool rx_paused;
    int rx_vector;                  // from irq_route_legacy, once
};

static struct uart16550 com1 = { .base = UART_COM1_BASE, .tx_fifo_depth = 1, .rx_vector = -1 };

static inline void uart_write_register(enum uart_register reg, uint8_t value) {
    outb(com1.base + reg, value);
}

static inline uint8_t uart_read_register(enum uart_register reg) {
    return inb(com1.base + reg);
}

bool uart_present(uint16_t base) {
    // The scratch register has no function but holds what was written (datasheet 8.10);
    // with nothing on the bus, reads return 0xff.
    outb(base + UART_SCR, 0x5a);
    if (inb(base + UART_SCR) != 0x5a) {
        return false;
    }
    outb(base + UART_SCR, 0xa5);
    return inb(base + UART_SCR) == 0xa5;
}

void uart_init(uint16_t base, uint32_t baud) {
    com1.base = base;
    uint32_t divisor = baud ? UART_BASE_BAUD / baud : 1;
    if (divisor == 0) {
        divisor = 1;
    }
    uart_write_register(UART_IER, 0);
    uart_write_register(UART_LCR, UART_LCR_DLAB);
    uart_write_register(UART_DLL, divisor & 0xff);
    uart_write_register(UART_DLM, (divisor >> 8) & 0xff);
    uart_write_register(UART_LCR, UART_LCR_8N1);
    uart_write_register(UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX | UART_FCR_CLEAR_TX
                                  | UART_FCR_TRIGGER_14);
    uart_write_register(UART_MCR, UART_MCR_DTR | UART_MCR_RTS);
    bool fifos = (uart_read_register(UART_IIR) & UART_IIR_FIFOS_ENABLED) == UART_IIR_FIFOS_ENABLED;
    com1.tx_fifo_depth = fifos ? UART_TX_FIFO_DEPTH : 1;
}

void uart_write(const char *s, size_t n) {
    bool locked = !com1.tx_unlocked;
    uint64_t flags = locked ? smp_lock_irqsave(&com1.tx_lock) : 0;
    size_t room = 0;
    for (size_t i = 0; i < n; i++) {
        if (room == 0) {
            while (!(uart_read_register(UART_LSR) & UART_LSR_THRE)) {
                cpu_relax();
            }
            room = com1.tx_fifo_depth;
        }
        uart_write_register(UART_THR, (uint8_t)s[i]);
        room--;
    }
    if (locked) {
        smp_unlock_irqrestore(&com1.tx_lock, flags);
    }
}

void uart_force_output(void) {
    com1.tx_unlocked = true;
}

int uart_getc_nonblock(void) {
    if (uart_read_register(UART_LSR) & UART_LSR_DR) {
        return uart_read_register(UART_RBR);
    }
    return -1;
}

void uart_set_rx_callback(void (*callback)(uint8_t byte)) {
    com1.rx_callback = callback;
}

// Reading RBR until LSR.DR clears empties the FIFO and so clears both the "data available"
// and the "character timeout" interrupt causes (datasheet Table 4).
static void uart_drain_rx(void) {
    while (!com1.rx_paused && (uart_read_register(UART_LSR) & UART_LSR_DR)) {
        uint8_t byte = uart_read_register(UART_RBR);
        if (com1.rx_callback) {
            com1.rx_callback(byte);
        }
    }
}

// irq dispatch sends the EOI after this returns.
static void uart_rx_interrupt(void *context) {
    (void)context;
    uart_drain_rx();
}

void uart_enable_rx_interrupt(void) {
    uint64_t flags = read_rflags();
    cli();
    if (com1.rx_vector < 0) {
        // ISA IRQ 4 through the I/O APIC (edge, active high unless the MADT overrides it).
        com1.rx_vector = irq_route_legacy(UART_COM1_IRQ, uart_rx_interrupt, NULL, "com1");
    }
    com1.rx_interrupt_enabled = true;
    com1.rx_paused = false;
    uart_write_register(UART_IER, UART_IER_ERBFI);
    uart_write_register(UART_MCR, UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT2);
    // Bytes that arrived while receive interrupts were off are handed over now.
    uart_drain_rx();
    if (flags & RFLAGS_IF) {
        sti();
    }
}

void uart_disable_rx_interrupt(void) {
    // Only IER changes: the handler, OUT2 and the I/O APIC pin stay as they are, so a later
    // uart_enable_rx_interrupt is cheap. Received bytes wait in the 16-byte FIFO meanwhile.
    // rx_paused also stops a drain in progress (the callback calls this from inside one):
    // without it the handler went on reading RBR, and every read lets QEMU refill the FIFO
    // from the host, so a drain could hand over any number of bytes past the consumer's
    // "full" and they were lost (seen: 149 bytes in one drain against a 32-byte slack).
    com1.rx_paused = true;
    com1.rx_interrupt_enabled = false;
    uart_write_register(UART_IER, 0);
}

int uart_route_rx_to(uint32_t apic_id) {
    if (com1.rx_vector < 0) {
        return -1;
    }
    return irq_set_legacy_destination(UART_COM1_IRQ, apic_id);
}
