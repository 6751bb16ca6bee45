// The hand-over from the architecture layer to the rest of the kernel: arch_start64 (called by
// boot.S in 64-bit mode) initializes the CPU tables and boot services and then calls the
// port's kernel_main.
#include "arch/x86_64/start.h"

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/boottrace.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/interrupts.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/irq.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/stack_protector.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/pic.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/timer.h"
#include "arch/x86_64/tsc.h"
#include "drivers/serial/uart16550.h"

// One boot line for the platform, e.g. "acpi: 2 CPUs, 1 I/O APIC, ECAM 0xb0000000 buses
// 0-255, x2apic, timer tsc-deadline, TSC 2400 MHz (hpet)".
static void print_platform_line(void) {
    kprintf("acpi: %d CPU%s, %d I/O APIC%s", acpi_info.cpu_count,
            acpi_info.cpu_count == 1 ? "" : "s", ioapic_count(), ioapic_count() == 1 ? "" : "s");
    for (int i = 0; i < acpi_info.ecam_count; i++) {
        kprintf(", ECAM 0x%lx buses %u-%u", (unsigned long)acpi_info.ecam[i].base,
                acpi_info.ecam[i].bus_start, acpi_info.ecam[i].bus_end);
    }
    if (acpi_info.ecam_count == 0) {
        kprintf(", legacy PCI config");
    }
    kprintf(", %s, timer %s, TSC %lu MHz (%s)\n",
            !lapic_enabled() ? "no local APIC" : lapic_x2apic() ? "x2apic" : "xapic",
            timer_mode(), (unsigned long)(tsc_hz / 1000000), tsc_calibration_source);
}

// On entry to kernel_main:
//  - 64-bit mode on the 256 KiB kernel stack (guard page below it unmapped), SSE enabled;
//  - COM1 programmed for 115200 8N1 (polled; uart_enable_rx_interrupt for interrupts);
//  - GDT, TSS (IST stacks for #DF, NMI, #MC) and IDT loaded: exceptions panic with a report;
//  - boot_info filled in; page tables as described in paging.c;
//  - tsc_hz provisional (within ~1%): the TSC and the LAPIC timer are being measured against
//    a reference clock while the boot goes on, and kernel_main must call
//    arch_calibration_finish before anything needs exact time (other CPUs, interrupts,
//    Python; it prints the platform line);
//  - ACPI tables parsed (acpi_info); the boot CPU's local APIC enabled (x2APIC if offered);
//    every I/O APIC pin masked; the 8259 PICs remapped to 0x20-0x2f and fully masked (they
//    deliver legacy IRQs only on a machine without an I/O APIC); the irq vector allocator
//    ready; the one-shot LAPIC timer set up but not armed (tickless);
//  - only the boot CPU runs; smp_init has listed the others (the port starts them with
//    smp_start_aps once it has carved their memory);
//  - interrupts still disabled (the port decides when to `sti`).
//
// Platform order: the PIC is remapped first (so a stray 8259 interrupt cannot land on an
// exception vector), ACPI next (it says where the HPET and the APICs are), the TSC's
// calibration begins (against the HPET when there is one) before the LAPIC timer's, which
// is measured against the TSC, the local APIC before the I/O APIC (redirection entries name its id),
// irq_init masks the 8259 once the APIC path exists, and the timer allocates its vector
// from irq.
void arch_calibration_finish(void) {
    tsc_calibrate_finish();
    timer_calibrate_finish();   // the LAPIC timer's rate is measured in TSC ticks
    boottrace_mark("calibration");
    print_platform_line();
}

void arch_start64(uint32_t magic, uint64_t info) {
    stack_protector_init();       // before any protected function that returns
    boottrace_mark_at("loader", boot_entry_tsc);  // QEMU's setup, firmware, boot loader
    boottrace_mark("entry");      // boot.S: .bss zeroed, boot page tables, long mode
    smp_save_percpu_template();   // before anything changes the boot CPU's copy
    uart_init(UART_COM1_BASE, 115200);
    stack_protector_report();
    gdt_init();
    idt_init();
    boot_info_parse(magic, info);
    paging_init();
    boottrace_mark("paging");
    pic_init();
    acpi_init();
    boottrace_mark("acpi");
    tsc_calibrate_begin();
    boottrace_mark("tsc");
    lapic_init();
    ioapic_init();
    irq_init();
    timer_init();
    boottrace_mark("apic+timer");
    smp_init();
    kernel_main();
    panic("kernel_main returned");
}
