// Executable memory for MicroPython's native and viper emitters, under W^X.
//
// The emitters build machine code in an ordinary heap buffer (writable, no-execute); then
// MP_PLAT_COMMIT_EXEC (mpconfigport.h) copies it here, relocating it for its final address
// first when it came from a .mpy file. Each CPU has one 2 MiB area, carved at boot: the
// commit writes through the area's identity mapping (writable, no-execute) and returns the
// address of the same bytes in the area's alias (read-only, executable; paging.c), so no
// address is ever both writable and executable (Intel SDM Vol. 3A 4.6).
//
// An area is a bump allocator that starts over when its CPU's interpreter does (soft reset):
// code lives as long as the interpreter that made it. Running out raises MemoryError.
#include <string.h>

#include "py/persistentcode.h"
#include "py/runtime.h"

#include "arch/x86_64/paging.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/smp.h"
#include "mm/mm.h"

#include "ports/manticore/manticore.h"

enum {
    NATIVE_AREA_SIZE = 2 * 1024 * 1024,
    NATIVE_ALIGN = 16,
};
// Far above RAM, in the lower canonical half: CPU k's area runs at ALIAS_BASE + k * 2 MiB.
#define NATIVE_ALIAS_BASE (0x500000000000ull)

static uint8_t *area_phys[SMP_MAX_CPUS];   // identity (writable) address of each CPU's area
static PER_CPU size_t area_used;

void manticore_native_setup(unsigned cpus) {
    for (unsigned cpu = 0; cpu < cpus && cpu < SMP_MAX_CPUS; cpu++) {
        uint8_t *area = mm_take(NATIVE_AREA_SIZE, NATIVE_AREA_SIZE);
        if (area == NULL) {
            continue;   // that CPU's native code raises MemoryError
        }
        if (paging_map_exec_alias(NATIVE_ALIAS_BASE + (uint64_t)cpu * NATIVE_AREA_SIZE,
            (uintptr_t)area, NATIVE_AREA_SIZE) == 0) {
            area_phys[cpu] = area;
        }
    }
}

void manticore_native_reset(void) {
    area_used = 0;
}

void *manticore_native_commit(void *buf, size_t len, void *reloc) {
    unsigned cpu = smp_cpu_id();
    size_t size = (len + NATIVE_ALIGN - 1) & ~(size_t)(NATIVE_ALIGN - 1);
    if (area_phys[cpu] == NULL || size > NATIVE_AREA_SIZE - area_used) {
        mp_raise_msg(&mp_type_MemoryError,
            MP_ERROR_TEXT("native code memory exhausted (2 MiB per CPU; a soft reset frees it)"));
    }
    uint8_t *writable = area_phys[cpu] + area_used;
    uintptr_t executable = NATIVE_ALIAS_BASE + (uint64_t)cpu * NATIVE_AREA_SIZE + area_used;
    area_used += size;
    if (reloc != NULL) {
        mp_native_relocate(reloc, buf, executable);
    }
    memcpy(writable, buf, len);
    return (void *)executable;
}
