// State shared between the files of the manticore port.
#ifndef MICROPY_INCLUDED_MANTICORE_MANTICORE_H
#define MICROPY_INCLUDED_MANTICORE_MANTICORE_H

#include <stdint.h>

#define CHAR_CTRL_D (4)

// The CPU's brand string (CPUID leaves 0x80000002-4), for the banner and machine.
extern char manticore_cpu_brand[49];
// Where the kernel command line came from: "boot loader" or "fw_cfg".
extern const char *manticore_cmdline_source;
// The last byte the REPL read from the console (tells Ctrl-D from sys.exit()).
extern volatile int mp_hal_last_rx_char;

// 64 bits of entropy: virtio-rng when present, else RDSEED/RDRAND, else the TSC (modos.c).
uint64_t manticore_random_seed(void);
// n bytes of the same sources, for os.urandom and mbedTLS (modos.c).
#include <stddef.h>
void manticore_entropy(void *buf, size_t n);

// modkernel.c: the REPL's idle hook (runs the kernel's event loop while the REPL waits for
// input; false when there is none or it is already running), the console input callback
// (called by the receive interrupt), and the state reset at each soft reset.
#include <stdbool.h>
bool manticore_run_idle_hook(void);
void manticore_console_input_irq(void);
void manticore_kernel_reset(void);
// modsmp.c: channels and the app board (shared by all CPUs), the wake-up handler.
void manticore_smp_init(void);
void manticore_smp_reset(void);
// nativecode.c: executable memory for the native emitters, one area per CPU.
void manticore_native_setup(unsigned cpus);
void manticore_native_reset(void);
// The next byte of console input, or -1 (mphalport.c).
int mp_hal_console_pop(void);

#endif // MICROPY_INCLUDED_MANTICORE_MANTICORE_H
