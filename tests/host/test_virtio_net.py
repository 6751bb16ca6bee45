"""Host unit test of drivers/virtio/virtio_net.c: the driver compiled for the host against the
real split virtqueue (virtqueue.c), a stand-in PCI transport and a simulated device (no QEMU).

Checks (on eth0, one queue pair) the receive path (zero-copy frames past the 12-byte virtio_net_hdr, malformed frames
dropped, counted and reposted, double or foreign releases ignored, kicks batched), the
transmit path (free list, back-pressure counted in tx_busy, invalid sends refused, completions
reclaimed), in-place transmit from a received buffer, and link changes through the
configuration interrupt; then (on eth1, a device offering VIRTIO_NET_F_MQ with 2 queue pairs)
the control-queue command VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET and per-queue counters (virtio 1.2,
5.1, 5.1.6.5.5)."""

from __future__ import annotations

from pathlib import Path

import hostcc

REPO = Path(__file__).resolve().parents[2]

# cli/sti/pushf are privileged or meaningless in a host process: a shadow cpu.h found first.
SHADOW_CPU_H = r"""
#ifndef ARCH_X86_64_CPU_H
#define ARCH_X86_64_CPU_H
#include <stdint.h>
enum rflags_bits { RFLAGS_IF = 1u << 9 };
static inline uint64_t read_rflags(void) { return 0; }
static inline void cli(void) {}
static inline void sti(void) {}
#endif
"""

