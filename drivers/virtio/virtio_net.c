// virtio-net driver (virtio 1.2, 5.1) over any virtio transport and the split virtqueue: per
// device and per queue pair, receive queues with pre-posted DMA buffers handed up zero copy,
// transmit queues fed from a free list of DMA buffers, the control queue for multiqueue, and
// link status from the device configuration. See virtio_net.h.
#include "drivers/virtio/virtio_net.h"

#include <stddef.h>
#include <string.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/tsc.h"
#include "drivers/pci/msix.h"
#include "drivers/virtio/virtio_pci.h"
#include "mm/mm.h"

// Feature bits of the network device (5.1.3). Only MAC and STATUS are asked for (with the
// transport's EVENT_IDX): no checksum offload and no segmentation, so every received frame is
// complete and checksummed, and lwIP checks and computes checksums itself. MRG_RXBUF would
// only matter for buffers smaller than a frame; ours hold the largest frame plus the header.
enum {
    VIRTIO_NET_F_CSUM = 0,
    VIRTIO_NET_F_GUEST_CSUM = 1,
    VIRTIO_NET_F_MTU = 3,
    VIRTIO_NET_F_MAC = 5,
    VIRTIO_NET_F_MRG_RXBUF = 15,
    VIRTIO_NET_F_STATUS = 16,
    VIRTIO_NET_F_CTRL_VQ = 17,
    VIRTIO_NET_F_MQ = 22,
};

// Device configuration layout (5.1.4): mac[6], then le16 status.
enum {
    VIRTIO_NET_CONFIG_MAC = 0,
    VIRTIO_NET_CONFIG_STATUS = 6,
    VIRTIO_NET_CONFIG_MAX_PAIRS = 8,    // le16 max_virtqueue_pairs, with VIRTIO_NET_F_MQ
};

// Control virtqueue commands (5.1.6.5): class, command, data, then an ack byte the device
// writes. Multiqueue (5.1.6.5.5): VIRTIO_NET_CTRL_MQ / VQ_PAIRS_SET with le16 pairs.
enum {
    VIRTIO_NET_CTRL_MQ = 4,
    VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET = 0,
    VIRTIO_NET_OK = 0,
    CTRL_TIMEOUT_US = 1000000,
};

// status field bits (5.1.4).
enum {
    VIRTIO_NET_S_LINK_UP = 1,
    VIRTIO_NET_S_ANNOUNCE = 2,
};

// Queue indices (5.1.2): receiveqN = 2(N-1), transmitqN = 2(N-1)+1, controlq = 2 *
// max_virtqueue_pairs (2 without MQ).
static inline uint16_t rx_queue_index(unsigned pair) { return (uint16_t)(2 * pair); }
static inline uint16_t tx_queue_index(unsigned pair) { return (uint16_t)(2 * pair + 1); }

// struct virtio_net_hdr (5.1.6). With VIRTIO_F_VERSION_1 num_buffers is always present, so the
// header is 12 bytes whether or not MRG_RXBUF is negotiated (5.1.6, "legacy interface" note).
struct virtio_net_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
} __attribute__((packed));

_Static_assert(sizeof(struct virtio_net_hdr) == 12, "virtio_net_hdr is 12 bytes (5.1.6)");
_Static_assert(VIRTIO_NET_TX_MTU == NET_BUFFER_SIZE - sizeof(struct virtio_net_hdr),
    "VIRTIO_NET_TX_MTU matches the header");

enum {
    VIRTIO_NET_HDR_F_NEEDS_CSUM = 1,    // only with GUEST_CSUM (5.1.6.4.1)
    VIRTIO_NET_HDR_F_DATA_VALID = 2,    // only with GUEST_CSUM
    VIRTIO_NET_HDR_F_RSC_INFO = 4,      // only with GUEST_RSC4/6
    VIRTIO_NET_HDR_GSO_NONE = 0,
};

