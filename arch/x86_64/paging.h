// The kernel's page tables: one identity map (virtual == physical) of RAM and device memory,
// built by boot.S for the first 4 GiB and refined here: uncached device ranges, RAM above
// 4 GiB, an unmapped page at 0 (null dereferences fault) and an unmapped stack guard page.
#ifndef ARCH_X86_64_PAGING_H
#define ARCH_X86_64_PAGING_H

#include <stdbool.h>
#include <stdint.h>

enum {
    PAGING_PAGE_SIZE = 4096,
    PAGING_LARGE_PAGE_SIZE = 2 * 1024 * 1024,
};

// Called once by arch_start64 after boot_info_parse.
void paging_init(void);

// Identity-map [phys, phys + size) uncached (for device registers, e.g. a 64-bit PCI BAR
// above 4 GiB or the LAPIC), also when the range was already mapped cacheable. Returns the
// virtual address, equal to `phys`. Panics if it runs out of page-table pages.
void *paging_map_mmio(uint64_t phys, uint64_t size);

// True when a read of `virt` would not page-fault.
bool paging_is_mapped(uint64_t virt);

// A page-table root for an application processor: the boot CPU's map, except that the
// per-CPU window (percpu.h) maps to [window_phys, +window size). Returns the CR3 value (below
// 4 GiB: the AP loads it in 32-bit mode), or 0 when no more roots can be made.
uint64_t paging_new_cpu_root(uint64_t window_phys);
// Make [phys, phys + size) (2 MiB aligned and sized) executable and read-only at the
// virtual address `alias`, for every CPU; the identity mapping stays writable and NX.
// Returns 0, or -1 for an unaligned or non-canonical request.
int paging_map_exec_alias(uint64_t alias, uint64_t phys, uint64_t size);
// Unmap the 4 KiB page at `virt` (a stack's guard page) in every CPU's map.
void paging_unmap_guard_page(uint64_t virt);
// The APs' start page (ap_boot.S, copied below 1 MiB) becomes ordinary RAM, writable and
// no-execute: once every AP is up nothing runs there again (there is no CPU hotplug).
void paging_retire_ap_trampoline(void);

#endif
