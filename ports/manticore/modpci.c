// The `pci` module: the PCI functions drivers/pci found at boot, as objects, with their BARs,
// capabilities and raw configuration-space access.
//
//   >>> import pci
//   >>> pci.devices()
//   [00:00.0 8086:29c0 class 060000 rev 00 q35 host bridge, ...]
//   >>> d = pci.find(0x1af4, 0x1044)[0]; d.bars; d.read_config(0, 4)
#include "py/obj.h"
#include "py/runtime.h"

#include "drivers/pci/msix.h"
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_rng.h"

typedef struct _pci_device_obj_t {
    mp_obj_base_t base;
    struct pci_device *dev;
} pci_device_obj_t;

static const mp_obj_type_t pci_device_type;

static mp_obj_t pci_device_new(struct pci_device *dev) {
    pci_device_obj_t *self = mp_obj_malloc(pci_device_obj_t, &pci_device_type);
    self->dev = dev;
    return MP_OBJ_FROM_PTR(self);
}

static void pci_device_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
    const struct pci_device *d = ((pci_device_obj_t *)MP_OBJ_TO_PTR(self_in))->dev;
    // `lspci -n` order: BB:DD.F VVVV:DDDD.
    mp_printf(print, "%02x:%02x.%x %04x:%04x class %06x rev %02x %s", d->bus, d->device,
        d->function, d->vendor_id, d->device_id, (unsigned)d->class_code, d->revision,
        pci_device_name(d));
}

static const char *bar_kind_name(uint8_t kind) {
    switch (kind) {
        case PCI_BAR_IO: return "io";
        case PCI_BAR_MEM32: return "mem32";
        case PCI_BAR_MEM64: return "mem64";
        case PCI_BAR_ROM: return "rom";
        default: return "none";
    }
}

// Whether the BAR decodes right now: its space enabled in the command register (PCI 3.0,
// 6.2.2) and, for the expansion ROM, its enable bit (6.2.5.2).
static bool bar_decodes(const struct pci_device *d, int index) {
    uint16_t command = pci_read16(d, PCI_COMMAND);
    const struct pci_bar *b = &d->bars[index];
    if (b->kind == PCI_BAR_IO) {
        return command & PCI_COMMAND_IO;
    }
    if (b->kind == PCI_BAR_ROM) {
        uint16_t rom = d->header_type == PCI_HEADER_TYPE_NORMAL ? PCI_ROM_ADDRESS : PCI_ROM_ADDRESS1;
        return (command & PCI_COMMAND_MEMORY) && (pci_read32(d, rom) & 1);
    }
    return command & PCI_COMMAND_MEMORY;
}

// [(index, address, size, kind, prefetchable), ...] for the implemented BARs; the expansion
// ROM is index 6. As in QEMU's query-pci, address is -1 while the BAR does not decode.
static mp_obj_t bars_list(const struct pci_device *d) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i <= PCI_ROM_SLOT; i++) {
        const struct pci_bar *b = &d->bars[i];
        if (b->kind == PCI_BAR_NONE) {
            continue;
        }
        mp_obj_t items[5] = {
            MP_OBJ_NEW_SMALL_INT(i),
            bar_decodes(d, i) ? mp_obj_new_int_from_ull(b->address) : MP_OBJ_NEW_SMALL_INT(-1),
            mp_obj_new_int_from_ull(b->size),
            MP_OBJ_NEW_QSTR(qstr_from_str(bar_kind_name(b->kind))),
            mp_obj_new_bool(b->prefetchable),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(5, items));
    }
    return list;
}

// [(id, offset, name), ...] in list order.
static mp_obj_t capabilities_list(const struct pci_device *d) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < d->cap_count; i++) {
        mp_obj_t items[3] = {
            MP_OBJ_NEW_SMALL_INT(d->caps[i].id),
            MP_OBJ_NEW_SMALL_INT(d->caps[i].offset),
            MP_OBJ_NEW_QSTR(qstr_from_str(pci_capability_name(d->caps[i].id))),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(3, items));
    }
    return list;
}

static void check_config_access(const struct pci_device *d, mp_int_t offset, mp_int_t width) {
    if (width != 1 && width != 2 && width != 4) {
        mp_raise_ValueError(MP_ERROR_TEXT("width must be 1, 2 or 4"));
    }
    mp_int_t limit = d->ecam != NULL ? 4096 : 256;
    if (offset < 0 || offset + width > limit || (offset & (width - 1)) != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("offset out of range or unaligned"));
    }
}

