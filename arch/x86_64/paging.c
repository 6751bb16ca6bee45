// The kernel's page tables: one identity map (virtual == physical) of RAM and device memory,
// built by boot.S for the first 4 GiB and refined here: uncached device ranges, RAM above
// 4 GiB, an unmapped page at 0 (null dereferences fault) and an unmapped stack guard page.
//
// Protections (SDM Vol. 3A 4.6; CR0.WP is set by boot.S so ring 0 honours read-only pages,
// EFER.NXE when the CPU has NX): kernel text is read-only and executable, rodata read-only
// and no-execute, everything else (data, bss, stacks, page tables, the GC heaps, the DMA
// pool, device memory) writable and no-execute. The one exception is the AP start-up page
// at 0x8000 (smp.c writes the trampoline there and APs run it). Code made at run time by
// MicroPython's native emitters lives in the executable-memory areas (paging_map_exec_alias):
// written through their identity mapping (RW, NX), run through an alias (RX, read-only), so
// no address is ever both writable and executable.
//
// Reference: Intel SDM Vol. 3A, chapter 4 "Paging", section 4.5 "4-Level Paging" (entry
// formats in Tables 4-14 to 4-20) and 4.10 "Caching Translation Information".
#include "arch/x86_64/paging.h"

#include <stddef.h>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/start.h"

// Paging-structure entry bits (SDM Vol. 3A, Tables 4-15 to 4-20).
enum page_entry_bits {
    PTE_PRESENT       = 1ull << 0,
    PTE_WRITABLE      = 1ull << 1,
    PTE_USER          = 1ull << 2,
    PTE_WRITE_THROUGH = 1ull << 3,   // PWT
    PTE_CACHE_DISABLE = 1ull << 4,   // PCD; PCD|PWT selects PAT entry 3 = UC (SDM 11.12.3)
    PTE_LARGE         = 1ull << 7,   // PS in a PDPTE/PDE: maps a 1 GiB / 2 MiB page
    PTE_NO_EXECUTE    = 1ull << 63,  // XD, needs EFER.NXE
};

enum {
    PTE_ADDRESS_MASK = 0x000ffffffffff000ull,
    ENTRIES_PER_TABLE = 512,
    PAGE_TABLE_POOL_PAGES = 64 + 6 * 16,   // the boot map, then each AP's own root (smp.h)
    IDENTITY_MAPPED_AT_BOOT = 0x100000000ull,  // boot.S maps 0-4 GiB
    DEVICE_WINDOW_START = 0xc0000000ull,       // PCI hole, IOAPIC 0xfec00000, LAPIC 0xfee00000
    PHYSICAL_ADDRESS_LIMIT = 1ull << 46,       // well inside any MAXPHYADDR we accept
    AP_TRAMPOLINE_PAGE = 0x8000,               // smp.c / ap_boot.S
};

enum {
    PAGE_FLAGS_TEXT = PTE_PRESENT,
    PAGE_FLAGS_RODATA = PTE_PRESENT,
    PAGE_FLAGS_RAM = PTE_PRESENT | PTE_WRITABLE,
    PAGE_FLAGS_DEVICE = PTE_PRESENT | PTE_WRITABLE | PTE_CACHE_DISABLE | PTE_WRITE_THROUGH,
};

extern uint64_t boot_pml4[ENTRIES_PER_TABLE];  // boot.S

// Not zeroed by boot.S (kernel.ld's .bss.noinit): allocate_table zeroes each page it hands out.
static uint64_t page_table_pool[PAGE_TABLE_POOL_PAGES][ENTRIES_PER_TABLE]
    __attribute__((aligned(PAGING_PAGE_SIZE), section(".bss.noinit.page_table_pool")));
static int page_table_pool_used;
static uint64_t no_execute_bit;  // PTE_NO_EXECUTE when EFER.NXE is on, else 0

static unsigned table_index(uint64_t virt, int level) {
    // level 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT; each level decodes 9 address bits.
    return (virt >> (12 + 9 * (level - 1))) & 0x1ff;
}

static uint64_t *entry_table(uint64_t entry) {
    return (uint64_t *)(uintptr_t)(entry & PTE_ADDRESS_MASK);
}

static uint64_t *allocate_table(void) {
    if (page_table_pool_used >= PAGE_TABLE_POOL_PAGES) {
        panic("paging: out of page-table pages (all %d pages of the static pool in "
              "arch/x86_64/paging.c are used; raise PAGE_TABLE_POOL_PAGES)", PAGE_TABLE_POOL_PAGES);
    }
    uint64_t *table = page_table_pool[page_table_pool_used++];
    for (int i = 0; i < ENTRIES_PER_TABLE; i++) {
        table[i] = 0;
    }
    return table;
}

