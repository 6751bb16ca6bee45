// A test-only boot shim: QEMU boots it (PVH direct boot, `-kernel mb2shim.elf`) with the real
// kernel as the initrd (`-initrd build/kernel.elf`); it loads the kernel's ELF segments and
// enters the kernel's multiboot2 entry with a multiboot2 information block of its own making,
// built from the true memory map plus entries a real loader would never pass: overlapping,
// zero-length and absurd ones, and a tag running past the block. GRUB cannot be made to pass
// them, and the kernel must report and skip them, not trust them (tests/boot/test_boot_badmap.py).
//
//   shim.map=mb2   an E820-style memory map tag (Multiboot2 2.0, 3.6.8) with the bad entries
//   shim.map=efi   an EFI memory map tag (3.6.11; UEFI 2.10 7.2.3 descriptors), as GRUB
//                  passes under UEFI, with the bad descriptors
//
// The shim's own words (shim.*) are taken off the command line it hands on. Sources:
// Multiboot2 specification 2.0 (3.3 machine state, 3.6 boot information); Xen
// public/arch-x86/hvm/start_info.h (hvm_start_info version 1, hvm_modlist_entry); ELF-64
// Object File Format 1.5 (header, program headers); UEFI 2.10 7.2.1 (memory types).
#include <stdint.h>

#define COM1 0x3f8
#define DEBUG_EXIT_PORT 0xf4
#define PVH_START_INFO_MAGIC 0x336ec578
#define MULTIBOOT2_BOOTLOADER_MAGIC 0x36d76289
#define FW_CFG_SELECTOR 0x510           // QEMU docs/specs/fw_cfg.rst, I/O port interface
#define FW_CFG_DATA 0x511
#define FW_CFG_INITRD_ADDR 0x0a
#define FW_CFG_INITRD_SIZE 0x0b

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

struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};

struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;      // E820 types
    uint32_t reserved;
};

struct elf64_header {
    uint8_t ident[16];
    uint16_t type;
    uint16_t machine;
    uint32_t version;
    uint64_t entry;
    uint64_t phoff;
    uint64_t shoff;
    uint32_t flags;
    uint16_t ehsize;
    uint16_t phentsize;
    uint16_t phnum;
    uint16_t shentsize;
    uint16_t shnum;
    uint16_t shstrndx;
};

struct elf64_phdr {
    uint32_t type;
    uint32_t flags;
    uint64_t offset;
    uint64_t vaddr;
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
    uint64_t align;
};

enum { PT_LOAD = 1, EM_X86_64 = 62, ELFCLASS64 = 2 };

// EFI_MEMORY_DESCRIPTOR version 1 (UEFI 2.10 7.2.3), 48 bytes apart as OVMF reports them.
struct efi_memory_descriptor {
    uint32_t type;
    uint32_t pad;
    uint64_t physical_start;
    uint64_t virtual_start;
    uint64_t number_of_pages;
    uint64_t attribute;
    uint64_t spare;
};

enum {
    EFI_RESERVED_MEMORY = 0,
    EFI_CONVENTIONAL_MEMORY = 7,
    EFI_ACPI_RECLAIM_MEMORY = 9,
    EFI_ACPI_MEMORY_NVS = 10,
};

extern char __shim_start[], __shim_end[];
void shim_enter(uint32_t entry, uint32_t magic, uint32_t info) __attribute__((noreturn));

