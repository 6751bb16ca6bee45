// What the boot loader told us about the machine (command line, physical memory map, ACPI
// root pointer), copied out of the loader's Multiboot2 or PVH structures into kernel memory
// in one loader-neutral shape, so nothing above arch/ needs to know how we were booted.
#ifndef ARCH_X86_64_BOOT_INFO_H
#define ARCH_X86_64_BOOT_INFO_H

#include <stdint.h>

// Region types; the values are the E820/ACPI address range types (ACPI 6.5, Table 15.1),
// which Multiboot2 and PVH both use.
enum {
    BOOT_MEM_USABLE = 1,
    BOOT_MEM_RESERVED = 2,
    BOOT_MEM_ACPI = 3,      // ACPI tables; reclaimable once they have been read
    BOOT_MEM_NVS = 4,       // ACPI non-volatile storage; never touch
    BOOT_MEM_BAD = 5,
};

enum {
    BOOT_CMDLINE_MAX = 1024,
    BOOT_MEM_REGIONS_MAX = 64,
};

struct boot_mem_region {
    uint64_t base;
    uint64_t length;
    uint32_t type;
};

struct boot_info {
    const char *loader;            // "multiboot2 (bios)", "multiboot2 (uefi)" or "pvh"
    const char *firmware;          // "bios", "uefi" or "none" (PVH: the VMM loaded us)
    char cmdline[BOOT_CMDLINE_MAX];  // NUL-terminated, truncated if longer
    // The loader's command line as it came, kept when the port replaces `cmdline` with the
    // fw_cfg override: the VMM's own hardware words (virtio_mmio.device=) live here.
    char loader_cmdline[BOOT_CMDLINE_MAX];
    struct boot_mem_region mem[BOOT_MEM_REGIONS_MAX];  // sorted by base address
    int mem_count;
    int mem_skipped;               // bad loader entries reported and skipped
    uint64_t rsdp_phys;            // 0 if the loader gave none
};

extern struct boot_info boot_info;

// Fill boot_info from the loader's structures. `magic` and `info` are what boot.S received.
// Panics (in words) when neither protocol's magic matches.
void boot_info_parse(uint32_t magic, uint64_t info);

// Sum of the lengths of BOOT_MEM_USABLE regions, and one past the highest usable address.
uint64_t boot_info_usable_bytes(void);
uint64_t boot_info_usable_end(void);

#endif
