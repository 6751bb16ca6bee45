// Split virtqueues (virtio 1.2, 2.7): the descriptor table, the available ring the driver
// fills and the used ring the device fills, with the free-descriptor list and notification
// suppression. See virtqueue.h.
#include "drivers/virtio/virtqueue.h"

#include <stdbool.h>

#include "mm/mm.h"

// Memory ordering (virtio 1.2, 2.7.13.3.1 and 2.7.13.4; Intel SDM vol. 3A, 8.2.2 "Memory
// Ordering in P6 and More Recent Processor Families"). Ring memory is ordinary write-back
// RAM shared with a cache-coherent device, so x86's ordering rules apply:
//  - stores are not reordered with other stores: the descriptor and ring entry are visible
//    before the new avail->idx with only a compiler barrier (write barrier);
//  - loads are not reordered with other loads: reading used->idx before the used element
//    needs only a compiler barrier (read barrier);
//  - a load may pass an earlier store: after publishing avail->idx the driver must fence
//    before it reads used->flags / avail_event to decide whether to notify (2.7.13.4), and
//    after publishing used_event before re-checking used->idx (2.7.7.1), else a notification
//    or an interrupt is lost. That one is MFENCE.
static inline void virtio_wmb(void) {
    __asm__ volatile ("" : : : "memory");
}

static inline void virtio_rmb(void) {
    __asm__ volatile ("" : : : "memory");
}

static inline void virtio_mb(void) {
    __asm__ volatile ("mfence" : : : "memory");
}

// VIRTIO_F_EVENT_IDX: notify when the index moved past the other side's event index
// (2.7.10, the vring_need_event of the reference header in 2.7.10.1).
static inline bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

// The three parts in place: the bookkeeping beside them, every descriptor free.
static struct virtqueue *assemble(uint16_t index, uint16_t size, void *desc, void *avail,
    void *used) {
    struct virtqueue *vq = dma_alloc(sizeof(*vq), 64);
    void **tokens = dma_alloc(sizeof(void *) * size, 8);
    uint16_t *lengths = dma_alloc(sizeof(uint16_t) * size, 8);
    if (vq == NULL || desc == NULL || avail == NULL || used == NULL || tokens == NULL
        || lengths == NULL) {
        return NULL;
    }
    vq->index = index;
    vq->size = size;
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    vq->used_event = &vq->avail->ring[size];
    vq->avail_event = (volatile uint16_t *)&vq->used->ring[size];
    vq->tokens = tokens;
    vq->chain_length = lengths;
    vq->vector = -1;
    virtqueue_reset(vq);
    return vq;
}

uint16_t virtqueue_choose_size(uint32_t device_max, uint16_t driver_max) {
    uint32_t size = device_max > 32768 ? 32768 : device_max;
    if (driver_max != 0 && driver_max < size) {
        size = driver_max;
    }
    while (size & (size - 1)) {
        size &= size - 1;   // round down to a power of two
    }
    return (uint16_t)size;
}

static bool valid_size(uint16_t size) {
    return size != 0 && (size & (size - 1)) == 0 && size <= 32768;
}

struct virtqueue *virtqueue_create(uint16_t index, uint16_t size) {
    if (!valid_size(size)) {
        return NULL;
    }
    // Alignment: descriptor table 16, available ring 2, used ring 4 (2.7, Table "Virtqueue
    // Part Alignment"); whole pages keep device-written and driver-written memory apart.
    void *desc = dma_alloc(16u * size, 4096);
    void *avail = dma_alloc(6u + 2u * size, 4096);
    void *used = dma_alloc(6u + 8u * size, 4096);
    return assemble(index, size, desc, avail, used);
}

struct virtqueue *virtqueue_create_legacy(uint16_t index, uint16_t size, uint32_t align) {
    if (!valid_size(size) || align < 4 || (align & (align - 1)) != 0) {
        return NULL;
    }
    // 2.7.2 (legacy layout): descriptor table, available ring right after it (with
    // used_event), then the used ring (with avail_event) at the next multiple of `align`.
    size_t avail_end = 16u * size + 6u + 2u * size;
    size_t used_offset = (avail_end + align - 1) & ~(size_t)(align - 1);
    uint8_t *block = dma_alloc(used_offset + 6u + 8u * size, 4096);
    if (block == NULL) {
        return NULL;
    }
    return assemble(index, size, block, block + 16u * size, block + used_offset);
}

void virtqueue_reset(struct virtqueue *vq) {
    for (uint16_t i = 0; i < vq->size; i++) {
        vq->desc[i] = (struct virtq_desc){ .next = (uint16_t)(i + 1) };
        vq->tokens[i] = NULL;
        vq->chain_length[i] = 0;
    }
    vq->free_head = 0;
    vq->free_count = vq->size;
    vq->avail->flags = 0;
    vq->avail->idx = 0;
    vq->used->flags = 0;
    vq->used->idx = 0;
    *vq->used_event = 0;
    *vq->avail_event = 0;
    vq->avail_idx = 0;
    vq->kicked_idx = 0;
    vq->last_used = 0;
}

uint64_t virtqueue_desc_address(const struct virtqueue *vq) {
    return (uintptr_t)vq->desc;
}