enum {
    HDR_SIZE = sizeof(struct virtio_net_hdr),
    ETH_HEADER = 14,                    // destination, source, EtherType (IEEE 802.3)
    BUFFERS_MIN = 16,
    RX_KICK_BATCH = 16,                 // reposted buffers per notification
};

// Per-buffer state, so that a double release or a foreign pointer is caught, not posted twice.
enum { BUF_IN_RING, BUF_HELD, BUF_FREE, BUF_ALLOCATED, BUF_IN_TX };

// The NICs, in PCI order. Each is one self-contained struct: the driver has no other state.
static struct virtio_net nics[VIRTIO_NET_MAX_DEVICES];
static unsigned nic_count;

// --- interrupts (hard IRQ context, interrupts off) --------------------------------------------

static void notify(struct virtio_net_queue *q, unsigned events) {
    void (*callback)(void *, unsigned) = q->notify_callback;
    if (callback != NULL) {
        callback(q->notify_context, events);
    }
}

static void rx_interrupt(struct virtqueue *vq, void *context) {
    (void)vq;
    notify(context, NET_EVENT_RX);
}

// TX interrupts are wanted only while someone waits for a free buffer (virtio_net_tx_alloc
// turned them on); one is enough, so they go off again here (2.7.7).
static void tx_interrupt(struct virtqueue *vq, void *context) {
    virtqueue_disable_interrupts(vq);
    notify(context, NET_EVENT_TX);
}

static bool read_link_status(struct virtio_net *nic) {
    if (!virtio_has_feature(&nic->vdev, VIRTIO_NET_F_STATUS)) {
        return true;    // without VIRTIO_NET_F_STATUS the link is assumed up (5.1.4.2)
    }
    uint16_t status = 0;
    virtio_read_config(&nic->vdev, VIRTIO_NET_CONFIG_STATUS, &status, sizeof(status));
    return status & VIRTIO_NET_S_LINK_UP;
}

// Configuration change (4.1.4.3 config_msix_vector): QEMU's set_link changes status here.
// Every queue pair's consumer hears about it.
static void config_changed(struct virtio_device *vdev, void *context) {
    (void)vdev;
    struct virtio_net *nic = context;
    bool up = read_link_status(nic);
    if (up != nic->link_up) {
        nic->link_up = up;
        nic->link_changes++;
        for (unsigned i = 0; i < nic->pairs; i++) {
            notify(&nic->queue[i], NET_EVENT_LINK);
        }
    }
}

void virtio_net_set_notify(struct virtio_net_queue *q,
    void (*callback)(void *context, unsigned events), void *context) {
    uint64_t flags = read_rflags();
    cli();
    q->notify_callback = callback;
    q->notify_context = context;
    if (flags & RFLAGS_IF) {
        sti();
    }
}

void virtio_net_get_notify(struct virtio_net_queue *q,
    void (**callback)(void *context, unsigned events), void **context) {
    *callback = q->notify_callback;
    *context = q->notify_context;
}

int virtio_net_set_cpu(struct virtio_net_queue *q, unsigned cpu) {
    if (!smp_cpu_online(cpu)) {
        return -1;
    }
    uint32_t apic = smp_apic_id(cpu);
    if (virtio_route_queue(&q->nic->vdev, q->rxq, apic) != 0
        || virtio_route_queue(&q->nic->vdev, q->txq, apic) != 0) {
        return -1;
    }
    q->cpu = cpu;
    return 0;
}

// --- receive ---------------------------------------------------------------------------------

static inline uint8_t *rx_buffer(struct virtio_net_queue *q, uint16_t id) {
    return q->rx_base + (size_t)id * NET_BUFFER_SIZE;
}

void virtio_net_rx_flush(struct virtio_net_queue *q) {
    if (q->rx_unkicked != 0) {
        q->rx_unkicked = 0;
        virtqueue_kick(q->rxq);
    }
}

