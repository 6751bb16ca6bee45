// The _kernel module: the few C services the Python kernel (kernel/, frozen) needs from the
// port. Thin bindings only; the policy (who may use what, limits, events) is Python.
//
//   >>> import _kernel
//   >>> buf = _kernel.dma_carve(4096)    # zeroed, page aligned, never freed
//   >>> hex(_kernel.address(buf))
//   '0x7fd000'
//   >>> _kernel.debug_exit(5)            # QEMU exits with status (5 << 1) | 1 = 11
#include <string.h>

#include "py/mphal.h"
#include "py/builtin.h"
#include "py/objarray.h"
#include "py/runtime.h"
#include "py/stream.h"
#include "shared/runtime/interrupt_char.h"

#include "arch/x86_64/boottrace.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/smp.h"
#include "mm/mm.h"

#include "ports/manticore/manticore.h"

// The REPL's idle hook (MP_STATE_VM(kernel_idle_hook)) and the console input callback
// (MP_STATE_VM(kernel_console_cb)) are root pointers: the GC sees them.
MP_REGISTER_ROOT_POINTER(mp_obj_t kernel_idle_hook);
MP_REGISTER_ROOT_POINTER(mp_obj_t kernel_console_cb);
MP_REGISTER_ROOT_POINTER(mp_obj_t kernel_import_watch_name);
MP_REGISTER_ROOT_POINTER(mp_obj_t kernel_import_watch_callback);

void manticore_kernel_reset(void) {
    MP_STATE_VM(kernel_idle_hook) = MP_OBJ_NULL;
    MP_STATE_VM(kernel_console_cb) = MP_OBJ_NULL;
    MP_STATE_VM(kernel_import_watch_name) = MP_OBJ_NULL;
    MP_STATE_VM(kernel_import_watch_callback) = MP_OBJ_NULL;
    manticore_smp_reset();
}

// ---------------------------------------------------------------------------------------
// The REPL's idle hook: called by mp_hal_stdin_rx_chr while the console has no input, so
// that the kernel's event loop runs whenever the REPL waits for a key. The hook returns when
// input is there (or when it has nothing to run); it is never entered twice, and only runs
// for the REPL's own reads: pyexec switches the interrupt character off while it reads a
// line and on while code runs, so input() inside running code waits the plain way.

static PER_CPU bool idle_hook_running;   // each CPU's REPL (a CPU's interpreter is its own)

bool manticore_run_idle_hook(void) {
    mp_obj_t hook = MP_STATE_VM(kernel_idle_hook);
    if (hook == MP_OBJ_NULL || idle_hook_running || mp_interrupt_char != -1) {
        return false;
    }
    idle_hook_running = true;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_call_function_0(hook);
        nlr_pop();
        idle_hook_running = false;
        return true;
    }
    idle_hook_running = false;
    mp_obj_t exc = MP_OBJ_FROM_PTR(nlr.ret_val);
    if (mp_obj_is_subclass_fast(MP_OBJ_FROM_PTR(mp_obj_get_type(exc)),
        MP_OBJ_FROM_PTR(&mp_type_KeyboardInterrupt))) {
        // Ctrl-C belongs to whatever reads the console (input() in REPL code).
        nlr_jump(nlr.ret_val);
    }
    // A broken loop must not spin the REPL: report it once and detach it.
    MP_STATE_VM(kernel_idle_hook) = MP_OBJ_NULL;
    mp_printf(&mp_plat_print, "kernel: event loop stopped by an exception:\n");
    mp_obj_print_exception(&mp_plat_print, exc);
    return false;
}

