// The acpi module: the firmware tables the kernel found at boot and what it read from them
// (CPUs from the MADT, I/O APICs, interrupt source overrides, PCI Express ECAM regions from
// the MCFG). Also os.cpu_count(), the number of enabled CPUs in the MADT.
//
//   >>> import acpi
//   >>> acpi.tables()
//   [('RSDT', 134209926, 52, 1, 'BOCHS'), ('FACP', ...), ...]
//   >>> acpi.cpus()
//   [0, 1]
#include <string.h>

#include "py/runtime.h"

#include "arch/x86_64/acpi.h"

// acpi.tables(): [(signature, address, length, revision, oem_id)], the root table first;
// tables whose checksum failed are listed but not used.
static mp_obj_t acpi_tables(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < acpi_info.table_count; i++) {
        const struct acpi_table_info *t = &acpi_info.tables[i];
        mp_obj_t item[5] = {
            mp_obj_new_str(t->signature, strlen(t->signature)),
            mp_obj_new_int_from_ull(t->address),
            mp_obj_new_int_from_uint(t->length),
            MP_OBJ_NEW_SMALL_INT(t->revision),
            mp_obj_new_str(t->oem_id, strlen(t->oem_id)),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(5, item));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(acpi_tables_obj, acpi_tables);

// acpi.cpus(): the local APIC ids of the enabled CPUs (only the first one runs).
static mp_obj_t acpi_cpus(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < acpi_info.cpu_count; i++) {
        mp_obj_list_append(list, mp_obj_new_int_from_uint(acpi_info.apic_ids[i]));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(acpi_cpus_obj, acpi_cpus);

// acpi.ioapics(): [(id, address, gsi_base)].
static mp_obj_t acpi_ioapics(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < acpi_info.ioapic_count; i++) {
        const struct acpi_ioapic *io = &acpi_info.ioapics[i];
        mp_obj_t item[3] = {
            MP_OBJ_NEW_SMALL_INT(io->id),
            mp_obj_new_int_from_uint(io->address),
            mp_obj_new_int_from_uint(io->gsi_base),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(3, item));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(acpi_ioapics_obj, acpi_ioapics);

// acpi.overrides(): [(isa_irq, gsi, flags)], flags as MPS INTI flags (ACPI 6.5 Table 5.26).
static mp_obj_t acpi_overrides(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < acpi_info.override_count; i++) {
        const struct acpi_override *o = &acpi_info.overrides[i];
        mp_obj_t item[3] = {
            MP_OBJ_NEW_SMALL_INT(o->source_irq),
            mp_obj_new_int_from_uint(o->gsi),
            MP_OBJ_NEW_SMALL_INT(o->flags),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(3, item));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(acpi_overrides_obj, acpi_overrides);

// acpi.ecam(): [(base, segment, bus_start, bus_end)]; empty without an MCFG.
static mp_obj_t acpi_ecam(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < acpi_info.ecam_count; i++) {
        const struct acpi_ecam *e = &acpi_info.ecam[i];
        mp_obj_t item[4] = {
            mp_obj_new_int_from_ull(e->base),
            MP_OBJ_NEW_SMALL_INT(e->segment),
            MP_OBJ_NEW_SMALL_INT(e->bus_start),
            MP_OBJ_NEW_SMALL_INT(e->bus_end),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(4, item));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(acpi_ecam_obj, acpi_ecam);

static void store(mp_obj_t dict, qstr key, mp_obj_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(key), value);
}

// acpi.info(): the rest of what was parsed (RSDP, MADT flags, FADT power registers, and
// 'mp_table': the MP configuration table's address when the CPUs came from it, else None).
static mp_obj_t acpi_info_fn(void) {
    mp_obj_t dict = mp_obj_new_dict(0);
    store(dict, MP_QSTR_present, mp_obj_new_bool(acpi_info.present));
    store(dict, MP_QSTR_rsdp, mp_obj_new_int_from_ull(acpi_info.rsdp_address));
    store(dict, MP_QSTR_revision, MP_OBJ_NEW_SMALL_INT(acpi_info.revision));
    store(dict, MP_QSTR_madt, mp_obj_new_bool(acpi_info.has_madt));
    store(dict, MP_QSTR_mp_table, acpi_info.mp_table_address
          ? mp_obj_new_int_from_ull(acpi_info.mp_table_address) : mp_const_none);
    store(dict, MP_QSTR_lapic_address, mp_obj_new_int_from_ull(acpi_info.lapic_address));
    store(dict, MP_QSTR_pcat_compat, mp_obj_new_bool(acpi_info.has_8259));
    store(dict, MP_QSTR_online_capable, MP_OBJ_NEW_SMALL_INT(acpi_info.online_capable_count));
    store(dict, MP_QSTR_hardware_reduced, mp_obj_new_bool(acpi_info.hardware_reduced));
    store(dict, MP_QSTR_pm1a_control, MP_OBJ_NEW_SMALL_INT(acpi_info.pm1a_control));
    store(dict, MP_QSTR_pm1b_control, MP_OBJ_NEW_SMALL_INT(acpi_info.pm1b_control));
    store(dict, MP_QSTR_sleep_control, mp_obj_new_int_from_ull(acpi_info.sleep_control.address));
    store(dict, MP_QSTR_reset_register, acpi_info.reset_supported
          ? mp_obj_new_int_from_ull(acpi_info.reset_register.address) : mp_const_none);
    store(dict, MP_QSTR_sci, MP_OBJ_NEW_SMALL_INT(acpi_info.sci_interrupt));
    mp_obj_t s5[2] = { MP_OBJ_NEW_SMALL_INT(acpi_info.slp_typ_a),
                       MP_OBJ_NEW_SMALL_INT(acpi_info.slp_typ_b) };
    store(dict, MP_QSTR_s5, acpi_info.slp_typ_a >= 0 ? mp_obj_new_tuple(2, s5) : mp_const_none);
    return dict;
}
static MP_DEFINE_CONST_FUN_OBJ_0(acpi_info_obj, acpi_info_fn);

static const mp_rom_map_elem_t acpi_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_acpi) },
    { MP_ROM_QSTR(MP_QSTR_tables), MP_ROM_PTR(&acpi_tables_obj) },
    { MP_ROM_QSTR(MP_QSTR_cpus), MP_ROM_PTR(&acpi_cpus_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioapics), MP_ROM_PTR(&acpi_ioapics_obj) },
    { MP_ROM_QSTR(MP_QSTR_overrides), MP_ROM_PTR(&acpi_overrides_obj) },
    { MP_ROM_QSTR(MP_QSTR_ecam), MP_ROM_PTR(&acpi_ecam_obj) },
    { MP_ROM_QSTR(MP_QSTR_info), MP_ROM_PTR(&acpi_info_obj) },
};
static MP_DEFINE_CONST_DICT(acpi_module_globals, acpi_module_globals_table);

const mp_obj_module_t mp_module_acpi = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&acpi_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_acpi, mp_module_acpi);

// os.cpu_count(): extmod/modos.c has a fixed globals table and no hook for extra entries, so
// the name is added by attribute delegation (the mechanism sys uses for sys.ps1): a failed
// lookup on the os module ends here.
static mp_obj_t os_cpu_count(void) {
    return MP_OBJ_NEW_SMALL_INT(acpi_info.cpu_count);
}
static MP_DEFINE_CONST_FUN_OBJ_0(os_cpu_count_obj, os_cpu_count);

extern const mp_obj_module_t mp_module_os;

void manticore_os_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest);

void manticore_os_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest) {
    (void)self_in;
    if (dest[0] == MP_OBJ_NULL && attr == MP_QSTR_cpu_count) {
        dest[0] = MP_OBJ_FROM_PTR(&os_cpu_count_obj);
    } else if (dest[0] == MP_OBJ_NULL && attr == MP_QSTR_sync) {
        extern const mp_obj_fun_builtin_fixed_t blk_os_sync_obj;   // modblk.c
        dest[0] = MP_OBJ_FROM_PTR(&blk_os_sync_obj);
    }
}

MP_REGISTER_MODULE_DELEGATION(mp_module_os, manticore_os_attr);