static bool is_canonical(uint64_t virt) {
    uint64_t top = virt >> 47;
    return top == 0 || top == 0x1ffff;
}

// The table one level below entry `*entry` (a table at `level`), creating it if the entry is
// empty and splitting it into 512 smaller pages with the same attributes if it maps a large
// page. Identical translations before and after a split keep the switch safe even for the
// page we are running on (SDM 4.10.2.3); the caller flushes the TLB afterwards.
static uint64_t *next_table(uint64_t *entry, int level) {
    if (*entry & PTE_PRESENT) {
        if (!(*entry & PTE_LARGE)) {
            return entry_table(*entry);
        }
        uint64_t *table = allocate_table();
        uint64_t base = *entry & PTE_ADDRESS_MASK & ~((1ull << (12 + 9 * (level - 1))) - 1);
        uint64_t step = 1ull << (12 + 9 * (level - 2));
        // In a 4 KiB PTE bit 7 is PAT rather than PS (Table 4-20), so drop it at the last level.
        uint64_t flags = *entry & ~PTE_ADDRESS_MASK;
        if (level == 2) {
            flags &= ~PTE_LARGE;
        }
        for (int i = 0; i < ENTRIES_PER_TABLE; i++) {
            table[i] = (base + i * step) | flags;
        }
        *entry = (uintptr_t)table | PTE_PRESENT | PTE_WRITABLE;
        return table;
    }
    uint64_t *table = allocate_table();
    *entry = (uintptr_t)table | PTE_PRESENT | PTE_WRITABLE;
    return table;
}

static void sync_cpu_roots(void);

// Identity-map [start, end) (page aligned) with `flags`, using 2 MiB pages where a whole,
// aligned 2 MiB chunk is covered and 4 KiB pages elsewhere. `flags` 0 unmaps.
static void map_range(uint64_t start, uint64_t end, uint64_t flags) {
    uint64_t virt = start;
    while (virt < end) {
        uint64_t *pdpt = next_table(&boot_pml4[table_index(virt, 4)], 4);
        uint64_t *pd = next_table(&pdpt[table_index(virt, 3)], 3);
        uint64_t *pde = &pd[table_index(virt, 2)];
        if ((virt & (PAGING_LARGE_PAGE_SIZE - 1)) == 0 && end - virt >= PAGING_LARGE_PAGE_SIZE) {
            *pde = flags ? (virt | flags | PTE_LARGE) : 0;
            virt += PAGING_LARGE_PAGE_SIZE;
            continue;
        }
        if (!flags && !(*pde & PTE_PRESENT)) {
            virt = (virt | (PAGING_LARGE_PAGE_SIZE - 1)) + 1;  // nothing mapped here to remove
            continue;
        }
        uint64_t *pt = next_table(pde, 2);
        pt[table_index(virt, 1)] = flags ? (virt | flags) : 0;
        virt += PAGING_PAGE_SIZE;
    }
    sync_cpu_roots();
}

// Without global pages every translation is flushed by a CR3 reload (SDM 4.10.4.1).
static void flush_tlb(void) {
    write_cr3(read_cr3());
}

enum {
    BOOT_CHUNKS = IDENTITY_MAPPED_AT_BOOT / PAGING_LARGE_PAGE_SIZE,   // boot.S's 2048 PDEs
    DEVICE_WINDOW_CHUNK = DEVICE_WINDOW_START / PAGING_LARGE_PAGE_SIZE,
};

// boot.S's four page directories, one after the other: PDE i maps [i * 2 MiB, +2 MiB).
extern uint64_t boot_page_directories[BOOT_CHUNKS];

// Marks in `ram` (one bit per 2 MiB chunk below the device window) every chunk that some
// RAM the firmware reported overlaps (usable, ACPI or NVS); without a memory map, all of it.
static void find_ram_chunks(uint64_t ram[DEVICE_WINDOW_CHUNK / 64]) {
    for (unsigned i = 0; i < DEVICE_WINDOW_CHUNK / 64; i++) {
        ram[i] = boot_info.mem_count == 0 ? ~0ull : 0;
    }
    for (int i = 0; i < boot_info.mem_count; i++) {
        const struct boot_mem_region *r = &boot_info.mem[i];
        bool is_ram = r->type == BOOT_MEM_USABLE || r->type == BOOT_MEM_ACPI
                      || r->type == BOOT_MEM_NVS;
        if (!is_ram || r->length == 0 || r->base >= DEVICE_WINDOW_START) {
            continue;
        }
        uint64_t end = r->length > DEVICE_WINDOW_START - r->base ? DEVICE_WINDOW_START
                                                                 : r->base + r->length;
        for (uint64_t c = r->base / PAGING_LARGE_PAGE_SIZE;
             c <= (end - 1) / PAGING_LARGE_PAGE_SIZE; c++) {
            ram[c / 64] |= 1ull << (c % 64);
        }
    }
}