// _kernel.set_idle_hook(fn or None)
static mp_obj_t kernel_set_idle_hook(mp_obj_t fn) {
    MP_STATE_VM(kernel_idle_hook) = fn == mp_const_none ? MP_OBJ_NULL : fn;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(kernel_set_idle_hook_obj, kernel_set_idle_hook);

// ---------------------------------------------------------------------------------------
// The first import of a module, watched: _kernel.on_first_import(name, callback) calls
// callback() once, just before code first imports `name` or one of its submodules
// (absolute imports; None as the callback stops watching). kernel/boot.py loads the
// scheduler this way when code typed at the REPL first imports asyncio, instead of at every
// boot. Every import passes through here (mpconfigport.h names this the port's
// mp_builtin___import__, builtin.h); the watch ends before the callback runs, so the
// callback's own imports, and all later ones, go straight on.

static bool import_is_watched(size_t n_args, const mp_obj_t *args) {
    mp_obj_t watched = MP_STATE_VM(kernel_import_watch_name);   // set with the callback
    if (watched == MP_OBJ_NULL || (n_args >= 5 && mp_obj_get_int(args[4]) != 0)) {
        return false;   // nothing watched, or a relative import (a package's own module)
    }
    size_t name_len, watched_len;
    const char *name = mp_obj_str_get_data(args[0], &name_len);
    const char *watched_name = mp_obj_str_get_data(watched, &watched_len);
    return name_len >= watched_len && memcmp(name, watched_name, watched_len) == 0
           && (name_len == watched_len || name[watched_len] == '.');
}

mp_obj_t mp_builtin___import__(size_t n_args, const mp_obj_t *args) {
    if (import_is_watched(n_args, args)) {
        mp_obj_t callback = MP_STATE_VM(kernel_import_watch_callback);
        MP_STATE_VM(kernel_import_watch_name) = MP_OBJ_NULL;
        MP_STATE_VM(kernel_import_watch_callback) = MP_OBJ_NULL;
        mp_call_function_0(callback);
    }
    return mp_builtin___import___default(n_args, args);
}

// _kernel.on_first_import(name, callback or None)
static mp_obj_t kernel_on_first_import(mp_obj_t name, mp_obj_t callback) {
    mp_obj_str_get_str(name);   // a str (TypeError otherwise)
    bool watch = callback != mp_const_none;
    MP_STATE_VM(kernel_import_watch_name) = watch ? name : MP_OBJ_NULL;
    MP_STATE_VM(kernel_import_watch_callback) = watch ? callback : MP_OBJ_NULL;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(kernel_on_first_import_obj, kernel_on_first_import);

// ---------------------------------------------------------------------------------------
// Console input as a device: when a callback is set, the serial receive interrupt schedules
// it (the soft-IRQ path: cb(1) at the next bytecode boundary) instead of leaving the bytes
// to the REPL; console_read() takes what arrived.

static PER_CPU volatile bool console_cb_pending;

static mp_obj_t kernel_console_trampoline(mp_obj_t events) {
    console_cb_pending = false;
    mp_obj_t cb = MP_STATE_VM(kernel_console_cb);
    if (cb != MP_OBJ_NULL) {
        mp_call_function_1(cb, events);
    }
    mp_hal_signal_event();   // the callback set a flag a poll may be about to sleep on
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(kernel_console_trampoline_obj, kernel_console_trampoline);

// Called by the receive interrupt handler (interrupts off) after it stored a byte.
void manticore_console_input_irq(void) {
    if (MP_STATE_VM(kernel_console_cb) != MP_OBJ_NULL && !console_cb_pending) {
        if (mp_sched_schedule(MP_OBJ_FROM_PTR(&kernel_console_trampoline_obj), MP_OBJ_NEW_SMALL_INT(1))) {
            console_cb_pending = true;
        }
    }
}

// _kernel.console_on_input(cb or None)
static mp_obj_t kernel_console_on_input(mp_obj_t cb) {
    if (cb != mp_const_none) {
        mp_hal_console_require_input_here();   // (letting go is always allowed)
    }
    MP_STATE_VM(kernel_console_cb) = cb == mp_const_none ? MP_OBJ_NULL : cb;
    console_cb_pending = false;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(kernel_console_on_input_obj, kernel_console_on_input);

// _kernel.console_read(n=256): the bytes waiting in the receive ring (at most n), b"" if none.
static mp_obj_t kernel_console_read(size_t n_args, const mp_obj_t *args) {
    mp_hal_console_require_input_here();
    mp_int_t max = n_args > 0 ? mp_obj_get_int(args[0]) : 256;
    vstr_t vstr;
    vstr_init_len(&vstr, max > 0 ? max : 0);
    size_t got = 0;
    while ((mp_int_t)got < max) {
        int c = mp_hal_console_pop();
        if (c < 0) {
            break;
        }
        vstr.buf[got++] = (char)c;
    }
    vstr.len = got;
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(kernel_console_read_obj, 0, 1, kernel_console_read);

// _kernel.console_pending(): whether console input is waiting.
static mp_obj_t kernel_console_pending(void) {
    return mp_obj_new_bool(mp_hal_stdio_poll(MP_STREAM_POLL_RD) != 0);
}
static MP_DEFINE_CONST_FUN_OBJ_0(kernel_console_pending_obj, kernel_console_pending);

// ---------------------------------------------------------------------------------------
// DMA memory and exits.

// _kernel.dma_carve(size): a writable memoryview over `size` zeroed bytes of the DMA pool,
// page aligned and physically contiguous. Never freed: the kernel carves its pools once.
static mp_obj_t kernel_dma_carve(mp_obj_t size_in) {
    mp_int_t size = mp_obj_get_int(size_in);
    if (size <= 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("size must be positive"));
    }
    void *mem = dma_alloc((size_t)size, 4096);
    if (mem == NULL) {
        mp_raise_OSError(MP_ENOMEM);
    }
    return mp_obj_new_memoryview('B' | MP_OBJ_ARRAY_TYPECODE_FLAG_RW, (size_t)size, mem);
}
static MP_DEFINE_CONST_FUN_OBJ_1(kernel_dma_carve_obj, kernel_dma_carve);

// _kernel.dma_free(): bytes left in the DMA pool.
static mp_obj_t kernel_dma_free(void) {
    return mp_obj_new_int_from_uint(dma_free_bytes());
}
static MP_DEFINE_CONST_FUN_OBJ_0(kernel_dma_free_obj, kernel_dma_free);

// _kernel.address(buf): the (identity-mapped, so physical) address of a buffer's first byte.
static mp_obj_t kernel_address(mp_obj_t buf) {
    mp_buffer_info_t info;
    mp_get_buffer_raise(buf, &info, MP_BUFFER_READ);
    return mp_obj_new_int_from_uint((uintptr_t)info.buf);
}
static MP_DEFINE_CONST_FUN_OBJ_1(kernel_address_obj, kernel_address);

// _kernel.meminfo(): {"ram": usable RAM, "heap": GC heap size, "dma": DMA pool size,
// "dma_free": its bytes left}, in bytes.
static mp_obj_t kernel_meminfo(void) {
    mp_obj_t dict = mp_obj_new_dict(4);
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_ram), mp_obj_new_int_from_ull(mm_layout.ram_total));
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_heap), mp_obj_new_int_from_ull(mm_layout.heap_total));
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_dma), mp_obj_new_int_from_ull(mm_layout.dma.size));
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(MP_QSTR_dma_free), mp_obj_new_int_from_uint(dma_free_bytes()));
    return dict;
}
static MP_DEFINE_CONST_FUN_OBJ_0(kernel_meminfo_obj, kernel_meminfo);

