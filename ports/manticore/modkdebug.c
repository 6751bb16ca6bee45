// kdebug: deliberate crashes for testing the kernel's fault handling, in the spirit of Linux's
// LKDTM. Each one must end in a panic report and a non-zero QEMU exit, never a hang or a
// silent reboot.
#include <limits.h>
#include <string.h>

#include "py/runtime.h"

#include "arch/x86_64/gdt.h"
#include "arch/x86_64/panic.h"

// Recursion the compiler can neither inline nor turn into a loop: each frame keeps a live
// buffer, so the C stack grows until it reaches the guard page below it.
static __attribute__((noinline)) uint64_t kdebug_recurse(volatile uint64_t depth) {
    volatile uint8_t frame[256];
    if (depth == UINT64_MAX) {
        return 0; // never: only here so that the recursion is not provably infinite
    }
    frame[depth & 0xff] = (uint8_t)depth;
    return kdebug_recurse(depth + 1) + frame[(depth + 1) & 0xff];
}

// A local buffer overrun past its end into the stack protector's guard copy (and the saved
// frame pointer above it): the function must not return, __stack_chk_fail panics. The
// pointer is laundered so the compiler cannot see the overrun at build time.
static __attribute__((noinline)) void kdebug_smash_canary(size_t length) {
    volatile char buffer[16];
    volatile char *p = buffer;
    __asm__ ("" : "+r"(p));
    for (size_t i = 0; i < length; i++) {
        p[i] = 'A';
    }
}

// kdebug.crash(kind): kind is one of "stack" (C stack overflow into the guard page),
// "canary" (a local buffer overrun caught by the stack protector), "ubsan" (a signed
// overflow, caught in the UBSan build), "null" (write through a null pointer), "ud" (invalid
// opcode), "div" (integer divide by zero), "gp" (non-canonical address), "exec" (run code
// from the no-execute heap), "rodata" (write to read-only data), "ist" (overflow an IST
// stack into its guard page) or "panic" (a C panic() call).
static mp_obj_t kdebug_crash(mp_obj_t kind_in) {
    const char *kind = mp_obj_str_get_str(kind_in);
    if (strcmp(kind, "stack") == 0) {
        kdebug_recurse(0);
    } else if (strcmp(kind, "canary") == 0) {
        kdebug_smash_canary(32);
    } else if (strcmp(kind, "ubsan") == 0) {
        // Signed overflow: a UBSan report and a panic in `invoke build --sanitize`'s kernel;
        // in the ordinary one it wraps and the RuntimeError below says nothing happened.
        volatile int big = INT_MAX;
        volatile int sum = big + 1;
        (void)sum;
    } else if (strcmp(kind, "null") == 0) {
        *(volatile uint64_t *)0 = 0xdead;
    } else if (strcmp(kind, "ud") == 0) {
        __asm__ volatile ("ud2");
    } else if (strcmp(kind, "div") == 0) {
        // In assembly: GCC rewrites an unsigned 1 / x in C as (x == 1), with no division.
        uint64_t zero = 0;
        __asm__ volatile ("xor %%edx, %%edx; mov $1, %%eax; div %0" : : "r" (zero) : "rax", "rdx");
    } else if (strcmp(kind, "gp") == 0) {
        *(volatile uint64_t *)0x8000000000000000ULL = 0;
    } else if (strcmp(kind, "exec") == 0) {
        // A RET instruction in a heap buffer, called through a crafted function pointer: the
        // heap is no-execute, so this is an instruction-fetch page fault (W^X, paging.c).
        uint8_t *code = m_new(uint8_t, 16);
        memset(code, 0xc3, 16);
        void (*fn)(void) = (void (*)(void))(uintptr_t)code;
        fn();
    } else if (strcmp(kind, "ist") == 0) {
        // Run on the bottom of the NMI's IST stack and push: the push hits its guard page,
        // the page fault cannot push its frame there either, and the double fault (on its
        // own IST stack) reports it.
        uintptr_t bottom, top;
        gdt_ist_stack_bounds(IST_NMI, &bottom, &top);
        __asm__ volatile ("mov %0, %%rsp; push %%rax; push %%rax" : : "r"(bottom + 8) : "memory");
    } else if (strcmp(kind, "rodata") == 0) {
        // A write to read-only data (the kinds' names here are rodata).
        *(volatile char *)(uintptr_t)"kdebug" = 'K';
    } else if (strcmp(kind, "panic") == 0) {
        panic("kdebug.crash('panic') called from Python");
    } else {
        mp_raise_ValueError(MP_ERROR_TEXT("kind must be stack, canary, ubsan, null, ud, div, gp, exec, ist, rodata or panic"));
    }
    mp_raise_msg(&mp_type_RuntimeError, MP_ERROR_TEXT("the crash did not happen"));
}
static MP_DEFINE_CONST_FUN_OBJ_1(kdebug_crash_obj, kdebug_crash);

static const mp_rom_map_elem_t kdebug_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_kdebug) },
    { MP_ROM_QSTR(MP_QSTR_crash), MP_ROM_PTR(&kdebug_crash_obj) },
};
static MP_DEFINE_CONST_DICT(kdebug_module_globals, kdebug_module_globals_table);

const mp_obj_module_t mp_module_kdebug = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&kdebug_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_kdebug, mp_module_kdebug);
