// The port's part of the machine module, included by extmod/modmachine.c through
// MICROPY_PY_MACHINE_INCLUDEFILE.
#include <string.h>

#include "py/mphal.h"

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/power.h"
#include "arch/x86_64/tsc.h"
#include "ports/manticore/manticore.h"

static void mp_machine_idle(void) {
    mp_hal_wait_for_event(-1);
}

NORETURN static void mp_machine_reset(void) {
    power_reset();
    panic("machine.reset(): no reset method worked");
}

static mp_int_t mp_machine_reset_cause(void) {
    return 0;
}

static mp_obj_t mp_machine_unique_id(void) {
    return mp_obj_new_bytes((const byte *)manticore_cpu_brand, strlen(manticore_cpu_brand));
}

static mp_obj_t mp_machine_get_freq(void) {
    return mp_obj_new_int_from_ull(tsc_hz);
}

static void mp_machine_set_freq(size_t n_args, const mp_obj_t *args) {
    mp_raise_NotImplementedError(MP_ERROR_TEXT("the CPU frequency is fixed"));
}

static void mp_machine_lightsleep(size_t n_args, const mp_obj_t *args) {
    if (n_args == 0) {
        mp_hal_wait_for_event(-1);
    } else {
        mp_hal_delay_ms(mp_obj_get_int(args[0]));
    }
}

NORETURN static void mp_machine_deepsleep(size_t n_args, const mp_obj_t *args) {
    power_off();
}

// machine.poweroff(): ACPI soft-off (S5); QEMU exits with status 0.
static mp_obj_t machine_poweroff(void) {
    mp_printf(&mp_plat_print, "manticore: power off\n");
    power_off();
}
static MP_DEFINE_CONST_FUN_OBJ_0(machine_poweroff_obj, machine_poweroff);

// machine.cmdline(): the kernel command line (from the boot loader, or fw_cfg's
// opt/manticore/cmdline when QEMU provides it).
static mp_obj_t machine_cmdline(void) {
    return mp_obj_new_str(boot_info.cmdline, strlen(boot_info.cmdline));
}
static MP_DEFINE_CONST_FUN_OBJ_0(machine_cmdline_obj, machine_cmdline);