// _kernel.frozen_modules(): the names of the modules frozen into the image ("apps.echod", ...).
extern const char mp_frozen_names[];
static mp_obj_t kernel_frozen_modules(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (const char *name = mp_frozen_names; *name != '\0'; name += strlen(name) + 1) {
        size_t len = strlen(name);
        // Stored as file names: "apps/echod.py" -> "apps.echod".
        if (len > 3 && strcmp(name + len - 3, ".py") == 0) {
            len -= 3;
        }
        vstr_t vstr;
        vstr_init_len(&vstr, len);
        for (size_t i = 0; i < len; i++) {
            vstr.buf[i] = name[i] == '/' ? '.' : name[i];
        }
        mp_obj_list_append(list, mp_obj_new_str_from_vstr(&vstr));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(kernel_frozen_modules_obj, kernel_frozen_modules);

// _kernel.debug_exit(code): QEMU's isa-debug-exit; QEMU ends with status (code << 1) | 1.
// Returns only when the device is absent.
static mp_obj_t kernel_debug_exit(mp_obj_t code) {
    debug_exit((uint32_t)mp_obj_get_int(code));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(kernel_debug_exit_obj, kernel_debug_exit);

// _kernel.boottrace(phase): mark the end of a phase of the Python boot on the boot timeline
// (arch/x86_64/boottrace.h); _kernel.boottrace() prints the timeline (boottrace=1 only, once).
// The phase name is interned, so it outlives the call (qstrs live until the soft reset). The
// timeline is the boot CPU's: the other CPUs' calls (they run the same boot script) do nothing.
static mp_obj_t kernel_boottrace(size_t n_args, const mp_obj_t *args) {
    if (smp_cpu_id() != 0) {
        return mp_const_none;
    }
    if (n_args == 0) {
        boottrace_report();
    } else {
        boottrace_mark(qstr_str(mp_obj_str_get_qstr(args[0])));
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(kernel_boottrace_obj, 0, 1, kernel_boottrace);

static const mp_rom_map_elem_t kernel_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__kernel) },
    { MP_ROM_QSTR(MP_QSTR_set_idle_hook), MP_ROM_PTR(&kernel_set_idle_hook_obj) },
    { MP_ROM_QSTR(MP_QSTR_on_first_import), MP_ROM_PTR(&kernel_on_first_import_obj) },
    { MP_ROM_QSTR(MP_QSTR_console_on_input), MP_ROM_PTR(&kernel_console_on_input_obj) },
    { MP_ROM_QSTR(MP_QSTR_console_read), MP_ROM_PTR(&kernel_console_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_console_pending), MP_ROM_PTR(&kernel_console_pending_obj) },
    { MP_ROM_QSTR(MP_QSTR_dma_carve), MP_ROM_PTR(&kernel_dma_carve_obj) },
    { MP_ROM_QSTR(MP_QSTR_dma_free), MP_ROM_PTR(&kernel_dma_free_obj) },
    { MP_ROM_QSTR(MP_QSTR_address), MP_ROM_PTR(&kernel_address_obj) },
    { MP_ROM_QSTR(MP_QSTR_meminfo), MP_ROM_PTR(&kernel_meminfo_obj) },
    { MP_ROM_QSTR(MP_QSTR_frozen_modules), MP_ROM_PTR(&kernel_frozen_modules_obj) },
    { MP_ROM_QSTR(MP_QSTR_debug_exit), MP_ROM_PTR(&kernel_debug_exit_obj) },
    { MP_ROM_QSTR(MP_QSTR_boottrace), MP_ROM_PTR(&kernel_boottrace_obj) },
};
static MP_DEFINE_CONST_DICT(kernel_module_globals, kernel_module_globals_table);

const mp_obj_module_t mp_module_kernel = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&kernel_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__kernel, mp_module_kernel);
