// What the boot loader told us about the machine (command line, physical memory map, ACPI
// root pointer), copied out of the loader's Multiboot2 or PVH structures into kernel memory
// in one loader-neutral shape, so nothing above arch/ needs to know how we were booted.
//
// Sources: Multiboot2 specification 2.0, section 3.6 "Boot information format"; Xen
// xen/include/public/arch-x86/hvm/start_info.h (struct hvm_start_info, version 1).
#include "arch/x86_64/boot_info.h"

#include <stdbool.h>
#include <stddef.h>

#include "arch/x86_64/fw_cfg.h"
#include "arch/x86_64/panic.h"

enum {
    MULTIBOOT2_BOOTLOADER_MAGIC = 0x36d76289,  // Multiboot2 spec 3.3, EAX at entry
    PVH_START_INFO_MAGIC = 0x336ec578,         // hvm_start_info.magic
};

// Multiboot2 boot information tag types (spec 3.6.2 onwards).
enum multiboot2_tag_type {
    MB2_TAG_END = 0,
    MB2_TAG_CMDLINE = 1,
    MB2_TAG_BASIC_MEMINFO = 4,
    MB2_TAG_MMAP = 6,
    MB2_TAG_ACPI_OLD = 14,
    MB2_TAG_ACPI_NEW = 15,
};

// Multiboot2 memory map entry types (spec 3.6.8).
enum multiboot2_memory_type {
    MB2_MEMORY_AVAILABLE = 1,
    MB2_MEMORY_ACPI_RECLAIMABLE = 3,
    MB2_MEMORY_NVS = 4,
    MB2_MEMORY_BADRAM = 5,
};

struct multiboot2_info_header {
    uint32_t total_size;
    uint32_t reserved;
};

struct multiboot2_tag {
    uint32_t type;
    uint32_t size;  // including this header; tags start 8-byte aligned
};

struct multiboot2_tag_basic_meminfo {
    struct multiboot2_tag tag;
    uint32_t mem_lower_kib;  // from 0
    uint32_t mem_upper_kib;  // from 1 MiB
};

struct multiboot2_tag_mmap {
    struct multiboot2_tag tag;
    uint32_t entry_size;
    uint32_t entry_version;
    // entries follow
};

struct multiboot2_mmap_entry {
    uint64_t base_addr;
    uint64_t length;
    uint32_t type;
    uint32_t reserved;
};

// struct hvm_start_info (start_info.h); fields after rsdp_paddr exist from version 1.
struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};

// struct hvm_memmap_table_entry; the types are E820 types (XEN_HVM_MEMMAP_TYPE_*).
struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

// QEMU's fw_cfg "etc/e820" entry (hw/i386/e820_memory_layout.h), a fallback memory map.
struct e820_entry {
    uint64_t address;
    uint64_t length;
    uint32_t type;
} __attribute__((packed));

struct boot_info boot_info;

// Multiboot2 hands over a *copy* of the RSDP inside the boot information, which lives in
// memory the kernel will reuse; keep the copy here so rsdp_phys stays valid (identity mapped,
// so its address is physical). An ACPI 2.0 RSDP is 36 bytes.
static uint8_t rsdp_copy[36] __attribute__((aligned(16)));

// At most `max` bytes of `source` are read: a Multiboot2 tag whose string lacks its NUL ends
// at the tag's end, not somewhere past the boot information.
static void copy_cmdline(const char *source, size_t max) {
    size_t i = 0;
    if (source) {
        for (; i < BOOT_CMDLINE_MAX - 1 && i < max && source[i]; i++) {
            boot_info.cmdline[i] = source[i];
        }
    }
    boot_info.cmdline[i] = '\0';
}

static uint32_t region_type_from_e820(uint32_t type) {
    switch (type) {
        case 1:
            return BOOT_MEM_USABLE;
        case 3:
            return BOOT_MEM_ACPI;
        case 4:
            return BOOT_MEM_NVS;
        case 5:
            return BOOT_MEM_BAD;
        default:
            return BOOT_MEM_RESERVED;
    }
}

static void add_region(uint64_t base, uint64_t length, uint32_t type) {
    if (length == 0 || boot_info.mem_count >= BOOT_MEM_REGIONS_MAX) {
        return;
    }
    // Insertion keeps the array sorted by base.
    int i = boot_info.mem_count++;
    while (i > 0 && boot_info.mem[i - 1].base > base) {
        boot_info.mem[i] = boot_info.mem[i - 1];
        i--;
    }
    boot_info.mem[i] = (struct boot_mem_region){ base, length, type };
}

static void copy_rsdp(const void *source, size_t length) {
    if (length > sizeof(rsdp_copy)) {
        length = sizeof(rsdp_copy);
    }
    const uint8_t *bytes = source;
    for (size_t i = 0; i < length; i++) {
        rsdp_copy[i] = bytes[i];
    }
    boot_info.rsdp_phys = (uintptr_t)rsdp_copy;
}

