// A CPU's heap reserve: the RAM set aside for its GC heap, handed to the heap in areas as the
// heap grows and taken back when an area empties. The interpreter starts on a small first
// area, so a boot zeroes the allocation table of that area only (1/64 of its size) instead
// of the whole share: ~80 ms of a 16 GiB VM's TCG boot.
//
// Plain first-fit over a short list of free ranges, merged on return; areas double as the
// heap grows (MicroPython's gc_try_add_heap), so there are only ever a few. Each CPU owns its
// reserve and only that CPU touches it: no lock.
#ifndef MANTICORE_MM_HEAP_RESERVE_H
#define MANTICORE_MM_HEAP_RESERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAP_RESERVE_MAX_RANGES (64)   // > areas + regions added: a return always fits
#define HEAP_RESERVE_MAX_AREAS (48)

struct heap_range {
    uint64_t base;
    uint64_t size;
};

struct heap_reserve {
    struct heap_range free[HEAP_RESERVE_MAX_RANGES];    // by address, none adjacent
    int free_count;
    struct heap_range areas[HEAP_RESERVE_MAX_AREAS];    // handed out, not yet returned
    int area_count;
    uint64_t total;                                     // everything ever added
};

// Empties `reserve`.
void heap_reserve_init(struct heap_reserve *reserve);

// Adds RAM [base, base + size) to the reserve. False (and nothing added) when it overlaps
// what the reserve holds or the range table is full.
bool heap_reserve_add(struct heap_reserve *reserve, uint64_t base, uint64_t size);

// An area of `size` bytes (rounded up to HEAP_RESERVE_GRAIN), from the lowest free range
// that holds it; NULL when none does or the area table is full.
void *heap_reserve_take(struct heap_reserve *reserve, uint64_t size);

// Returns an area heap_reserve_take gave out. False for a pointer it did not give.
bool heap_reserve_give(struct heap_reserve *reserve, void *area);

// The largest area heap_reserve_take could give now (0 when the area table is full).
uint64_t heap_reserve_largest(const struct heap_reserve *reserve);

// Bytes in free ranges.
uint64_t heap_reserve_free(const struct heap_reserve *reserve);

// Areas are whole multiples of this (and start on one, as the ranges added do).
#define HEAP_RESERVE_GRAIN (4096)

#endif
