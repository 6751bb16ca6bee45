// The split virtqueue (virtio 1.2, 2.7), the ring every virtio device and its driver share:
// a descriptor table of buffers, an available ring where the driver offers descriptor chains,
// and a used ring where the device returns them with the byte count it wrote. This file is
// the only implementation in the kernel; virtio-rng and virtio-net both use it, independent
// of the transport (the transport sets `notify` and wires the interrupt).
//
// Buffers are given to the device by physical address: everything is identity mapped, so a
// pointer from the DMA pool (mm/mm.h) is its own address. The virtqueue never copies data.
#ifndef DRIVERS_VIRTIO_VIRTQUEUE_H
#define DRIVERS_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Descriptor flags (2.7.5).
enum {
    VIRTQ_DESC_F_NEXT = 1,          // chain continues in `next`
    VIRTQ_DESC_F_WRITE = 2,         // device writes this buffer (else it reads it)
    VIRTQ_DESC_F_INDIRECT = 4,
};

// Ring flags: notification suppression without VIRTIO_F_EVENT_IDX (2.7.7, 2.7.10).
enum {
    VIRTQ_AVAIL_F_NO_INTERRUPT = 1,
    VIRTQ_USED_F_NO_NOTIFY = 1,
};

struct virtq_desc {                 // 2.7.5
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {                // 2.7.6; used_event follows ring[size]
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
};

struct virtq_used_elem {            // 2.7.8
    uint32_t id;                    // head of the returned chain
    uint32_t len;                   // bytes the device wrote into it
};

struct virtq_used {                 // 2.7.8; avail_event follows ring[size]
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[];
};

// One buffer of a chain: physical address and length.
struct virtq_buf {
    uint64_t addr;
    uint32_t len;
};

struct virtqueue;
typedef void (*virtqueue_notify_t)(struct virtqueue *vq);
typedef void (*virtqueue_callback_t)(struct virtqueue *vq, void *context);

struct virtqueue {
    uint16_t index;                 // queue number within its device
    uint16_t size;                  // entries, a power of two (2.7: Queue Size)
    volatile struct virtq_desc *desc;
    volatile struct virtq_avail *avail;
    volatile struct virtq_used *used;
    volatile uint16_t *used_event;  // &avail->ring[size] (VIRTIO_F_EVENT_IDX)
    volatile uint16_t *avail_event; // &used->ring[size]
    bool event_idx;                 // VIRTIO_F_EVENT_IDX negotiated
    uint16_t free_head;             // first free descriptor, chained through `next`
    uint16_t free_count;
    uint16_t avail_idx;             // driver's copy of avail->idx
    uint16_t kicked_idx;            // avail_idx at the last notification decision
    uint16_t last_used;             // next used->ring slot to consume
    void **tokens;                  // per head descriptor: the caller's cookie
    uint16_t *chain_length;         // per head descriptor: descriptors in its chain
    // Set by the transport:
    virtqueue_notify_t notify;      // tell the device about new buffers
    void *transport;                // the transport's own pointer (e.g. its device)
    uintptr_t notify_address;       // e.g. the virtio-pci notify register of this queue
    int vector;                     // CPU vector of its interrupt, -1 when none
    // Set by the driver, run from the interrupt with interrupts off (never Python):
    virtqueue_callback_t callback;
    void *callback_context;
    // Statistics.
    uint64_t kicks;                 // notifications sent
    uint64_t kicks_suppressed;      // notifications the device said it does not need
    uint64_t interrupts;
};

// The ring size a driver uses for a queue the device offers `device_max` entries of (its
// QueueNumMax / queue_size, not 0): no more than `driver_max` when that is not 0, a power of
// two (2.7: split rings), at most 32768.
uint16_t virtqueue_choose_size(uint32_t device_max, uint16_t driver_max);

// Allocate the rings for `size` entries (a power of two <= 32768) from the DMA pool (they are
// never freed: create queues once) and chain all descriptors as free. NULL when out of memory.
struct virtqueue *virtqueue_create(uint16_t index, uint16_t size);

// The same for a legacy device (virtio 1.2, 2.7.2 "Legacy Interfaces: A Note on Virtqueue
// Layout"; a version 1 virtio-mmio device, 4.2.4): one page-aligned block, the available ring
// right after the descriptor table and the used ring at the next multiple of `align`, since
// such a device is told one page number and derives the other two parts from it.
struct virtqueue *virtqueue_create_legacy(uint16_t index, uint16_t size, uint32_t align);

// Return every descriptor to the free list and reset the indices (after a device reset).
void virtqueue_reset(struct virtqueue *vq);

// Physical addresses of the three parts, for the transport (Descriptor Area, Driver Area,
// Device Area in 2.7).
uint64_t virtqueue_desc_address(const struct virtqueue *vq);
uint64_t virtqueue_avail_address(const struct virtqueue *vq);
uint64_t virtqueue_used_address(const struct virtqueue *vq);

// Offer a chain of out_count device-readable buffers followed by in_count device-writable
// ones and make it visible in the available ring (2.7.13). `token` (not NULL) comes back from
// virtqueue_pop. Returns the head descriptor, or -1 when the ring has too few free descriptors
// (back-pressure: nothing was added). Does not notify: call virtqueue_kick after one or more.
int virtqueue_add(struct virtqueue *vq, const struct virtq_buf *bufs, unsigned out_count,
                  unsigned in_count, void *token);

// Shorthand for one buffer.
int virtqueue_add_one(struct virtqueue *vq, uint64_t addr, uint32_t len, bool device_writes,
                      void *token);

// Notify the device if it wants to hear about the buffers added since the last kick (2.7.13.4
// and 2.7.10 / VIRTIO_F_EVENT_IDX). Returns true when a notification was sent.
bool virtqueue_kick(struct virtqueue *vq);

// True when the device has returned buffers not yet popped.
bool virtqueue_has_used(const struct virtqueue *vq);

// Take the next used chain (2.7.14): its token, and in *len the bytes the device wrote. Its
// descriptors go back to the free list. NULL when none is pending.
void *virtqueue_pop(struct virtqueue *vq, uint32_t *len);

// Used buffer notification suppression (2.7.7): disable asks the device not to interrupt;
// enable asks it to again and returns true when buffers arrived meanwhile (the caller must
// then poll once more, or it could sleep with work pending).
void virtqueue_disable_interrupts(struct virtqueue *vq);
bool virtqueue_enable_interrupts(struct virtqueue *vq);

static inline unsigned virtqueue_free_count(const struct virtqueue *vq) {
    return vq->free_count;
}

// For the transport's interrupt handler: count and run the driver's callback.
void virtqueue_interrupt(struct virtqueue *vq);

#endif
