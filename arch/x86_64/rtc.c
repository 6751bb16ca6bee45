// The CMOS real-time clock (MC146818-compatible, ports 0x70/0x71): the battery-backed wall
// clock, read once, on the first time.time() or the like (mp_hal_time_ns).
//
// Register numbers and status bits: Motorola MC146818A datasheet, "Address Map" (Figure 2)
// and "Register A"/"Register B"; the century byte at 0x32 is the IBM PC/AT convention that
// the ACPI FADT CENTURY field normally points at (and QEMU's mc146818rtc implements).
#include "arch/x86_64/rtc.h"

#include <stdbool.h>

#include "arch/x86_64/cpu.h"

enum rtc_port {
    RTC_INDEX = 0x70,
    RTC_DATA = 0x71,
};

enum rtc_register {
    RTC_SECONDS = 0x00,
    RTC_MINUTES = 0x02,
    RTC_HOURS = 0x04,
    RTC_DAY_OF_MONTH = 0x07,
    RTC_MONTH = 0x08,
    RTC_YEAR = 0x09,
    RTC_STATUS_A = 0x0a,
    RTC_STATUS_B = 0x0b,
    RTC_STATUS_C = 0x0c,
    RTC_CENTURY = 0x32,
};

enum rtc_status_bits {
    RTC_A_UPDATE_IN_PROGRESS = 1u << 7,
    RTC_A_RATE_MASK = 0x0f,             // RS3-0: the periodic flag's rate
    RTC_A_RATE_8192_HZ = 0x03,          // RS 0011 with the 32.768 kHz time base: 122.07 us
    RTC_B_24_HOUR = 1u << 1,
    RTC_B_BINARY = 1u << 2,
    RTC_B_PERIODIC_INTERRUPT = 1u << 6, // PIE
    RTC_C_PERIODIC_FLAG = 1u << 6,      // PF: a period ended; reading register C clears it
    RTC_HOUR_PM = 1u << 7,   // in the hours register, 12-hour mode
};

struct rtc_reading {
    uint8_t second, minute, hour, day, month, year, century, status_b;
};

static uint8_t rtc_read_register(enum rtc_register reg) {
    outb(RTC_INDEX, reg);
    return inb(RTC_DATA);
}

static void rtc_write_register(enum rtc_register reg, uint8_t value) {
    outb(RTC_INDEX, reg);
    outb(RTC_DATA, value);
}

// No RTC behind the ports (microvm,rtc=off): the bus floats high and register A reads 0xff,
// whose divider bits (DV2-0 = 111: divider held in reset) no running clock has.
static bool rtc_absent(void) {
    return rtc_read_register(RTC_STATUS_A) == 0xff;
}

static bool update_in_progress(void) {
    return (rtc_read_register(RTC_STATUS_A) & RTC_A_UPDATE_IN_PROGRESS) != 0;
}

static bool wait_for_update_to_finish(void) {
    for (int polls = 0; polls < 1000000; polls++) {
        if (!update_in_progress()) {
            return true;
        }
    }
    return false;
}

static void read_all(struct rtc_reading *r) {
    r->second = rtc_read_register(RTC_SECONDS);
    r->minute = rtc_read_register(RTC_MINUTES);
    r->hour = rtc_read_register(RTC_HOURS);
    r->day = rtc_read_register(RTC_DAY_OF_MONTH);
    r->month = rtc_read_register(RTC_MONTH);
    r->year = rtc_read_register(RTC_YEAR);
    r->century = rtc_read_register(RTC_CENTURY);
    r->status_b = rtc_read_register(RTC_STATUS_B);
}

static bool same_reading(const struct rtc_reading *a, const struct rtc_reading *b) {
    return a->second == b->second && a->minute == b->minute && a->hour == b->hour
           && a->day == b->day && a->month == b->month && a->year == b->year
           && a->century == b->century;
}

static unsigned from_bcd(uint8_t value) {
    return (value >> 4) * 10 + (value & 0x0f);
}

// Days from 1970-01-01 to the given civil date (Howard Hinnant's days_from_civil).
static int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    unsigned year_of_era = (unsigned)(year - era * 400);
    unsigned day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + (int64_t)day_of_era - 719468;
}

