// virtio-net driver (virtio 1.2, 5.1) over the modern PCI transport and the split virtqueue:
// receiveq1 with pre-posted DMA buffers handed up zero copy, transmitq1 fed from a free list of
// DMA buffers, link status from the device configuration. See virtio_net.h.
#include "drivers/virtio/virtio_net.h"

#include <stddef.h>
#include <string.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
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
};

// Device configuration layout (5.1.4): mac[6], then le16 status.
enum {
    VIRTIO_NET_CONFIG_MAC = 0,
    VIRTIO_NET_CONFIG_STATUS = 6,
};

// status field bits (5.1.4).
enum {
    VIRTIO_NET_S_LINK_UP = 1,
    VIRTIO_NET_S_ANNOUNCE = 2,
};

// Queue indices (5.1.2): receiveq1 = 0, transmitq1 = 1.
enum {
    RX_QUEUE = 0,
    TX_QUEUE = 1,
};

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
    RX_BUFFERS_MAX = 256,
    TX_BUFFERS_MAX = 128,
    BUFFERS_MIN = 16,
    RX_KICK_BATCH = 16,                 // reposted buffers per notification
};

// Per-buffer state, so that a double release or a foreign pointer is caught, not posted twice.
enum { BUF_IN_RING, BUF_HELD, BUF_FREE, BUF_ALLOCATED };

static struct virtio_device net;
static struct virtqueue *rxq, *txq;
static bool present;
static uint8_t mac[6];
static volatile bool link_up;

static uint8_t *rx_base, *tx_base;      // rx_count / tx_count buffers of NET_BUFFER_SIZE
static uint16_t rx_count, tx_count;
static uint8_t rx_state[RX_BUFFERS_MAX];
static uint8_t tx_state[TX_BUFFERS_MAX];
static uint16_t tx_free_list[TX_BUFFERS_MAX];
static uint16_t tx_free_count;
static uint16_t rx_in_ring;             // posted and not yet popped
static uint16_t rx_unkicked;            // posted since the last notification
static struct virtio_net_stats stats;

static void (*notify_callback)(void *context, unsigned events);
static void *notify_context;

// --- interrupts (hard IRQ context, interrupts off) --------------------------------------------

static void notify(unsigned events) {
    void (*callback)(void *, unsigned) = notify_callback;
    if (callback != NULL) {
        callback(notify_context, events);
    }
}

static void rx_interrupt(struct virtqueue *vq, void *context) {
    (void)vq;
    (void)context;
    notify(NET_EVENT_RX);
}

// TX interrupts are wanted only while someone waits for a free buffer (virtio_net_tx_alloc
// turned them on); one is enough, so they go off again here (2.7.7).
static void tx_interrupt(struct virtqueue *vq, void *context) {
    (void)context;
    virtqueue_disable_interrupts(vq);
    notify(NET_EVENT_TX);
}

static bool read_link_status(void) {
    if (!virtio_has_feature(&net, VIRTIO_NET_F_STATUS)) {
        return true;    // without VIRTIO_NET_F_STATUS the link is assumed up (5.1.4.2)
    }
    uint16_t status = 0;
    virtio_read_config(&net, VIRTIO_NET_CONFIG_STATUS, &status, sizeof(status));
    return status & VIRTIO_NET_S_LINK_UP;
}

// Configuration change (4.1.4.3 config_msix_vector): QEMU's set_link changes status here.
static void config_changed(struct virtio_device *vdev, void *context) {
    (void)vdev;
    (void)context;
    bool up = read_link_status();
    if (up != link_up) {
        link_up = up;
        stats.link_changes++;
        notify(NET_EVENT_LINK);
    }
}

void virtio_net_set_notify(void (*callback)(void *context, unsigned events), void *context) {
    uint64_t flags = read_rflags();
    cli();
    notify_callback = callback;
    notify_context = context;
    if (flags & RFLAGS_IF) {
        sti();
    }
}

void virtio_net_get_notify(void (**callback)(void *context, unsigned events), void **context) {
    *callback = notify_callback;
    *context = notify_context;
}

// --- receive ---------------------------------------------------------------------------------

