// Fuzz harness: arch/x86_64/acpi.c (RSDP, RSDT/XSDT, MADT, MCFG, FADT, DSDT \_S5, the MP
// table, and an HPET table found by acpi_find_table) through its public entry points,
// acpi_init and acpi_find_table, from the unchanged source.
//
// The kernel reads tables at physical addresses (identity mapped). Here "physical memory" is a
// host mapping at a fixed low address (ARENA); the input is a list of tables that the harness
// lays out there and links: RSDP -> root (RSDT or XSDT) -> tables, FADT -> DSDT. Everything
// else (signatures, declared lengths, revisions, entries, AML) is the fuzzer's, including
// lying lengths; flags say whether the harness fixes checksums, so both paths are explored.
// Only [table, table + declared length) is addressable for ASan: a read past what the
// firmware declared is reported.
//
// Input: flags (1 byte), then chunks of (u16 little-endian length, bytes): RSDP, root header,
// then up to 16 tables. With FLAG_MP_TABLE the last chunk is instead an MP configuration
// table (MPS 1.4), placed at 0x9fc10 behind a floating pointer at 0x9fc00 as qboot puts
// them: acpi.c reads it when there is no RSDP or no usable MADT.
#include <sanitizer/asan_interface.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/paging.h"

enum {
    ARENA = 0x20000000,                 // below ASan's shadow, above mmap_min_addr
    ARENA_SIZE = 24u << 20,             // the tables, each at most 1 MiB (see FOLD_ABOVE)
    BIOS_AREA = 0xe0000,                // where find_rsdp scans when the pointer is bad
    BIOS_AREA_SIZE = 0x21000,           // 0xe0000-0xfffff and the page a last 20-byte read touches
    BASE_MEMORY_TOP = 0x9f000,          // from the page holding 639-640 KiB, where an MP table
    BASE_MEMORY_TOP_SIZE = 0x11000,     // may be, to past what its u16 length can reach
    MP_FLOATING = 0x9fc00,
    MP_TABLE = 0x9fc10,
    MAX_TABLES = 16,
    FLAG_FIX_CHECKSUMS = 1,
    FLAG_XSDT = 2,
    FLAG_FIX_RSDP = 4,
    FLAG_KEEP_ROOT_LENGTH = 8,
    FLAG_MP_TABLE = 16,
    FLAG_MP_IMCR = 32,
};

// --- stand-ins for the kernel ---
struct boot_info boot_info;
void kprintf(const char *fmt, ...) { (void)fmt; }
bool paging_is_mapped(uint64_t virt) {
    return (virt >= ARENA && virt < ARENA + ARENA_SIZE)
           || (virt >= BIOS_AREA && virt < BIOS_AREA + BIOS_AREA_SIZE)
           || (virt >= BASE_MEMORY_TOP && virt < BASE_MEMORY_TOP + BASE_MEMORY_TOP_SIZE);
}
void *paging_map_mmio(uint64_t phys, uint64_t size) {
    // acpi.c maps what is not mapped yet; the harness only links tables inside the arena, so
    // anything else is a parser following a pointer it should not have.
    if (!paging_is_mapped(phys) || !paging_is_mapped(phys + size - 1)) {
        abort();
    }
    return (void *)(uintptr_t)phys;
}

static uint8_t *arena;
static size_t dirty;                    // bytes of the arena touched by the last input

