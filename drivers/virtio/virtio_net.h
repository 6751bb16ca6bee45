// virtio-net, the virtio network device (virtio 1.2, 5.1), as per-device and per-queue-pair
// objects: any number of NICs (eth0, eth1, ... in PCI order), and on each every queue pair the
// device offers (VIRTIO_NET_F_MQ, enabled with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET on the control
// virtqueue, 5.1.6.5.5). A queue pair is one receive queue of pre-posted device-writable DMA
// buffers and one transmit queue of device-readable ones, each with its own MSI-X vector, sent
// to the CPU in the pair's `cpu` field; link status comes from the device configuration
// (5.1.4) through the config-change vector. Frames are handed up zero copy: a struct net_frame
// points into the DMA buffer just past the virtio_net_hdr (5.1.6), and the buffer goes back to
// the receive ring when the consumer releases it. A pair's consumer is lwIP's netif
// (ports/manticore/netif_virtio.c) or an app that acquired it (ports/manticore/modnic.c).
//
// A queue pair belongs to one context at a time: everything except the notify callback is
// called from the CPU that holds the pair (Python time, not a hard IRQ); the notify callback
// runs in hard IRQ context with interrupts off, on the pair's `cpu`.
#ifndef DRIVERS_VIRTIO_VIRTIO_NET_H
#define DRIVERS_VIRTIO_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/virtio/virtio.h"

#define NET_BUFFER_SIZE 2048            // one RX/TX buffer (frame max 1514 + virtio_net_hdr)
#define VIRTIO_NET_MAX_DEVICES 4
#define VIRTIO_NET_MAX_PAIRS 8          // queue pairs used per device (the device may offer more)
#define VIRTIO_NET_RX_BUFFERS_MAX 256
#define VIRTIO_NET_TX_BUFFERS_MAX 128

// One received frame. data: the Ethernet frame (destination MAC first), no virtio header.
struct net_frame { uint8_t *data; uint16_t len; uint16_t buffer_id; };

enum { NET_EVENT_RX = 1, NET_EVENT_TX = 2, NET_EVENT_LINK = 4 };

struct virtio_net_stats {
    uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
    uint64_t rx_dropped_malformed;      // shorter than an Ethernet header, larger than the buffer, bad virtio header
    uint64_t rx_dropped_no_buffer;      // consumer had no room (counted, frame returned)
    uint64_t tx_busy;                   // tx attempts refused because the ring/buffers were full
    uint64_t link_changes;              // the device's (shared by its queue pairs)
    uint32_t rx_buffers_total, rx_buffers_free_in_ring, tx_buffers_free;
    // Beyond the contract (appended, so the fields above keep their meaning):
    uint32_t rx_buffers_held;           // popped and not yet released by the consumer
    uint32_t tx_buffers_total, tx_in_flight;
    uint64_t rx_interrupts, tx_interrupts, config_interrupts;
    uint64_t rx_kicks, tx_kicks;        // notifications actually sent to the device
    uint64_t rx_release_invalid;        // rx_release of an id not held (ignored)
    uint32_t tx_inplace_in_flight;      // RX buffers in the TX ring (tx_inplace), not yet back
    uint64_t tx_inplace;                // frames sent from their RX buffer
};

struct virtio_net;

// One queue pair (receiveqN + transmitqN, 5.1.2) and everything the driver keeps for it.
struct virtio_net_queue {
    struct virtio_net *nic;
    uint16_t pair;                      // 0-based: receiveq(pair+1), transmitq(pair+1)
    unsigned cpu;                       // CPU its interrupts are delivered to (smp_apic_id)
    bool enabled;                       // the device uses it (pair < nic->pairs)
    struct virtqueue *rxq, *txq;
    uint8_t *rx_base, *tx_base;         // rx_count / tx_count buffers of NET_BUFFER_SIZE
    uint16_t rx_count, tx_count;
    uint16_t rx_in_ring;                // posted and not yet popped
    uint16_t rx_unkicked;               // posted since the last notification
    uint16_t tx_free_count;
    uint8_t rx_state[VIRTIO_NET_RX_BUFFERS_MAX];
    uint8_t tx_state[VIRTIO_NET_TX_BUFFERS_MAX];
    uint16_t tx_free_list[VIRTIO_NET_TX_BUFFERS_MAX];
    struct virtio_net_stats stats;
    void (*notify_callback)(void *context, unsigned events);
    void *notify_context;
};