static inline void outb(uint16_t port, uint8_t value) {
    __asm__ volatile ("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t value) {
    __asm__ volatile ("outw %0, %1" : : "a"(value), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t value) {
    __asm__ volatile ("outl %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port) {
    uint8_t value;
    __asm__ volatile ("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

void *memcpy(void *dst, const void *src, uint32_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memset(void *dst, int c, uint32_t n) {
    uint8_t *d = dst;
    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}

static void puts_(const char *s) {
    while (*s) {
        outb(COM1, (uint8_t)*s++);
    }
}

static void puthex(uint64_t v) {
    char buf[19] = "0x";
    int n = 2;
    int shift = 60;
    while (shift > 0 && ((v >> shift) & 0xf) == 0) {
        shift -= 4;
    }
    for (; shift >= 0; shift -= 4) {
        buf[n++] = "0123456789abcdef"[(v >> shift) & 0xf];
    }
    buf[n] = '\0';
    puts_(buf);
}

// A failed test boot must end, loudly: isa-debug-exit (QEMU exits with status 2*3+1 = 7),
// else halt with the message on the console.
static void __attribute__((noreturn)) fail(const char *why) {
    puts_("mb2shim: ");
    puts_(why);
    puts_("\n");
    outl(DEBUG_EXIT_PORT, 3);
    for (;;) {
        __asm__ volatile ("cli; hlt");
    }
}

static uint32_t fw_cfg_u32(uint16_t key) {
    outw(FW_CFG_SELECTOR, key);
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)inb(FW_CFG_DATA) << (8 * i);
    }
    return v;
}

// The kernel's PT_LOAD segments go to their physical addresses; they must land below the
// shim and clear of the initrd they are read from.
static uint32_t load_kernel(const uint8_t *image, uint32_t size) {
    const struct elf64_header *h = (const void *)image;
    if (size < sizeof(*h) || h->ident[0] != 0x7f || h->ident[1] != 'E' || h->ident[2] != 'L' ||
        h->ident[3] != 'F' || h->ident[4] != ELFCLASS64 || h->machine != EM_X86_64) {
        fail("the initrd is not an x86-64 ELF kernel");
    }
    if (h->phentsize != sizeof(struct elf64_phdr) || h->phoff > size ||
        (uint64_t)h->phnum * sizeof(struct elf64_phdr) > size - h->phoff) {
        fail("the kernel's program headers are out of its file");
    }
    const struct elf64_phdr *ph = (const void *)(image + h->phoff);
    uint64_t image_start = (uintptr_t)image;
    uint64_t image_end = image_start + size;
    for (int i = 0; i < h->phnum; i++) {
        if (ph[i].type != PT_LOAD) {
            continue;
        }
        uint64_t start = ph[i].paddr;
        uint64_t end = start + ph[i].memsz;
        if (ph[i].filesz > ph[i].memsz || ph[i].offset > size ||
            ph[i].filesz > size - ph[i].offset) {
            fail("a kernel segment lies outside its file");
        }
        if (start < 0x100000 || end > (uintptr_t)__shim_start ||
            (start < image_end && image_start < end)) {
            fail("a kernel segment would overwrite the shim, the initrd or low memory");
        }
        memcpy((void *)(uintptr_t)start, image + ph[i].offset, (uint32_t)ph[i].filesz);
        memset((void *)(uintptr_t)(start + ph[i].filesz), 0,
            (uint32_t)(ph[i].memsz - ph[i].filesz));
    }
    if (h->entry >= (uintptr_t)__shim_start || h->entry < 0x100000) {
        fail("the kernel's entry point is not in its image");
    }
    return (uint32_t)h->entry;
}

// The information block under construction (8-byte aligned tags, spec 3.6.1).
static uint8_t mbi[16384] __attribute__((aligned(8)));
static uint32_t used;

static uint8_t *tag(uint32_t type, uint32_t size) {
    if (used + size + 8 + 16 > sizeof(mbi)) {
        fail("information block overflow");
    }
    uint8_t *t = mbi + used;
    memset(t, 0, size);
    ((uint32_t *)t)[0] = type;
    ((uint32_t *)t)[1] = size;
    used += (size + 7) & ~7u;
    return t;
}

static int starts_with(const char *s, const char *prefix) {
    while (*prefix) {
        if (*s++ != *prefix++) {
            return 0;
        }
    }
    return 1;
}

static uint32_t efi_type(uint32_t e820) {
    switch (e820) {
        case 1:
            return EFI_CONVENTIONAL_MEMORY;
        case 3:
            return EFI_ACPI_RECLAIM_MEMORY;
        case 4:
            return EFI_ACPI_MEMORY_NVS;
        default:
            return EFI_RESERVED_MEMORY;
    }
}

struct entry {
    uint64_t base, length;
    uint32_t type;
};

void shim_main(const struct hvm_start_info *start) __attribute__((noreturn));
void shim_main(const struct hvm_start_info *start) {
    if (start->magic != PVH_START_INFO_MAGIC) {
        fail("not entered through PVH (boot with QEMU -kernel)");
    }
    if (start->version < 1 || start->memmap_paddr == 0 || start->memmap_entries == 0) {
        fail("the PVH start info has no memory map (version 1 needed)");
    }

    // The command line: our words out, the rest handed on.
    static char cmdline[1024];
    int efi = 0;
    uint32_t n = 0;
    const char *p = start->cmdline_paddr ? (const char *)(uintptr_t)start->cmdline_paddr : "";
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        const char *word = p;
        while (*p && *p != ' ') {
            p++;
        }
        if (starts_with(word, "shim.map=efi")) {
            efi = 1;
        } else if (!starts_with(word, "shim.") && p > word) {
            while (word < p && n < sizeof(cmdline) - 2) {
                cmdline[n++] = *word++;
            }
            cmdline[n++] = ' ';
        }
    }
    if (n > 0) {
        n--;    // the last space
    }
    cmdline[n] = '\0';

    // The kernel: the first module (QEMU's -initrd), else fw_cfg's initrd keys.
    uint64_t kernel = 0;
    uint64_t kernel_size = 0;
    if (start->nr_modules >= 1 && start->modlist_paddr) {
        const struct hvm_modlist_entry *mod = (const void *)(uintptr_t)start->modlist_paddr;
        kernel = mod->paddr;
        kernel_size = mod->size;
    } else {
        kernel = fw_cfg_u32(FW_CFG_INITRD_ADDR);
        kernel_size = fw_cfg_u32(FW_CFG_INITRD_SIZE);
    }
    if (kernel == 0 || kernel_size == 0 || kernel + kernel_size > 0xffffffffu) {
        fail("no kernel: pass it as -initrd build/kernel.elf");
    }
    uint32_t entry = load_kernel((const uint8_t *)(uintptr_t)kernel, (uint32_t)kernel_size);

    // The true map, then the bad entries, relative to the largest RAM region (the one above
    // 1 MiB): a copy of a piece of it (overlap), a zero-length one, one beyond the 2^52
    // physical address limit and one whose end wraps around 2^64.
    struct entry map[64 + 4];
    uint32_t count = 0;
    const struct hvm_memmap_table_entry *m = (const void *)(uintptr_t)start->memmap_paddr;
    uint64_t ram = 0, ram_length = 0;
    for (uint32_t i = 0; i < start->memmap_entries && count < 64; i++) {
        map[count++] = (struct entry){ m[i].addr, m[i].size, m[i].type };
        if (m[i].type == 1 && m[i].size > ram_length) {
            ram = m[i].addr;
            ram_length = m[i].size;
        }
    }
    if (ram_length < 0x800000) {
        fail("less than 8 MiB of RAM in one piece");
    }
    uint32_t good = count;
    map[count++] = (struct entry){ ram + 0x100000, 0x200000, 1 };
    map[count++] = (struct entry){ ram + ram_length - 0x100000, 0, 1 };
    map[count++] = (struct entry){ 0xfff0000000000000ull, 0x1000, 1 };
    map[count++] = (struct entry){ ram, 0xffffffffffff0000ull, 1 };

    used = 8;
    uint8_t *t = tag(1, 8 + n + 1);                           // 3.6.3 command line
    memcpy(t + 8, cmdline, n + 1);
    t = tag(4, 16);                                           // 3.6.4 basic memory info
    ((uint32_t *)t)[2] = 639;
    ((uint32_t *)t)[3] = (uint32_t)((ram_length >> 10) - 1024);
    if (efi) {
        // 3.6.11: descriptor size, version, descriptors. Bad ones: a copy of a piece of RAM
        // (overlap), zero pages, and 2^45 pages (more than a 52-bit address space holds).
        uint32_t size = sizeof(struct efi_memory_descriptor);
        t = tag(17, 16 + size * count);
        ((uint32_t *)t)[2] = size;
        ((uint32_t *)t)[3] = 1;
        struct efi_memory_descriptor *d = (void *)(t + 16);
        for (uint32_t i = 0; i < good; i++) {
            d[i].type = efi_type(map[i].type);
            d[i].physical_start = map[i].base;
            d[i].number_of_pages = map[i].length >> 12;
        }
        d[good] = (struct efi_memory_descriptor){ .type = EFI_CONVENTIONAL_MEMORY,
            .physical_start = ram + 0x100000, .number_of_pages = 0x200 };
        d[good + 1] = (struct efi_memory_descriptor){ .type = EFI_CONVENTIONAL_MEMORY,
            .physical_start = ram + ram_length - 0x100000, .number_of_pages = 0 };
        d[good + 2] = (struct efi_memory_descriptor){ .type = EFI_CONVENTIONAL_MEMORY,
            .physical_start = 0x4000000000ull, .number_of_pages = 1ull << 45 };
        d[good + 3] = (struct efi_memory_descriptor){ .type = EFI_CONVENTIONAL_MEMORY,
            .physical_start = 0x8000000000ull, .number_of_pages = 0 };
    } else {
        t = tag(6, 16 + 24 * count);                          // 3.6.8 memory map
        ((uint32_t *)t)[2] = 24;
        for (uint32_t i = 0; i < count; i++) {
            uint8_t *e = t + 16 + 24 * i;
            ((uint64_t *)e)[0] = map[i].base;
            ((uint64_t *)e)[1] = map[i].length;
            ((uint32_t *)e)[4] = map[i].type;
        }
    }
    if (start->rsdp_paddr) {                                  // 3.6.14 / 3.6.15: a copy
        const uint8_t *rsdp = (const uint8_t *)(uintptr_t)start->rsdp_paddr;
        uint32_t length = rsdp[15] >= 2 ? 36 : 20;            // ACPI 6.5 5.2.5.3: Revision
        t = tag(rsdp[15] >= 2 ? 15 : 14, 8 + length);
        memcpy(t + 8, rsdp, length);
    }
    // Last, a tag whose size runs far past the block: the kernel must stop reading there.
    t = tag(0xbad, 8);
    ((uint32_t *)t)[1] = 0x100000;
    ((uint32_t *)mbi)[0] = used;                               // 3.6.1 total_size

    puts_("mb2shim: kernel ");
    puthex(kernel_size);
    puts_(" bytes, entry ");
    puthex(entry);
    puts_("; multiboot2 block of ");
    puthex(used);
    puts_(" bytes, ");
    puts_(efi ? "EFI" : "E820");
    puts_(" memory map with ");
    puthex(good);
    puts_(" true and 4 bad entries\n");
    shim_enter(entry, MULTIBOOT2_BOOTLOADER_MAGIC, (uint32_t)(uintptr_t)mbi);
}
