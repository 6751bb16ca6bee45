// The CMOS real-time clock (MC146818-compatible, ports 0x70/0x71): the battery-backed wall
// clock, read once for time.time() and the like.
#ifndef ARCH_X86_64_RTC_H
#define ARCH_X86_64_RTC_H

#include <stdint.h>

// Seconds since 1970-01-01 00:00:00 UTC (QEMU's RTC runs in UTC by default), or -1 when the
// clock never settles.
int64_t rtc_read_unix_time(void);

#endif
