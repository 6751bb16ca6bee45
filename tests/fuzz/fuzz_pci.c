// Fuzz harness: the PCI enumeration of drivers/pci/pci.c (header types, bridges and their bus
// numbers, BAR sizing, the capability walk) through pci_init, pci_find_capability and
// pci_device_name, from the unchanged source, over an ECAM window (PCIe 4.0, 7.2.2) whose
// configuration spaces the input fills. Port I/O reads as all ones (no 0xCF8 mechanism), so
// the MCFG region is used as on a q35 machine.
//
// Input: a flags byte (bit 0: the window covers buses 0-1, else bus 0), then records of
// (bus/device/function u16: bit 8 bus, bits 7-3 device, bits 2-0 function; n u8; n bytes
// written at the start of that function's configuration space).
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/smp.h"
#include "drivers/pci/pci.h"

enum {
    ECAM = 0x30000000,              // a fixed "physical" address below ASan's shadow
    ECAM_BUSES = 2,
    ECAM_SIZE = ECAM_BUSES << 20,
};

// --- stand-ins for the kernel ---
struct acpi_info acpi_info;
void kprintf(const char *fmt, ...) { (void)fmt; }
uint64_t smp_lock_irqsave(smp_spinlock_t *lock) { lock->next++; return 0; }   // one thread
void smp_unlock_irqrestore(smp_spinlock_t *lock, uint64_t flags) { (void)flags; lock->serving++; }
bool paging_is_mapped(uint64_t virt) { return virt >= ECAM && virt < ECAM + ECAM_SIZE; }
void *paging_map_mmio(uint64_t phys, uint64_t size) {
    if (!paging_is_mapped(phys) || !paging_is_mapped(phys + size - 1)) {
        abort();    // pci.c mapped outside the MCFG region it was given
    }
    return (void *)(uintptr_t)phys;
}

static uint8_t *window;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!window) {
        window = mmap((void *)(uintptr_t)ECAM, ECAM_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (window != (void *)(uintptr_t)ECAM) {
            abort();
        }
    }
    if (size < 1) {
        return 0;
    }
    unsigned buses = (data[0] & 1) ? 2 : 1;
    memset(window, 0xff, ECAM_SIZE);        // nothing there reads as all ones
    for (size_t at = 1; at + 3 <= size;) {
        unsigned bdf = (data[at] | data[at + 1] << 8) & 0x1ff;
        size_t n = data[at + 2];
        at += 3;
        if (n > size - at) {
            n = size - at;
        }
        memcpy(window + ((size_t)bdf << 12), data + at, n);
        at += n;
    }
    acpi_info = (struct acpi_info){ 0 };
    acpi_info.ecam_count = 1;
    acpi_info.ecam[0] = (struct acpi_ecam){ .base = ECAM, .segment = 0, .bus_start = 0,
                                            .bus_end = buses - 1 };
    pci_init();
    if (pci_device_count < 0 || pci_device_count > PCI_MAX_DEVICES) {
        abort();
    }
    for (int i = 0; i < pci_device_count; i++) {
        const struct pci_device *d = &pci_devices[i];
        if (d->cap_count > PCI_MAX_CAPS || pci_device_name(d) == NULL) {
            abort();
        }
        // The drivers' loop over every capability of one id (virtio_pci.c), unbounded as
        // there: it must end for any list the device presents.
        static const uint8_t ids[] = { 0x09, 0x11, 0x05 };
        for (size_t k = 0; k < sizeof(ids); k++) {
            for (uint8_t cap = pci_find_capability(d, ids[k], 0); cap != 0;
                 cap = pci_find_capability(d, ids[k], cap)) {
                if (cap < 0x40) {
                    abort();
                }
            }
        }
    }
    return 0;
}
