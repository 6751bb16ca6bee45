// Boot memory map -> GC heap regions and DMA pool. See mm.h.
#include "mm/mm.h"

#include <stdbool.h>
#include <string.h>

#define PAGE_SIZE (4096ULL)
#define FOUR_GIB (0x100000000ULL)
#define DMA_POOL_MIN (256ULL * 1024)
#define DMA_POOL_MAX (16ULL * 1024 * 1024)
// Regions smaller than this are not worth a GC heap area of their own.
#define MIN_HEAP_REGION (64ULL * 1024)

struct mm_layout mm_layout;

static uint64_t dma_next;

static uint64_t align_up(uint64_t value, uint64_t align) {
    return (value + align - 1) & ~(align - 1);
}

static uint64_t align_down(uint64_t value, uint64_t align) {
    return value & ~(align - 1);
}

// Usable regions clipped to [floor, ...), page aligned, sorted largest first.
static int collect_free_regions(const struct boot_info *info, uint64_t floor,
    struct mm_region *out, int max) {
    int count = 0;
    for (int i = 0; i < info->mem_count; i++) {
        const struct boot_mem_region *r = &info->mem[i];
        if (r->type != BOOT_MEM_USABLE) {
            continue;
        }
        uint64_t start = align_up(r->base, PAGE_SIZE);
        uint64_t end = align_down(r->base + r->length, PAGE_SIZE);
        if (start < floor) {
            start = floor;
        }
        if (end <= start || end - start < MIN_HEAP_REGION) {
            continue;
        }
        // Insertion sort by size, descending; the smallest falls off when full.
        int pos = count < max ? count++ : max;
        while (pos > 0 && out[pos - 1].size < end - start) {
            if (pos < max) {
                out[pos] = out[pos - 1];
            }
            pos--;
        }
        if (pos < max) {
            out[pos].base = start;
            out[pos].size = end - start;
        }
    }
    return count;
}

int mm_init(const struct boot_info *info, uint64_t kernel_end, const char **why) {
    memset(&mm_layout, 0, sizeof(mm_layout));
    for (int i = 0; i < info->mem_count; i++) {
        if (info->mem[i].type == BOOT_MEM_USABLE) {
            mm_layout.ram_total += info->mem[i].length;
        }
    }

    struct mm_region regions[MM_MAX_HEAP_REGIONS];
    int count = collect_free_regions(info, align_up(kernel_end, PAGE_SIZE), regions,
        MM_MAX_HEAP_REGIONS);
    if (count == 0) {
        *why = "no usable RAM above the kernel image in the boot memory map";
        return -1;
    }

    // The DMA pool: 1/16 of RAM within [256 KiB, 16 MiB], from the top of the largest region
    // below 4 GiB so that devices without 64-bit DMA can reach it too.
    uint64_t dma_size = align_down(mm_layout.ram_total / 16, PAGE_SIZE);
    if (dma_size < DMA_POOL_MIN) {
        dma_size = DMA_POOL_MIN;
    } else if (dma_size > DMA_POOL_MAX) {
        dma_size = DMA_POOL_MAX;
    }
    for (int i = 0; i < count; i++) {
        struct mm_region *r = &regions[i];
        uint64_t top = r->base + r->size < FOUR_GIB ? r->base + r->size : FOUR_GIB;
        if (top > r->base && top - r->base >= 2 * dma_size) {
            mm_layout.dma.base = top - dma_size;
            mm_layout.dma.size = dma_size;
            if (top == r->base + r->size) {
                r->size -= dma_size;
            } else {
                // The pool sits just below 4 GiB in a region crossing it: keep the part
                // above for the heap as a region of its own, if there is room for it.
                uint64_t above = r->base + r->size - FOUR_GIB;
                r->size = mm_layout.dma.base - r->base;
                if (count < MM_MAX_HEAP_REGIONS && above >= MIN_HEAP_REGION) {
                    regions[count].base = FOUR_GIB;
                    regions[count].size = above;
                    count++;
                }
            }
            break;
        }
    }
    if (mm_layout.dma.size == 0) {
        *why = "no region below 4 GiB large enough for the DMA pool";
        return -1;
    }
    dma_next = mm_layout.dma.base;

    for (int i = 0; i < count; i++) {
        if (regions[i].size >= MIN_HEAP_REGION) {
            mm_layout.heap[mm_layout.heap_count++] = regions[i];
            mm_layout.heap_total += regions[i].size;
        }
    }
    return 0;
}

void *dma_alloc(size_t size, size_t align) {
    if (align < 16) {
        align = 16;
    }
    // Any CPU may carve (each CPU's first DMA pool, kernel/dma.py): claim [start, start+size)
    // with a compare-and-swap on the bump pointer, so two CPUs never get overlapping memory.
    uint64_t end = mm_layout.dma.base + mm_layout.dma.size;
    uint64_t seen = __atomic_load_n(&dma_next, __ATOMIC_RELAXED);
    uint64_t start;
    do {
        start = align_up(seen, align);
        if (start > end || size > end - start) {
            return NULL;
        }
    } while (!__atomic_compare_exchange_n(&dma_next, &seen, start + size, false,
        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    memset((void *)(uintptr_t)start, 0, size);
    return (void *)(uintptr_t)start;
}

size_t dma_free_bytes(void) {
    return (size_t)(mm_layout.dma.base + mm_layout.dma.size - dma_next);
}

void *mm_carve(uint64_t size, uint64_t align) {
    void *mem = mm_take(size, align);
    if (mem != NULL) {
        memset(mem, 0, align_up(size, PAGE_SIZE));
    }
    return mem;
}

enum take_from { BELOW_4GIB, ABOVE_4GIB, ANYWHERE };

// From the top of the first heap region in the wanted place with room for `size` and
// MIN_HEAP_REGION left over; the heap shrinks by what is taken.
static void *take(uint64_t size, uint64_t align, enum take_from where) {
    if (align < PAGE_SIZE) {
        align = PAGE_SIZE;
    }
    size = align_up(size, PAGE_SIZE);
    for (int i = 0; i < mm_layout.heap_count; i++) {
        struct mm_region *r = &mm_layout.heap[i];
        uint64_t top = r->base + r->size;
        if ((where == BELOW_4GIB && top > FOUR_GIB) || (where == ABOVE_4GIB && r->base < FOUR_GIB)
            || r->size < size + MIN_HEAP_REGION) {
            continue;
        }
        uint64_t start = align_down(top - size, align);
        if (start < r->base + MIN_HEAP_REGION) {
            continue;
        }
        mm_layout.heap_total -= top - start;
        r->size = start - r->base;
        return (void *)(uintptr_t)start;
    }
    return NULL;
}

void *mm_take(uint64_t size, uint64_t align) {
    // Page-table roots and AP stacks must be reachable from 32-bit code.
    return take(size, align, BELOW_4GIB);
}

void *mm_take_anywhere(uint64_t size, uint64_t align) {
    void *mem = take(size, align, ABOVE_4GIB);
    return mem != NULL ? mem : take(size, align, ANYWHERE);
}
