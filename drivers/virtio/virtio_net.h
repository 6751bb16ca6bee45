// virtio-net, the virtio network device (virtio 1.2, 5.1): one receive queue of pre-posted
// device-writable DMA buffers and one transmit queue of device-readable ones, each with its own
// MSI-X vector, plus the link status in the device configuration (5.1.4) with a config-change
// vector. Frames are handed up zero copy: a struct net_frame points into the DMA buffer just
// past the virtio_net_hdr (5.1.6), and the buffer goes back to the receive ring when the
// consumer releases it. The consumer is lwIP's netif (ports/manticore/netif_virtio.c) or, when
// an application has acquired the NIC, the raw binding (ports/manticore/modnic.c).
//
// Not reentrant: call everything except the notify callback from one context (Python time,
// not a hard IRQ). The notify callback runs in hard IRQ context with interrupts off.
#ifndef DRIVERS_VIRTIO_VIRTIO_NET_H
#define DRIVERS_VIRTIO_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#define NET_BUFFER_SIZE 2048            // one RX/TX buffer (frame max 1514 + virtio_net_hdr)

// One received frame. data: the Ethernet frame (destination MAC first), no virtio header.
struct net_frame { uint8_t *data; uint16_t len; uint16_t buffer_id; };

enum { NET_EVENT_RX = 1, NET_EVENT_TX = 2, NET_EVENT_LINK = 4 };

struct virtio_net_stats {
    uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
    uint64_t rx_dropped_malformed;      // shorter than an Ethernet header, larger than the buffer, bad virtio header
    uint64_t rx_dropped_no_buffer;      // consumer had no room (counted, frame returned)
    uint64_t tx_busy;                   // tx attempts refused because the ring/buffers were full
    uint64_t link_changes;
    uint32_t rx_buffers_total, rx_buffers_free_in_ring, tx_buffers_free;
    // Beyond the contract (appended, so the fields above keep their meaning):
    uint32_t rx_buffers_held;           // popped and not yet released by the consumer
    uint32_t tx_buffers_total, tx_in_flight;
    uint64_t rx_interrupts, tx_interrupts, config_interrupts;
    uint64_t rx_kicks, tx_kicks;        // notifications actually sent to the device
    uint64_t rx_release_invalid;        // rx_release of an id not held (ignored)
};

// Bind the first virtio-net in pci_devices[] (after pci_init and the interrupt setup):
// negotiate VERSION_1 | MAC | STATUS, set up the queues, post the receive buffers and print
// the boot line. Returns 0, or -1 when there is none or it failed (a boot line says why).
int virtio_net_probe(void);
bool virtio_net_present(void);
void virtio_net_mac(uint8_t mac[6]);
bool virtio_net_link_up(void);

// Called in hard IRQ context (interrupts off) with NET_EVENT_* bits: keep it short, e.g.
// softirq_raise. NULL to stop.
void virtio_net_set_notify(void (*callback)(void *context, unsigned events), void *context);
// The current notify callback and context (to swap it temporarily).
void virtio_net_get_notify(void (**callback)(void *context, unsigned events), void **context);

// Pop one received frame (zero copy: data points into the DMA buffer). false when none is
// pending. Malformed frames are dropped, counted and reposted here, never returned.
bool virtio_net_rx_poll(struct net_frame *frame);
// Give the buffer back to the RX ring (reposted; the kick is batched).
void virtio_net_rx_release(uint16_t buffer_id);
// Count a frame the consumer had no room for (the consumer still releases the buffer).
void virtio_net_rx_count_no_buffer(void);

// A free TX buffer (NET_BUFFER_SIZE - header bytes usable: VIRTIO_NET_TX_MTU), NULL =
// back-pressure (counted in tx_busy). Reclaims completed buffers first.
void *virtio_net_tx_alloc(void);
#define VIRTIO_NET_TX_MTU (NET_BUFFER_SIZE - 12)
// Queue the frame in `buffer` (from tx_alloc, len bytes from the destination MAC) and notify
// the device. -1 if the ring is full or len is out of range (the buffer stays the caller's:
// give it back with virtio_net_tx_free or retry).
int virtio_net_tx_send(void *buffer, uint16_t len);
// Return an allocated but unsent TX buffer to the free list.
void virtio_net_tx_free(void *buffer);
// Return completed TX buffers to the free list.
void virtio_net_tx_reclaim(void);

// A snapshot of the counters (reclaims completed TX buffers first: Python time only).
void virtio_net_get_stats(struct virtio_net_stats *stats);

#endif
