// The hand-over from the architecture layer to the rest of the kernel: arch_start64 (called by
// boot.S in 64-bit mode) initializes the CPU tables and boot services and then calls the
// port's kernel_main.
#include "arch/x86_64/start.h"

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/interrupts.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/pic.h"
#include "arch/x86_64/tsc.h"
#include "drivers/serial/uart16550.h"

// On entry to kernel_main:
//  - 64-bit mode on the 256 KiB kernel stack (guard page below it unmapped), SSE enabled;
//  - COM1 programmed for 115200 8N1 (polled; uart_enable_rx_interrupt for interrupts);
//  - GDT, TSS (IST stacks for #DF, NMI, #MC) and IDT loaded: exceptions panic with a report;
//  - boot_info filled in; page tables as described in paging.c;
//  - the 8259 PICs remapped to vectors 0x20-0x2f with every line masked;
//  - tsc_hz calibrated;
//  - interrupts still disabled (the port decides when to `sti`).
void arch_start64(uint32_t magic, uint64_t info) {
    uart_init(UART_COM1_BASE, 115200);
    gdt_init();
    idt_init();
    boot_info_parse(magic, info);
    paging_init();
    pic_init();
    tsc_calibrate();
    kernel_main();
    panic("kernel_main returned");
}
