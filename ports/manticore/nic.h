// Who consumes the virtio-net queues: lwIP (the default) or an app that acquired the NIC
// through the raw binding (_nic.acquire(), modnic.c: frames as memoryviews over the DMA
// buffers, the parakernel path of issue 5). Only one of them may pop the RX ring.
#ifndef MICROPY_INCLUDED_MANTICORE_NIC_H
#define MICROPY_INCLUDED_MANTICORE_NIC_H

#include <stdbool.h>

// True while an app owns the NIC: lwIP's netif must not call virtio_net_rx_poll then (and
// should not transmit). While acquired, _nic has replaced the driver's notify callback with
// its own (virtio_net_set_notify), and puts the previous one back on release.
bool nic_raw_acquired(void);

// Give the NIC back to lwIP (on soft reset, or when the owning app ends): returns every RX
// buffer the app still holds to the ring and restores the notify callback.
void nic_raw_release(void);

#endif // MICROPY_INCLUDED_MANTICORE_NIC_H
