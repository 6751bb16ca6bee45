// What mbedTLS needs from the kernel in its bare-metal configuration (mbedtls_config_port.h):
// entropy, the wall clock in seconds and milliseconds, and a broken-down UTC time.
#include <string.h>

#include "py/mphal.h"
#include "shared/timeutils/timeutils.h"
#include "ports/manticore/manticore.h"

#include "mbedtls/build_info.h"
#include "mbedtls/platform_time.h"
#include "mbedtls/platform_util.h"

// MBEDTLS_ENTROPY_HARDWARE_ALT: the entropy collector's one strong source. The kernel's
// entropy: virtio-rng (the host's /dev/urandom), else RDSEED/RDRAND, else a TSC-stirred
// generator that is NOT cryptographically strong (README, "Entropy").
int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len, size_t *olen) {
    (void)data;
    manticore_entropy(output, len);
    *olen = len;
    return 0;
}

// MBEDTLS_PLATFORM_ZEROIZE_ALT: a memset the compiler cannot drop (keys, secrets).
void mbedtls_platform_zeroize(void *buf, size_t len) {
    if (len > 0) {
        memset(buf, 0, len);
        __asm__ volatile ("" : : "r" (buf) : "memory");
    }
}

time_t manticore_mbedtls_time(time_t *timer) {
    time_t now = (time_t)(mp_hal_time_ns() / 1000000000ULL);
    if (timer != NULL) {
        *timer = now;
    }
    return now;
}

mbedtls_ms_time_t mbedtls_ms_time(void) {
    return (mbedtls_ms_time_t)(mp_hal_time_ns() / 1000000ULL);
}

struct tm *mbedtls_platform_gmtime_r(const mbedtls_time_t *tt, struct tm *tm_buf) {
    timeutils_struct_time_t t;
    timeutils_seconds_since_epoch_to_struct_time((uint64_t)*tt, &t);
    memset(tm_buf, 0, sizeof(*tm_buf));
    tm_buf->tm_sec = t.tm_sec;
    tm_buf->tm_min = t.tm_min;
    tm_buf->tm_hour = t.tm_hour;
    tm_buf->tm_mday = t.tm_mday;
    tm_buf->tm_mon = t.tm_mon - 1;
    tm_buf->tm_year = t.tm_year - 1900;
    tm_buf->tm_wday = t.tm_wday;
    tm_buf->tm_yday = t.tm_yday - 1;
    return tm_buf;
}