// Post buffer `id` as device-writable (5.1.6.3): the whole buffer, header included. The
// notification is batched, except when the device is close to running dry.
static void rx_post(struct virtio_net_queue *q, uint16_t id) {
    uint8_t *buffer = rx_buffer(q, id);
    if (virtqueue_add_one(q->rxq, (uintptr_t)buffer, NET_BUFFER_SIZE, true, buffer) < 0) {
        return;     // cannot happen: one descriptor per buffer, as many descriptors as buffers
    }
    q->rx_state[id] = BUF_IN_RING;
    q->rx_in_ring++;
    q->rx_unkicked++;
    if (q->rx_unkicked >= RX_KICK_BATCH || q->rx_in_ring - q->rx_unkicked < q->rx_count / 4) {
        virtio_net_rx_flush(q);
    }
}

// What the device wrote is acceptable (5.1.6.4): at least a header and an Ethernet header,
// within the buffer, and a header that only uses what we negotiated (no checksum flags without
// GUEST_CSUM, no GSO without GUEST_TSO*, one buffer without MRG_RXBUF).
static bool rx_valid(struct virtio_net *nic, const uint8_t *buffer, uint32_t len) {
    if (len < HDR_SIZE + ETH_HEADER || len > NET_BUFFER_SIZE) {
        return false;
    }
    const struct virtio_net_hdr *hdr = (const void *)buffer;
    if (hdr->gso_type != VIRTIO_NET_HDR_GSO_NONE || hdr->num_buffers > 1) {
        return false;
    }
    uint8_t allowed = virtio_has_feature(&nic->vdev, VIRTIO_NET_F_GUEST_CSUM)
        ? VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID : 0;
    return (hdr->flags & ~allowed) == 0;
}

static bool rx_take(struct virtio_net_queue *q, struct net_frame *frame, bool rearm) {
    if (q == NULL || !q->enabled) {
        return false;
    }
    for (;;) {
        if (!virtqueue_has_used(q->rxq)) {
            if (q->stats.tx_inplace_in_flight != 0) {
                virtio_net_tx_reclaim(q);   // in-place replies sent: their buffers go back
            }
            virtio_net_rx_flush(q);
            // Re-arm the interrupt (used_event, with a fence) and look once more, so a frame
            // that arrived meanwhile is not left without an interrupt (2.7.7.1).
            if (!rearm || !virtqueue_enable_interrupts(q->rxq)) {
                return false;
            }
            continue;
        }
        uint32_t len = 0;
        uint8_t *buffer = virtqueue_pop(q->rxq, &len);
        if (buffer == NULL) {
            q->stats.rx_dropped_malformed++;   // an id we never posted: the device is confused
            continue;
        }
        uint16_t id = (uint16_t)((size_t)(buffer - q->rx_base) / NET_BUFFER_SIZE);
        q->rx_in_ring--;
        if (!rx_valid(q->nic, buffer, len)) {
            q->stats.rx_dropped_malformed++;
            rx_post(q, id);
            continue;
        }
        q->rx_state[id] = BUF_HELD;
        q->stats.rx_buffers_held++;
        q->stats.rx_frames++;
        q->stats.rx_bytes += len - HDR_SIZE;
        frame->data = buffer + HDR_SIZE;
        frame->len = (uint16_t)(len - HDR_SIZE);
        frame->buffer_id = id;
        return true;
    }
}

bool virtio_net_rx_poll(struct virtio_net_queue *q, struct net_frame *frame) {
    return rx_take(q, frame, true);
}

bool virtio_net_rx_poll_quiet(struct virtio_net_queue *q, struct net_frame *frame) {
    return rx_take(q, frame, false);
}

void virtio_net_rx_interrupts_off(struct virtio_net_queue *q) {
    virtqueue_disable_interrupts(q->rxq);
}

bool virtio_net_rx_interrupts_on(struct virtio_net_queue *q) {
    return virtqueue_enable_interrupts(q->rxq);
}

