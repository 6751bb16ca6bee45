// What the boot loader told us about the machine (command line, physical memory map, ACPI
// root pointer), copied out of the loader's Multiboot2 or PVH structures into kernel memory
// in one loader-neutral shape, so nothing above arch/ needs to know how we were booted.
//
// Sources: Multiboot2 specification 2.0, section 3.6 "Boot information format"; Xen
// xen/include/public/arch-x86/hvm/start_info.h (struct hvm_start_info, version 1); UEFI 2.10
// section 7.2.3 (EFI_MEMORY_DESCRIPTOR) for the EFI memory map GRUB passes under UEFI.
//
// Nothing the loader hands over is trusted: tags that run past the block, zero-length,
// overflowing or absurd (beyond the 52-bit physical address limit, Intel SDM vol. 3A 4.1.4)
// memory entries and entries overlapping an earlier one are reported on the console and
// skipped. tests/host/test_boot_info.py compiles this file on the host with crafted inputs.
#include "arch/x86_64/boot_info.h"

#include <stdbool.h>
#include <stddef.h>

#include "arch/x86_64/fw_cfg.h"
#include "arch/x86_64/kprintf.h"
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
    MB2_TAG_EFI32 = 11,       // EFI 32-bit system table pointer (spec 3.6.12)
    MB2_TAG_EFI64 = 12,       // EFI 64-bit system table pointer (spec 3.6.13)
    MB2_TAG_ACPI_OLD = 14,
    MB2_TAG_ACPI_NEW = 15,
    MB2_TAG_EFI_MMAP = 17,    // EFI memory map (spec 3.6.11)
    MB2_TAG_EFI_BS = 18,      // boot services not terminated (spec 3.6.16)
};

enum {
    MB2_INFO_MAX = 1 << 20,          // a real boot information block is a few KiB
    PHYS_ADDR_LIMIT_BITS = 52,       // MAXPHYADDR's architectural maximum (SDM 3A 4.1.4)
    EFI_PAGE_SIZE = 4096,            // UEFI 2.10 7.2.3: NumberOfPages counts 4 KiB pages
};

// EFI_MEMORY_TYPE (UEFI 2.10 7.2.1).
enum efi_memory_type {
    EFI_LOADER_CODE = 1,
    EFI_LOADER_DATA = 2,
    EFI_BOOT_SERVICES_CODE = 3,
    EFI_BOOT_SERVICES_DATA = 4,
    EFI_CONVENTIONAL_MEMORY = 7,
    EFI_UNUSABLE_MEMORY = 8,
    EFI_ACPI_RECLAIM_MEMORY = 9,
    EFI_ACPI_MEMORY_NVS = 10,
};

