// virtio-blk driver (virtio 1.2, 5.2): per-disk state in struct virtio_blk, one request queue
// per disk, one request in flight at a time, completion by interrupt. See virtio_blk.h.
#include "drivers/virtio/virtio_blk.h"

#include <string.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/timer.h"
#include "arch/x86_64/tsc.h"
#include "drivers/pci/msix.h"
#include "drivers/virtio/virtio_pci.h"
#include "mm/mm.h"

// Feature bits (5.2.3).
enum {
    VIRTIO_BLK_F_SIZE_MAX = 1,      // size_max: largest single segment
    VIRTIO_BLK_F_SEG_MAX = 2,
    VIRTIO_BLK_F_RO = 5,            // the device is read-only
    VIRTIO_BLK_F_BLK_SIZE = 6,      // blk_size: optimal block size
    VIRTIO_BLK_F_FLUSH = 9,         // VIRTIO_BLK_T_FLUSH is supported
};

// Device configuration layout (5.2.4): offsets into struct virtio_blk_config.
enum {
    BLK_CONFIG_CAPACITY = 0,        // le64, in 512-byte sectors
    BLK_CONFIG_SIZE_MAX = 8,        // le32
    BLK_CONFIG_SEG_MAX = 12,        // le32
    BLK_CONFIG_BLK_SIZE = 20,       // le32
};

// Request types and status values (5.2.6).
enum {
    VIRTIO_BLK_T_IN = 0,
    VIRTIO_BLK_T_OUT = 1,
    VIRTIO_BLK_T_FLUSH = 4,
    VIRTIO_BLK_S_OK = 0,
    VIRTIO_BLK_S_IOERR = 1,
    VIRTIO_BLK_S_UNSUPP = 2,
};

enum {
    BLK_QUEUE = 0,                  // requestq (5.2.2; one queue without VIRTIO_BLK_F_MQ)
    BLK_QUEUE_SIZE = 16,            // one 3-descriptor request in flight at a time
    BLK_SEGMENT_MAX = 256 * 1024,   // bytes per request, below any sane size_max
    // QEMU answers in well under a second even under TCG on a loaded host; a device that has
    // not answered after this long is broken, and waiting longer would hang the core.
    BLK_TIMEOUT_MS = 15000,
};

struct virtio_blk virtio_blk_devices[VIRTIO_BLK_MAX_DEVICES];
int virtio_blk_count;

// Bring up the `nth` virtio-blk device of any transport (PCI, then virtio-mmio) as disk
// `index`; -1 when there is none or it fails.
static int bind(struct virtio_blk *blk, int nth, int index) {
    *blk = (struct virtio_blk){ .owner_cpu = (int)smp_cpu_id(), .timeout_ms = BLK_TIMEOUT_MS };
    blk->name[0] = 'v';
    blk->name[1] = 'd';
    blk->name[2] = (char)('a' + index);
    if (virtio_find_device(&blk->vdev, VIRTIO_TYPE_BLOCK, nth) != 0) {
        return -1;
    }
    // 5.2.5 device initialization, following the general sequence of 3.1.1.
    uint64_t wanted = VIRTIO_FEATURE(VIRTIO_BLK_F_SIZE_MAX) | VIRTIO_FEATURE(VIRTIO_BLK_F_RO)
        | VIRTIO_FEATURE(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH)
        | VIRTIO_FEATURE(VIRTIO_F_EVENT_IDX);
    if (virtio_negotiate(&blk->vdev, wanted) != 0) {
        return -1;
    }
    virtio_read_config(&blk->vdev, BLK_CONFIG_CAPACITY, &blk->capacity, 8);
    blk->block_size = VIRTIO_BLK_SECTOR_SIZE;
    if (virtio_has_feature(&blk->vdev, VIRTIO_BLK_F_BLK_SIZE)) {
        uint32_t size = 0;
        virtio_read_config(&blk->vdev, BLK_CONFIG_BLK_SIZE, &size, 4);
        // 5.2.4: a power of two no smaller than a sector; anything else is ignored.
        if (size >= VIRTIO_BLK_SECTOR_SIZE && size <= 65536 && (size & (size - 1)) == 0) {
            blk->block_size = size;
        }
    }
    blk->size_max = BLK_SEGMENT_MAX;
    if (virtio_has_feature(&blk->vdev, VIRTIO_BLK_F_SIZE_MAX)) {
        uint32_t size = 0;
        virtio_read_config(&blk->vdev, BLK_CONFIG_SIZE_MAX, &size, 4);
        if (size >= VIRTIO_BLK_SECTOR_SIZE && size < blk->size_max) {
            blk->size_max = size & ~(uint32_t)(VIRTIO_BLK_SECTOR_SIZE - 1);
        }
    }
    blk->read_only = virtio_has_feature(&blk->vdev, VIRTIO_BLK_F_RO);
    blk->can_flush = virtio_has_feature(&blk->vdev, VIRTIO_BLK_F_FLUSH);

    uint8_t *dma = dma_alloc(4096, 4096);
    if (dma == NULL) {
        kprintf("virtio-blk: %s: out of DMA memory\n", blk->name);
        virtio_fail(&blk->vdev);
        return -1;
    }
    blk->header = (struct virtio_blk_req_header *)dma;
    blk->status = dma + 64;
    blk->bounce = dma + VIRTIO_BLK_SECTOR_SIZE;
    // The cache is an optimization: without DMA memory for it the disk works uncached.
    blk->cache = dma_alloc(VIRTIO_BLK_CACHE_ENTRIES * VIRTIO_BLK_CACHE_BLOCK, 4096);
    blk->vq = virtio_setup_queue(&blk->vdev, BLK_QUEUE, BLK_QUEUE_SIZE, NULL, NULL);
    if (blk->vq == NULL) {
        return -1;
    }
    virtio_driver_ok(&blk->vdev);
    uint64_t mib = blk->capacity * VIRTIO_BLK_SECTOR_SIZE >> 20;
    kprintf("virtio-blk: %s at %s, %lu MiB (%lu sectors), block %u%s%s, %s vector 0x%x\n",
        blk->name, virtio_device_name(&blk->vdev), (unsigned long)mib,
        (unsigned long)blk->capacity, blk->block_size, blk->read_only ? ", read-only" : "",
        blk->can_flush ? ", flush" : "", virtio_irq_mode_name(&blk->vdev), blk->vq->vector);
    return 0;
}

