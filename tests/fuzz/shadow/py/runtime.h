// Host stand-in for MicroPython's py/runtime.h, found first when tests/fuzz builds the port's
// lwIP glue (ports/manticore/netif_virtio.c), which only prints through mp_printf: the fuzz
// harness defines mp_plat_print and mp_printf, no MicroPython in the build.
#ifndef MICROPY_INCLUDED_PY_RUNTIME_H
#define MICROPY_INCLUDED_PY_RUNTIME_H
typedef struct _mp_print_t { void *data; } mp_print_t;
extern const mp_print_t mp_plat_print;
int mp_printf(const mp_print_t *print, const char *fmt, ...);
#endif