void virtio_net_rx_release(struct virtio_net_queue *q, uint16_t buffer_id) {
    if (q == NULL || !q->enabled || buffer_id >= q->rx_count
        || q->rx_state[buffer_id] != BUF_HELD) {
        if (q != NULL) {
            q->stats.rx_release_invalid++;
        }
        return;
    }
    q->stats.rx_buffers_held--;
    rx_post(q, buffer_id);
}

void virtio_net_rx_count_no_buffer(struct virtio_net_queue *q) {
    q->stats.rx_dropped_no_buffer++;
}

// --- transmit --------------------------------------------------------------------------------

// The TX buffer index of a payload pointer from virtio_net_tx_alloc, or -1.
static int tx_index(struct virtio_net_queue *q, const void *payload) {
    const uint8_t *p = payload;
    if (q->tx_base == NULL || p < q->tx_base + HDR_SIZE) {
        return -1;
    }
    size_t offset = (size_t)(p - q->tx_base - HDR_SIZE);
    if (offset % NET_BUFFER_SIZE != 0 || offset / NET_BUFFER_SIZE >= q->tx_count) {
        return -1;
    }
    return (int)(offset / NET_BUFFER_SIZE);
}

void virtio_net_tx_reclaim(struct virtio_net_queue *q) {
    if (q == NULL || !q->enabled) {
        return;
    }
    uint8_t *buffer;
    while ((buffer = virtqueue_pop(q->txq, NULL)) != NULL) {
        if (buffer >= q->rx_base && buffer < q->rx_base + (size_t)q->rx_count * NET_BUFFER_SIZE) {
            // A receive buffer sent in place: back to the RX ring.
            uint16_t rx_id = (uint16_t)((size_t)(buffer - q->rx_base) / NET_BUFFER_SIZE);
            if (q->rx_state[rx_id] == BUF_IN_TX) {
                q->stats.tx_inplace_in_flight--;
                rx_post(q, rx_id);
            }
            continue;
        }
        int id = tx_index(q, buffer + HDR_SIZE);
        if (id >= 0 && q->tx_state[id] == BUF_IN_RING) {
            q->tx_state[id] = BUF_FREE;
            q->tx_free_list[q->tx_free_count++] = (uint16_t)id;
        }
    }
}

void *virtio_net_tx_alloc(struct virtio_net_queue *q) {
    if (q == NULL || !q->enabled) {
        return NULL;
    }
    if (q->tx_free_count == 0) {
        virtio_net_tx_reclaim(q);
    }
    if (q->tx_free_count == 0) {
        // Back-pressure: ask for one interrupt when the device returns a buffer (the consumer
        // hears NET_EVENT_TX), and look again in case it did just now.
        uint64_t flags = read_rflags();
        cli();
        bool more = virtqueue_enable_interrupts(q->txq);
        if (flags & RFLAGS_IF) {
            sti();
        }
        if (more) {
            virtio_net_tx_reclaim(q);
        }
        if (q->tx_free_count == 0) {
            q->stats.tx_busy++;
            return NULL;
        }
    }
    uint16_t id = q->tx_free_list[--q->tx_free_count];
    q->tx_state[id] = BUF_ALLOCATED;
    return q->tx_base + (size_t)id * NET_BUFFER_SIZE + HDR_SIZE;
}

void virtio_net_tx_free(struct virtio_net_queue *q, void *buffer) {
    int id = tx_index(q, buffer);
    if (id >= 0 && q->tx_state[id] == BUF_ALLOCATED) {
        q->tx_state[id] = BUF_FREE;
        q->tx_free_list[q->tx_free_count++] = (uint16_t)id;
    }
}

void virtio_net_tx_kick(struct virtio_net_queue *q) {
    virtqueue_kick(q->txq);
}

