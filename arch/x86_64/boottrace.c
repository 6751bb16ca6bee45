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

void boottrace_mark_at(const char *phase, uint64_t tsc) {
    if (mark_count < BOOTTRACE_MAX) {
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
