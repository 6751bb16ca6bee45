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

// The median of `count` values, sorted in place (insertion sort: at most 512, once a boot).
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
    RTC_PERIODIC_HZ = 8192,             // RTC_A_RATE_8192_HZ: a period is 122.07 us
    RTC_CALIBRATION_PERIODS = 512,      // 62.5 ms of the flag
    RTC_CALIBRATION_EDGES = RTC_CALIBRATION_PERIODS + 1,
    RTC_PHASE_BINS = 32,                // a period's phase in bins of 3.8 us
    RTC_PHASE_WINDOW_BINS = 4,          // the on-time edges' cluster: 15 us
    RTC_PERIOD_SEARCH_PERCENT = 5,      // candidates within 5% of the median gap
    // Between two reads of register C, a pause of about 1/16 of a period: each read takes
    // QEMU's global lock, and a guest that reads back to back keeps the main loop (which
    // sets the flag) from taking it, so the edges come later still (polled back to back,
    // runs were up to 4% off, or found no period at all). The first run pauses this many TSC
    // ticks (1/16 of a period at 2.6 GHz); on a TSC so slow that this is more than 1/8 of a
    // period, a second run pauses 1/16 of the period the first one saw.
    RTC_POLL_SPACING_TSC = 20000,
    RTC_POLLS_PER_PERIOD = 16,
    // A flag that has not come after 2048 periods' worth of polls (~250 ms, longer than a
    // busy host stalls QEMU's main loop) never will: a divider held in reset, or no
    // periodic timer.
    RTC_MAX_POLLS_PER_EDGE = 2048 * RTC_POLLS_PER_PERIOD,
};

// The median of the gaps between `count` (2 to RTC_CALIBRATION_EDGES) edges.
static uint64_t median_gap_of(const uint64_t *edge_tsc, unsigned count) {
    uint64_t gaps[RTC_CALIBRATION_PERIODS];
    for (unsigned i = 0; i + 1 < count; i++) {
        gaps[i] = edge_tsc[i + 1] - edge_tsc[i];
    }
    return median(gaps, count - 1);
}

// How many edges fall into the fullest window of RTC_PHASE_WINDOW_BINS adjacent bins of
// phase, given each edge's phase (in [0, candidate)) under the period `candidate`.
static unsigned fullest_window(const int64_t *phase, unsigned count, int64_t candidate) {
    unsigned bins[RTC_PHASE_BINS] = {0};
    // phase * RTC_PHASE_BINS / candidate by a multiplication (once per edge and candidate):
    // phases and candidates are below 2^32, so the product fits in 64 bits.
    uint64_t scale = ((uint64_t)RTC_PHASE_BINS << 32) / (uint64_t)candidate;
    for (unsigned i = 0; i < count; i++) {
        unsigned bin = (unsigned)(((uint64_t)phase[i] * scale) >> 32);
        bins[bin < RTC_PHASE_BINS ? bin : RTC_PHASE_BINS - 1]++;
    }
    unsigned fullest = 0;
    for (unsigned first = 0; first < RTC_PHASE_BINS; first++) {
        unsigned in_window = 0;
        for (unsigned j = 0; j < RTC_PHASE_WINDOW_BINS; j++) {
            in_window += bins[(first + j) % RTC_PHASE_BINS];
        }
        if (in_window > fullest) {
            fullest = in_window;
        }
    }
    return fullest;
}

// The period, in TSC ticks times 2 (half a tick kept), of `count` edges of a periodic
// reference taken at `edge_tsc`: the one under which the most edges share a phase (see
// rtc_measure_tsc_hz). 0 when the edges are too few or too close to tell.
//
// The candidates span RTC_PERIOD_SEARCH_PERCENT around the median gap, in steps of half the
// resolution (the phase window over the run). So wide, because every gap is a whole number
// of reads of register C and a busy host jitters the edges by tens of us: the median gap of
// runs recorded here was up to 3% off, and a count of periods by it lost 8 to 19 of them in
// the long gaps. Phases need no exact count: an edge's phase is its time since the first
// edge less a whole number of candidate periods, kept in [0, candidate) as the candidate
// steps up (a subtraction and at most one wrap per edge and step, no division).
uint64_t rtc_period_from_edges(const uint64_t *edge_tsc, unsigned count) {
    if (count < 8 || count > RTC_CALIBRATION_EDGES) {
        return 0;
    }
    uint64_t median_gap = median_gap_of(edge_tsc, count);
    if (median_gap < RTC_PHASE_BINS * 2 || median_gap > UINT32_MAX / 2
        || edge_tsc[count - 1] - edge_tsc[0] > (uint64_t)UINT32_MAX * 64) {
        return 0;   // too close to tell, or beyond the arithmetic below
    }
    int64_t reach = (int64_t)median_gap * RTC_PERIOD_SEARCH_PERCENT / 100;
    int64_t low = (int64_t)median_gap - reach, high = (int64_t)median_gap + reach;
    int64_t span_periods = (int64_t)((edge_tsc[count - 1] - edge_tsc[0]) / (uint64_t)low) + 1;
    int64_t step = low * RTC_PHASE_WINDOW_BINS / RTC_PHASE_BINS / 2 / span_periods;
    if (step < 1) {
        step = 1;
    }
    // Each edge's phase under `low`, and the multiple of the candidate taken off its time.
    int64_t phase[RTC_CALIBRATION_EDGES];
    int64_t multiple[RTC_CALIBRATION_EDGES];
    for (unsigned i = 0; i < count; i++) {
        int64_t since_first = (int64_t)(edge_tsc[i] - edge_tsc[0]);
        multiple[i] = since_first / low;
        phase[i] = since_first - multiple[i] * low;
    }
    unsigned fullest = 0;
    int64_t first_best = 0, last_best = 0;
    for (int64_t candidate = low; candidate <= high; candidate += step) {
        unsigned in_window = fullest_window(phase, count, candidate);
        if (in_window > fullest) {
            fullest = in_window;
            first_best = last_best = candidate;
        } else if (in_window == fullest) {
            last_best = candidate;
        }
        int64_t next = candidate + step;
        for (unsigned i = 0; i < count; i++) {
            phase[i] -= multiple[i] * step;     // the same multiple of `next`
            while (phase[i] < 0) {
                phase[i] += next;
                multiple[i]--;
            }
            while (phase[i] >= next) {
                phase[i] -= next;
                multiple[i]++;
            }
        }
    }
    return (uint64_t)(first_best + last_best);    // the middle of the tie, doubled
}

