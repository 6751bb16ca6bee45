// The port's mbedTLS configuration (MBEDTLS_CONFIG_FILE): MicroPython's common set of TLS 1.2
// features (extmod/mbedtls/mbedtls_config_common.h) in its bare-metal form, with the kernel's
// entropy, the RTC's wall clock and the x86-64 fast paths.
#ifndef MANTICORE_MBEDTLS_CONFIG_PORT_H
#define MANTICORE_MBEDTLS_CONFIG_PORT_H

#include <stdint.h>
#include <time.h>

// Allocation through MicroPython's tracked allocator (the GC heap of the calling CPU), and
// entropy from mbedtls_hardware_poll() (mbedtls_port.c), never from a host OS.
#define MICROPY_MBEDTLS_CONFIG_BARE_METAL (1)

// Certificate validity: the CMOS RTC, advanced by the TSC (mp_hal_time_ns).
// mbedTLS would otherwise call time()/gmtime_r() from a libc the kernel does not have.
time_t manticore_mbedtls_time(time_t *timer);
#define MBEDTLS_PLATFORM_TIME_MACRO manticore_mbedtls_time
#define MBEDTLS_PLATFORM_MS_TIME_ALT
#define MBEDTLS_PLATFORM_GMTIME_R_ALT

// The compiler's headers are glibc's, so mbedTLS would take this for Linux: it would call
// explicit_bzero() and inet_pton(), which the kernel has not. Its own portable code instead.
#define MBEDTLS_PLATFORM_ZEROIZE_ALT
#define MBEDTLS_TEST_SW_INET_PTON

// Certificates and keys in PEM as well as DER (what openssl and Python's ssl write).
#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C

// cryptolib's AES-CTR mode (MICROPY_PY_CRYPTOLIB_CTR).
#define MBEDTLS_CIPHER_MODE_CTR

// x86-64: the bignum multiply in assembly (RSA/ECDHE handshakes) and AES-NI, used only when
// CPUID.01H:ECX.AESNI[bit 25] says the CPU has it (aesni.c checks at run time).
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_AESNI_C

// SSLSocket.getpeercert() (extmod/modtls_mbedtls.c has it only with this): the peer's
// certificate is kept after the handshake, about 0.5-1.5 KiB of heap per connection.
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE

#include "extmod/mbedtls/mbedtls_config_common.h"

// The common file names snprintf: shared/libc/printf.c (in extmod.mk) has it.
#endif // MANTICORE_MBEDTLS_CONFIG_PORT_H