int virtio_net_tx_queue(struct virtio_net_queue *q, void *buffer, uint16_t len, bool kick) {
    int id = tx_index(q, buffer);
    if (!q->enabled || id < 0 || q->tx_state[id] != BUF_ALLOCATED || len < ETH_HEADER
        || len > VIRTIO_NET_TX_MTU) {
        return -1;
    }
    // 5.1.6.2: no offloads, so the header is all zero (flags 0, GSO_NONE); num_buffers is
    // unused on transmit.
    uint8_t *start = (uint8_t *)buffer - HDR_SIZE;
    memset(start, 0, HDR_SIZE);
    if (virtqueue_add_one(q->txq, (uintptr_t)start, HDR_SIZE + len, false, start) < 0) {
        q->stats.tx_busy++;
        return -1;
    }
    q->tx_state[id] = BUF_IN_RING;
    q->stats.tx_frames++;
    q->stats.tx_bytes += len;
    if (kick) {
        virtqueue_kick(q->txq);
    }
    return 0;
}

int virtio_net_tx_inplace(struct virtio_net_queue *q, uint16_t buffer_id, uint16_t len, bool kick) {
    if (!q->enabled || buffer_id >= q->rx_count || q->rx_state[buffer_id] != BUF_HELD
        || len < ETH_HEADER || len > VIRTIO_NET_TX_MTU) {
        return -1;
    }
    uint8_t *start = rx_buffer(q, buffer_id);
    memset(start, 0, HDR_SIZE);     // 5.1.6.2: no offloads
    if (virtqueue_add_one(q->txq, (uintptr_t)start, HDR_SIZE + len, false, start) < 0) {
        virtio_net_tx_reclaim(q);
        if (virtqueue_add_one(q->txq, (uintptr_t)start, HDR_SIZE + len, false, start) < 0) {
            q->stats.tx_busy++;
            return -1;
        }
    }
    q->rx_state[buffer_id] = BUF_IN_TX;
    q->stats.rx_buffers_held--;
    q->stats.tx_inplace_in_flight++;
    q->stats.tx_inplace++;
    q->stats.tx_frames++;
    q->stats.tx_bytes += len;
    if (kick) {
        virtqueue_kick(q->txq);
    }
    return 0;
}

int virtio_net_tx_send(struct virtio_net_queue *q, void *buffer, uint16_t len) {
    return virtio_net_tx_queue(q, buffer, len, true);
}

// --- state -----------------------------------------------------------------------------------

unsigned virtio_net_count(void) {
    return nic_count;
}

struct virtio_net *virtio_net_device(unsigned index) {
    return index < nic_count ? &nics[index] : NULL;
}

struct virtio_net_queue *virtio_net_queue(unsigned index, unsigned pair) {
    struct virtio_net *nic = virtio_net_device(index);
    if (nic == NULL || pair >= nic->pairs) {
        return NULL;
    }
    return &nic->queue[pair];
}

bool virtio_net_link_up(const struct virtio_net *nic) {
    return nic != NULL && nic->link_up;
}

void virtio_net_get_stats(struct virtio_net_queue *q, struct virtio_net_stats *out) {
    // Reclaimed first, so that tx_buffers_free + tx_in_flight count what is true now; but only
    // on the CPU that uses the rings (q->cpu): from another CPU this is a snapshot.
    if (q->cpu == smp_cpu_id()) {
        virtio_net_tx_reclaim(q);
    }
    *out = q->stats;
    out->link_changes = q->nic->link_changes;
    out->rx_buffers_total = q->rx_count;
    out->rx_buffers_free_in_ring = q->rx_in_ring;
    out->tx_buffers_total = q->tx_count;
    out->tx_buffers_free = q->tx_free_count;
    out->tx_in_flight = 0;
    for (unsigned i = 0; i < q->tx_count; i++) {
        out->tx_in_flight += q->tx_state[i] == BUF_IN_RING;
    }
    out->rx_interrupts = q->rxq->interrupts;
    out->tx_interrupts = q->txq->interrupts;
    out->rx_kicks = q->rxq->kicks;
    out->tx_kicks = q->txq->kicks;
    out->config_interrupts = q->nic->vdev.config_changes;
}

