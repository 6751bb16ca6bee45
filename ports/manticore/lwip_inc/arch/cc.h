// lwIP's compiler/platform glue for the manticore port (lwIP doc: "Porting for an OS",
// src/include/lwip/arch.h). gcc, LP64, little endian: arch.h's defaults for the integer types
// and byte order are right; only diagnostics and assertions are the kernel's.
#ifndef MICROPY_INCLUDED_MANTICORE_LWIP_ARCH_CC_H
#define MICROPY_INCLUDED_MANTICORE_LWIP_ARCH_CC_H

#define LWIP_NO_CTYPE_H 1               // freestanding: lwIP's own isdigit() & co.

// lwIP assertions are reported and survived, not fatal: extmod/modlwip.c trips some on
// purpose-free paths (tcp_err(pcb, NULL) on a LISTEN pcb when a listening socket closes,
// tcp.c "invalid socket state for err callback"), which is why MicroPython's own ports
// compile them to nothing. This port counts all (network.LAN().stats()['lwip_asserts']) and
// prints the first few with file and line, except those known to be harmless (netif_virtio.c).
void manticore_lwip_assert(const char *message, const char *file, int line);
#define LWIP_PLATFORM_ASSERT(x)         manticore_lwip_assert((x), __FILE__, __LINE__)
// Debug output (LWIP_DEBUG) is off; LWIP_PLATFORM_DIAG((fmt, ...)) would print via kprintf.
#define LWIP_PLATFORM_DIAG(x)           do { } while (0)

#endif // MICROPY_INCLUDED_MANTICORE_LWIP_ARCH_CC_H
