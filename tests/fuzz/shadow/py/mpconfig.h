// Host stand-in for MicroPython's py/mpconfig.h, found first when tests/fuzz builds lwIP with
// the port's lwipopts.h (which includes extmod's lwipopts_common.h, which includes this for
// the few MICROPY_ options it reads): no MicroPython in the lwIP harness.
#ifndef MICROPY_INCLUDED_PY_MPCONFIG_H
#define MICROPY_INCLUDED_PY_MPCONFIG_H
#define MICROPY_PY_LWIP_PPP 0
#endif