int virtio_blk_probe(void) {
    virtio_blk_count = 0;
    for (int nth = 0; nth < 2 * VIRTIO_BLK_MAX_DEVICES && virtio_blk_count < VIRTIO_BLK_MAX_DEVICES;
         nth++) {
        if (bind(&virtio_blk_devices[virtio_blk_count], nth, virtio_blk_count) == 0) {
            virtio_blk_count++;
        }
    }
    if (virtio_blk_count == VIRTIO_BLK_MAX_DEVICES) {
        int present = virtio_count_devices(VIRTIO_TYPE_BLOCK);
        if (present > VIRTIO_BLK_MAX_DEVICES) {
            kprintf("virtio-blk: %d disks, only the first %d are used (VIRTIO_BLK_MAX_DEVICES)\n",
                present, VIRTIO_BLK_MAX_DEVICES);
        }
    }
    return virtio_blk_count;
}

// Sleep until the device has returned the request (or the deadline passes). As in
// virtio_rng.c: interrupts are off while checking, and timer_sleep_until's `sti; hlt` lets the
// queue's interrupt in only once the CPU halts, so the wake-up cannot slip in between.
static bool wait_used(struct virtio_blk *blk) {
    struct virtqueue *vq = blk->vq;
    uint64_t deadline = tsc_read() + tsc_hz / 1000 * blk->timeout_ms;
    uint64_t flags = read_rflags();
    cli();
    while (!virtqueue_has_used(vq) && tsc_read() < deadline) {
        if (vq->vector >= 0) {
            timer_sleep_until(deadline);
            cli();
        } else {
            cpu_relax();
        }
    }
    bool done = virtqueue_has_used(vq);
    if (vq->vector >= 0) {
        timer_arm_at(0);
    }
    if (flags & RFLAGS_IF) {
        sti();
    }
    return done;
}

