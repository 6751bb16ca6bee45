// virtio-blk, the virtio block device (virtio 1.2, 5.2): a disk of 512-byte sectors that the
// driver reads and writes with requests on a virtqueue (a header the device reads, the data,
// and a status byte the device writes). Each disk found on the bus gets a `struct virtio_blk`
// of its own, named vda, vdb, ... in bus order. Requests are synchronous: the caller's core
// halts until the queue's interrupt (MSI-X, else INTx) says the request is done, bounded by a
// timeout after which the disk is declared broken rather than waited on forever.
#ifndef DRIVERS_VIRTIO_VIRTIO_BLK_H
#define DRIVERS_VIRTIO_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/virtio/virtio.h"

#define VIRTIO_BLK_MAX_DEVICES (8)
#define VIRTIO_BLK_SECTOR_SIZE (512)    // the unit of `sector` in requests (5.2.6)
// A small read cache of aligned 4 KiB blocks per disk: littlefs (4 KiB blocks, kernel/fs.py)
// walks a file's skip-list from its last block for every block it reads, re-reading the same
// few blocks many times; under TCG each request costs ~70 us, a hit a memcpy.
#define VIRTIO_BLK_CACHE_BLOCK (4096)
#define VIRTIO_BLK_CACHE_ENTRIES (64)   // fully associative, least recently used goes

// Error codes, negated errno values as MicroPython's mperrno.h numbers them (Linux's).
enum {
    VIRTIO_BLK_EIO = 5,
    VIRTIO_BLK_EINVAL = 22,
    VIRTIO_BLK_EROFS = 30,
    VIRTIO_BLK_ETIMEDOUT = 110,
};

struct virtio_blk_req_header {      // 5.2.6: struct virtio_blk_req, the device-readable part
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
} __attribute__((packed));

struct virtio_blk {
    struct virtio_device vdev;
    struct virtqueue *vq;
    char name[4];                   // "vda"
    uint64_t capacity;              // in 512-byte sectors (5.2.4)
    uint32_t block_size;            // the device's optimal logical block size (blk_size)
    uint32_t size_max;              // largest data segment the device takes
    bool read_only;                 // VIRTIO_BLK_F_RO
    bool can_flush;                 // VIRTIO_BLK_F_FLUSH
    bool broken;                    // timed out or failed: not used again
    int owner_cpu;                  // the CPU whose requests wait on vq's interrupt
    uint32_t timeout_ms;            // a request not answered by then disables the disk
    // DMA memory the device reads and writes besides the caller's buffers.
    struct virtio_blk_req_header *header;
    volatile uint8_t *status;
    uint8_t *bounce;                // one sector for unaligned head/tail bytes
    uint8_t *cache;                 // VIRTIO_BLK_CACHE_ENTRIES blocks (DMA), NULL if none
    uint64_t cache_tag[VIRTIO_BLK_CACHE_ENTRIES];   // block number + 1, 0 when empty
    uint64_t cache_used[VIRTIO_BLK_CACHE_ENTRIES];  // cache_clock at the last hit or fill
    uint64_t cache_clock;
    // Statistics.
    uint64_t reads, writes, flushes, errors, bytes_read, bytes_written, cache_hits;
};

extern struct virtio_blk virtio_blk_devices[VIRTIO_BLK_MAX_DEVICES];
extern int virtio_blk_count;

// Bind every virtio-blk on the bus (after pci_init and the interrupt setup); one boot line
// per disk. Returns the number bound.
int virtio_blk_probe(void);

// Read/write `len` bytes at byte offset `pos` of the disk. Any alignment works: whole sectors
// go straight between the device and `buf` (identity mapped, so the buffer is its own DMA
// address); partial sectors at the ends go through a bounce sector (read-modify-write for
// writes). Aligned 4 KiB reads go through the disk's read cache; writes invalidate what they
// overlap. Returns 0 or a negated errno (EIO, EROFS, EINVAL past the end, ETIMEDOUT).
int virtio_blk_read(struct virtio_blk *blk, uint64_t pos, void *buf, size_t len);
int virtio_blk_write(struct virtio_blk *blk, uint64_t pos, const void *buf, size_t len);
// Ask the device to make written data durable (VIRTIO_BLK_T_FLUSH); 0 when it cannot.
int virtio_blk_flush(struct virtio_blk *blk);

#endif