// --- probe -----------------------------------------------------------------------------------

// Buffers for a pair's rings: as many as the queues hold, fewer when the DMA pool is small (it
// is 1/16 of RAM); the buffers of the `pairs_left` pairs still to set up may take at most half
// of what is left.
static bool allocate_buffers(struct virtio_net_queue *q, unsigned pairs_left) {
    q->rx_count = q->rxq->size < VIRTIO_NET_RX_BUFFERS_MAX ? q->rxq->size : VIRTIO_NET_RX_BUFFERS_MAX;
    q->tx_count = q->txq->size < VIRTIO_NET_TX_BUFFERS_MAX ? q->txq->size : VIRTIO_NET_TX_BUFFERS_MAX;
    while ((size_t)(q->rx_count + q->tx_count) * NET_BUFFER_SIZE * pairs_left > dma_free_bytes() / 2
           && q->rx_count > BUFFERS_MIN) {
        q->rx_count /= 2;
        q->tx_count = q->tx_count > BUFFERS_MIN ? q->tx_count / 2 : q->tx_count;
    }
    q->rx_base = dma_alloc((size_t)q->rx_count * NET_BUFFER_SIZE, 4096);
    q->tx_base = dma_alloc((size_t)q->tx_count * NET_BUFFER_SIZE, 4096);
    return q->rx_base != NULL && q->tx_base != NULL;
}

static void make_mac(struct virtio_net *nic) {
    if (virtio_has_feature(&nic->vdev, VIRTIO_NET_F_MAC)) {
        virtio_read_config(&nic->vdev, VIRTIO_NET_CONFIG_MAC, nic->mac, 6);
        return;
    }
    // 5.1.5: without VIRTIO_NET_F_MAC the driver picks one: locally administered, unicast.
    uint64_t r = tsc_read() + nic->index;
    r ^= r >> 29;
    r *= 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 6; i++) {
        nic->mac[i] = (uint8_t)(r >> (8 * i));
    }
    nic->mac[0] = (nic->mac[0] & 0xfe) | 0x02;
}

static const char *vector_text(int vector, char *text) {
    static const char hex[] = "0123456789abcdef";
    if (vector < 0) {
        return "none";
    }
    text[0] = '0';
    text[1] = 'x';
    text[2] = hex[(vector >> 4) & 15];
    text[3] = hex[vector & 15];
    text[4] = '\0';
    return text;
}

// One command on the control virtqueue (5.1.6.5), polled to completion: the chain is the
// device-readable class, command and data, then the device-writable ack. 0 when acked OK.
static int ctrl_command(struct virtio_net *nic, uint8_t class, uint8_t command,
    const void *data, uint32_t len) {
    if (nic->ctrlq == NULL || len > 64) {
        return -1;
    }
    uint8_t *out = nic->ctrl_buffer;
    uint8_t *ack = nic->ctrl_buffer + 128;
    out[0] = class;
    out[1] = command;
    memcpy(out + 2, data, len);
    *ack = 0xff;
    struct virtq_buf bufs[2] = {
        { (uintptr_t)out, 2 + len },
        { (uintptr_t)ack, 1 },
    };
    if (virtqueue_add(nic->ctrlq, bufs, 1, 1, out) < 0) {
        return -1;
    }
    virtqueue_kick(nic->ctrlq);
    uint64_t start = tsc_read();
    while (virtqueue_pop(nic->ctrlq, NULL) == NULL) {
        if (tsc_to_us(tsc_read() - start) > CTRL_TIMEOUT_US) {
            return -1;
        }
        __asm__ volatile ("pause");
    }
    return *(volatile uint8_t *)ack == VIRTIO_NET_OK ? 0 : -1;
}

