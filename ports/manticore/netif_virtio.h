// lwIP's network interface over the virtio-net fast path (drivers/virtio/virtio_net.h): the
// glue between the driver's zero-copy frames and lwIP's netif, and lwIP's timers on the
// kernel's one-shot timer. network_lan.c is its Python face.
#ifndef MICROPY_INCLUDED_MANTICORE_NETIF_VIRTIO_H
#define MICROPY_INCLUDED_MANTICORE_NETIF_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

struct netif;

// Once at boot, after virtio_net_probe and before Python: when a NIC exists, lwIP and the
// netif "en0" (down, no address), its soft IRQs and the driver's notify callback.
void netif_virtio_init(void);
// lwIP itself, once per boot: at boot when there is a NIC, else on the first lwIP call
// (manticore_lwip_enter: socket(), network.LAN(), the TCP REPL), so that a boot without a
// NIC does not pay for it (boottrace "lwip": 1.1 ms of a 65 ms microvm boot under TCG).
void netif_virtio_start_lwip(void);

// The netif, or NULL without a NIC.
struct netif *netif_virtio(void);
// The virtio-net queue pair lwIP uses (pair 0 of lwip=ethN, default eth0), NULL if none.
struct virtio_net_queue;
struct virtio_net_queue *netif_virtio_queue(void);

// Bring the interface up: static addresses from the kernel command line (ip=A.B.C.D[/len]
// netmask= gw= dns=) when ip= is given, else the DHCP client. Down releases the lease.
void netif_virtio_up(void);
void netif_virtio_down(void);
// "static", "dhcp" or "off": how the interface got (or gets) its address.
const char *netif_virtio_addressing(void);

// lwIP runs on this CPU (sockets, the netif, its timers).
#define LWIP_CPU (0)

// From the wake-up IPI's handler: on lwIP's CPU, look at NIC events another CPU recorded.
void netif_virtio_wake(void);

// After any section of lwIP calls made from Python: re-arm the kernel timer for lwIP's next
// timeout (MICROPY_PY_LWIP_EXIT). Cheap when nothing moved.
void netif_virtio_lwip_exit(void);

struct netif_virtio_stats {
    uint64_t rx_zero_copy;              // frames handed to lwIP as pbufs over the DMA buffer
    uint64_t rx_copied;                 // frames copied because DMA buffers ran low
    uint64_t rx_dropped_no_pbuf;        // copy wanted but no pbuf: dropped (and counted)
    uint64_t tx_waits;                  // linkoutput found no TX buffer at first
    uint64_t tx_dropped_busy;           // ... and none after waiting: ERR_MEM to lwIP
    uint32_t rx_pbufs_held;             // DMA buffers currently inside lwIP / sockets
    uint32_t rx_pbufs_held_max;
};
void netif_virtio_get_stats(struct netif_virtio_stats *stats);

#endif // MICROPY_INCLUDED_MANTICORE_NETIF_VIRTIO_H