int64_t rtc_read_unix_time(void) {
    // The registers change during the once-a-second update; read until two consecutive
    // complete readings, each started outside an update, agree.
    struct rtc_reading previous, current;
    if (rtc_absent()) {
        return -1;      // its UIP bit would read as set forever
    }
    if (!wait_for_update_to_finish()) {
        return -1;
    }
    read_all(&current);
    int attempts = 0;
    do {
        previous = current;
        if (!wait_for_update_to_finish() || ++attempts > 100) {
            return -1;
        }
        read_all(&current);
    } while (!same_reading(&previous, &current));

    bool binary = current.status_b & RTC_B_BINARY;
    bool pm = current.hour & RTC_HOUR_PM;
    uint8_t raw_hour = current.hour & ~RTC_HOUR_PM;
    unsigned second = binary ? current.second : from_bcd(current.second);
    unsigned minute = binary ? current.minute : from_bcd(current.minute);
    unsigned hour = binary ? raw_hour : from_bcd(raw_hour);
    unsigned day = binary ? current.day : from_bcd(current.day);
    unsigned month = binary ? current.month : from_bcd(current.month);
    unsigned year = binary ? current.year : from_bcd(current.year);
    unsigned century = binary ? current.century : from_bcd(current.century);

    if (!(current.status_b & RTC_B_24_HOUR)) {
        // 12-hour clock: 12 AM is midnight, 12 PM is noon.
        hour %= 12;
        if (pm) {
            hour += 12;
        }
    }
    int64_t full_year = (century >= 19 && century <= 30) ? century * 100 + year : 2000 + year;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
        return -1;
    }
    return days_from_civil(full_year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

// The median of `count` values, sorted in place (insertion sort: at most a few hundred).
static uint64_t median(uint64_t *values, unsigned count) {
    for (unsigned i = 1; i < count; i++) {
        uint64_t value = values[i];
        unsigned j = i;
        for (; j > 0 && values[j - 1] > value; j--) {
            values[j] = values[j - 1];
        }
        values[j] = value;
    }
    return values[count / 2];
}

enum {
    RTC_PERIODIC_HZ = 8192,             // RTC_A_RATE_8192_HZ
    RTC_CALIBRATION_PERIODS = 32,       // 3.9 ms of the flag per run
    RTC_CALIBRATION_RUNS = 5,           // the median run: ~0.05% under TCG
};

// The periodic flag (MC146818A "Register A" rate select, "Register C" PF): with PIE set it
// rises every period (QEMU's model runs the periodic timer only then; the line it raises is
// masked at the 8259 and the I/O APIC, and interrupts are off). Each read of register C
// clears it, so polling C sees one rising edge per period.
//
// An edge is seen late by however long the emulator's timer or the host took (tens of us
// under TCG, now and then more than a period, when two edges merge into one), never early,
// and the periods themselves do not drift. So each edge gets its period number from the
// median gap between edges (which merged edges and delays barely move), and the rate comes
// from the slope through the least delayed edge of each half of the run: ~0.05% under TCG,
// against ~0.4% (or 10% with a merged edge) from the first and last edges alone. A host
// that delays every edge of one half still skews a run by ~1%: rtc_measure_tsc_hz takes the
// median of several.
static uint64_t measure_tsc_ticks(unsigned periods) {
    enum { MAX_EDGES = 129 };
    if (periods < 4 || periods >= MAX_EDGES || rtc_absent()) {
        return 0;
    }
    uint64_t edge_tsc[MAX_EDGES];
    uint8_t saved_a = rtc_read_register(RTC_STATUS_A);
    uint8_t saved_b = rtc_read_register(RTC_STATUS_B);
    rtc_write_register(RTC_STATUS_A, (saved_a & ~RTC_A_RATE_MASK) | RTC_A_RATE_8192_HZ);
    rtc_write_register(RTC_STATUS_B, saved_b | RTC_B_PERIODIC_INTERRUPT);
    rtc_read_register(RTC_STATUS_C);
    // A period is 122 us; a flag that has not come after ~100x that (each poll is at least
    // a port round trip) never will: a divider held in reset, or no periodic timer.
    const unsigned max_polls_per_period = 100000;
    unsigned edges = 0;
    while (edges <= periods) {
        unsigned polls = 0;
        while (!(rtc_read_register(RTC_STATUS_C) & RTC_C_PERIODIC_FLAG)
               && ++polls < max_polls_per_period) {
        }
        if (polls >= max_polls_per_period) {
            break;
        }
        edge_tsc[edges++] = rdtsc();
    }
    rtc_write_register(RTC_STATUS_B, saved_b);
    rtc_write_register(RTC_STATUS_A, saved_a);
    rtc_read_register(RTC_STATUS_C);
    if (edges <= periods) {
        return 0;
    }
    uint64_t gaps[MAX_EDGES];
    for (unsigned i = 0; i < periods; i++) {
        gaps[i] = edge_tsc[i + 1] - edge_tsc[i];
    }
    uint64_t period = median(gaps, periods);
    if (period == 0) {
        return 0;
    }
    // Each edge's period number, then its delay against the median rate; the least delayed
    // edge of each half.
    uint64_t number = 0, early_number = 0, late_number = 0;
    uint64_t early_tsc = edge_tsc[0], late_tsc = edge_tsc[periods];
    int64_t early_best = INT64_MAX, late_best = INT64_MAX;
    for (unsigned i = 0; i <= periods; i++) {
        if (i > 0) {
            number += (edge_tsc[i] - edge_tsc[i - 1] + period / 2) / period;
        }
        int64_t delay = (int64_t)(edge_tsc[i] - edge_tsc[0]) - (int64_t)(number * period);
        if (i < periods / 2 && delay < early_best) {
            early_best = delay;
            early_number = number;
            early_tsc = edge_tsc[i];
        } else if (i >= periods / 2 && delay < late_best) {
            late_best = delay;
            late_number = number;
            late_tsc = edge_tsc[i];
        }
    }
    if (late_number <= early_number) {
        return 0;
    }
    // TSC ticks per `periods` periods.
    return (uint64_t)((unsigned __int128)(late_tsc - early_tsc) * periods
                      / (late_number - early_number));
}

// The median of a few runs: a host that delays the emulator's timer for the whole of one run
// (~1% off, under TCG on a busy host) is outvoted. 0 if any run fails.
uint64_t rtc_measure_tsc_hz(void) {
    uint64_t runs[RTC_CALIBRATION_RUNS];
    for (int i = 0; i < RTC_CALIBRATION_RUNS; i++) {
        runs[i] = measure_tsc_ticks(RTC_CALIBRATION_PERIODS) * RTC_PERIODIC_HZ
                  / RTC_CALIBRATION_PERIODS;
        if (runs[i] == 0) {
            return 0;
        }
    }
    return median(runs, RTC_CALIBRATION_RUNS);
}