void paging_init(void) {
    if (rdmsr(MSR_IA32_EFER) & EFER_NXE) {
        no_execute_bit = PTE_NO_EXECUTE;
    }

    // Below 4 GiB: whatever is not RAM is device memory (PCI hole, ECAM, IOAPIC, LAPIC, HPET,
    // flash), and the window from 3 GiB up is device memory on every PC chipset QEMU models.
    // Every byte of RAM is no-execute but the kernel image's code; its read-only data is
    // read-only (4 KiB pages there; everything else stays in 2 MiB pages).
    // `make WX=0` (MANTICORE_NO_WX, a benchmark build only: `invoke bench vm --compare-wx`)
    // leaves RAM as boot.S mapped it, writable and executable, to measure the cost.
    const uint64_t large_page_mask = PAGING_LARGE_PAGE_SIZE - 1;
    uint64_t image_start = (uintptr_t)__kernel_start & ~large_page_mask;
    uint64_t image_end = ((uintptr_t)__rodata_pages_end + large_page_mask) & ~large_page_mask;
#ifndef MANTICORE_NO_WX
    // The image's own 2 MiB chunks first, while boot.S's pages still let the code doing this
    // run: splitting a chunk copies its flags into all 512 pages, so every page of them is
    // set here. (Marking the chunks no-execute first and the text executable after relied on
    // stale TLB entries for the code in between, which the processor may drop at any time,
    // SDM 4.10.4.2: QEMU did, and the UBSan kernel faulted fetching next_table.)
    map_range(image_start, (uintptr_t)__kernel_start, PAGE_FLAGS_RAM | no_execute_bit);
    map_range((uintptr_t)__kernel_start, (uintptr_t)__text_pages_end, PAGE_FLAGS_TEXT);
    map_range((uintptr_t)__text_pages_end, (uintptr_t)__rodata_pages_end,
              PAGE_FLAGS_RODATA | no_execute_bit);
    map_range((uintptr_t)__rodata_pages_end, image_end, PAGE_FLAGS_RAM | no_execute_bit);
    map_range(AP_TRAMPOLINE_PAGE, AP_TRAMPOLINE_PAGE + PAGING_PAGE_SIZE, PAGE_FLAGS_RAM);
#else
    kprintf("paging: W^X off (a benchmark build, make WX=0)\n");
#endif

    // Then one pass over boot.S's other PDEs: each is still a 2 MiB page (a map_range per
    // chunk was ~2 ms of every TCG boot).
    uint64_t ram[DEVICE_WINDOW_CHUNK / 64];
    find_ram_chunks(ram);
    for (uint64_t c = 0; c < BOOT_CHUNKS; c++) {
        uint64_t chunk = c * PAGING_LARGE_PAGE_SIZE;
        if (chunk >= image_start && chunk < image_end) {
            // One of the image's, set above: split, or a 2 MiB page of its own when the text
            // or the read-only data fills the chunk, which must not be taken for one of
            // boot.S's (a UBSan kernel whose text ended at 4 MiB lost its execute right for
            // [2, 4) MiB that way, and hung taking the page fault in a no-execute stub).
            continue;
        }
        if (c >= DEVICE_WINDOW_CHUNK || !(ram[c / 64] & (1ull << (c % 64)))) {
            boot_page_directories[c] = chunk | PAGE_FLAGS_DEVICE | no_execute_bit | PTE_LARGE;
        } else {
#ifndef MANTICORE_NO_WX
            boot_page_directories[c] = chunk | PAGE_FLAGS_RAM | no_execute_bit | PTE_LARGE;
#endif
        }
    }

    // RAM above 4 GiB, in 2 MiB units (a partial 2 MiB page at either end is left out).
    for (int i = 0; i < boot_info.mem_count; i++) {
        const struct boot_mem_region *r = &boot_info.mem[i];
        uint64_t start = (r->base + large_page_mask) & ~large_page_mask;
        uint64_t end = (r->base + r->length) & ~large_page_mask;
        if (r->type != BOOT_MEM_USABLE || end <= IDENTITY_MAPPED_AT_BOOT) {
            continue;
        }
        if (start < IDENTITY_MAPPED_AT_BOOT) {
            start = IDENTITY_MAPPED_AT_BOOT;
        }
        if (end > PHYSICAL_ADDRESS_LIMIT) {
            end = PHYSICAL_ADDRESS_LIMIT;
        }
        if (start < end) {
            map_range(start, end, PAGE_FLAGS_RAM | no_execute_bit);
        }
    }

    // Legacy VGA memory in the first megabyte is a device window too.
    map_range(0xa0000, 0xc0000, PAGE_FLAGS_DEVICE | no_execute_bit);
    // Null pointers fault; so does running off the bottom of the kernel stack.
    map_range(0, PAGING_PAGE_SIZE, 0);
    map_range((uintptr_t)kernel_stack_guard, (uintptr_t)kernel_stack_bottom, 0);
    for (int slot = 1; slot <= IST_SLOT_COUNT; slot++) {
        map_range(gdt_ist_guard_page(slot), gdt_ist_guard_page(slot) + PAGING_PAGE_SIZE, 0);
    }

    flush_tlb();
}

