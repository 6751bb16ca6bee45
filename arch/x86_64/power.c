// Turning the machine off and resetting it: ACPI soft-off (sleep state S5) through the FADT's
// PM1 control registers or, on hardware-reduced ACPI (microvm), its sleep control register;
// resets through the FADT reset register or the legacy chipset ports.
//
// The tables are parsed once by acpi.c (FADT 5.2.9, \_S5 from the DSDT 7.4.2); this file
// only writes the registers: PM1 control bits (ACPI 6.5, 4.8.4.2, Table 4.13) and the sleep
// control register (4.8.3.7).
#include "arch/x86_64/power.h"

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/tsc.h"

// PM1 control register (Table 4.13) and sleep control register (Table 4.21) fields.
enum sleep_bits {
    PM1_SLP_TYP_SHIFT = 10,
    PM1_SLP_EN = 1u << 13,
    SLEEP_CONTROL_SLP_TYP_SHIFT = 2,
    SLEEP_CONTROL_SLP_EN = 1u << 5,
};

// QEMU's fixed values: pc (PIIX4) and q35 (ICH9) firmware put the PM I/O block at 0x600,
// PM1a_CNT at 0x604, and their DSDT's \_S5 is Package {0, 0, ...}.
enum qemu_fallback {
    QEMU_PM1A_CNT = 0x604,
    QEMU_SLP_TYP_S5 = 0,
    KEYBOARD_CONTROLLER_STATUS = 0x64,   // bit 1: input buffer full
    KEYBOARD_CONTROLLER_COMMAND = 0x64,
    KEYBOARD_CONTROLLER_PULSE_RESET = 0xfe,
    RESET_CONTROL_PORT = 0xcf9,          // Intel chipsets' Reset Control Register
    RESET_CONTROL_FULL_RESET = 0x06,     // SYS_RST | RST_CPU
};

// Give the device model a moment to act on a write before trying the next method.
static void settle(void) {
    tsc_delay_us(100000);
}

void power_off(void) {
    cli();
    const struct acpi_info *acpi = &acpi_info;
    if (acpi->has_fadt) {
        if (acpi->hardware_reduced && acpi->sleep_control.address) {
            // HW-reduced platforms have no PM1 blocks; QEMU's GED calls S5 SLP_TYP 5.
            int slp_typ = acpi->slp_typ_a >= 0 ? acpi->slp_typ_a : 5;
            acpi_gas_write(&acpi->sleep_control,
                           ((slp_typ & 7) << SLEEP_CONTROL_SLP_TYP_SHIFT) | SLEEP_CONTROL_SLP_EN);
            settle();
        }
        if (acpi->pm1a_control) {
            int slp_typ_a = acpi->slp_typ_a >= 0 ? acpi->slp_typ_a : QEMU_SLP_TYP_S5;
            int slp_typ_b = acpi->slp_typ_b >= 0 ? acpi->slp_typ_b : slp_typ_a;
            // SLP_TYPa and SLP_TYPb go to their own blocks, PM1b first: writing SLP_EN to
            // PM1a may take effect at once (ACPI 4.8.4.2 and 7.4.2).
            if (acpi->pm1b_control) {
                outw(acpi->pm1b_control, ((slp_typ_b & 7) << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
            }
            uint16_t control = inw(acpi->pm1a_control) & ~(7u << PM1_SLP_TYP_SHIFT);
            outw(acpi->pm1a_control, control | ((slp_typ_a & 7) << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
            settle();
        }
    }
    outw(QEMU_PM1A_CNT, (QEMU_SLP_TYP_S5 << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
    settle();
    debug_exit(0);
    for (;;) {
        cli();
        hlt();
    }
}

static void triple_fault(void) {
    // With an empty IDT the breakpoint cannot be delivered, nor can the resulting #GP and
    // #DF: the CPU shuts down, which the chipset turns into a reset.
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) empty_idt = { 0, 0 };
    __asm__ volatile ("lidt %0; int3" : : "m"(empty_idt) : "memory");
}

void power_reset(void) {
    cli();
    if (acpi_info.has_fadt && acpi_info.reset_supported && acpi_info.reset_register.address) {
        acpi_gas_write(&acpi_info.reset_register, acpi_info.reset_value);
        settle();
    }
    outb(RESET_CONTROL_PORT, 0x02);
    outb(RESET_CONTROL_PORT, RESET_CONTROL_FULL_RESET);
    settle();
    for (int polls = 0; polls < 100000 && (inb(KEYBOARD_CONTROLLER_STATUS) & 0x02); polls++) {
        cpu_relax();
    }
    outb(KEYBOARD_CONTROLLER_COMMAND, KEYBOARD_CONTROLLER_PULSE_RESET);
    settle();
    triple_fault();
}