static inline uint8_t *rx_buffer(uint16_t id) {
    return rx_base + (size_t)id * NET_BUFFER_SIZE;
}

static void rx_kick(void) {
    if (rx_unkicked != 0) {
        rx_unkicked = 0;
        virtqueue_kick(rxq);
    }
}

// Post buffer `id` as device-writable (5.1.6.3): the whole buffer, header included. The
// notification is batched, except when the device is close to running dry.
static void rx_post(uint16_t id) {
    uint8_t *buffer = rx_buffer(id);
    if (virtqueue_add_one(rxq, (uintptr_t)buffer, NET_BUFFER_SIZE, true, buffer) < 0) {
        return;     // cannot happen: one descriptor per buffer, as many descriptors as buffers
    }
    rx_state[id] = BUF_IN_RING;
    rx_in_ring++;
    rx_unkicked++;
    if (rx_unkicked >= RX_KICK_BATCH || rx_in_ring - rx_unkicked < rx_count / 4) {
        rx_kick();
    }
}

// What the device wrote is acceptable (5.1.6.4): at least a header and an Ethernet header,
// within the buffer, and a header that only uses what we negotiated (no checksum flags without
// GUEST_CSUM, no GSO without GUEST_TSO*, one buffer without MRG_RXBUF).
static bool rx_valid(const uint8_t *buffer, uint32_t len) {
    if (len < HDR_SIZE + ETH_HEADER || len > NET_BUFFER_SIZE) {
        return false;
    }
    const struct virtio_net_hdr *hdr = (const void *)buffer;
    if (hdr->gso_type != VIRTIO_NET_HDR_GSO_NONE || hdr->num_buffers > 1) {
        return false;
    }
    uint8_t allowed = virtio_has_feature(&net, VIRTIO_NET_F_GUEST_CSUM)
        ? VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID : 0;
    return (hdr->flags & ~allowed) == 0;
}

bool virtio_net_rx_poll(struct net_frame *frame) {
    if (!present) {
        return false;
    }
    for (;;) {
        if (!virtqueue_has_used(rxq)) {
            rx_kick();
            // Re-arm the interrupt (used_event, with a fence) and look once more, so a frame
            // that arrived meanwhile is not left without an interrupt (2.7.7.1).
            if (!virtqueue_enable_interrupts(rxq)) {
                return false;
            }
            continue;
        }
        uint32_t len = 0;
        uint8_t *buffer = virtqueue_pop(rxq, &len);
        if (buffer == NULL) {
            stats.rx_dropped_malformed++;   // an id we never posted: the device is confused
            continue;
        }
        uint16_t id = (uint16_t)((size_t)(buffer - rx_base) / NET_BUFFER_SIZE);
        rx_in_ring--;
        if (!rx_valid(buffer, len)) {
            stats.rx_dropped_malformed++;
            rx_post(id);
            continue;
        }
        rx_state[id] = BUF_HELD;
        stats.rx_buffers_held++;
        stats.rx_frames++;
        stats.rx_bytes += len - HDR_SIZE;
        frame->data = buffer + HDR_SIZE;
        frame->len = (uint16_t)(len - HDR_SIZE);
        frame->buffer_id = id;
        return true;
    }
}

void virtio_net_rx_release(uint16_t buffer_id) {
    if (!present || buffer_id >= rx_count || rx_state[buffer_id] != BUF_HELD) {
        stats.rx_release_invalid++;
        return;
    }
    stats.rx_buffers_held--;
    rx_post(buffer_id);
}

void virtio_net_rx_count_no_buffer(void) {
    stats.rx_dropped_no_buffer++;
}

// --- transmit --------------------------------------------------------------------------------

// The TX buffer index of a payload pointer from virtio_net_tx_alloc, or -1.
static int tx_index(const void *payload) {
    const uint8_t *p = payload;
    if (tx_base == NULL || p < tx_base + HDR_SIZE) {
        return -1;
    }
    size_t offset = (size_t)(p - tx_base - HDR_SIZE);
    if (offset % NET_BUFFER_SIZE != 0 || offset / NET_BUFFER_SIZE >= tx_count) {
        return -1;
    }
    return (int)(offset / NET_BUFFER_SIZE);
}