static int setup_pair(struct virtio_net *nic, unsigned pair, unsigned pairs_left) {
    struct virtio_net_queue *q = &nic->queue[pair];
    q->nic = nic;
    q->pair = (uint16_t)pair;
    q->cpu = smp_cpu_id();      // the probing CPU until an app on another CPU acquires it
    q->rxq = virtio_setup_queue(&nic->vdev, rx_queue_index(pair), VIRTIO_NET_RX_BUFFERS_MAX,
        rx_interrupt, q);
    q->txq = q->rxq ? virtio_setup_queue(&nic->vdev, tx_queue_index(pair),
        VIRTIO_NET_TX_BUFFERS_MAX, tx_interrupt, q) : NULL;
    if (q->rxq == NULL || q->txq == NULL) {
        return -1;
    }
    if (!allocate_buffers(q, pairs_left)) {
        return -2;
    }
    virtqueue_disable_interrupts(q->txq);   // TX interrupts only under back-pressure
    for (uint16_t i = 0; i < q->tx_count; i++) {
        q->tx_state[i] = BUF_FREE;
        q->tx_free_list[i] = (uint16_t)(q->tx_count - 1 - i);
    }
    q->tx_free_count = q->tx_count;
    // 5.1.5: fill the receive queue before going live; the device hears about the buffers
    // only after DRIVER_OK (no notification before DRIVER_OK, 3.1.1).
    for (uint16_t i = 0; i < q->rx_count; i++) {
        uint8_t *buffer = rx_buffer(q, i);
        virtqueue_add_one(q->rxq, (uintptr_t)buffer, NET_BUFFER_SIZE, true, buffer);
        q->rx_state[i] = BUF_IN_RING;
    }
    q->rx_in_ring = q->rx_count;
    q->rx_unkicked = q->rx_count;
    return 0;
}

