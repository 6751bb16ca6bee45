// The boot-phase timeline (see boottrace.h). Marks are stored raw (ticks) because the early
// ones come before the TSC is calibrated; the report converts them with tsc_hz.
#include "arch/x86_64/boottrace.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/tsc.h"

enum { BOOTTRACE_MAX = 32 };

static struct {
    const char *phase;
    uint64_t tsc;
} marks[BOOTTRACE_MAX];
static int mark_count;
static bool reported;

// One stub per mark, a lone `ret` every BOOTTRACE_STUB_STRIDE bytes. Under boottrace=1 mark n
// calls stub n. QEMU's TCG translates code the first time it runs, so each stub is translated
// exactly when its mark happens, and `-d in_asm` shows the marks in order among every block
// the boot translated: `invoke bench boot` counts the guest instructions translated per
// phase that way (manticore_host/bench.py), a figure without the wall clock's noise. Ordinary
// code, harmless on any machine; nothing is called without boottrace=1.
enum { BOOTTRACE_STUB_STRIDE = 16 };
__asm__ (
    ".pushsection .text.boottrace_stubs, \"ax\", @progbits\n"
    ".globl boottrace_stubs\n"
    ".balign 16\n"
    "boottrace_stubs:\n"
    ".rept 32\n"          // BOOTTRACE_MAX
    "ret\n"
    ".balign 16\n"        // BOOTTRACE_STUB_STRIDE
    ".endr\n"
    ".popsection\n");
extern const char boottrace_stubs[];
_Static_assert(BOOTTRACE_MAX == 32, "boottrace_stubs has 32 stubs");

static bool wanted(void);

void boottrace_mark_at(const char *phase, uint64_t tsc) {
    if (mark_count < BOOTTRACE_MAX) {
        if (wanted()) {
            ((void (*)(void))(uintptr_t)(boottrace_stubs + BOOTTRACE_STUB_STRIDE * mark_count))();
        }
        marks[mark_count].phase = phase;
        marks[mark_count].tsc = tsc;
        mark_count++;
    }
}

void boottrace_mark(const char *phase) {
    boottrace_mark_at(phase, tsc_read());
}

static bool wanted(void) {
    static const char word[] = "boottrace=1";
    const char *p = boot_info.cmdline;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        size_t i = 0;
        while (word[i] && p[i] == word[i]) {
            i++;
        }
        if (!word[i] && (p[i] == ' ' || p[i] == '\0')) {
            return true;
        }
        while (*p && *p != ' ') {
            p++;
        }
    }
    return false;
}

static uint64_t to_us(uint64_t ticks) {
    return tsc_hz ? ticks / (tsc_hz / 1000000 ? tsc_hz / 1000000 : 1) : 0;
}

void boottrace_report(void) {
    if (reported || !wanted()) {
        return;
    }
    reported = true;
    uint64_t previous = 0;
    for (int i = 0; i < mark_count; i++) {
        kprintf("boottrace: %s +%lu @%lu\n", marks[i].phase,
            (unsigned long)to_us(marks[i].tsc - previous), (unsigned long)to_us(marks[i].tsc));
        previous = marks[i].tsc;
    }
}