void paging_retire_ap_trampoline(void) {
    map_range(AP_TRAMPOLINE_PAGE, AP_TRAMPOLINE_PAGE + PAGING_PAGE_SIZE,
              PAGE_FLAGS_RAM | no_execute_bit);
    flush_tlb();
}

void *paging_map_mmio(uint64_t phys, uint64_t size) {
    if (size == 0) {
        return (void *)(uintptr_t)phys;
    }
    uint64_t start = phys & ~(uint64_t)(PAGING_PAGE_SIZE - 1);
    uint64_t end = (phys + size + PAGING_PAGE_SIZE - 1) & ~(uint64_t)(PAGING_PAGE_SIZE - 1);
    if (end < start || end > PHYSICAL_ADDRESS_LIMIT) {
        panic("paging: cannot map device range 0x%lx+0x%lx (beyond the supported physical "
              "address space)", phys, size);
    }
    map_range(start, end, PAGE_FLAGS_DEVICE | no_execute_bit);
    flush_tlb();
    return (void *)(uintptr_t)phys;
}

bool paging_is_mapped(uint64_t virt) {
    if (!is_canonical(virt)) {
        return false;
    }
    const uint64_t *table = boot_pml4;
    for (int level = 4; level >= 1; level--) {
        uint64_t entry = table[table_index(virt, level)];
        if (!(entry & PTE_PRESENT)) {
            return false;
        }
        if (level == 1 || ((level == 2 || level == 3) && (entry & PTE_LARGE))) {
            return true;
        }
        table = entry_table(entry);
    }
    return false;
}

// ---------------------------------------------------------------------------------------
// Per-CPU roots. An AP's tables are the boot CPU's except along the path to the per-CPU
// window: its own PML4, the PDPT and page directory below PML4[0] that lead to the window,
// and the page tables of the window's 2 MiB chunks, whose window entries point at the AP's
// own copy. Everything else (the tables below the entries that are copied) is shared, so a
// later change deep in the boot CPU's tables is seen by all; a change to one of the copied
// entries is copied again by sync_cpu_roots.

struct cpu_root {
    uint64_t *pml4, *pdpt, *pd;
    uint64_t *window_pts[2];          // page tables of the window's chunks (at most two)
    uint64_t window_phys;
};

static struct cpu_root cpu_roots[16];
static int cpu_root_count;

static uint64_t window_start(void) {
    return (uintptr_t)__percpu_start;
}

static uint64_t window_end(void) {
    return (uintptr_t)__percpu_end;
}

// The boot CPU's entry for chunk `chunk` (a 2 MiB-aligned address in the first GiB) as a
// table of 512 4 KiB entries: split a large page first (same translations, so harmless).
static uint64_t *boot_chunk_table(uint64_t chunk) {
    uint64_t *pdpt = next_table(&boot_pml4[0], 4);
    uint64_t *pd = next_table(&pdpt[0], 3);
    return next_table(&pd[table_index(chunk, 2)], 2);
}

static void copy_table(uint64_t *to, const uint64_t *from) {
    for (int i = 0; i < ENTRIES_PER_TABLE; i++) {
        to[i] = from[i];
    }
}

