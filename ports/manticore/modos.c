// The port's part of the os module, included by extmod/modos.c through
// MICROPY_PY_OS_INCLUDEFILE.
#include <string.h>

#include "py/runtime.h"

#include "arch/x86_64/cpu.h"

// os.urandom(n): RDRAND when the CPU has it (CPUID.01H:ECX bit 30, Intel SDM vol. 1,
// section 7.3.17), else a xorshift generator seeded from the TSC. A later driver feeds it
// from virtio-rng.
static bool cpu_has_rdrand(void) {
    return (cpuid(1, 0).ecx >> 30) & 1;
}

static uint64_t random_word(void) {
    static uint64_t state;
    if (cpu_has_rdrand()) {
        // RDRAND may transiently fail (CF=0); retry a few times as the SDM recommends.
        for (int i = 0; i < 10; i++) {
            uint64_t value;
            uint8_t ok;
            __asm__ volatile ("rdrand %0; setc %1" : "=r" (value), "=qm" (ok));
            if (ok) {
                return value;
            }
        }
    }
    if (state == 0) {
        state = rdtsc() | 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state ^ rdtsc();
}

static mp_obj_t mp_os_urandom(mp_obj_t num) {
    mp_int_t n = mp_obj_get_int(num);
    if (n < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("negative length"));
    }
    vstr_t vstr;
    vstr_init_len(&vstr, n);
    for (mp_int_t i = 0; i < n; i += 8) {
        uint64_t word = random_word();
        size_t chunk = n - i < 8 ? n - i : 8;
        memcpy(vstr.buf + i, &word, chunk);
    }
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_1(mp_os_urandom_obj, mp_os_urandom);