HARNESS = r"""
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "drivers/virtio/virtio_net.h"
#include "drivers/virtio/virtio_pci.h"
#include "drivers/pci/msix.h"
#include "mm/mm.h"

// --- stand-ins for the kernel ---
void *dma_alloc(size_t size, size_t align) {
    void *p = aligned_alloc(align < 8 ? 8 : align, (size + align - 1) / align * align);
    memset(p, 0, size);
    return p;
}
size_t dma_free_bytes(void) { return 8u << 20; }
uint64_t tsc_read(void) { return 12345; }
void kprintf(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vprintf(fmt, ap); va_end(ap); }
struct pci_device pci_devices[PCI_MAX_DEVICES];
int pci_device_count = 2;
unsigned smp_cpu_id(void) { return 0; }
bool smp_cpu_online(unsigned cpu) { return cpu == 0; }
uint32_t smp_apic_id(unsigned cpu) { return cpu; }
uint64_t tsc_to_us(uint64_t ticks) { return ticks; }
int virtio_route_queue(struct virtio_device *vdev, struct virtqueue *vq, uint32_t apic) {
    (void)vdev; (void)vq; (void)apic; return 0;
}
const char *pci_irq_mode_name(const struct pci_device *dev) { (void)dev; return "msix"; }

// --- stand-in transport: eth0 (one queue pair) and eth1 (MQ, 2 pairs), 256-entry queues ---
// config: mac, status LINK_UP, max_virtqueue_pairs
static uint8_t configs[2][12] = { { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 1, 0, 1, 0 },
                                  { 0x52, 0x54, 0x00, 0x12, 0x34, 0x57, 1, 0, 2, 0 } };
static uint8_t *config = configs[0];
static int notifications[2];
static struct virtio_device *devices[2], *the_device;
static int mq_pairs_set;                    // what eth1's control queue was told
static void ctrl_command(struct virtqueue *vq);
static void notify_queue(struct virtqueue *vq) {
    if (vq->transport == devices[0]) {
        notifications[vq->index]++;
    } else if (vq->index == 4) {
        ctrl_command(vq);
    }
}
uint16_t virtio_pci_device_type(const struct pci_device *pci) { (void)pci; return VIRTIO_TYPE_NET; }
int virtio_pci_init(struct virtio_device *vdev, struct pci_device *pci) {
    vdev->pci = pci; vdev->config_vector = -1; vdev->num_queues = 5;
    devices[pci - pci_devices] = vdev;
    the_device = devices[0];
    return 0;
}
// The transport-neutral discovery of virtio.h (virtio.c), over the stand-in PCI device.
int virtio_find_device(struct virtio_device *vdev, uint16_t type, int nth) {
    if (type != VIRTIO_TYPE_NET || nth < 0 || nth >= pci_device_count) {
        return -1;
    }
    return virtio_pci_init(vdev, &pci_devices[nth]);
}
int virtio_count_devices(uint16_t type) {
    return type == VIRTIO_TYPE_NET ? pci_device_count : 0;
}
const char *virtio_device_name(const struct virtio_device *vdev) { (void)vdev; return "00:00.0"; }
const char *virtio_irq_mode_name(const struct virtio_device *vdev) { (void)vdev; return "msix"; }
int virtio_negotiate(struct virtio_device *vdev, uint64_t wanted) {
    vdev->features = wanted | VIRTIO_FEATURE(VIRTIO_F_VERSION_1);
    vdev->features &= ~VIRTIO_FEATURE(VIRTIO_F_EVENT_IDX);   // simpler notification rules
    return 0;
}
struct virtqueue *virtio_setup_queue(struct virtio_device *vdev, uint16_t index,
    uint16_t max_size, virtqueue_callback_t callback, void *context) {
    struct virtqueue *vq = virtqueue_create(index, max_size ? max_size : 256);
    vq->notify = notify_queue; vq->callback = callback; vq->callback_context = context;
    vq->transport = vdev;
    vq->vector = 0x40 + index; vdev->queues[index] = vq;
    return vq;
}
int virtio_set_config_callback(struct virtio_device *vdev,
    void (*callback)(struct virtio_device *, void *), void *context) {
    vdev->config_callback = callback; vdev->config_context = context; vdev->config_vector = 0x3f;
    return 0;
}
int virtio_read_config(struct virtio_device *vdev, uint32_t offset, void *out, uint32_t len) {
    memcpy(out, configs[vdev->pci - pci_devices] + offset, len); return 0;
}
void virtio_driver_ok(struct virtio_device *vdev) { (void)vdev; }
void virtio_fail(struct virtio_device *vdev) { (void)vdev; }

// --- the device side ---
static uint16_t device_avail[8];
static uint8_t *device_take(struct virtqueue *vq, uint32_t *len, uint16_t *head) {
    if (device_avail[vq->index] == vq->avail->idx) return NULL;
    *head = vq->avail->ring[device_avail[vq->index]++ % vq->size];
    assert(!(vq->desc[*head].flags & VIRTQ_DESC_F_NEXT));
    assert(!!(vq->desc[*head].flags & VIRTQ_DESC_F_WRITE) == (vq->index == 0));
    *len = vq->desc[*head].len;
    return (uint8_t *)(uintptr_t)vq->desc[*head].addr;
}
// eth1's control queue (5.1.6.5): class, command, le16 pairs; then the ack byte.
static uint16_t ctrl_avail;
static void ctrl_command(struct virtqueue *vq) {
    uint16_t head = vq->avail->ring[ctrl_avail++ % vq->size];
    volatile struct virtq_desc *out = &vq->desc[head];
    assert(out->flags & VIRTQ_DESC_F_NEXT && !(out->flags & VIRTQ_DESC_F_WRITE) && out->len == 4);
    volatile struct virtq_desc *in = &vq->desc[out->next];
    assert(in->flags & VIRTQ_DESC_F_WRITE && in->len == 1);
    uint8_t *cmd = (uint8_t *)(uintptr_t)out->addr;
    assert(cmd[0] == 4 && cmd[1] == 0);     // VIRTIO_NET_CTRL_MQ, VQ_PAIRS_SET
    mq_pairs_set = cmd[2] | cmd[3] << 8;
    *(uint8_t *)(uintptr_t)in->addr = 0;    // VIRTIO_NET_OK
    uint16_t u = vq->used->idx;
    vq->used->ring[u % vq->size].id = head;
    vq->used->ring[u % vq->size].len = 1;
    vq->used->idx = u + 1;
}
static void device_use(struct virtqueue *vq, uint16_t head, uint32_t len) {
    uint16_t u = vq->used->idx;
    vq->used->ring[u % vq->size].id = head;
    vq->used->ring[u % vq->size].len = len;
    vq->used->idx = u + 1;
}
// Deliver one frame of frame_len bytes with the given header fields (and, when not 0, a
// different used length), then raise the queue's interrupt.
static void device_receive(uint32_t frame_len, uint8_t flags, uint8_t gso, uint16_t num_buffers,
                           uint32_t used_len_override) {
    struct virtqueue *rx = the_device->queues[0];
    uint32_t cap; uint16_t head;
    uint8_t *buf = device_take(rx, &cap, &head);
    assert(buf && cap == NET_BUFFER_SIZE);
    memset(buf, 0, 12);
    buf[0] = flags; buf[1] = gso; memcpy(buf + 10, &num_buffers, 2);
    for (uint32_t i = 0; i < frame_len && 12 + i < cap; i++) buf[12 + i] = (uint8_t)i;
    device_use(rx, head, used_len_override ? used_len_override : 12 + frame_len);
    virtqueue_interrupt(rx);
}

static unsigned events_seen;
static void on_notify(void *ctx, unsigned events) { (void)ctx; events_seen |= events; }

int main(void) {
    struct virtio_net_stats s;
    assert(virtio_net_count() == 0 && virtio_net_queue(0, 0) == NULL);
    assert(virtio_net_tx_alloc(NULL) == NULL);
    assert(virtio_net_probe() == 2 && virtio_net_count() == 2);
    struct virtio_net_queue *q = virtio_net_queue(0, 0);
    struct virtio_net *nic = virtio_net_device(0);
    assert(q && virtio_net_queue(0, 1) == NULL && strcmp(nic->name, "eth0") == 0);
    virtio_net_set_notify(q, on_notify, NULL);
    uint8_t *mac = nic->mac;
    assert(mac[0] == 0x52 && mac[5] == 0x56 && virtio_net_link_up(nic));
    virtio_net_get_stats(q, &s);
    assert(s.rx_buffers_total == 256 && s.rx_buffers_free_in_ring == 256);
    assert(s.tx_buffers_total == 128 && s.tx_buffers_free == 128);
    assert(notifications[0] == 1);              // one kick after DRIVER_OK for all 256

    // A good frame: zero copy, just past the header.
    struct net_frame f;
    assert(!virtio_net_rx_poll(q, &f));
    device_receive(60, 0, 0, 1, 0);
    assert(events_seen & NET_EVENT_RX);
    assert(virtio_net_rx_poll(q, &f) && f.len == 60 && f.data[0] == 0 && f.data[59] == 59);
    virtio_net_get_stats(q, &s);
    assert(s.rx_frames == 1 && s.rx_bytes == 60 && s.rx_buffers_held == 1);
    assert(s.rx_buffers_free_in_ring == 255);
    virtio_net_rx_release(q, f.buffer_id);
    virtio_net_rx_release(q, f.buffer_id);         // double release: ignored, counted
    virtio_net_rx_release(q, 9999);                // foreign id
    virtio_net_get_stats(q, &s);
    assert(s.rx_release_invalid == 2 && s.rx_buffers_held == 0 && s.rx_buffers_free_in_ring == 256);

    // Malformed: short (< Ethernet header), longer than the buffer, GSO, checksum flag
    // without GUEST_CSUM, several buffers without MRG_RXBUF. Each is dropped and reposted.
    device_receive(13, 0, 0, 1, 0);
    device_receive(0, 0, 0, 1, 5);
    device_receive(100, 0, 0, 1, NET_BUFFER_SIZE + 1);
    device_receive(100, 0, 1, 1, 0);
    device_receive(100, 1, 0, 1, 0);
    device_receive(100, 0, 0, 2, 0);
    device_receive(14, 0, 0, 0, 0);             // minimal valid frame, num_buffers 0 accepted
    assert(virtio_net_rx_poll(q, &f) && f.len == 14);
    assert(!virtio_net_rx_poll(q, &f));
    virtio_net_rx_release(q, f.buffer_id);
    virtio_net_get_stats(q, &s);
    assert(s.rx_dropped_malformed == 6 && s.rx_frames == 2 && s.rx_buffers_free_in_ring == 256);

    // Hold many, release all: kicks are batched (not one per buffer), all buffers come back.
    int kicks_before = notifications[0];
    uint16_t held[200];
    for (int i = 0; i < 200; i++) device_receive(64, 0, 0, 1, 0);
    for (int i = 0; i < 200; i++) { assert(virtio_net_rx_poll(q, &f)); held[i] = f.buffer_id; }
    assert(!virtio_net_rx_poll(q, &f));
    virtio_net_get_stats(q, &s);
    assert(s.rx_buffers_held == 200 && s.rx_buffers_free_in_ring == 56);
    for (int i = 0; i < 200; i++) virtio_net_rx_release(q, held[i]);
    assert(!virtio_net_rx_poll(q, &f));            // flushes the last partial batch
    // Below a quarter of the ring visible to the device every repost is announced (it may
    // be starving); above, one notification per 16. The device here never suppresses them.
    int kicks = notifications[0] - kicks_before;
    assert(kicks >= 200 / 16 && kicks <= (256 / 4 - 56) + 200 / 16 + 2);
    virtio_net_get_stats(q, &s);
    assert(s.rx_buffers_held == 0 && s.rx_buffers_free_in_ring == 256);

    // Transmit: frames from the free list, header zeroed, back-pressure when all are out.
    struct virtqueue *tx = the_device->queues[1];
    void *bufs[128];
    for (int i = 0; i < 128; i++) { bufs[i] = virtio_net_tx_alloc(q); assert(bufs[i]); }
    assert(virtio_net_tx_alloc(q) == NULL);
    virtio_net_get_stats(q, &s);
    assert(s.tx_busy == 1 && s.tx_buffers_free == 0);
    assert(virtio_net_tx_send(q, bufs[0], 13) == -1);                      // shorter than Ethernet
    assert(virtio_net_tx_send(q, bufs[0], VIRTIO_NET_TX_MTU + 1) == -1);
    assert(virtio_net_tx_send(q, (uint8_t *)bufs[0] + 1, 60) == -1);       // not a buffer start
    memset(bufs[0], 0xab, 60);
    memset((uint8_t *)bufs[0] - 12, 0x77, 12);
    assert(virtio_net_tx_send(q, bufs[0], 60) == 0);
    assert(virtio_net_tx_send(q, bufs[0], 60) == -1);                      // sent already
    uint32_t len; uint16_t head;
    uint8_t *wire = device_take(tx, &len, &head);
    assert(wire && len == 72 && wire[0] == 0 && wire[11] == 0 && wire[12] == 0xab);
    for (int i = 1; i < 128; i++) virtio_net_tx_free(q, bufs[i]);
    virtio_net_tx_free(q, bufs[1]);                                        // double free: ignored
    virtio_net_get_stats(q, &s);
    assert(s.tx_buffers_free == 127 && s.tx_in_flight == 1 && s.tx_frames == 1 && s.tx_bytes == 60);
    device_use(tx, head, 0);
    virtio_net_tx_reclaim(q);
    virtio_net_get_stats(q, &s);
    assert(s.tx_buffers_free == 128 && s.tx_in_flight == 0);
    // Back-pressure turned the TX interrupt on; the interrupt reports NET_EVENT_TX.
    events_seen = 0;
    virtqueue_interrupt(tx);
    assert(events_seen == NET_EVENT_TX && (tx->avail->flags & VIRTQ_AVAIL_F_NO_INTERRUPT));

    // In place: a received frame goes out from its own RX buffer, then back to the RX ring.
    device_receive(60, 0, 0, 1, 0);
    assert(virtio_net_rx_poll(q, &f));
    assert(virtio_net_tx_inplace(q, f.buffer_id, 60, true) == 0);
    assert(virtio_net_tx_inplace(q, f.buffer_id, 60, true) == -1);      // not held any more
    virtio_net_get_stats(q, &s);
    assert(s.rx_buffers_held == 0 && s.tx_inplace_in_flight == 1 && s.rx_buffers_free_in_ring == 255);
    wire = device_take(tx, &len, &head);
    assert(wire == f.data - 12 && len == 72 && wire[0] == 0 && wire[12] == 0);
    device_use(tx, head, 0);
    virtio_net_tx_reclaim(q);
    virtio_net_get_stats(q, &s);
    assert(s.tx_inplace_in_flight == 0 && s.tx_inplace == 1 && s.rx_buffers_free_in_ring == 256);

    // Link: the configuration interrupt notices a status change, once per change.
    events_seen = 0;
    config[6] = 0;
    the_device->config_callback(the_device, the_device->config_context);
    the_device->config_callback(the_device, the_device->config_context);
    assert(!virtio_net_link_up(nic) && events_seen == NET_EVENT_LINK);
    config[6] = 1;
    the_device->config_callback(the_device, the_device->config_context);
    virtio_net_get_stats(q, &s);
    assert(virtio_net_link_up(nic) && s.link_changes == 2);

    // eth1: MQ with 2 pairs, enabled through the control queue; counters are per pair.
    struct virtio_net *nic1 = virtio_net_device(1);
    assert(strcmp(nic1->name, "eth1") == 0 && nic1->pairs == 2 && nic1->max_pairs == 2);
    assert(mq_pairs_set == 2 && nic1->ctrlq != NULL && nic1->ctrlq->index == 4);
    struct virtio_net_queue *q1 = virtio_net_queue(1, 1);
    assert(q1 && q1->rxq->index == 2 && q1->txq->index == 3 && q1->cpu == 0);
    assert(q1->rxq->vector != virtio_net_queue(1, 0)->rxq->vector);
    assert(virtio_net_set_cpu(q1, 0) == 0 && virtio_net_set_cpu(q1, 1) == -1);
    struct virtio_net_stats s0, s1;
    virtio_net_get_stats(virtio_net_queue(1, 0), &s0);
    virtio_net_get_stats(q1, &s1);
    assert(s0.rx_buffers_total + s1.rx_buffers_total <= 512 && s1.rx_frames == 0);
    puts("virtio-net ok");
    return 0;
}
"""


def test_virtio_net_driver_logic(tmp_path):
    shadow = tmp_path / "shadow" / "arch" / "x86_64"
    shadow.mkdir(parents=True)
    (shadow / "cpu.h").write_text(SHADOW_CPU_H)
    src = tmp_path / "harness.c"
    src.write_text(HARNESS)
    exe = tmp_path / "harness"
    hostcc.build(exe, [src, REPO / "drivers/virtio/virtio_net.c",
                       REPO / "drivers/virtio/virtqueue.c"], includes=[tmp_path / "shadow"])
    result = hostcc.run(exe)
    assert "virtio-net: eth0 00:00.0 mac 52:54:00:12:34:56 link up, 1 queue pair (of 1), " \
        "256 rx / 128 tx buffers" in result.stdout
    assert "virtio-net: eth1 00:00.0 mac 52:54:00:12:34:57 link up, 2 queue pairs (of 2)" \
        in result.stdout
    assert "virtio-net ok" in result.stdout
