// A CPU's heap reserve (heap_reserve.h): first fit over free ranges kept by address.
#include "mm/heap_reserve.h"

static uint64_t round_up(uint64_t value) {
    return (value + HEAP_RESERVE_GRAIN - 1) & ~(uint64_t)(HEAP_RESERVE_GRAIN - 1);
}

void heap_reserve_init(struct heap_reserve *reserve) {
    reserve->free_count = 0;
    reserve->area_count = 0;
    reserve->total = 0;
}

static bool overlaps(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
    return a < b + b_size && b < a + a_size;
}

// Puts [base, base + size) into the free list at its place by address, merged with the
// ranges it touches. False when it overlaps one or the table is full.
static bool insert_free(struct heap_reserve *reserve, uint64_t base, uint64_t size) {
    int at = 0;
    while (at < reserve->free_count && reserve->free[at].base < base) {
        at++;
    }
    struct heap_range *before = at > 0 ? &reserve->free[at - 1] : NULL;
    struct heap_range *after = at < reserve->free_count ? &reserve->free[at] : NULL;
    if ((before && overlaps(before->base, before->size, base, size))
        || (after && overlaps(after->base, after->size, base, size))) {
        return false;
    }
    bool joins_before = before && before->base + before->size == base;
    bool joins_after = after && base + size == after->base;
    if (joins_before && joins_after) {
        before->size += size + after->size;
        for (int i = at; i + 1 < reserve->free_count; i++) {
            reserve->free[i] = reserve->free[i + 1];
        }
        reserve->free_count--;
    } else if (joins_before) {
        before->size += size;
    } else if (joins_after) {
        after->base = base;
        after->size += size;
    } else {
        if (reserve->free_count >= HEAP_RESERVE_MAX_RANGES) {
            return false;
        }
        for (int i = reserve->free_count; i > at; i--) {
            reserve->free[i] = reserve->free[i - 1];
        }
        reserve->free[at] = (struct heap_range){ base, size };
        reserve->free_count++;
    }
    return true;
}

bool heap_reserve_add(struct heap_reserve *reserve, uint64_t base, uint64_t size) {
    if (size == 0 || base + size < base) {
        return false;
    }
    for (int i = 0; i < reserve->area_count; i++) {
        const struct heap_range *a = &reserve->areas[i];
        if (overlaps(a->base, a->size, base, size)) {
            return false;
        }
    }
    if (!insert_free(reserve, base, size)) {
        return false;
    }
    reserve->total += size;
    return true;
}

void *heap_reserve_take(struct heap_reserve *reserve, uint64_t size) {
    size = round_up(size);
    if (size == 0 || reserve->area_count >= HEAP_RESERVE_MAX_AREAS) {
        return NULL;
    }
    for (int i = 0; i < reserve->free_count; i++) {
        struct heap_range *r = &reserve->free[i];
        if (r->size < size) {
            continue;
        }
        uint64_t base = r->base;
        r->base += size;
        r->size -= size;
        if (r->size == 0) {
            for (int j = i; j + 1 < reserve->free_count; j++) {
                reserve->free[j] = reserve->free[j + 1];
            }
            reserve->free_count--;
        }
        reserve->areas[reserve->area_count++] = (struct heap_range){ base, size };
        return (void *)(uintptr_t)base;
    }
    return NULL;
}

bool heap_reserve_give(struct heap_reserve *reserve, void *area) {
    uint64_t base = (uint64_t)(uintptr_t)area;
    for (int i = 0; i < reserve->area_count; i++) {
        if (reserve->areas[i].base != base) {
            continue;
        }
        uint64_t size = reserve->areas[i].size;
        if (!insert_free(reserve, base, size)) {
            return false;   // the free table is full: keep it handed out rather than lose it
        }
        reserve->areas[i] = reserve->areas[--reserve->area_count];
        return true;
    }
    return false;
}

uint64_t heap_reserve_largest(const struct heap_reserve *reserve) {
    if (reserve->area_count >= HEAP_RESERVE_MAX_AREAS) {
        return 0;
    }
    uint64_t largest = 0;
    for (int i = 0; i < reserve->free_count; i++) {
        // Only whole grains: take() rounds up, so a ragged tail could not be given out.
        uint64_t usable = reserve->free[i].size & ~(uint64_t)(HEAP_RESERVE_GRAIN - 1);
        if (usable > largest) {
            largest = usable;
        }
    }
    return largest;
}

uint64_t heap_reserve_free(const struct heap_reserve *reserve) {
    uint64_t total = 0;
    for (int i = 0; i < reserve->free_count; i++) {
        total += reserve->free[i].size;
    }
    return total;
}
