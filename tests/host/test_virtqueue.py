"""Host unit test of drivers/virtio/virtqueue.c: the split-ring logic compiled for the host
with a stand-in DMA allocator and a simulated device (no QEMU).

Checks chains of several descriptors, the free list after out-of-order completion, index
wrap-around past 65535, back-pressure on a full ring, and the notification suppression rules
(VIRTQ_USED_F_NO_NOTIFY and VIRTIO_F_EVENT_IDX, virtio 1.2, 2.7.10)."""

from __future__ import annotations

from pathlib import Path

import hostcc

REPO = Path(__file__).resolve().parents[2]

HARNESS = r"""
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "drivers/virtio/virtqueue.h"

void *dma_alloc(size_t size, size_t align) {
    void *p = aligned_alloc(align < 8 ? 8 : align, (size + align - 1) / align * align);
    memset(p, 0, size);
    return p;
}

static int notified;
static void notify(struct virtqueue *vq) { (void)vq; notified++; }

// The device side: take the next available chain, check it, and return it as used.
static uint16_t device_avail;
static uint16_t device_take(struct virtqueue *vq, int *count, int *writable) {
    assert(device_avail != vq->avail->idx);
    uint16_t head = vq->avail->ring[device_avail++ % vq->size];
    uint16_t i = head;
    *count = 0; *writable = 0;
    for (;;) {
        (*count)++;
        if (vq->desc[i].flags & VIRTQ_DESC_F_WRITE) (*writable)++;
        if (!(vq->desc[i].flags & VIRTQ_DESC_F_NEXT)) break;
        i = vq->desc[i].next;
    }
    return head;
}
static void device_use(struct virtqueue *vq, uint16_t head, uint32_t len) {
    uint16_t u = vq->used->idx;
    vq->used->ring[u % vq->size].id = head;
    vq->used->ring[u % vq->size].len = len;
    vq->used->idx = u + 1;
}

int main(void) {
    struct virtqueue *vq = virtqueue_create(0, 8);
    assert(vq && vq->size == 8 && virtqueue_free_count(vq) == 8);
    assert(virtqueue_create(0, 6) == NULL);
    // The legacy layout (2.7.2): one block, avail right after the descriptors, used aligned.
    struct virtqueue *lq = virtqueue_create_legacy(1, 256, 4096);
    assert(lq && (uintptr_t)lq->desc % 4096 == 0);
    assert((uintptr_t)lq->avail == (uintptr_t)lq->desc + 16 * 256);
    assert((uintptr_t)lq->used == (uintptr_t)lq->desc + 8192);
    lq = virtqueue_create_legacy(1, 8, 4096);
    assert(lq && (uintptr_t)lq->used == (uintptr_t)lq->desc + 4096);
    assert(virtqueue_create_legacy(1, 8, 3000) == NULL);
    vq->notify = notify;

    // A 3-descriptor chain: 1 readable + 2 writable.
    struct virtq_buf bufs[3] = { {0x1000, 10}, {0x2000, 20}, {0x3000, 30} };
    int tok[16];
    assert(virtqueue_add(vq, bufs, 1, 2, &tok[0]) >= 0);
    assert(virtqueue_free_count(vq) == 5);
    assert(virtqueue_kick(vq) && notified == 1);
    assert(!virtqueue_kick(vq));                 // nothing new: no notification
    int count, writable;
    uint16_t h0 = device_take(vq, &count, &writable);
    assert(count == 3 && writable == 2);
    assert(vq->desc[h0].addr == 0x1000);

    // Fill the rest; the ring refuses what does not fit and changes nothing.
    for (int i = 1; i <= 5; i++) assert(virtqueue_add_one(vq, 0x4000 + i, 1, true, &tok[i]) >= 0);
    assert(virtqueue_free_count(vq) == 0);
    assert(virtqueue_add_one(vq, 0x9000, 1, true, &tok[6]) == -1);
    assert(vq->avail->idx == 6);

    // Complete out of order: the 3rd single first, then the chain.
    int c, w; uint16_t hs[5];
    for (int i = 0; i < 5; i++) hs[i] = device_take(vq, &c, &w);
    device_use(vq, hs[2], 1);
    device_use(vq, h0, 50);
    uint32_t len;
    assert(virtqueue_pop(vq, &len) == &tok[3] && len == 1);
    assert(virtqueue_pop(vq, &len) == &tok[0] && len == 50);
    assert(virtqueue_pop(vq, &len) == NULL);
    assert(virtqueue_free_count(vq) == 4);
    for (int i = 0; i < 5; i++) if (i != 2) device_use(vq, hs[i], 1);
    for (int i = 0; i < 4; i++) assert(virtqueue_pop(vq, &len) != NULL);
    assert(virtqueue_free_count(vq) == 8);

    // Many rounds through index wrap-around (65536), with varying chain lengths.
    for (int round = 0; round < 70000; round++) {
        int n = 1 + round % 3;
        assert(virtqueue_add(vq, bufs, 1, n - 1, &tok[round % 16]) >= 0);
        uint16_t h = device_take(vq, &c, &w);
        assert(c == n && w == n - 1);
        device_use(vq, h, round);
        assert(virtqueue_pop(vq, &len) == &tok[round % 16] && len == (uint32_t)round);
        assert(virtqueue_free_count(vq) == 8);
    }

    // Suppression without EVENT_IDX: the device's NO_NOTIFY flag.
    notified = 0;
    vq->used->flags = VIRTQ_USED_F_NO_NOTIFY;
    virtqueue_add_one(vq, 0x1000, 1, true, &tok[0]);
    assert(!virtqueue_kick(vq) && notified == 0 && vq->kicks_suppressed == 1);
    vq->used->flags = 0;
    device_use(vq, device_take(vq, &c, &w), 1);
    virtqueue_pop(vq, &len);

    // EVENT_IDX: notify only when avail->idx passes avail_event.
    vq->event_idx = true;
    *vq->avail_event = vq->avail_idx + 1;        // device wants a kick after 2 more
    virtqueue_add_one(vq, 0x1000, 1, true, &tok[0]);
    assert(!virtqueue_kick(vq));
    virtqueue_add_one(vq, 0x1000, 1, true, &tok[1]);
    assert(virtqueue_kick(vq) && notified == 1);
    device_use(vq, device_take(vq, &c, &w), 1);
    device_use(vq, device_take(vq, &c, &w), 1);
    // Interrupt suppression: enable reports buffers already waiting; used_event follows.
    virtqueue_disable_interrupts(vq);
    assert(vq->avail->flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
    assert(virtqueue_enable_interrupts(vq));
    assert(virtqueue_pop(vq, &len) && virtqueue_pop(vq, &len));
    assert(*vq->used_event == vq->last_used);
    assert(!virtqueue_enable_interrupts(vq));
    puts("virtqueue ok");
    return 0;
}
"""


def test_virtqueue_ring_logic(tmp_path):
    src = tmp_path / "harness.c"
    src.write_text(HARNESS)
    exe = tmp_path / "harness"
    hostcc.build(exe, [src, REPO / "drivers/virtio/virtqueue.c"])
    result = hostcc.run(exe)
    assert "virtqueue ok" in result.stdout
