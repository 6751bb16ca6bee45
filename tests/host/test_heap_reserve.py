"""Host unit test of mm/heap_reserve.c, the per-CPU reserve the GC heap grows from: areas
come from the lowest range that holds them, in whole pages; returned areas merge with their
neighbours so that a later, larger area fits again; overlapping ranges, foreign pointers and
full tables are refused without losing anything. Built with ASan and UBSan (hostcc)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hostcc

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mm/heap_reserve.h"

#define CHECK(cond) do { if (!(cond)) { printf("FAIL line %d: %s\n", __LINE__, #cond); \
                                        exit(1); } } while (0)
#define MIB (1024ull * 1024)

static uint64_t at(void *p) { return (uint64_t)(uintptr_t)p; }

int main(void) {
    static struct heap_reserve r;
    heap_reserve_init(&r);
    // Two ranges, as CPU 0 has below and above 4 GiB.
    CHECK(heap_reserve_add(&r, 16 * MIB, 100 * MIB));
    CHECK(heap_reserve_add(&r, 4096 * MIB, 3000 * MIB));
    CHECK(!heap_reserve_add(&r, 50 * MIB, 1 * MIB));            // overlaps: refused
    CHECK(!heap_reserve_add(&r, 0, 0));
    CHECK(r.total == 3100 * MIB && heap_reserve_free(&r) == 3100 * MIB);
    CHECK(heap_reserve_largest(&r) == 3000 * MIB);

    // The first area from the lowest range; sizes round up to pages.
    void *first = heap_reserve_take(&r, 16 * MIB);
    CHECK(at(first) == 16 * MIB);
    void *odd = heap_reserve_take(&r, 5000);
    CHECK(at(odd) == 32 * MIB);
    CHECK(heap_reserve_free(&r) == 3100 * MIB - 16 * MIB - 8192);
    CHECK(!heap_reserve_add(&r, at(first), 4096));             // handed out: refused

    // An area larger than the low range's rest comes from the high one.
    void *big = heap_reserve_take(&r, 200 * MIB);
    CHECK(at(big) == 4096 * MIB);
    CHECK(heap_reserve_take(&r, 4000 * MIB) == NULL);          // larger than any range

    // Returned areas merge: the low range is whole again (but for `first`).
    CHECK(heap_reserve_give(&r, odd));
    CHECK(!heap_reserve_give(&r, odd));                        // twice: refused
    CHECK(!heap_reserve_give(&r, (void *)(uintptr_t)(33 * MIB)));  // never given: refused
    void *mid = heap_reserve_take(&r, 84 * MIB);
    CHECK(at(mid) == 32 * MIB);                                // the merged low range
    CHECK(heap_reserve_give(&r, mid));
    CHECK(heap_reserve_give(&r, big));
    CHECK(heap_reserve_largest(&r) == 3000 * MIB);
    CHECK(heap_reserve_free(&r) == 3100 * MIB - 16 * MIB);

    // Many areas out, returned in a scattered order: every byte comes back as one range.
    static void *areas[HEAP_RESERVE_MAX_AREAS];
    int n = 0;
    while (n < HEAP_RESERVE_MAX_AREAS - 1 && (areas[n] = heap_reserve_take(&r, MIB)) != NULL) {
        n++;
    }
    CHECK(n == HEAP_RESERVE_MAX_AREAS - 1);                    // `first` is the other one
    CHECK(heap_reserve_take(&r, MIB) == NULL);                 // the area table is full
    CHECK(heap_reserve_largest(&r) == 0);
    for (int i = 0; i < n; i += 2) {
        CHECK(heap_reserve_give(&r, areas[i]));
    }
    for (int i = 1; i < n; i += 2) {
        CHECK(heap_reserve_give(&r, areas[i]));
    }
    CHECK(heap_reserve_give(&r, first));
    CHECK(r.free_count == 2 && heap_reserve_free(&r) == 3100 * MIB);
    CHECK(r.area_count == 0);
    printf("PASS\n");
    return 0;
}
"""


def test_heap_reserve(tmp_path):
    src = tmp_path / "harness.c"
    src.write_text(HARNESS)
    exe = hostcc.build(tmp_path / "harness", [src, REPO / "mm" / "heap_reserve.c"])
    result = hostcc.run(exe)
    assert "PASS" in result.stdout, result.stdout + result.stderr