// EFI_MEMORY_DESCRIPTOR, version 1; entries are descriptor_size apart, which may be larger.
struct efi_memory_descriptor {
    uint32_t type;
    uint32_t pad;
    uint64_t physical_start;
    uint64_t virtual_start;
    uint64_t number_of_pages;
    uint64_t attribute;
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

struct multiboot2_tag_efi_mmap {
    struct multiboot2_tag tag;
    uint32_t descriptor_size;
    uint32_t descriptor_version;
    // descriptors follow
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

static uint32_t region_type_from_efi(uint32_t type) {
    switch (type) {
        // GRUB has called ExitBootServices (we do not set the multiboot2 "keep boot
        // services" tag), so boot services and loader memory are free RAM now; the kernel
        // keeps its own image and the boot information out of the allocator itself.
        case EFI_LOADER_CODE:
        case EFI_LOADER_DATA:
        case EFI_BOOT_SERVICES_CODE:
        case EFI_BOOT_SERVICES_DATA:
        case EFI_CONVENTIONAL_MEMORY:
            return BOOT_MEM_USABLE;
        case EFI_ACPI_RECLAIM_MEMORY:
            return BOOT_MEM_ACPI;
        case EFI_ACPI_MEMORY_NVS:
            return BOOT_MEM_NVS;
        case EFI_UNUSABLE_MEMORY:
            return BOOT_MEM_BAD;
        default:
            return BOOT_MEM_RESERVED;   // runtime services, MMIO, reserved, persistent
    }
}

static void add_region(uint64_t base, uint64_t length, uint32_t type) {
    const uint64_t limit = (uint64_t)1 << PHYS_ADDR_LIMIT_BITS;
    if (length == 0) {
        kprintf("boot: memory map entry at 0x%lx has length 0: skipped\n", (unsigned long)base);
        boot_info.mem_skipped++;
        return;
    }
    if (base >= limit || length > limit - base) {
        kprintf("boot: memory map entry 0x%lx+0x%lx lies beyond the 2^%d physical address "
            "limit: skipped\n", (unsigned long)base, (unsigned long)length, PHYS_ADDR_LIMIT_BITS);
        boot_info.mem_skipped++;
        return;
    }
    for (int j = 0; j < boot_info.mem_count; j++) {
        const struct boot_mem_region *r = &boot_info.mem[j];
        if (base < r->base + r->length && r->base < base + length) {
            kprintf("boot: memory map entry 0x%lx+0x%lx (type %u) overlaps 0x%lx+0x%lx "
                "(type %u): skipped\n", (unsigned long)base, (unsigned long)length, type,
                (unsigned long)r->base, (unsigned long)r->length, r->type);
            boot_info.mem_skipped++;
            if (type != BOOT_MEM_USABLE && r->type == BOOT_MEM_USABLE) {
                // Which one is true is unknown: do not hand out RAM the firmware may own.
                boot_info.mem[j].type = BOOT_MEM_RESERVED;
            }
            return;
        }
    }
    if (boot_info.mem_count >= BOOT_MEM_REGIONS_MAX) {
        kprintf("boot: more than %d memory map entries: 0x%lx+0x%lx skipped\n",
            BOOT_MEM_REGIONS_MAX, (unsigned long)base, (unsigned long)length);
        boot_info.mem_skipped++;
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

// Returns the number of regions added.
static int parse_mb2_mmap(const struct multiboot2_tag_mmap *mmap) {
    int before = boot_info.mem_count;
    if (mmap->tag.size < sizeof(*mmap)) {
        // Too short to hold entry_size: nothing past tag.size may be read, not even to report.
        kprintf("boot: multiboot2 memory map tag of %u bytes: ignored\n", mmap->tag.size);
        return 0;
    }
    if (mmap->entry_size < sizeof(struct multiboot2_mmap_entry) || mmap->entry_size % 8) {
        kprintf("boot: multiboot2 memory map with entry size %u: ignored\n", mmap->entry_size);
        return 0;
    }
    uintptr_t start = (uintptr_t)mmap + sizeof(*mmap);
    uintptr_t end = (uintptr_t)mmap + mmap->tag.size;
    for (uintptr_t entry = start; entry + mmap->entry_size <= end; entry += mmap->entry_size) {
        const struct multiboot2_mmap_entry *e = (const void *)entry;
        add_region(e->base_addr, e->length, region_type_from_e820(e->type));
    }
    return boot_info.mem_count - before;
}

static int parse_efi_mmap(const struct multiboot2_tag_efi_mmap *map) {
    int before = boot_info.mem_count;
    if (map->tag.size < sizeof(*map)) {
        // Too short to hold descriptor_size (fuzzing found the report reading past the tag).
        kprintf("boot: EFI memory map tag of %u bytes: ignored\n", map->tag.size);
        return 0;
    }
    if (map->descriptor_size < sizeof(struct efi_memory_descriptor) || map->descriptor_size % 8 ||
        map->descriptor_version != 1) {
        kprintf("boot: EFI memory map with descriptor size %u, version %u: ignored\n",
            map->descriptor_size, map->descriptor_version);
        return 0;
    }
    uintptr_t start = (uintptr_t)map + sizeof(*map);
    uintptr_t end = (uintptr_t)map + map->tag.size;
    for (uintptr_t entry = start; entry + map->descriptor_size <= end;
         entry += map->descriptor_size) {
        const struct efi_memory_descriptor *d = (const void *)entry;
        if (d->number_of_pages > ((uint64_t)1 << (PHYS_ADDR_LIMIT_BITS - 12))) {
            kprintf("boot: EFI memory descriptor at 0x%lx with 0x%lx pages is absurd: "
                "skipped\n", (unsigned long)d->physical_start,
                (unsigned long)d->number_of_pages);
            boot_info.mem_skipped++;
            continue;
        }
        uint32_t type = region_type_from_efi(d->type);
        uint64_t length = d->number_of_pages * EFI_PAGE_SIZE;
        // The firmware splits RAM into many descriptors of one kind; join neighbours so the
        // map fits BOOT_MEM_REGIONS_MAX.
        struct boot_mem_region *last = boot_info.mem_count > before ?
            &boot_info.mem[boot_info.mem_count - 1] : NULL;
        if (last && length && last->type == type &&
            last->base + last->length == d->physical_start &&
            last->base + last->length + length > last->base) {
            last->length += length;
            continue;
        }
        add_region(d->physical_start, length, type);
    }
    return boot_info.mem_count - before;
}

static void parse_multiboot2(uint64_t info) {
    const struct multiboot2_info_header *header = (const void *)(uintptr_t)info;
    uint32_t total = header->total_size;
    const struct multiboot2_tag_basic_meminfo *meminfo = NULL;
    const struct multiboot2_tag_mmap *mmap = NULL;
    const struct multiboot2_tag_efi_mmap *efi_mmap = NULL;
    bool have_new_rsdp = false;
    bool efi = false;

    boot_info.loader = "multiboot2 (bios)";
    boot_info.firmware = "bios";
    if (total < sizeof(*header) + sizeof(struct multiboot2_tag) || total > MB2_INFO_MAX) {
        kprintf("boot: multiboot2 information block of %u bytes is absurd: ignored\n", total);
        return;
    }
    uintptr_t cursor = info + sizeof(*header);
    uintptr_t end = info + total;
    while (cursor + sizeof(struct multiboot2_tag) <= end) {
        const struct multiboot2_tag *tag = (const void *)cursor;
        if (tag->type == MB2_TAG_END) {
            break;
        }
        if (tag->size < sizeof(*tag) || tag->size > end - cursor) {
            kprintf("boot: multiboot2 tag %u at +0x%lx has size %u (block ends at +0x%x): "
                "the rest of the block is ignored\n", tag->type,
                (unsigned long)(cursor - info), tag->size, total);
            break;
        }
        const uint8_t *payload = (const uint8_t *)(tag + 1);
        size_t payload_size = tag->size - sizeof(*tag);
        switch (tag->type) {
            case MB2_TAG_CMDLINE:
                copy_cmdline((const char *)payload, payload_size);   // 3.6.3: never past the tag
                break;
            case MB2_TAG_BASIC_MEMINFO:
                if (tag->size >= sizeof(*meminfo)) {
                    meminfo = (const void *)tag;
                }
                break;
            case MB2_TAG_MMAP:
                mmap = (const void *)tag;
                break;
            case MB2_TAG_EFI_MMAP:
                efi_mmap = (const void *)tag;
                efi = true;
                break;
            case MB2_TAG_EFI32:
            case MB2_TAG_EFI64:
            case MB2_TAG_EFI_BS:
                efi = true;
                break;
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
    if (efi) {
        boot_info.loader = "multiboot2 (uefi)";
        boot_info.firmware = "uefi";
    }

    // The firmware's own map first (under UEFI), else GRUB's E820-style one, else the two
    // numbers of the basic memory information.
    if (efi_mmap && parse_efi_mmap(efi_mmap) > 0) {
        return;
    }
    if (mmap && parse_mb2_mmap(mmap) > 0) {
        return;
    }
    if (meminfo) {
        add_region(0, (uint64_t)meminfo->mem_lower_kib * 1024, BOOT_MEM_USABLE);
        add_region(0x100000, (uint64_t)meminfo->mem_upper_kib * 1024, BOOT_MEM_USABLE);
    }
}

static void parse_pvh(uint64_t info) {
    const struct hvm_start_info *start = (const void *)(uintptr_t)info;
    boot_info.loader = "pvh";
    boot_info.firmware = "none";
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
    }    for (size_t i = 0; i < BOOT_CMDLINE_MAX; i++) {
        boot_info.loader_cmdline[i] = boot_info.cmdline[i];
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