// One request: header, optional data segment, status (5.2.6). `data` is a physical address.
static int request(struct virtio_blk *blk, uint32_t type, uint64_t sector, uint64_t data,
    uint32_t len) {
    if (blk->broken) {
        return -VIRTIO_BLK_EIO;
    }
    blk->header->type = type;
    blk->header->reserved = 0;
    blk->header->sector = sector;
    *blk->status = 0xff;            // the device overwrites it; 0xff means "never answered"
    struct virtq_buf bufs[3];
    unsigned out = 0, in = 0;
    bufs[out++] = (struct virtq_buf){ (uintptr_t)blk->header, sizeof(*blk->header) };
    if (len > 0 && type == VIRTIO_BLK_T_OUT) {
        bufs[out++] = (struct virtq_buf){ data, len };
    } else if (len > 0) {
        bufs[out + in++] = (struct virtq_buf){ data, len };
    }
    bufs[out + in++] = (struct virtq_buf){ (uintptr_t)blk->status, 1 };
    if (virtqueue_add(blk->vq, bufs, out, in, blk) < 0) {
        blk->errors++;
        return -VIRTIO_BLK_EIO;
    }
    virtqueue_kick(blk->vq);
    if (!wait_used(blk)) {
        // The device still owns the buffers, one of them the caller's: a reset (4.1.4.3.2)
        // makes it give them up (QEMU drains the request first), so nothing is written
        // into memory the caller has moved on from. Then the disk is never used again.
        kprintf("virtio-blk: %s: no answer in %u ms, disk disabled\n", blk->name,
            blk->timeout_ms);
        blk->broken = true;
        blk->errors++;
        virtio_reset(&blk->vdev);
        virtio_fail(&blk->vdev);
        return -VIRTIO_BLK_ETIMEDOUT;
    }
    uint32_t written = 0;
    virtqueue_pop(blk->vq, &written);
    uint8_t status = *blk->status;
    if (status != VIRTIO_BLK_S_OK) {
        blk->errors++;
        return -VIRTIO_BLK_EIO;
    }
    return 0;
}

// Whole sectors between the device and `buf`, in segments of at most size_max.
static int transfer(struct virtio_blk *blk, uint32_t type, uint64_t sector, uint8_t *buf,
    size_t len) {
    while (len > 0) {
        uint32_t chunk = len < blk->size_max ? (uint32_t)len : blk->size_max;
        int err = request(blk, type, sector, (uintptr_t)buf, chunk);
        if (err != 0) {
            return err;
        }
        if (type == VIRTIO_BLK_T_IN) {
            blk->reads++;
            blk->bytes_read += chunk;
        } else {
            blk->writes++;
            blk->bytes_written += chunk;
        }
        sector += chunk / VIRTIO_BLK_SECTOR_SIZE;
        buf += chunk;
        len -= chunk;
    }
    return 0;
}

static int check_range(struct virtio_blk *blk, uint64_t pos, size_t len) {
    uint64_t size = blk->capacity * VIRTIO_BLK_SECTOR_SIZE;
    if (pos > size || len > size - pos) {
        return -VIRTIO_BLK_EINVAL;
    }
    return blk->broken ? -VIRTIO_BLK_EIO : 0;
}

// The slot holding `block`, or -1. A linear search of 64 tags costs far less than one
// request; the skip-list's blocks are spread over the disk, so a direct-mapped cache kept
// evicting them (4579 requests to read a 4 MiB file with 32 direct-mapped slots).
static int cache_find(const struct virtio_blk *blk, uint64_t block) {
    for (int i = 0; i < VIRTIO_BLK_CACHE_ENTRIES; i++) {
        if (blk->cache_tag[i] == block + 1) {
            return i;
        }
    }
    return -1;
}

// An empty slot, else the least recently used one.
static int cache_victim(const struct virtio_blk *blk) {
    int slot = 0;
    for (int i = 0; i < VIRTIO_BLK_CACHE_ENTRIES && blk->cache_tag[slot] != 0; i++) {
        if (blk->cache_tag[i] == 0 || blk->cache_used[i] < blk->cache_used[slot]) {
            slot = i;
        }
    }
    return slot;
}

static int cached_read(struct virtio_blk *blk, uint64_t pos, void *buf) {
    uint64_t block = pos / VIRTIO_BLK_CACHE_BLOCK;
    int slot = cache_find(blk, block);
    if (slot >= 0) {
        blk->cache_hits++;
    } else {
        slot = cache_victim(blk);
        blk->cache_tag[slot] = 0;
        int err = transfer(blk, VIRTIO_BLK_T_IN, pos / VIRTIO_BLK_SECTOR_SIZE,
            blk->cache + (size_t)slot * VIRTIO_BLK_CACHE_BLOCK, VIRTIO_BLK_CACHE_BLOCK);
        if (err != 0) {
            return err;
        }
        blk->cache_tag[slot] = block + 1;
    }
    blk->cache_used[slot] = ++blk->cache_clock;
    memcpy(buf, blk->cache + (size_t)slot * VIRTIO_BLK_CACHE_BLOCK, VIRTIO_BLK_CACHE_BLOCK);
    return 0;
}

