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
    RTC_CENTURY = 0x32,
};

enum rtc_status_bits {
    RTC_A_UPDATE_IN_PROGRESS = 1u << 7,
    RTC_B_24_HOUR = 1u << 1,
    RTC_B_BINARY = 1u << 2,
    RTC_HOUR_PM = 1u << 7,   // in the hours register, 12-hour mode
};

struct rtc_reading {
    uint8_t second, minute, hour, day, month, year, century, status_b;
};

static uint8_t rtc_read_register(enum rtc_register reg) {
    outb(RTC_INDEX, reg);
    return inb(RTC_DATA);
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