void virtio_net_tx_reclaim(void) {
    if (!present) {
        return;
    }
    uint8_t *buffer;
    while ((buffer = virtqueue_pop(txq, NULL)) != NULL) {
        int id = tx_index(buffer + HDR_SIZE);
        if (id >= 0 && tx_state[id] == BUF_IN_RING) {
            tx_state[id] = BUF_FREE;
            tx_free_list[tx_free_count++] = (uint16_t)id;
        }
    }
}

void *virtio_net_tx_alloc(void) {
    if (!present) {
        return NULL;
    }
    virtio_net_tx_reclaim();
    if (tx_free_count == 0) {
        // Back-pressure: ask for one interrupt when the device returns a buffer (the consumer
        // hears NET_EVENT_TX), and look again in case it did just now.
        uint64_t flags = read_rflags();
        cli();
        bool more = virtqueue_enable_interrupts(txq);
        if (flags & RFLAGS_IF) {
            sti();
        }
        if (more) {
            virtio_net_tx_reclaim();
        }
        if (tx_free_count == 0) {
            stats.tx_busy++;
            return NULL;
        }
    }
    uint16_t id = tx_free_list[--tx_free_count];
    tx_state[id] = BUF_ALLOCATED;
    return tx_base + (size_t)id * NET_BUFFER_SIZE + HDR_SIZE;
}

void virtio_net_tx_free(void *buffer) {
    int id = tx_index(buffer);
    if (id >= 0 && tx_state[id] == BUF_ALLOCATED) {
        tx_state[id] = BUF_FREE;
        tx_free_list[tx_free_count++] = (uint16_t)id;
    }
}

int virtio_net_tx_send(void *buffer, uint16_t len) {
    int id = tx_index(buffer);
    if (!present || id < 0 || tx_state[id] != BUF_ALLOCATED || len < ETH_HEADER
        || len > VIRTIO_NET_TX_MTU) {
        return -1;
    }
    // 5.1.6.2: no offloads, so the header is all zero (flags 0, GSO_NONE); num_buffers is
    // unused on transmit.
    uint8_t *start = (uint8_t *)buffer - HDR_SIZE;
    memset(start, 0, HDR_SIZE);
    if (virtqueue_add_one(txq, (uintptr_t)start, HDR_SIZE + len, false, start) < 0) {
        stats.tx_busy++;
        return -1;
    }
    tx_state[id] = BUF_IN_RING;
    stats.tx_frames++;
    stats.tx_bytes += len;
    virtqueue_kick(txq);
    return 0;
}

// --- state -----------------------------------------------------------------------------------

bool virtio_net_present(void) {
    return present;
}

void virtio_net_mac(uint8_t out[6]) {
    memcpy(out, mac, 6);
}

bool virtio_net_link_up(void) {
    return present && link_up;
}

void virtio_net_get_stats(struct virtio_net_stats *out) {
    virtio_net_tx_reclaim();    // so that tx_buffers_free + tx_in_flight count what is true now
    *out = stats;
    out->rx_buffers_total = rx_count;
    out->rx_buffers_free_in_ring = rx_in_ring;
    out->tx_buffers_total = tx_count;
    out->tx_buffers_free = tx_free_count;
    out->tx_in_flight = 0;
    for (unsigned i = 0; i < tx_count; i++) {
        out->tx_in_flight += tx_state[i] == BUF_IN_RING;
    }
    if (present) {
        out->rx_interrupts = rxq->interrupts;
        out->tx_interrupts = txq->interrupts;
        out->rx_kicks = rxq->kicks;
        out->tx_kicks = txq->kicks;
        out->config_interrupts = net.config_changes;
    }
}

// --- probe -----------------------------------------------------------------------------------

