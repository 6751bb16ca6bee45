// Turning the machine off and resetting it: ACPI soft-off (sleep state S5) through the FADT's
// PM1 control registers or, on hardware-reduced ACPI (microvm), its sleep control register;
// resets through the FADT reset register or the legacy chipset ports.
#ifndef ARCH_X86_64_POWER_H
#define ARCH_X86_64_POWER_H

// ACPI S5. On QEMU this ends the process with exit status 0. Falls back to QEMU's fixed
// PM1a_CNT port, then isa-debug-exit (status 1), then halts with interrupts off.
void power_off(void) __attribute__((noreturn));

// Reset the machine (QEMU with -no-reboot exits instead). Returns only if every method failed.
void power_reset(void);

#endif
