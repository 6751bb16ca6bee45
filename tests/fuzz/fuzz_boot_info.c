// Fuzz harness: arch/x86_64/boot_info.c, the Multiboot2 and PVH boot information and the
// command line they carry, through its public entry points (boot_info_parse,
// boot_info_usable_bytes, boot_info_usable_end) from the unchanged source.
//
// Input: a selector byte (bit 0: PVH, else Multiboot2), then the structure. Multiboot2: the
// bytes are the boot information exactly (its total_size is set to their length, as a loader
// would); every tag size is the fuzzer's, so a tag claiming more than is there is a read past
// the end for ASan. PVH: the first 56 bytes are the hvm_start_info; the rest is split (at the
// second byte's proportion) into the command line (NUL-terminated, as the PVH ABI promises)
// and the memory map, each in an allocation of its own size; memmap_entries is clamped to the
// entries that are there (the loader's promise), everything else is the fuzzer's.
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/fw_cfg.h"
#include "arch/x86_64/panic.h"

// --- stand-ins for the kernel ---
long fw_cfg_read_file(const char *name, void *buf, size_t max) {
    (void)name; (void)buf; (void)max;
    return -1;
}
void kprintf(const char *fmt, ...) {
    (void)fmt;      // the parser's reports of what it skipped: not the harness's concern
}
void panic(const char *fmt, ...) {
    (void)fmt;
    abort();        // boot_info_parse panics only on an unknown magic, never fed here
}

enum {
    MULTIBOOT2_MAGIC = 0x36d76289,
    PVH_MAGIC = 0x336ec578,
    PVH_START_INFO_SIZE = 56,
    PVH_MEMMAP_ENTRY_SIZE = 24,
};

static void check(void) {
    if (boot_info.mem_count < 0 || boot_info.mem_count > BOOT_MEM_REGIONS_MAX
        || memchr(boot_info.cmdline, 0, BOOT_CMDLINE_MAX) == NULL) {
        abort();
    }
    for (int i = 1; i < boot_info.mem_count; i++) {
        if (boot_info.mem[i - 1].base > boot_info.mem[i].base) {
            abort();
        }
    }
    (void)boot_info_usable_bytes();
    (void)boot_info_usable_end();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) {
        return 0;
    }
    memset(&boot_info, 0, sizeof(boot_info));
    bool pvh = data[0] & 1;
    data++;
    size--;
    if (!pvh) {
        if (size < 8) {
            return 0;
        }
        // Multiboot2 info is 8-byte aligned (spec 3.6); malloc gives 16.
        uint8_t *info = malloc(size);
        memcpy(info, data, size);
        uint32_t total = (uint32_t)size;
        memcpy(info, &total, 4);
        boot_info_parse(MULTIBOOT2_MAGIC, (uintptr_t)info);
        check();
        free(info);
        return 0;
    }
    if (size < PVH_START_INFO_SIZE + 1) {
        return 0;
    }
    uint8_t *start = malloc(PVH_START_INFO_SIZE);
    memcpy(start, data, PVH_START_INFO_SIZE);
    size_t rest = size - PVH_START_INFO_SIZE - 1;
    size_t split = rest * data[PVH_START_INFO_SIZE] / 255;
    const uint8_t *tail = data + PVH_START_INFO_SIZE + 1;
    char *cmdline = malloc(split + 1);
    memcpy(cmdline, tail, split);
    cmdline[split] = '\0';
    size_t map_bytes = rest - split;
    uint8_t *map = malloc(map_bytes ? map_bytes : 1);
    memcpy(map, tail + split, map_bytes);
    uint64_t cmdline_paddr, memmap_paddr;
    memcpy(&cmdline_paddr, start + 24, 8);
    memcpy(&memmap_paddr, start + 40, 8);
    cmdline_paddr = cmdline_paddr ? (uintptr_t)cmdline : 0;
    memmap_paddr = memmap_paddr ? (uintptr_t)map : 0;
    memcpy(start + 24, &cmdline_paddr, 8);
    memcpy(start + 40, &memmap_paddr, 8);
    uint32_t entries;
    memcpy(&entries, start + 48, 4);
    if (entries > map_bytes / PVH_MEMMAP_ENTRY_SIZE) {
        entries = map_bytes / PVH_MEMMAP_ENTRY_SIZE;
    }
    memcpy(start + 48, &entries, 4);
    boot_info_parse(PVH_MAGIC, (uintptr_t)start);
    check();
    free(start);
    free(cmdline);
    free(map);
    return 0;
}
