// The virtio-mmio transport (virtio 1.2, 4.2), as on QEMU's microvm and Firecracker: devices
// are register blocks at fixed physical addresses, each with one interrupt line, listed in
// the ACPI DSDT (_HID "LNRO0005") or on the command line (virtio_mmio.device=SIZE@ADDR:IRQ).
#ifndef DRIVERS_VIRTIO_VIRTIO_MMIO_H
#define DRIVERS_VIRTIO_VIRTIO_MMIO_H

#include <stdint.h>

#include "drivers/virtio/virtio.h"

enum {
    VIRTIO_MMIO_MAX_DEVICES = 32,
};

// One transport slot found (a device may or may not sit behind it).
struct virtio_mmio_slot {
    uint64_t phys;
    uint32_t size;
    uint32_t gsi;
    uint16_t type;          // DeviceID, 0 when no device is behind the slot (5)
    uint8_t version;        // 2 (virtio 1.x) or 1 (legacy, 4.2.4)
    uint8_t claimed;        // a driver has initialised it
    const char *source;     // "acpi" or "cmdline"
};

extern struct virtio_mmio_slot virtio_mmio_slots[VIRTIO_MMIO_MAX_DEVICES];
extern int virtio_mmio_slot_count;

// Find the slots (once; later calls return at once): the DSDT's LNRO0005 devices, then the
// virtio_mmio.device= words of boot_info.loader_cmdline. Bad words (unparsable, overlapping RAM or
// another slot, no virtio magic behind them) are reported and skipped. Returns the count.
int virtio_mmio_scan(void);

// Initialise `vdev` as the `nth` (0-based) device of `type` (scanning first if needed);
// -1 if there is none or a driver has already claimed it.
int virtio_mmio_find(struct virtio_device *vdev, uint16_t type, int nth);

// Parse one "SIZE@ADDR:IRQ[:ID]" value (Linux's virtio_mmio.device= syntax, SIZE with an
// optional K/M/G suffix). Returns 0, or -1 with *why set. For the host unit test too.
int virtio_mmio_parse_word(const char *value, uint64_t *phys, uint64_t *size, uint32_t *irq,
    const char **why);

#endif
