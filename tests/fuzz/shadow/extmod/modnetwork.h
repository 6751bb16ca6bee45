// Host stand-in for MicroPython's extmod/modnetwork.h (see py/runtime.h here): the hostname
// netif_virtio.c gives lwIP's DHCP client; the fuzz harness defines it.
#ifndef MICROPY_INCLUDED_MODNETWORK_H
#define MICROPY_INCLUDED_MODNETWORK_H
extern char mod_network_hostname_data[];
#endif
