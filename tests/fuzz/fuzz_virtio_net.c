// Fuzz harness: the receive validation of drivers/virtio/virtio_net.c and the split
// virtqueue under it (drivers/virtio/virtqueue.c), through the driver's public calls
// (virtio_net_probe, then on queue pair 0: _rx_poll, _rx_release, _tx_alloc/_send/_free,
// _get_stats), from the
// unchanged sources, against a simulated device that the input drives, honest or lying.
//
// Input: records of (mode u8, used length u16, id u16, n u8, n bytes written at the start of
// the buffer: virtio_net_hdr then the frame). Mode bit 0: the device reports the fuzzer's id
// (maybe never offered, maybe held by the driver) instead of the buffer it took; bit 1: keep
// the frame held until the input ends; bit 2: release it twice; bit 3: also send a frame of
// the used length. After every input all held frames are released and the driver must have
// every receive buffer back and its counters must add up.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/pci/msix.h"
#include "drivers/virtio/virtio_net.h"
#include "drivers/virtio/virtio_pci.h"
#include "mm/mm.h"

// --- stand-ins for the kernel ---
#include "virtio_net_stub.h"     // the DMA pool and the stand-in transport
uint64_t tsc_read(void) { return 0; }
void kprintf(const char *fmt, ...) { (void)fmt; }

uint64_t tsc_to_us(uint64_t ticks) { return ticks; }

// --- the device side ---
static uint16_t device_avail[2];
static bool device_take(struct virtqueue *vq, uint16_t *head) {
    if (device_avail[vq->index] == vq->avail->idx) {
        return false;
    }
    *head = vq->avail->ring[device_avail[vq->index]++ % vq->size];
    return true;
}
static void device_use(struct virtqueue *vq, uint16_t id, uint32_t len) {
    uint16_t u = vq->used->idx;
    vq->used->ring[u % vq->size].id = id;
    vq->used->ring[u % vq->size].len = len;
    vq->used->idx = u + 1;
}

static void on_notify(void *ctx, unsigned events) { (void)ctx; (void)events; }

static void fail(const char *why) {
    fprintf(stderr, "fuzz_virtio_net: %s\n", why);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (virtio_net_count() == 0) {
        if (virtio_net_probe() != 1) {
            fail("probe");
        }
        virtio_net_set_notify(virtio_net_queue(0, 0), on_notify, NULL);
    }
    struct virtio_net_queue *q = virtio_net_queue(0, 0);
    struct virtqueue *rx = the_device->queues[0], *tx = the_device->queues[1];
    uint8_t *pool_start = pool, *pool_end = pool + POOL_SIZE;
    uint16_t held[512];
    int held_count = 0;
    for (size_t at = 0; at + 6 <= size;) {
        uint8_t mode = data[at];
        uint16_t used_len = data[at + 1] | data[at + 2] << 8;
        uint16_t fuzz_id = data[at + 3] | data[at + 4] << 8;
        size_t n = data[at + 5];
        at += 6;
        if (n > size - at) {
            n = size - at;
        }
        uint16_t head;
        if (device_take(rx, &head)) {
            uint8_t *buf = (uint8_t *)(uintptr_t)rx->desc[head].addr;
            uint32_t cap = rx->desc[head].len;
            if (cap != NET_BUFFER_SIZE || buf < pool_start || buf + cap > pool_end) {
                fail("posted buffer is not a whole DMA buffer");
            }
            memcpy(buf, data + at, n);
            device_use(rx, (mode & 1) ? fuzz_id : head, used_len);
        } else if (mode & 1) {
            device_use(rx, fuzz_id, used_len);    // a device using what it never took
        }
        at += n;
        virtqueue_interrupt(rx);
        struct net_frame f;
        while (virtio_net_rx_poll(q, &f)) {
            if (f.len < 14 || f.len > NET_BUFFER_SIZE - 12 || f.data < pool_start
                || f.data + f.len > pool_end) {
                fail("frame outside its buffer");
            }
            volatile uint8_t last = f.data[f.len - 1];
            (void)last;
            if ((mode & 2) && held_count < 512) {
                held[held_count++] = f.buffer_id;
            } else {
                virtio_net_rx_release(q, f.buffer_id);
                if (mode & 4) {
                    virtio_net_rx_release(q, f.buffer_id);
                }
            }
        }
        if (mode & 8) {
            void *b = virtio_net_tx_alloc(q);
            if (b) {
                if (virtio_net_tx_send(q, b, used_len) != 0) {
                    virtio_net_tx_free(q, b);
                }
            }
            uint16_t t;
            while (device_take(tx, &t)) {
                device_use(tx, t, 0);
            }
            virtio_net_tx_reclaim(q);
        }
    }
    for (int i = 0; i < held_count; i++) {
        virtio_net_rx_release(q, held[i]);
    }
    struct net_frame f;
    while (virtio_net_rx_poll(q, &f)) {
        virtio_net_rx_release(q, f.buffer_id);
    }
    struct virtio_net_stats s;
    virtio_net_get_stats(q, &s);
    if (s.rx_buffers_held != 0 || s.rx_buffers_free_in_ring > s.rx_buffers_total) {
        fail("receive buffers not all back");
    }
    return 0;
}
