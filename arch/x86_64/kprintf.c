// A tiny printf for the architecture layer: it writes straight to the serial console, so the
// boot code and the panic report work before (and without) the port's own printf.
#include "arch/x86_64/kprintf.h"

#include <stdbool.h>
#include <stdint.h>

#include "drivers/serial/uart16550.h"

typedef void (*emit_fn)(char c, void *context);

static void emit_number(emit_fn emit, void *context, uint64_t value, unsigned base,
                        bool upper, bool negative, int width, bool zero_pad, bool left) {
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char text[24];
    int length = 0;
    do {
        text[length++] = digits[value % base];
        value /= base;
    } while (value);
    int total = length + (negative ? 1 : 0);
    if (!left && !zero_pad) {
        for (; total < width; total++) {
            emit(' ', context);
        }
    }
    if (negative) {
        emit('-', context);
    }
    if (!left && zero_pad) {
        for (; total < width; total++) {
            emit('0', context);
        }
    }
    while (length) {
        emit(text[--length], context);
    }
    for (; left && total < width; total++) {
        emit(' ', context);
    }
}

static void format(emit_fn emit, void *context, const char *fmt, va_list args) {
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(*fmt, context);
            continue;
        }
        fmt++;
        bool zero_pad = false, left = false;
        for (;; fmt++) {
            if (*fmt == '0') {
                zero_pad = true;
            } else if (*fmt == '-') {
                left = true;
            } else {
                break;
            }
        }
        int width = 0;
        if (*fmt == '*') {
            width = va_arg(args, int);
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9') {
                width = width * 10 + (*fmt++ - '0');
            }
        }
        int longs = 0;
        while (*fmt == 'l' || *fmt == 'z') {
            longs += (*fmt == 'z') ? 2 : 1;
            fmt++;
        }
        switch (*fmt) {
            case '%':
                emit('%', context);
                break;
            case 'c':
                emit((char)va_arg(args, int), context);
                break;
            case 's': {
                const char *s = va_arg(args, const char *);
                if (!s) {
                    s = "(null)";
                }
                int length = 0;
                while (s[length]) {
                    length++;
                }
                for (int pad = length; !left && pad < width; pad++) {
                    emit(' ', context);
                }
                for (int i = 0; i < length; i++) {
                    emit(s[i], context);
                }
                for (int pad = length; left && pad < width; pad++) {
                    emit(' ', context);
                }
                break;
            }
            case 'd':
            case 'i': {
                int64_t value = longs ? va_arg(args, int64_t) : va_arg(args, int);
                bool negative = value < 0;
                uint64_t magnitude = negative ? -(uint64_t)value : (uint64_t)value;
                emit_number(emit, context, magnitude, 10, false, negative, width, zero_pad, left);
                break;
            }
            case 'u':
            case 'x':
            case 'X': {
                uint64_t value = longs ? va_arg(args, uint64_t) : va_arg(args, unsigned);
                unsigned base = (*fmt == 'u') ? 10 : 16;
                emit_number(emit, context, value, base, *fmt == 'X', false, width, zero_pad, left);
                break;
            }
            case 'p':
                emit('0', context);
                emit('x', context);
                emit_number(emit, context, (uintptr_t)va_arg(args, void *), 16, false, false,
                            16, true, false);
                break;
            case '\0':
                return;
            default:
                emit('%', context);
                emit(*fmt, context);
                break;
        }
    }
}

// kprintf's output collects in chunks that go to the UART as whole writes: one LSR check per
// FIFO's worth of bytes instead of one per byte, and another CPU's write cannot fall into the
// middle of a chunk (a line, for every line shorter than a chunk).
enum { SERIAL_CHUNK = 128 };

struct serial_sink {
    size_t length;
    char chunk[SERIAL_CHUNK];
};

static void serial_flush(struct serial_sink *sink) {
    uart_write(sink->chunk, sink->length);
    sink->length = 0;
}

static void emit_serial(char c, void *context) {
    struct serial_sink *sink = context;
    if (sink->length + 2 > SERIAL_CHUNK) {
        serial_flush(sink);
    }
    if (c == '\n') {
        sink->chunk[sink->length++] = '\r';
    }
    sink->chunk[sink->length++] = c;
}

void kvprintf(const char *fmt, va_list args) {
    struct serial_sink sink = { .length = 0 };
    format(emit_serial, &sink, fmt, args);
    serial_flush(&sink);
}

void kprintf(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    kvprintf(fmt, args);
    va_end(args);
}

struct buffer_sink {
    char *buf;
    size_t size;
    size_t length;
};

static void emit_buffer(char c, void *context) {
    struct buffer_sink *sink = context;
    if (sink->length + 1 < sink->size) {
        sink->buf[sink->length] = c;
    }
    sink->length++;
}

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list args) {
    struct buffer_sink sink = { buf, size, 0 };
    format(emit_buffer, &sink, fmt, args);
    if (size) {
        buf[sink.length < size ? sink.length : size - 1] = '\0';
    }
    return (int)sink.length;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int length = kvsnprintf(buf, size, fmt, args);
    va_end(args);
    return length;
}
