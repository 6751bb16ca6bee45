// The Linux peer's mbedTLS configuration (MBEDTLS_CONFIG_FILE of its unix port build), so
// that `invoke bench tls` compares the two environments and not two mbedTLS builds: the same
// mbedTLS tree (Debian's, fetched by manticore_host/fetch.py) and the same settings as
// ports/manticore/mbedtls/mbedtls_config_port.h wherever they bear on speed or on what a
// handshake does: MicroPython's common TLS 1.2 feature set, allocation through MicroPython's
// tracked allocator on the GC heap (the "bare metal" form, as on manticore), PEM, AES-CTR,
// the bignum assembly and AES-NI (used only when CPUID says so, as on manticore).
// What differs is what a hosted libc provides: entropy from the kernel (getrandom) and the
// wall clock from time()/gmtime_r(), as MicroPython's unix coverage variant does.
#ifndef MANTICORE_PEER_MBEDTLS_CONFIG_H
#define MANTICORE_PEER_MBEDTLS_CONFIG_H

#define MICROPY_MBEDTLS_CONFIG_BARE_METAL (1)

#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_CIPHER_MODE_CTR
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_AESNI_C

#include "extmod/mbedtls/mbedtls_config_common.h"

// Linux has entropy: mbedTLS's platform source (getrandom), not a hardware hook.
#undef MBEDTLS_ENTROPY_HARDWARE_ALT
#undef MBEDTLS_NO_PLATFORM_ENTROPY

#endif // MANTICORE_PEER_MBEDTLS_CONFIG_H