// Bring up `nic`, whose `vdev` virtio_find_device has just found (on PCI or virtio-mmio).
static int probe_one(struct virtio_net *nic) {
    // 5.1.5 device initialization, following the general sequence of 3.1.1; the device
    // was reset and acknowledged by virtio_find_device.
    uint64_t wanted = VIRTIO_FEATURE(VIRTIO_NET_F_MAC) | VIRTIO_FEATURE(VIRTIO_NET_F_STATUS)
        | VIRTIO_FEATURE(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_FEATURE(VIRTIO_NET_F_MQ)
        | VIRTIO_FEATURE(VIRTIO_F_EVENT_IDX);
    if (virtio_negotiate(&nic->vdev, wanted) != 0) {
        return -1;
    }
    make_mac(nic);
    // 5.1.4: max_virtqueue_pairs exists only with MQ; MQ requires CTRL_VQ (5.1.3.1).
    nic->max_pairs = 1;
    bool mq = virtio_has_feature(&nic->vdev, VIRTIO_NET_F_MQ)
        && virtio_has_feature(&nic->vdev, VIRTIO_NET_F_CTRL_VQ);
    if (mq) {
        uint16_t max_pairs = 1;
        virtio_read_config(&nic->vdev, VIRTIO_NET_CONFIG_MAX_PAIRS, &max_pairs, 2);
        nic->max_pairs = max_pairs ? max_pairs : 1;
    }
    nic->pairs = nic->max_pairs < VIRTIO_NET_MAX_PAIRS ? nic->max_pairs : VIRTIO_NET_MAX_PAIRS;
    while (2u * nic->pairs + 1 > nic->vdev.num_queues && nic->pairs > 1) {
        nic->pairs--;
    }
    if (virtio_set_config_callback(&nic->vdev, config_changed, nic) != 0) {
        kprintf("%s: no configuration change interrupt, link changes go unnoticed\n", nic->name);
    }
    for (unsigned pair = 0; pair < nic->pairs; pair++) {
        int error = setup_pair(nic, pair, nic->pairs - pair);
        if (error != 0) {
            kprintf("%s: %s for queue pair %u, not used\n", nic->name,
                error == -1 ? "queue setup failed" : "out of DMA memory", pair);
            virtio_fail(&nic->vdev);
            return -1;
        }
    }
    if (virtio_has_feature(&nic->vdev, VIRTIO_NET_F_CTRL_VQ)) {
        uint16_t ctrl_index = mq ? (uint16_t)(2 * nic->max_pairs) : 2;
        nic->ctrlq = virtio_setup_queue(&nic->vdev, ctrl_index, 64, NULL, NULL);
        nic->ctrl_buffer = dma_alloc(256, 64);
        if (nic->ctrlq == NULL || nic->ctrl_buffer == NULL) {
            kprintf("%s: control queue setup failed, not used\n", nic->name);
            virtio_fail(&nic->vdev);
            return -1;
        }
    }
    virtio_driver_ok(&nic->vdev);
    // 5.1.6.5.5: after DRIVER_OK only receiveq1/transmitq1 are used until the driver sets the
    // number of pairs; if the device refuses, one pair is all there is.
    if (mq && nic->pairs > 1) {
        uint16_t pairs = nic->pairs;
        if (ctrl_command(nic, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2) != 0) {
            kprintf("%s: VQ_PAIRS_SET %u refused, using 1 queue pair\n", nic->name, pairs);
            nic->pairs = 1;
        }
    }
    for (unsigned pair = 0; pair < nic->pairs; pair++) {
        nic->queue[pair].enabled = true;
        virtio_net_rx_flush(&nic->queue[pair]);
    }
    nic->link_up = read_link_status(nic);

    char rx_text[8], tx_text[8], config_text[8];
    struct virtio_net_queue *q0 = &nic->queue[0];
    kprintf("virtio-net: %s %s mac %02x:%02x:%02x:%02x:%02x:%02x link %s, "
        "%u queue pair%s (of %u), %u rx / %u tx buffers, %s rx %s tx %s config %s%s\n",
        nic->name, virtio_device_name(&nic->vdev),
        nic->mac[0], nic->mac[1], nic->mac[2], nic->mac[3], nic->mac[4], nic->mac[5],
        nic->link_up ? "up" : "down", nic->pairs, nic->pairs == 1 ? "" : "s", nic->max_pairs,
        q0->rx_count, q0->tx_count, virtio_irq_mode_name(&nic->vdev),
        vector_text(q0->rxq->vector, rx_text), vector_text(q0->txq->vector, tx_text),
        vector_text(nic->vdev.config_vector >= 0 ? nic->vdev.config_vector : nic->vdev.intx_vector,
            config_text),
        virtio_has_feature(&nic->vdev, VIRTIO_F_EVENT_IDX) ? ", event-idx" : "");
    return 0;
}

int virtio_net_probe(void) {
    // Every virtio-net on any transport (PCI first, then virtio-mmio), named in that order.
    for (int nth = 0; nth < 2 * VIRTIO_NET_MAX_DEVICES && nic_count < VIRTIO_NET_MAX_DEVICES;
         nth++) {
        struct virtio_net *nic = &nics[nic_count];
        memset(nic, 0, sizeof(*nic));
        nic->index = nic_count;
        memcpy(nic->name, "eth", 3);
        nic->name[3] = (char)('0' + nic_count);
        if (virtio_find_device(&nic->vdev, VIRTIO_TYPE_NET, nth) != 0) {
            continue;   // none, or one that failed (said on the console)
        }
        if (probe_one(nic) == 0) {
            nic_count++;
        }
    }
    if (nic_count == VIRTIO_NET_MAX_DEVICES) {
        int present = virtio_count_devices(VIRTIO_TYPE_NET);
        if (present > VIRTIO_NET_MAX_DEVICES) {
            kprintf("virtio-net: %d NICs, only the first %d are used (VIRTIO_NET_MAX_DEVICES)\n",
                present, VIRTIO_NET_MAX_DEVICES);
        }
    }
    return (int)nic_count;
}
