// Physical memory management for the kernel: turns the boot loader's memory map into the
// regions handed to the MicroPython GC heap and a DMA pool for device rings and buffers.
//
// Everything is identity mapped (virtual == physical), so a pointer from the DMA pool can be
// given to a device as is.
#ifndef MANTICORE_MM_MM_H
#define MANTICORE_MM_MM_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86_64/boot_info.h"

// Up to this many separate RAM regions are given to the heap (the largest first).
#define MM_MAX_HEAP_REGIONS (8)

struct mm_region {
    uint64_t base;
    uint64_t size;
};

struct mm_layout {
    uint64_t ram_total;              // usable RAM reported by the loader, in bytes
    struct mm_region heap[MM_MAX_HEAP_REGIONS];
    int heap_count;
    uint64_t heap_total;
    struct mm_region dma;            // physically contiguous, below 4 GiB
};

extern struct mm_layout mm_layout;

// Builds mm_layout from the loader's memory map, leaving out everything below kernel_end
// (the first MiB, the kernel image, its stacks and page tables). Returns 0, or a negative
// value with a message in *why when no usable RAM was found.
int mm_init(const struct boot_info *info, uint64_t kernel_end, const char **why);

// Allocates size bytes from the DMA pool, aligned to align (a power of two). Memory is
// zeroed and never freed: drivers allocate their rings and buffers once at start-up.
// Returns NULL when the pool is exhausted.
void *dma_alloc(size_t size, size_t align);

// Takes `size` bytes (rounded up to pages, aligned to `align`, zeroed) below 4 GiB away from
// the GC heap for good, before the heap is started: what the other CPUs need that 32-bit
// code must reach (their stacks, per-CPU windows). NULL when no heap region has room.
void *mm_carve(uint64_t size, uint64_t align);
// The same without zeroing.
void *mm_take(uint64_t size, uint64_t align);
// The same anywhere in RAM, above 4 GiB first: for what only 64-bit code touches (another
// CPU's GC heap, which needs no zeroing either: zeroing 100 MiB costs a boot 100 ms). On a
// machine with RAM above 4 GiB most of it is there.
void *mm_take_anywhere(uint64_t size, uint64_t align);

// Bytes still free in the DMA pool.
size_t dma_free_bytes(void);

#endif // MANTICORE_MM_MM_H