// Buffers for the rings: as many as the queues hold, fewer when the DMA pool is small (it is
// 1/16 of RAM); the buffers may take at most half of what is left.
static bool allocate_buffers(void) {
    rx_count = rxq->size < RX_BUFFERS_MAX ? rxq->size : RX_BUFFERS_MAX;
    tx_count = txq->size < TX_BUFFERS_MAX ? txq->size : TX_BUFFERS_MAX;
    while ((size_t)(rx_count + tx_count) * NET_BUFFER_SIZE > dma_free_bytes() / 2
           && rx_count > BUFFERS_MIN) {
        rx_count /= 2;
        tx_count = tx_count > BUFFERS_MIN ? tx_count / 2 : tx_count;
    }
    rx_base = dma_alloc((size_t)rx_count * NET_BUFFER_SIZE, 4096);
    tx_base = dma_alloc((size_t)tx_count * NET_BUFFER_SIZE, 4096);
    return rx_base != NULL && tx_base != NULL;
}

static void make_mac(void) {
    if (virtio_has_feature(&net, VIRTIO_NET_F_MAC)) {
        virtio_read_config(&net, VIRTIO_NET_CONFIG_MAC, mac, 6);
        return;
    }
    // 5.1.5: without VIRTIO_NET_F_MAC the driver picks one: locally administered, unicast.
    uint64_t r = tsc_read();
    r ^= r >> 29;
    r *= 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 6; i++) {
        mac[i] = (uint8_t)(r >> (8 * i));
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
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

int virtio_net_probe(void) {
    // 5.1.5 device initialization, following the general sequence of 3.1.1; the device may
    // be on PCI or virtio-mmio (microvm).
    if (virtio_find_device(&net, VIRTIO_TYPE_NET, 0) != 0) {
        return -1;
    }
    uint64_t wanted = VIRTIO_FEATURE(VIRTIO_NET_F_MAC) | VIRTIO_FEATURE(VIRTIO_NET_F_STATUS)
        | VIRTIO_FEATURE(VIRTIO_F_EVENT_IDX);
    if (virtio_negotiate(&net, wanted) != 0) {
        return -1;
    }
    make_mac();
    if (virtio_set_config_callback(&net, config_changed, NULL) != 0) {
        kprintf("virtio-net: no configuration change interrupt, link changes go unnoticed\n");
    }
    rxq = virtio_setup_queue(&net, RX_QUEUE, RX_BUFFERS_MAX, rx_interrupt, NULL);
    txq = rxq ? virtio_setup_queue(&net, TX_QUEUE, TX_BUFFERS_MAX, tx_interrupt, NULL) : NULL;
    if (rxq == NULL || txq == NULL) {
        kprintf("virtio-net: queue setup failed, not used\n");
        return -1;
    }
    if (!allocate_buffers()) {
        kprintf("virtio-net: out of DMA memory for buffers, not used\n");
        virtio_fail(&net);
        return -1;
    }
    virtqueue_disable_interrupts(txq);   // TX interrupts only under back-pressure
    for (uint16_t i = 0; i < tx_count; i++) {
        tx_state[i] = BUF_FREE;
        tx_free_list[i] = (uint16_t)(tx_count - 1 - i);
    }
    tx_free_count = tx_count;
    // 5.1.5: fill the receive queue before going live; the device hears about the buffers
    // only after DRIVER_OK (no notification before DRIVER_OK, 3.1.1).
    present = true;
    for (uint16_t i = 0; i < rx_count; i++) {
        uint8_t *buffer = rx_buffer(i);
        virtqueue_add_one(rxq, (uintptr_t)buffer, NET_BUFFER_SIZE, true, buffer);
        rx_state[i] = BUF_IN_RING;
    }
    rx_in_ring = rx_count;
    rx_unkicked = rx_count;
    virtio_driver_ok(&net);
    rx_kick();
    link_up = read_link_status();

    char rx_text[8], tx_text[8], config_text[8];
    kprintf("virtio-net: %s mac %02x:%02x:%02x:%02x:%02x:%02x link %s, "
        "%u rx / %u tx buffers, %s rx %s tx %s config %s%s\n",
        virtio_device_name(&net),
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], link_up ? "up" : "down",
        rx_count, tx_count, virtio_irq_mode_name(&net),
        vector_text(rxq->vector, rx_text), vector_text(txq->vector, tx_text),
        vector_text(net.config_vector >= 0 ? net.config_vector : net.intx_vector, config_text),
        virtio_has_feature(&net, VIRTIO_F_EVENT_IDX) ? ", event-idx" : "");
    return 0;
}
