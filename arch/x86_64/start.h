// The hand-over from the architecture layer to the rest of the kernel: arch_start64 (called by
// boot.S in 64-bit mode) initializes the CPU tables and boot services and then calls the
// port's kernel_main. Also the linker-script and boot.S symbols others need.
#ifndef ARCH_X86_64_START_H
#define ARCH_X86_64_START_H

#include <stdint.h>

// Defined by the port. Runs on the kernel stack with interrupts disabled; see arch_start64 in
// start.c for what is already set up. Must not return (a return panics).
void kernel_main(void);

// Ends the clock calibration that arch_start64 began (tsc.h, timer.h): tsc_hz and the LAPIC
// timer's rate become exact, and the platform line is printed. The port calls it once, in
// kernel_main, after its own device setup (which the measurement window spans) and before
// starting other CPUs, enabling interrupts or running Python.
void arch_calibration_finish(void);

// Called by boot.S only: `magic` is the Multiboot2 loader magic (EAX) or, for PVH, the first
// word of hvm_start_info; `info` the physical address of the loader's boot information.
void arch_start64(uint32_t magic, uint64_t info) __attribute__((noreturn));

enum {
    KERNEL_STACK_SIZE = 256 * 1024,  // must match boot.S
    KERNEL_LOAD_ADDRESS = 0x100000,  // must match kernel.ld
};

// The boot stack kernel_main runs on: [kernel_stack_bottom, kernel_stack_top), with an
// unmapped guard page [kernel_stack_guard, kernel_stack_bottom) below it after paging_init.
extern char kernel_stack_guard[], kernel_stack_bottom[], kernel_stack_top[];

// Image bounds from kernel.ld; __kernel_end is page aligned and includes .bss.
extern char __kernel_start[], __kernel_end[], __text_start[], __text_end[];
extern char __bss_start[], __bss_end[];
// Page-aligned ends of the text and rodata pages (kernel.ld): [__kernel_start,
// __text_pages_end) is code, [__text_pages_end, __rodata_pages_end) read-only data.
extern char __text_pages_end[], __rodata_pages_end[];

#endif