// One virtio-net device.
struct virtio_net {
    struct virtio_device vdev;
    unsigned index;                     // ethN
    char name[8];
    uint8_t mac[6];
    volatile bool link_up;
    uint16_t pairs;                     // queue pairs in use
    uint16_t max_pairs;                 // max_virtqueue_pairs offered (1 without MQ)
    struct virtqueue *ctrlq;            // control virtqueue (VIRTIO_NET_F_CTRL_VQ), or NULL
    uint8_t *ctrl_buffer;
    uint64_t link_changes;
    struct virtio_net_queue queue[VIRTIO_NET_MAX_PAIRS];
};

// Bind every virtio-net in pci_devices[] (after pci_init and the interrupt setup) as eth0,
// eth1, ...: negotiate VERSION_1 | MAC | STATUS | CTRL_VQ | MQ | EVENT_IDX, set up every queue
// pair and the control queue, post the receive buffers and print a boot line each. Returns the
// number of usable NICs.
int virtio_net_probe(void);
// The NICs found: virtio_net_device(i) for i < virtio_net_count(); NULL past the end.
unsigned virtio_net_count(void);
struct virtio_net *virtio_net_device(unsigned index);
// Queue pair `pair` of NIC `index`, or NULL when there is no such (enabled) pair.
struct virtio_net_queue *virtio_net_queue(unsigned index, unsigned pair);

bool virtio_net_link_up(const struct virtio_net *nic);

// Deliver the pair's interrupts to `cpu` (its MSI-X entries are reprogrammed). 0, or -1.
int virtio_net_set_cpu(struct virtio_net_queue *q, unsigned cpu);

// Called in hard IRQ context (interrupts off) with NET_EVENT_* bits: keep it short, e.g.
// softirq_raise. NULL to stop.
void virtio_net_set_notify(struct virtio_net_queue *q,
    void (*callback)(void *context, unsigned events), void *context);
void virtio_net_get_notify(struct virtio_net_queue *q,
    void (**callback)(void *context, unsigned events), void **context);

// Pop one received frame (zero copy: data points into the DMA buffer). false when none is
// pending (the RX interrupt is then re-armed). Malformed frames are dropped, counted and
// reposted here, never returned.
bool virtio_net_rx_poll(struct virtio_net_queue *q, struct net_frame *frame);
// Like rx_poll, but leaves the interrupt as it is (busy polling, batches).
bool virtio_net_rx_poll_quiet(struct virtio_net_queue *q, struct net_frame *frame);
// Give the buffer back to the RX ring (reposted; the kick is batched).
void virtio_net_rx_release(struct virtio_net_queue *q, uint16_t buffer_id);
// Send out reposted buffers not yet notified.
void virtio_net_rx_flush(struct virtio_net_queue *q);
// Count a frame the consumer had no room for (the consumer still releases the buffer).
void virtio_net_rx_count_no_buffer(struct virtio_net_queue *q);
// Receive interrupts on or off (2.7.7); enabling returns true when frames arrived meanwhile.
void virtio_net_rx_interrupts_off(struct virtio_net_queue *q);
bool virtio_net_rx_interrupts_on(struct virtio_net_queue *q);

// A free TX buffer (NET_BUFFER_SIZE - header bytes usable: VIRTIO_NET_TX_MTU), NULL =
// back-pressure (counted in tx_busy). Reclaims completed buffers first.
void *virtio_net_tx_alloc(struct virtio_net_queue *q);
#define VIRTIO_NET_TX_MTU (NET_BUFFER_SIZE - 12)
// Queue the frame in `buffer` (from tx_alloc, len bytes from the destination MAC) and notify
// the device (unless `kick` is false: then virtio_net_tx_kick after the batch). -1 if the
// ring is full or len is out of range (the buffer stays the caller's: tx_free or retry).
int virtio_net_tx_send(struct virtio_net_queue *q, void *buffer, uint16_t len);
int virtio_net_tx_queue(struct virtio_net_queue *q, void *buffer, uint16_t len, bool kick);
void virtio_net_tx_kick(struct virtio_net_queue *q);
// Transmit `len` bytes of held RX buffer `buffer_id` as they are (a reply built in place).
// The buffer leaves the consumer's hands: after the device has sent it, tx_reclaim posts it
// back to the RX ring. -1 (still held) if it is not held, len is out of range or the TX ring
// is full. virtio allows one buffer to be device-readable in one queue and device-writable in
// another at different times (2.7.13); only the driver must not use it in both at once.
int virtio_net_tx_inplace(struct virtio_net_queue *q, uint16_t buffer_id, uint16_t len, bool kick);
// Return an allocated but unsent TX buffer to the free list.
void virtio_net_tx_free(struct virtio_net_queue *q, void *buffer);
// Return completed TX buffers to the free list.
void virtio_net_tx_reclaim(struct virtio_net_queue *q);

// A snapshot of the pair's counters (reclaims completed TX buffers first).
void virtio_net_get_stats(struct virtio_net_queue *q, struct virtio_net_stats *stats);

#endif
