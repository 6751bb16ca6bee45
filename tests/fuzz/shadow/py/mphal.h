// Host stand-in for MicroPython's py/mphal.h (see runtime.h here): nothing netif_virtio.c uses.
#ifndef MICROPY_INCLUDED_PY_MPHAL_H
#define MICROPY_INCLUDED_PY_MPHAL_H
#endif