static void fill_cpu_root(struct cpu_root *root) {
    const uint64_t *boot_pdpt = entry_table(boot_pml4[0]);
    const uint64_t *boot_pd = entry_table(boot_pdpt[0]);
    copy_table(root->pml4, boot_pml4);
    copy_table(root->pdpt, boot_pdpt);
    copy_table(root->pd, boot_pd);
    root->pml4[0] = (uintptr_t)root->pdpt | PTE_PRESENT | PTE_WRITABLE;
    root->pdpt[0] = (uintptr_t)root->pd | PTE_PRESENT | PTE_WRITABLE;
    uint64_t first_chunk = window_start() & ~(uint64_t)(PAGING_LARGE_PAGE_SIZE - 1);
    for (int c = 0; c < 2; c++) {
        uint64_t chunk = first_chunk + (uint64_t)c * PAGING_LARGE_PAGE_SIZE;
        if (root->window_pts[c] == NULL || chunk >= window_end()) {
            continue;
        }
        copy_table(root->window_pts[c], entry_table(boot_pd[table_index(chunk, 2)]));
        for (uint64_t virt = window_start(); virt < window_end(); virt += PAGING_PAGE_SIZE) {
            // The window's guard pages (below the IST stacks) stay unmapped on every CPU.
            if (virt >= chunk && virt < chunk + PAGING_LARGE_PAGE_SIZE
                && (root->window_pts[c][table_index(virt, 1)] & PTE_PRESENT)) {
                uint64_t phys = root->window_phys + (virt - window_start());
                root->window_pts[c][table_index(virt, 1)] = phys | PAGE_FLAGS_RAM | no_execute_bit;
            }
        }
        root->pd[table_index(chunk, 2)] = (uintptr_t)root->window_pts[c] | PTE_PRESENT | PTE_WRITABLE;
    }
}

// Mappings only ever get added or split after the APs start (device windows), and x86 does
// not cache not-present entries (SDM 4.10.2.3), so copying the entries again is enough.
static void sync_cpu_roots(void) {
    for (int i = 0; i < cpu_root_count; i++) {
        fill_cpu_root(&cpu_roots[i]);
    }
}

uint64_t paging_new_cpu_root(uint64_t window_phys) {
    if (cpu_root_count >= (int)(sizeof(cpu_roots) / sizeof(cpu_roots[0]))) {
        return 0;
    }
    if (window_end() - (window_start() & ~(uint64_t)(PAGING_LARGE_PAGE_SIZE - 1)) > 2 * PAGING_LARGE_PAGE_SIZE) {
        panic("paging: the per-CPU window (%lu KiB) spans more than two 2 MiB chunks",
              (unsigned long)((window_end() - window_start()) >> 10));
    }
    struct cpu_root *root = &cpu_roots[cpu_root_count];
    uint64_t first_chunk = window_start() & ~(uint64_t)(PAGING_LARGE_PAGE_SIZE - 1);
    for (int c = 0; c < 2; c++) {
        uint64_t chunk = first_chunk + (uint64_t)c * PAGING_LARGE_PAGE_SIZE;
        if (chunk < window_end()) {
            boot_chunk_table(chunk);       // the boot CPU's chunk in 4 KiB pages too
            root->window_pts[c] = allocate_table();
        }
    }
    root->pml4 = allocate_table();
    root->pdpt = allocate_table();
    root->pd = allocate_table();
    root->window_phys = window_phys;
    fill_cpu_root(root);
    cpu_root_count++;
    flush_tlb();
    return (uintptr_t)root->pml4;
}

void paging_unmap_guard_page(uint64_t virt) {
    map_range(virt & ~(uint64_t)(PAGING_PAGE_SIZE - 1),
              (virt & ~(uint64_t)(PAGING_PAGE_SIZE - 1)) + PAGING_PAGE_SIZE, 0);
    flush_tlb();
}

// ---------------------------------------------------------------------------------------
// Executable aliases. [phys, phys + size) (2 MiB aligned) becomes visible at `alias` as
// read-only, executable 2 MiB pages; its identity mapping stays writable and no-execute.

int paging_map_exec_alias(uint64_t alias, uint64_t phys, uint64_t size) {
    if ((alias | phys | size) & (PAGING_LARGE_PAGE_SIZE - 1) || !is_canonical(alias)) {
        return -1;
    }
    for (uint64_t off = 0; off < size; off += PAGING_LARGE_PAGE_SIZE) {
        uint64_t virt = alias + off;
        uint64_t *pdpt = next_table(&boot_pml4[table_index(virt, 4)], 4);
        uint64_t *pd = next_table(&pdpt[table_index(virt, 3)], 3);
        pd[table_index(virt, 2)] = (phys + off) | PTE_PRESENT | PTE_LARGE;
    }
    sync_cpu_roots();
    flush_tlb();
    return 0;
}