static void parse_multiboot2(uint64_t info) {
    const struct multiboot2_info_header *header = (const void *)(uintptr_t)info;
    uintptr_t cursor = info + sizeof(*header);
    uintptr_t end = info + header->total_size;
    bool have_mmap = false;
    const struct multiboot2_tag_basic_meminfo *meminfo = NULL;
    bool have_new_rsdp = false;

    boot_info.loader = "multiboot2";
    while (cursor + sizeof(struct multiboot2_tag) <= end) {
        const struct multiboot2_tag *tag = (const void *)cursor;
        // A tag must fit in what is left (Multiboot2 3.6.1): a larger size would send the
        // memory map loop past the end, and one near 4 GiB would wrap the 32-bit rounding
        // below to 0 and loop forever.
        if (tag->type == MB2_TAG_END || tag->size < sizeof(*tag) || tag->size > end - cursor) {
            break;
        }
        const uint8_t *payload = (const uint8_t *)(tag + 1);
        size_t payload_size = tag->size - sizeof(*tag);
        switch (tag->type) {
            case MB2_TAG_CMDLINE:
                copy_cmdline((const char *)payload, payload_size);
                break;
            case MB2_TAG_BASIC_MEMINFO:
                if (tag->size >= sizeof(*meminfo)) {
                    meminfo = (const void *)tag;
                }
                break;
            case MB2_TAG_MMAP: {
                const struct multiboot2_tag_mmap *mmap = (const void *)tag;
                // entry_size is a multiple of 8 (Multiboot2 3.6.8); another would misalign
                // the entries.
                if (tag->size < sizeof(*mmap) || mmap->entry_size % 8 != 0
                    || mmap->entry_size < sizeof(struct multiboot2_mmap_entry)) {
                    break;
                }
                uintptr_t entry = cursor + sizeof(*mmap);
                for (; entry + mmap->entry_size <= cursor + tag->size; entry += mmap->entry_size) {
                    const struct multiboot2_mmap_entry *e = (const void *)entry;
                    add_region(e->base_addr, e->length, region_type_from_e820(e->type));
                }
                have_mmap = true;
                break;
            }
            case MB2_TAG_ACPI_OLD:
                if (!have_new_rsdp) {
                    copy_rsdp(payload, payload_size);
                }
                break;
            case MB2_TAG_ACPI_NEW:
                copy_rsdp(payload, payload_size);
                have_new_rsdp = true;
                break;
            default:
                break;
        }
        cursor += ((uintptr_t)tag->size + 7) & ~(uintptr_t)7;
    }

    if (!have_mmap && meminfo) {
        add_region(0, (uint64_t)meminfo->mem_lower_kib * 1024, BOOT_MEM_USABLE);
        add_region(0x100000, (uint64_t)meminfo->mem_upper_kib * 1024, BOOT_MEM_USABLE);
    }
}

static void parse_pvh(uint64_t info) {
    const struct hvm_start_info *start = (const void *)(uintptr_t)info;
    boot_info.loader = "pvh";
    copy_cmdline(start->cmdline_paddr ? (const char *)(uintptr_t)start->cmdline_paddr : NULL,
                 BOOT_CMDLINE_MAX);
    boot_info.rsdp_phys = start->rsdp_paddr;
    if (start->version >= 1 && start->memmap_paddr) {
        const struct hvm_memmap_table_entry *map = (const void *)(uintptr_t)start->memmap_paddr;
        for (uint32_t i = 0; i < start->memmap_entries; i++) {
            add_region(map[i].addr, map[i].size, region_type_from_e820(map[i].type));
        }
    }
}

// Without a loader memory map, QEMU's own E820 table (fw_cfg "etc/e820") still says where RAM is.
static void memory_map_from_fw_cfg(void) {
    static struct e820_entry entries[BOOT_MEM_REGIONS_MAX];
    long bytes = fw_cfg_read_file("etc/e820", entries, sizeof(entries));
    for (long i = 0; bytes > 0 && i < bytes / (long)sizeof(entries[0]); i++) {
        add_region(entries[i].address, entries[i].length, region_type_from_e820(entries[i].type));
    }
}

void boot_info_parse(uint32_t magic, uint64_t info) {
    if (magic == MULTIBOOT2_BOOTLOADER_MAGIC) {
        parse_multiboot2(info);
    } else if (magic == PVH_START_INFO_MAGIC) {
        parse_pvh(info);
    } else {
        panic("boot: unknown boot protocol (magic 0x%08x, info at 0x%lx); "
              "boot with GRUB multiboot2 or a PVH loader such as QEMU -kernel", magic, info);
    }
    if (boot_info.mem_count == 0) {
        memory_map_from_fw_cfg();
    }
}

uint64_t boot_info_usable_bytes(void) {
    uint64_t total = 0;
    for (int i = 0; i < boot_info.mem_count; i++) {
        if (boot_info.mem[i].type == BOOT_MEM_USABLE) {
            total += boot_info.mem[i].length;
        }
    }
    return total;
}

uint64_t boot_info_usable_end(void) {
    uint64_t end = 0;
    for (int i = 0; i < boot_info.mem_count; i++) {
        const struct boot_mem_region *r = &boot_info.mem[i];
        if (r->type == BOOT_MEM_USABLE && r->base + r->length > end) {
            end = r->base + r->length;
        }
    }
    return end;
}