// Before any write: drop the cached blocks it overlaps (even if the write then fails, the
// disk's content is unknown there).
static void cache_invalidate(struct virtio_blk *blk, uint64_t pos, size_t len) {
    if (blk->cache == NULL || len == 0) {
        return;
    }
    uint64_t first = pos / VIRTIO_BLK_CACHE_BLOCK;
    uint64_t last = (pos + len - 1) / VIRTIO_BLK_CACHE_BLOCK;
    for (int i = 0; i < VIRTIO_BLK_CACHE_ENTRIES; i++) {
        if (blk->cache_tag[i] != 0 && blk->cache_tag[i] - 1 >= first
            && blk->cache_tag[i] - 1 <= last) {
            blk->cache_tag[i] = 0;
        }
    }
}

int virtio_blk_read(struct virtio_blk *blk, uint64_t pos, void *buf, size_t len) {
    int err = check_range(blk, pos, len);
    if (err == 0 && blk->cache != NULL && len == VIRTIO_BLK_CACHE_BLOCK
        && pos % VIRTIO_BLK_CACHE_BLOCK == 0) {
        return cached_read(blk, pos, buf);
    }
    uint8_t *out = buf;
    const uint64_t ss = VIRTIO_BLK_SECTOR_SIZE;
    while (err == 0 && len > 0) {
        uint64_t offset = pos % ss;
        if (offset != 0 || len < ss) {
            // A partial sector: read it whole into the bounce sector, copy the part asked for.
            size_t part = ss - offset < len ? ss - offset : len;
            err = transfer(blk, VIRTIO_BLK_T_IN, pos / ss, blk->bounce, ss);
            if (err == 0) {
                memcpy(out, blk->bounce + offset, part);
            }
            pos += part;
            out += part;
            len -= part;
        } else {
            size_t whole = len - len % ss;
            err = transfer(blk, VIRTIO_BLK_T_IN, pos / ss, out, whole);
            pos += whole;
            out += whole;
            len -= whole;
        }
    }
    return err;
}

int virtio_blk_write(struct virtio_blk *blk, uint64_t pos, const void *buf, size_t len) {
    // A whole aligned block that the device took is cached as written: littlefs reads every
    // block it programs straight back to validate it (lfs_bd_flush).
    bool cache_it = blk->cache != NULL && len == VIRTIO_BLK_CACHE_BLOCK
        && pos % VIRTIO_BLK_CACHE_BLOCK == 0;
    uint64_t block = pos / VIRTIO_BLK_CACHE_BLOCK;
    int err = check_range(blk, pos, len);
    if (err == 0 && blk->read_only) {
        err = -VIRTIO_BLK_EROFS;
    }
    if (err == 0) {
        cache_invalidate(blk, pos, len);
    }
    const uint8_t *in = buf;
    const uint64_t ss = VIRTIO_BLK_SECTOR_SIZE;
    while (err == 0 && len > 0) {
        uint64_t offset = pos % ss;
        if (offset != 0 || len < ss) {
            // A partial sector: read-modify-write through the bounce sector.
            size_t part = ss - offset < len ? ss - offset : len;
            err = transfer(blk, VIRTIO_BLK_T_IN, pos / ss, blk->bounce, ss);
            if (err == 0) {
                memcpy(blk->bounce + offset, in, part);
                err = transfer(blk, VIRTIO_BLK_T_OUT, pos / ss, blk->bounce, ss);
            }
            pos += part;
            in += part;
            len -= part;
        } else {
            // The device only reads this buffer; the cast drops const for the descriptor.
            size_t whole = len - len % ss;
            err = transfer(blk, VIRTIO_BLK_T_OUT, pos / ss, (uint8_t *)(uintptr_t)in, whole);
            pos += whole;
            in += whole;
            len -= whole;
        }
    }
    if (err == 0 && cache_it) {
        int slot = cache_victim(blk);
        memcpy(blk->cache + (size_t)slot * VIRTIO_BLK_CACHE_BLOCK, buf, VIRTIO_BLK_CACHE_BLOCK);
        blk->cache_tag[slot] = block + 1;
        blk->cache_used[slot] = ++blk->cache_clock;
    }
    return err;
}

int virtio_blk_flush(struct virtio_blk *blk) {
    if (!blk->can_flush || blk->read_only) {
        return blk->broken ? -VIRTIO_BLK_EIO : 0;
    }
    int err = request(blk, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
    if (err == 0) {
        blk->flushes++;
    }
    return err;
}
