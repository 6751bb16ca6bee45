// A tiny printf for the architecture layer: it writes straight to the serial console, so the
// boot code and the panic report work before (and without) the port's own printf.
#ifndef ARCH_X86_64_KPRINTF_H
#define ARCH_X86_64_KPRINTF_H

#include <stdarg.h>
#include <stddef.h>

// Supported conversions: %% %c %s %d %i %u %x %X %p, with flags '0' and '-', a field width
// (number or '*'), and the length modifiers l, ll, z. "\n" is written as "\r\n".
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list args);

// Same formatting into a buffer; always NUL-terminates (when size > 0) and returns the length
// the full output would have had, like C99 snprintf. No newline translation.
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list args);

#endif