uint64_t virtqueue_avail_address(const struct virtqueue *vq) {
    return (uintptr_t)vq->avail;
}

uint64_t virtqueue_used_address(const struct virtqueue *vq) {
    return (uintptr_t)vq->used;
}

int virtqueue_add(struct virtqueue *vq, const struct virtq_buf *bufs, unsigned out_count,
                  unsigned in_count, void *token) {
    unsigned count = out_count + in_count;
    if (count == 0 || count > vq->free_count || token == NULL) {
        return -1;
    }
    // Fill the descriptors (2.7.13.1). The free list is chained through `next`, so a chain
    // taken from its head is already linked in order.
    uint16_t head = vq->free_head;
    uint16_t i = head;
    for (unsigned k = 0; k < count; k++) {
        volatile struct virtq_desc *d = &vq->desc[i];
        d->addr = bufs[k].addr;
        d->len = bufs[k].len;
        d->flags = (k >= out_count ? VIRTQ_DESC_F_WRITE : 0)
            | (k + 1 < count ? VIRTQ_DESC_F_NEXT : 0);
        i = d->next;
    }
    vq->free_head = i;
    vq->free_count -= count;
    vq->tokens[head] = token;
    vq->chain_length[head] = count;

    // Ring entry, then idx (2.7.13.2, 2.7.13.3): the device must see the descriptors and the
    // entry before it sees the index that covers them.
    vq->avail->ring[vq->avail_idx & (vq->size - 1)] = head;
    virtio_wmb();
    vq->avail_idx++;
    vq->avail->idx = vq->avail_idx;
    return head;
}

int virtqueue_add_one(struct virtqueue *vq, uint64_t addr, uint32_t len, bool device_writes,
                      void *token) {
    struct virtq_buf buf = { addr, len };
    return virtqueue_add(vq, &buf, device_writes ? 0 : 1, device_writes ? 1 : 0, token);
}

bool virtqueue_kick(struct virtqueue *vq) {
    // avail->idx is stored; the suppression fields are loaded next: fence (2.7.13.4).
    virtio_mb();
    uint16_t old_idx = vq->kicked_idx;
    uint16_t new_idx = vq->avail_idx;
    vq->kicked_idx = new_idx;
    if (old_idx == new_idx) {
        return false;
    }
    bool needed = vq->event_idx ? need_event(*vq->avail_event, new_idx, old_idx)
        : !(vq->used->flags & VIRTQ_USED_F_NO_NOTIFY);
    if (!needed) {
        vq->kicks_suppressed++;
        return false;
    }
    vq->kicks++;
    vq->notify(vq);
    return true;
}

bool virtqueue_has_used(const struct virtqueue *vq) {
    return vq->used->idx != vq->last_used;
}

void *virtqueue_pop(struct virtqueue *vq, uint32_t *len) {
    if (vq->used->idx == vq->last_used) {
        return NULL;
    }
    // used->idx was read before the element it covers (2.7.14).
    virtio_rmb();
    volatile struct virtq_used_elem *e = &vq->used->ring[vq->last_used & (vq->size - 1)];
    uint32_t id = e->id;
    uint32_t written = e->len;
    vq->last_used++;
    if (vq->event_idx && !(vq->avail->flags & VIRTQ_AVAIL_F_NO_INTERRUPT)) {
        // Interrupt us again once the device has used the next buffer (2.7.7.1).
        *vq->used_event = vq->last_used;
    }
    if (id >= vq->size || vq->tokens[id] == NULL) {
        return NULL;   // a device bug: an id we never offered
    }
    void *token = vq->tokens[id];
    vq->tokens[id] = NULL;
    // Back to the free list: walk to the chain's tail and link it to the old head.
    uint16_t count = vq->chain_length[id];
    uint16_t tail = id;
    for (uint16_t k = 1; k < count; k++) {
        tail = vq->desc[tail].next;
    }
    vq->desc[tail].next = vq->free_head;
    vq->free_head = id;
    vq->free_count += count;
    if (len != NULL) {
        *len = written;
    }
    return token;
}

void virtqueue_disable_interrupts(struct virtqueue *vq) {
    // Without EVENT_IDX the flag is the request; with it the device ignores the flag
    // (2.7.7) and interrupts when used->idx passes used_event: put used_event just behind
    // what we consumed, which the device's index can only pass again after 65535 more
    // buffers (2.7.10, vring_need_event), so none comes meanwhile, not even one more.
    vq->avail->flags |= VIRTQ_AVAIL_F_NO_INTERRUPT;
    if (vq->event_idx) {
        *vq->used_event = (uint16_t)(vq->last_used - 1);
    }
}

bool virtqueue_enable_interrupts(struct virtqueue *vq) {
    vq->avail->flags &= ~VIRTQ_AVAIL_F_NO_INTERRUPT;
    if (vq->event_idx) {
        *vq->used_event = vq->last_used;
    }
    // Store of flags/used_event, then load of used->idx: fence (2.7.7.1), so a buffer used
    // just before the device saw the request is not left without an interrupt.
    virtio_mb();
    return vq->used->idx != vq->last_used;
}

void virtqueue_interrupt(struct virtqueue *vq) {
    vq->interrupts++;
    if (vq->callback != NULL) {
        vq->callback(vq, vq->callback_context);
    }
}
