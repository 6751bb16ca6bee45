// Who consumes a virtio-net queue pair: lwIP (queue pair 0 of the NIC it is bound to) or an
// app that acquired the pair through the raw binding (_nic, modnic.c: frames as memoryviews
// over the DMA buffers, the parakernel path). Only one of them may pop a pair's RX ring.
#ifndef MICROPY_INCLUDED_MANTICORE_NIC_H
#define MICROPY_INCLUDED_MANTICORE_NIC_H

#include <stdbool.h>

struct virtio_net_queue;

// True while an app owns queue pair `q`: lwIP's netif must not call virtio_net_rx_poll on it
// then (and should not transmit). While acquired, _nic has replaced the pair's notify
// callback with its own, and puts the previous one back on release.
bool nic_raw_acquired(const struct virtio_net_queue *q);

// Give back the queue pairs this CPU's apps hold (on this CPU's soft reset): returns every RX
// and TX buffer the app still holds and restores the notify callbacks. Other CPUs' pairs stay.
void nic_raw_release(void);

#endif // MICROPY_INCLUDED_MANTICORE_NIC_H
