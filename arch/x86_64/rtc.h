// The CMOS real-time clock (MC146818-compatible, ports 0x70/0x71): the battery-backed wall
// clock, read once for time.time() and the like.
#ifndef ARCH_X86_64_RTC_H
#define ARCH_X86_64_RTC_H

#include <stdint.h>

// Seconds since 1970-01-01 00:00:00 UTC (QEMU's RTC runs in UTC by default), or -1 when the
// clock never settles or there is no RTC.
int64_t rtc_read_unix_time(void);

// The TSC's rate (Hz) measured against the RTC's periodic flag: the reference clock of last
// resort, for a machine with neither HPET nor PIT (microvm,pit=off). Busy ~83 ms under TCG; 0
// when there is no RTC or its flag never comes. Call with interrupts disabled, before the
// I/O APIC routes the RTC's line anywhere.
uint64_t rtc_measure_tsc_hz(void);

// Its estimator, apart from the port I/O (host unit test): the period of `count` (8 to 513)
// edges of a periodic reference seen at `edge_tsc`, each late by an unknown amount, in TSC
// ticks times 2; 0 when they cannot tell.
uint64_t rtc_period_from_edges(const uint64_t *edge_tsc, unsigned count);

#endif