static void init_once(void) {
    if (arena) {
        return;
    }
    arena = mmap((void *)(uintptr_t)ARENA, ARENA_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
    void *bios = mmap((void *)(uintptr_t)BIOS_AREA, BIOS_AREA_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    void *base_top = mmap((void *)(uintptr_t)BASE_MEMORY_TOP, BASE_MEMORY_TOP_SIZE,
                          PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (arena != (void *)(uintptr_t)ARENA || bios != (void *)(uintptr_t)BIOS_AREA
        || base_top != (void *)(uintptr_t)BASE_MEMORY_TOP) {
        abort();
    }
    ASAN_POISON_MEMORY_REGION(arena, ARENA_SIZE);
}

static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void fix_checksum(uint8_t *table, size_t length, size_t at) {
    uint8_t sum = 0;
    table[at] = 0;
    for (size_t i = 0; i < length; i++) {
        sum += table[i];
    }
    table[at] = (uint8_t)-sum;
}

// Where a table of `have` bytes goes: 16-byte aligned after the previous one, addressable up
// to its declared length (what the kernel may read) and the 36-byte header.
static uint8_t *place(size_t *cursor, const uint8_t *bytes, size_t have, size_t room) {
    *cursor = (*cursor + 15) & ~(size_t)15;
    if (*cursor + room > ARENA_SIZE) {
        return NULL;
    }
    uint8_t *p = arena + *cursor;
    ASAN_UNPOISON_MEMORY_REGION(p, room);
    memcpy(p, bytes, have < room ? have : room);
    *cursor += room;
    if (*cursor > dirty) {
        dirty = *cursor;
    }
    return p;
}

// A declared length between 1 MiB and acpi.c's 16 MiB limit is folded to its low 20 bits
// (written back into the placed table): the code paths are the same, and checksumming
// megabytes per input would cut the fuzzer's speed a hundredfold. Larger ones stay as they
// are (the parser must refuse them without reading).
enum { FOLD_ABOVE = 1u << 20 };

static uint32_t effective_length(const uint8_t *bytes, size_t have) {
    uint8_t head[8] = { 0 };        // short chunks are zero-padded where they are placed
    memcpy(head, bytes, have < 8 ? have : 8);
    uint32_t declared = get32(head + 4);
    if (declared > FOLD_ABOVE && declared <= (16u << 20)) {
        declared &= FOLD_ABOVE - 1;
    }
    return declared;
}

static size_t declared_room(const uint8_t *bytes, size_t have) {
    uint32_t declared = effective_length(bytes, have);
    size_t room = have > 36 ? have : 36;
    if (declared > room && declared <= FOLD_ABOVE) {
        room = declared;
    }
    return room;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_once();
    if (size < 1) {
        return 0;
    }
    uint8_t flags = data[0];
    const uint8_t *chunk[2 + MAX_TABLES];
    size_t chunk_len[2 + MAX_TABLES];
    int chunks = 0;
    for (size_t at = 1; at + 2 <= size && chunks < 2 + MAX_TABLES;) {
        size_t n = data[at] | data[at + 1] << 8;
        at += 2;
        if (n > size - at) {
            n = size - at;
        }
        chunk[chunks] = data + at;
        chunk_len[chunks++] = n;
        at += n;
    }
    size_t cursor = 4096;
    uint8_t zero[36] = { 0 };
    uint8_t *rsdp = place(&cursor, chunks > 0 ? chunk[0] : zero, chunks > 0 ? chunk_len[0] : 0, 36);
    // The MP table: the last chunk, with a floating pointer to it (checksums as for ACPI).
    size_t mp_length = 0;
    if ((flags & FLAG_MP_TABLE) && chunks > 2) {
        chunks--;
        uint8_t *mp = (uint8_t *)(uintptr_t)MP_TABLE;
        mp_length = chunk_len[chunks];
        memcpy(mp, chunk[chunks], mp_length);
        uint8_t *floating = (uint8_t *)(uintptr_t)MP_FLOATING;
        memcpy(floating, "_MP_", 4);
        put32(floating + 4, MP_TABLE);
        floating[8] = 1;                                  // length: one paragraph
        floating[9] = 4;                                  // MPS 1.4
        floating[12] = flags & FLAG_MP_IMCR ? 0x80 : 0;   // IMCRP
        fix_checksum(floating, 16, 10);
        uint16_t base_length = mp_length >= 6 ? (uint16_t)(mp[4] | mp[5] << 8) : 0;
        if ((flags & FLAG_FIX_CHECKSUMS) && base_length >= 8 && base_length <= mp_length) {
            fix_checksum(mp, base_length, 7);
        }
    }
    int tables = chunks > 2 ? chunks - 2 : 0;
    uint8_t *table_at[MAX_TABLES];
    size_t table_room[MAX_TABLES];
    for (int i = 0; i < tables; i++) {
        table_room[i] = declared_room(chunk[2 + i], chunk_len[2 + i]);
        table_at[i] = place(&cursor, chunk[2 + i], chunk_len[2 + i], table_room[i]);
        if (!table_at[i]) {
            tables = i;
            break;
        }
        put32(table_at[i] + 4, effective_length(chunk[2 + i], chunk_len[2 + i]));
    }
    // The root: the fuzzer's header, entries pointing at the tables.
    size_t entry = flags & FLAG_XSDT ? 8 : 4;
    uint8_t root_bytes[36 + MAX_TABLES * 8] = { 0 };
    if (chunks > 1) {
        memcpy(root_bytes, chunk[1], chunk_len[1] < 36 ? chunk_len[1] : 36);
    }
    size_t root_len = 36 + tables * entry;
    for (int i = 0; i < tables; i++) {
        uint64_t address = (uintptr_t)table_at[i];
        memcpy(root_bytes + 36 + i * entry, &address, entry);
    }
    if (!(flags & FLAG_KEEP_ROOT_LENGTH)) {
        put32(root_bytes + 4, root_len);
    } else {
        put32(root_bytes + 4, effective_length(root_bytes, sizeof(root_bytes)));
    }
    uint8_t *root = place(&cursor, root_bytes, root_len, declared_room(root_bytes, root_len));
    // FADT -> the first DSDT.
    uint8_t *dsdt = NULL;
    for (int i = 0; i < tables; i++) {
        if (chunk_len[2 + i] >= 4 && !memcmp(table_at[i], "DSDT", 4)) {
            dsdt = table_at[i];
            break;
        }
    }
    // Pointers outside the arena are not followed by the harness's "memory": 0 (absent).
    for (int i = 0; i < tables; i++) {
        if (!memcmp(table_at[i], "FACP", 4)) {
            if (table_room[i] >= 44) {
                put32(table_at[i] + 40, (uint32_t)(uintptr_t)dsdt);
            }
            if (table_room[i] >= 148) {
                put64(table_at[i] + 140, (table_at[i][9] & 1) ? (uintptr_t)dsdt : 0);
            }
        }
    }
    if (root) {
        put32(rsdp + 16, (uint32_t)(uintptr_t)root);
        put64(rsdp + 24, (uintptr_t)root);
    }
    if (flags & FLAG_FIX_CHECKSUMS) {
        for (int i = 0; i < tables; i++) {
            uint32_t length = get32(table_at[i] + 4);
            if (length >= 36 && length <= table_room[i]) {
                fix_checksum(table_at[i], length, 9);
            }
        }
        if (root && get32(root + 4) >= 36 && get32(root + 4) <= root_len) {
            fix_checksum(root, get32(root + 4), 9);
        }
    }
    if (flags & FLAG_FIX_RSDP) {
        memcpy(rsdp, "RSD PTR ", 8);
        fix_checksum(rsdp, 20, 8);
        put32(rsdp + 20, 36);
        fix_checksum(rsdp, 36, 32);
    }
    boot_info.rsdp_phys = (uintptr_t)rsdp;

    acpi_init();

    // What the rest of the kernel relies on.
    if (acpi_info.cpu_count < 1 || acpi_info.cpu_count > ACPI_MAX_CPUS
        || acpi_info.ioapic_count < 0 || acpi_info.ioapic_count > ACPI_MAX_IOAPICS
        || acpi_info.override_count > ACPI_MAX_OVERRIDES || acpi_info.nmi_count > ACPI_MAX_NMIS
        || acpi_info.ecam_count > ACPI_MAX_ECAM || acpi_info.table_count > ACPI_MAX_TABLES
        || acpi_info.lapic_address == 0) {
        abort();
    }
    for (int i = 0; i < acpi_info.ecam_count; i++) {
        if (acpi_info.ecam[i].bus_end < acpi_info.ecam[i].bus_start) {
            abort();
        }
    }
    // tsc.c reads the HPET table's GAS through acpi_find_table: its length must be readable.
    const uint8_t *hpet = acpi_find_table("HPET");
    if (hpet && get32(hpet + 4) >= 52) {
        volatile uint8_t last = hpet[51];
        (void)last;
    }

    if (flags & FLAG_MP_TABLE) {
        memset((void *)(uintptr_t)MP_FLOATING, 0, MP_TABLE - MP_FLOATING + mp_length);
    }
    // Back to zeros for the next input: a large declared length dirtied megabytes, which the
    // kernel hands back faster than memset does.
    if (dirty > (1u << 20)) {
        madvise(arena, (dirty + 4095) & ~(size_t)4095, MADV_DONTNEED);
    } else {
        ASAN_UNPOISON_MEMORY_REGION(arena, dirty);
        memset(arena, 0, dirty);
    }
    ASAN_POISON_MEMORY_REGION(arena, dirty);
    dirty = 0;
    return 0;
}