// The TSC at the next rising edge of the periodic flag, polling register C every `spacing`
// TSC ticks; 0 when it does not come within `max_polls`.
static uint64_t next_edge(uint64_t spacing, unsigned max_polls) {
    unsigned polls = 0;
    while (!(rtc_read_register(RTC_STATUS_C) & RTC_C_PERIODIC_FLAG)) {
        if (++polls >= max_polls) {
            return 0;
        }
        uint64_t until = rdtsc() + spacing;
        while (rdtsc() < until) {
            cpu_relax();
        }
    }
    return rdtsc();
}

// RTC_CALIBRATION_EDGES rising edges of the periodic flag into `edge_tsc`, polled every
// `spacing` TSC ticks; false when the flag stops coming.
static bool collect_edges(uint64_t *edge_tsc, uint64_t spacing) {
    uint8_t saved_a = rtc_read_register(RTC_STATUS_A);
    uint8_t saved_b = rtc_read_register(RTC_STATUS_B);
    rtc_write_register(RTC_STATUS_A, (saved_a & ~RTC_A_RATE_MASK) | RTC_A_RATE_8192_HZ);
    rtc_write_register(RTC_STATUS_B, saved_b | RTC_B_PERIODIC_INTERRUPT);
    rtc_read_register(RTC_STATUS_C);
    unsigned edges = 0;
    while (edges < RTC_CALIBRATION_EDGES
           && (edge_tsc[edges] = next_edge(spacing, RTC_MAX_POLLS_PER_EDGE)) != 0) {
        edges++;
    }
    rtc_write_register(RTC_STATUS_B, saved_b);
    rtc_write_register(RTC_STATUS_A, saved_a);
    rtc_read_register(RTC_STATUS_C);
    return edges == RTC_CALIBRATION_EDGES;
}

// The TSC's rate from the periodic flag (MC146818A "Register A" rate select, "Register C"
// PF): with PIE set it rises every period (QEMU's model runs the periodic timer only then;
// the line it raises is masked at the 8259 and the I/O APIC, and interrupts are off). Each
// read of register C clears it, so polling C sees one rising edge per period.
//
// QEMU schedules the edges on an exact grid of its host clock, but its main loop sets the
// flag, so an edge is seen late: by a few us, or for stretches of milliseconds by 80 us or
// more, now and then by more than a period (two edges then merge into one). Numbering the
// edges by rounding each gap to whole periods miscounts by one whenever such a stretch starts
// or ends, and a line through the least delayed edges is only as good as the floor in each
// part of the run.
// Instead the period is the one under which the most edges share a phase: the on-time edges
// crowd into one window of phase only while the candidate is within (window / periods) of
// the truth, about 0.02% here (rtc_period_from_edges). Against the HPET's rate for the same
// host (TCG): 140 boots within -0.04%..+0.10% on an idle host, 40 within 0.02% on a busy
// one, and 200 recorded runs within -0.04%..+0.09% offline, where the earlier 5 runs of 32
// periods were 0.16% to 2.6% off. A line through the least delayed edges, numbered under
// the period found here, does no better: the late stretches defeat it. Costs ~63 ms of
// polling and ~20 ms of arithmetic under TCG. Returns TSC ticks per second, 0 without a
// flag.
uint64_t rtc_measure_tsc_hz(void) {
    if (rtc_absent()) {
        return 0;
    }
    uint64_t edge_tsc[RTC_CALIBRATION_EDGES];
    uint64_t spacing = RTC_POLL_SPACING_TSC;
    if (!collect_edges(edge_tsc, spacing)) {
        return 0;
    }
    uint64_t period = rtc_period_from_edges(edge_tsc, RTC_CALIBRATION_EDGES) / 2;
    if (period < spacing * RTC_POLLS_PER_PERIOD / 2) {
        // A slow TSC: the pauses were too long a part of the period (or the flag came at
        // every read, and `period` is the pause, not the flag's).
        spacing = median_gap_of(edge_tsc, RTC_CALIBRATION_EDGES) / RTC_POLLS_PER_PERIOD;
        if (!collect_edges(edge_tsc, spacing)) {
            return 0;
        }
    }
    return rtc_period_from_edges(edge_tsc, RTC_CALIBRATION_EDGES) * RTC_PERIODIC_HZ / 2;
}