// Device.read_config(offset, width=4)
static mp_obj_t pci_device_read_config(size_t n_args, const mp_obj_t *args) {
    const struct pci_device *d = ((pci_device_obj_t *)MP_OBJ_TO_PTR(args[0]))->dev;
    mp_int_t offset = mp_obj_get_int(args[1]);
    mp_int_t width = n_args > 2 ? mp_obj_get_int(args[2]) : 4;
    check_config_access(d, offset, width);
    return mp_obj_new_int_from_uint(pci_config_read(d, offset, width));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pci_device_read_config_obj, 2, 3, pci_device_read_config);

// Device.write_config(offset, value, width=4)
static mp_obj_t pci_device_write_config(size_t n_args, const mp_obj_t *args) {
    const struct pci_device *d = ((pci_device_obj_t *)MP_OBJ_TO_PTR(args[0]))->dev;
    mp_int_t offset = mp_obj_get_int(args[1]);
    mp_uint_t value = mp_obj_get_int_truncated(args[2]);
    mp_int_t width = n_args > 3 ? mp_obj_get_int(args[3]) : 4;
    check_config_access(d, offset, width);
    pci_config_write(d, offset, (uint32_t)value, width);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pci_device_write_config_obj, 3, 4, pci_device_write_config);

// Device.msix(): [(address, data, masked, pending), ...], one per MSI-X table entry once the
// table is enabled (a driver attached an interrupt), else [].
static mp_obj_t pci_device_msix(mp_obj_t self_in) {
    struct pci_device *d = ((pci_device_obj_t *)MP_OBJ_TO_PTR(self_in))->dev;
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (unsigned i = 0; d->msix_table != NULL && i < d->msix_size; i++) {
        volatile uint32_t *e = d->msix_table + 4 * i;
        mp_obj_t items[4] = {
            mp_obj_new_int_from_ull(((uint64_t)e[1] << 32) | e[0]),
            mp_obj_new_int_from_uint(e[2]),
            mp_obj_new_bool(msix_is_masked(d, i)),
            mp_obj_new_bool(msix_pending(d, i)),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(4, items));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_1(pci_device_msix_obj, pci_device_msix);

// Device.msix_mask(entry, masked=True): set or clear one entry's mask bit.
static mp_obj_t pci_device_msix_mask(size_t n_args, const mp_obj_t *args) {
    struct pci_device *d = ((pci_device_obj_t *)MP_OBJ_TO_PTR(args[0]))->dev;
    mp_int_t entry = mp_obj_get_int(args[1]);
    if (d->msix_table == NULL || entry < 0 || entry >= d->msix_size) {
        mp_raise_ValueError(MP_ERROR_TEXT("no such MSI-X entry"));
    }
    if (n_args < 3 || mp_obj_is_true(args[2])) {
        msix_mask(d, entry);
    } else {
        msix_unmask(d, entry);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pci_device_msix_mask_obj, 2, 3, pci_device_msix_mask);

static const mp_rom_map_elem_t pci_device_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_read_config), MP_ROM_PTR(&pci_device_read_config_obj) },
    { MP_ROM_QSTR(MP_QSTR_write_config), MP_ROM_PTR(&pci_device_write_config_obj) },
    { MP_ROM_QSTR(MP_QSTR_msix), MP_ROM_PTR(&pci_device_msix_obj) },
    { MP_ROM_QSTR(MP_QSTR_msix_mask), MP_ROM_PTR(&pci_device_msix_mask_obj) },
};
static MP_DEFINE_CONST_DICT(pci_device_locals, pci_device_locals_table);

