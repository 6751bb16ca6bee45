// lwIP's compiler/platform glue for the manticore port (lwIP doc: "Porting for an OS",
// src/include/lwip/arch.h). gcc, LP64, little endian: arch.h's defaults for the integer types
// and byte order are right; only diagnostics and assertions are the kernel's.
#ifndef MICROPY_INCLUDED_MANTICORE_LWIP_ARCH_CC_H
#define MICROPY_INCLUDED_MANTICORE_LWIP_ARCH_CC_H

#define LWIP_NO_CTYPE_H 1               // freestanding: lwIP's own isdigit() & co.

// lwIP assertions are kernel panics (netif_virtio.c says why); MicroPython's own ports compile
// them to nothing, which lets lwIP go on past a broken invariant.
void manticore_lwip_assert(const char *message, const char *file, int line)
    __attribute__((noreturn));
#define LWIP_PLATFORM_ASSERT(x)         manticore_lwip_assert((x), __FILE__, __LINE__)
// Debug output (LWIP_DEBUG) is off; LWIP_PLATFORM_DIAG((fmt, ...)) would print via kprintf.
#define LWIP_PLATFORM_DIAG(x)           do { } while (0)

// lwIP's heap and pools (1.3 MiB): in the kernel's .bss.noinit (kernel.ld), which boot.S does
// not zero, as mem_init and memp_init write every header they later read.
#define LWIP_DECLARE_MEMORY_ALIGNED(variable_name, size) \
    u8_t variable_name[LWIP_MEM_ALIGN_BUFFER(size)] __attribute__((section(".bss.noinit." #variable_name)))

#endif // MICROPY_INCLUDED_MANTICORE_LWIP_ARCH_CC_H
