// The irq module: what the interrupt hardware is doing. Per-vector interrupt counts with the
// names drivers gave them, the timer's mode, whether the local APIC runs in x2APIC mode and
// how the legacy IRQs are routed.
//
//   >>> import irq
//   >>> irq.counts()
//   {'com1': 12, 'timer': 3, 'spurious': 0}
//   >>> irq.timer_mode()
//   'one-shot'
#include <string.h>

#include "py/runtime.h"

#include "arch/x86_64/interrupts.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/irq.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/timer.h"
#include "arch/x86_64/tsc.h"

static mp_obj_t name_or_vector(int vector) {
    const char *name = irq_name(vector);
    if (vector == LAPIC_SPURIOUS_VECTOR) {
        return MP_OBJ_NEW_QSTR(MP_QSTR_spurious);
    }
    return name ? mp_obj_new_str(name, strlen(name)) : MP_OBJ_NEW_SMALL_INT(vector);
}

// irq.counts(): {name or vector: count} for every external vector that has a handler or has
// fired; two handlers with the same name are told apart by their vector ("name@0x31").
static mp_obj_t irq_counts(void) {
    mp_obj_t dict = mp_obj_new_dict(0);
    for (int vector = FIRST_EXTERNAL_VECTOR; vector < INTERRUPT_VECTOR_COUNT; vector++) {
        uint64_t count = vector == LAPIC_SPURIOUS_VECTOR ? lapic_spurious_count() : irq_count(vector);
        if (count == 0 && irq_name(vector) == NULL && vector != LAPIC_SPURIOUS_VECTOR) {
            continue;
        }
        mp_obj_t key = name_or_vector(vector);
        if (mp_obj_dict_get_map(dict)->used
            && mp_map_lookup(mp_obj_dict_get_map(dict), key, MP_MAP_LOOKUP)) {
            vstr_t vstr;
            vstr_init(&vstr, 16);
            vstr_printf(&vstr, "%s@0x%02x", irq_name(vector), vector);
            key = mp_obj_new_str_from_vstr(&vstr);
        }
        mp_obj_dict_store(dict, key, mp_obj_new_int_from_ull(count));
    }
    return dict;
}
static MP_DEFINE_CONST_FUN_OBJ_0(irq_counts_obj, irq_counts);

// irq.vectors(): [(vector, name or None, count)] for the vectors with a handler.
static mp_obj_t irq_vectors(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int vector = FIRST_EXTERNAL_VECTOR; vector < INTERRUPT_VECTOR_COUNT; vector++) {
        const char *name = irq_name(vector);
        if (name == NULL) {
            continue;
        }
        mp_obj_t item[3] = {
            MP_OBJ_NEW_SMALL_INT(vector),
            mp_obj_new_str(name, strlen(name)),
            mp_obj_new_int_from_ull(irq_count(vector)),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(3, item));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(irq_vectors_obj, irq_vectors);

// irq.timer_mode(): "tsc-deadline", "one-shot" (or "none" without a local APIC).
static mp_obj_t irq_timer_mode(void) {
    const char *mode = timer_mode();
    return mp_obj_new_str(mode, strlen(mode));
}
static MP_DEFINE_CONST_FUN_OBJ_0(irq_timer_mode_obj, irq_timer_mode);

static void store(mp_obj_t dict, qstr key, mp_obj_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(key), value);
}

// irq.info(): a dict describing the interrupt hardware and the timer.
static mp_obj_t irq_info(void) {
    mp_obj_t dict = mp_obj_new_dict(0);
    const char *mode = timer_mode();
    const char *source = tsc_calibration_source;
    store(dict, MP_QSTR_x2apic, mp_obj_new_bool(lapic_x2apic()));
    store(dict, MP_QSTR_apic_id, mp_obj_new_int_from_uint(lapic_id()));
    store(dict, MP_QSTR_apic_version, mp_obj_new_int_from_uint(lapic_version() & 0xff));
    store(dict, MP_QSTR_routing, MP_OBJ_NEW_QSTR(irq_apic_routing() ? MP_QSTR_ioapic : MP_QSTR_8259));
    store(dict, MP_QSTR_timer_mode, mp_obj_new_str(mode, strlen(mode)));
    store(dict, MP_QSTR_timer_vector, MP_OBJ_NEW_SMALL_INT(timer_vector()));
    store(dict, MP_QSTR_timer_count, mp_obj_new_int_from_ull(timer_interrupt_count()));
    store(dict, MP_QSTR_timer_hz, mp_obj_new_int_from_ull(timer_lapic_hz()));
    store(dict, MP_QSTR_tsc_hz, mp_obj_new_int_from_ull(tsc_hz));
    store(dict, MP_QSTR_tsc_source, mp_obj_new_str(source, strlen(source)));
    store(dict, MP_QSTR_spurious, mp_obj_new_int_from_ull(lapic_spurious_count()));
    store(dict, MP_QSTR_unhandled, mp_obj_new_int_from_ull(interrupt_spurious_count));
    mp_obj_t ioapics = mp_obj_new_list(0, NULL);
    for (int i = 0; i < ioapic_count(); i++) {
        mp_obj_t item[2] = {
            MP_OBJ_NEW_SMALL_INT(ioapic_pins(i)), MP_OBJ_NEW_SMALL_INT(ioapic_version(i)),
        };
        mp_obj_list_append(ioapics, mp_obj_new_tuple(2, item));
    }
    store(dict, MP_QSTR_ioapics, ioapics);   // [(pins, version)]
    return dict;
}
static MP_DEFINE_CONST_FUN_OBJ_0(irq_info_obj, irq_info);

static const mp_rom_map_elem_t irq_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_irq) },
    { MP_ROM_QSTR(MP_QSTR_counts), MP_ROM_PTR(&irq_counts_obj) },
    { MP_ROM_QSTR(MP_QSTR_vectors), MP_ROM_PTR(&irq_vectors_obj) },
    { MP_ROM_QSTR(MP_QSTR_timer_mode), MP_ROM_PTR(&irq_timer_mode_obj) },
    { MP_ROM_QSTR(MP_QSTR_info), MP_ROM_PTR(&irq_info_obj) },
};
static MP_DEFINE_CONST_DICT(irq_module_globals, irq_module_globals_table);

const mp_obj_module_t mp_module_irq = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&irq_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_irq, mp_module_irq);