static void pci_device_attr(mp_obj_t self_in, qstr attr, mp_obj_t *dest) {
    if (dest[0] != MP_OBJ_NULL) {
        return;   // read-only attributes
    }
    const struct pci_device *d = ((pci_device_obj_t *)MP_OBJ_TO_PTR(self_in))->dev;
    switch (attr) {
        case MP_QSTR_bus: dest[0] = MP_OBJ_NEW_SMALL_INT(d->bus); break;
        case MP_QSTR_device: dest[0] = MP_OBJ_NEW_SMALL_INT(d->device); break;
        case MP_QSTR_function: dest[0] = MP_OBJ_NEW_SMALL_INT(d->function); break;
        case MP_QSTR_vendor_id: dest[0] = MP_OBJ_NEW_SMALL_INT(d->vendor_id); break;
        case MP_QSTR_device_id: dest[0] = MP_OBJ_NEW_SMALL_INT(d->device_id); break;
        case MP_QSTR_class_code: dest[0] = MP_OBJ_NEW_SMALL_INT(d->class_code); break;
        case MP_QSTR_revision: dest[0] = MP_OBJ_NEW_SMALL_INT(d->revision); break;
        case MP_QSTR_header_type: dest[0] = MP_OBJ_NEW_SMALL_INT(d->header_type); break;
        case MP_QSTR_subsystem_vendor_id: dest[0] = MP_OBJ_NEW_SMALL_INT(d->subsystem_vendor_id); break;
        case MP_QSTR_subsystem_id: dest[0] = MP_OBJ_NEW_SMALL_INT(d->subsystem_id); break;
        case MP_QSTR_irq_pin: dest[0] = MP_OBJ_NEW_SMALL_INT(d->irq_pin); break;
        case MP_QSTR_irq_line: dest[0] = MP_OBJ_NEW_SMALL_INT(d->irq_line); break;
        case MP_QSTR_irq_mode: dest[0] = MP_OBJ_NEW_QSTR(qstr_from_str(pci_irq_mode_name(d))); break;
        case MP_QSTR_secondary_bus: dest[0] = MP_OBJ_NEW_SMALL_INT(d->secondary_bus); break;
        case MP_QSTR_name: dest[0] = MP_OBJ_NEW_QSTR(qstr_from_str(pci_device_name(d))); break;
        case MP_QSTR_bars: dest[0] = bars_list(d); break;
        case MP_QSTR_capabilities: dest[0] = capabilities_list(d); break;
        default:
            // Methods.
            dest[1] = MP_OBJ_SENTINEL;
            break;
    }
}

static MP_DEFINE_CONST_OBJ_TYPE(
    pci_device_type,
    MP_QSTR_Device,
    MP_TYPE_FLAG_NONE,
    print, pci_device_print,
    attr, pci_device_attr,
    locals_dict, &pci_device_locals
    );

// pci.devices(): every function, in enumeration order (depth first through bridges).
static mp_obj_t pci_devices_list(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < pci_device_count; i++) {
        mp_obj_list_append(list, pci_device_new(&pci_devices[i]));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(pci_devices_obj, pci_devices_list);

// pci.find(vendor_id, device_id=None): the matching functions.
static mp_obj_t pci_find_list(size_t n_args, const mp_obj_t *args) {
    mp_int_t vendor = mp_obj_get_int(args[0]);
    mp_int_t device = n_args > 1 && args[1] != mp_const_none ? mp_obj_get_int(args[1]) : -1;
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < pci_device_count; i++) {
        struct pci_device *d = &pci_devices[i];
        if (d->vendor_id == vendor && (device < 0 || d->device_id == device)) {
            mp_obj_list_append(list, pci_device_new(d));
        }
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pci_find_obj, 1, 2, pci_find_list);

// pci.access(): how configuration space is reached: "ecam", "legacy" or "none".
static mp_obj_t pci_access(void) {
    return MP_OBJ_NEW_QSTR(qstr_from_str(pci_access_method()));
}
static MP_DEFINE_CONST_FUN_OBJ_0(pci_access_obj, pci_access);

// pci.virtio_rng(): None without the device, else a dict of its driver's state and counts.
static mp_obj_t pci_virtio_rng(void) {
    if (!virtio_rng_present()) {
        return mp_const_none;
    }
    struct virtio_rng_stats s;
    virtio_rng_stats(&s);
    mp_obj_t dict = mp_obj_new_dict(6);
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_vector), MP_OBJ_NEW_SMALL_INT(s.vector));
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_irq_mode), MP_OBJ_NEW_QSTR(qstr_from_str(s.irq_mode)));
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_requests), mp_obj_new_int_from_ull(s.requests));
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_bytes), mp_obj_new_int_from_ull(s.bytes));
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_interrupts), mp_obj_new_int_from_ull(s.interrupts));
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_kicks), mp_obj_new_int_from_ull(s.kicks));
    return dict;
}
static MP_DEFINE_CONST_FUN_OBJ_0(pci_virtio_rng_obj, pci_virtio_rng);

static const mp_rom_map_elem_t pci_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_pci) },
    { MP_ROM_QSTR(MP_QSTR_devices), MP_ROM_PTR(&pci_devices_obj) },
    { MP_ROM_QSTR(MP_QSTR_find), MP_ROM_PTR(&pci_find_obj) },
    { MP_ROM_QSTR(MP_QSTR_access), MP_ROM_PTR(&pci_access_obj) },
    { MP_ROM_QSTR(MP_QSTR_virtio_rng), MP_ROM_PTR(&pci_virtio_rng_obj) },
    { MP_ROM_QSTR(MP_QSTR_Device), MP_ROM_PTR(&pci_device_type) },
};
static MP_DEFINE_CONST_DICT(pci_module_globals, pci_module_globals_table);

const mp_obj_module_t mp_module_pci = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&pci_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_pci, mp_module_pci);
