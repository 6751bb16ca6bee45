// memset and memcpy for the whole image. MicroPython's shared/libc/string0.c supplies the
// other C string functions; its own memset and memcpy are renamed away in the Makefile.
//
// Why not string0's: they store 4 bytes per loop iteration, and under TCG each iteration is
// a trip through the emulator's block dispatcher, so the GC's 2.3 MB of allocation tables
// alone took ~1 ms of every boot (boottrace "cpus+heap"). These store 8 bytes at a time, 64
// per iteration, which is also what a compiler's own inline expansion does on hardware.
//
// Built with -fno-builtin -fno-tree-loop-distribute-patterns (Makefile): GCC must not turn
// the loops below back into calls to memset and memcpy, that is into calls to themselves.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    uint8_t byte = (uint8_t)c;
    while (n > 0 && ((uintptr_t)d & 7) != 0) {
        *d++ = byte;
        n--;
    }
    uint64_t word = 0x0101010101010101ull * byte;
    uint64_t *w = (uint64_t *)d;
    for (; n >= 64; n -= 64, w += 8) {
        w[0] = word;
        w[1] = word;
        w[2] = word;
        w[3] = word;
        w[4] = word;
        w[5] = word;
        w[6] = word;
        w[7] = word;
    }
    for (; n >= 8; n -= 8) {
        *w++ = word;
    }
    d = (uint8_t *)w;
    while (n-- > 0) {
        *d++ = byte;
    }
    return dst;
}

// Word loads and stores need not be aligned on x86-64 (SDM Vol. 1, 4.1.1 "Alignment of
// Words, Doublewords, Quadwords, and Double Quadwords"): only the destination is aligned,
// which keeps the stores whole. Each word is loaded before it is stored, in ascending order,
// so a copy to a lower, overlapping address (which memmove sends here) comes out right.
void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n > 0 && ((uintptr_t)d & 7) != 0) {
        *d++ = *s++;
        n--;
    }
    for (; n >= 64; n -= 64, d += 64, s += 64) {
        for (int i = 0; i < 64; i += 8) {
            uint64_t word;
            __builtin_memcpy(&word, s + i, 8);   // an unaligned 8-byte load, inline
            *(uint64_t *)(d + i) = word;
        }
    }
    for (; n >= 8; n -= 8, d += 8, s += 8) {
        uint64_t word;
        __builtin_memcpy(&word, s, 8);
        *(uint64_t *)d = word;
    }
    while (n-- > 0) {
        *d++ = *s++;
    }
    return dst;
}
