// The transport-independent face of a virtio 1.x device (virtio 1.2, sections 2 and 3): the
// status handshake, feature negotiation, virtqueue setup, configuration space and interrupts
// that every virtio driver (rng, net, blk) uses. A transport (PCI, 4.1, in virtio_pci.c; MMIO,
// 4.2, for microvm) finds the device and implements these calls; drivers never touch the
// transport's registers, so one driver serves every transport.
#ifndef DRIVERS_VIRTIO_VIRTIO_H
#define DRIVERS_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/virtio/virtqueue.h"

// Queues a device may have: 1 control queue + up to 16 queue pairs of virtio-net with room
// to spare.
#define VIRTIO_MAX_QUEUES (40)

// Device status bits (2.1).
enum virtio_status {
    VIRTIO_STATUS_ACKNOWLEDGE = 1,
    VIRTIO_STATUS_DRIVER = 2,
    VIRTIO_STATUS_DRIVER_OK = 4,
    VIRTIO_STATUS_FEATURES_OK = 8,
    VIRTIO_STATUS_DEVICE_NEEDS_RESET = 64,
    VIRTIO_STATUS_FAILED = 128,
};

// Reserved (device-independent) feature bits (6).
enum {
    VIRTIO_F_INDIRECT_DESC = 28,
    VIRTIO_F_EVENT_IDX = 29,
    VIRTIO_F_VERSION_1 = 32,
    VIRTIO_F_ACCESS_PLATFORM = 33,
    VIRTIO_F_RING_PACKED = 34,
    VIRTIO_F_IN_ORDER = 35,
};

#define VIRTIO_FEATURE(bit) (1ull << (bit))

// Device types (5), found as PCI device id 0x1040 + type (4.1.2).
enum virtio_device_type {
    VIRTIO_TYPE_NET = 1,
    VIRTIO_TYPE_BLOCK = 2,
    VIRTIO_TYPE_CONSOLE = 3,
    VIRTIO_TYPE_RNG = 4,
};

struct pci_device;
struct virtio_pci_common_cfg;
struct virtio_device;

// A transport implements the calls below (virtio.c dispatches through vdev->ops): PCI
// (virtio_pci.c, 4.1) and MMIO (virtio_mmio.c, 4.2). Drivers never use this directly.
struct virtio_ops {
    const char *transport;                      // "pci", "mmio"
    int (*negotiate)(struct virtio_device *vdev, uint64_t wanted);
    struct virtqueue *(*setup_queue)(struct virtio_device *vdev, uint16_t index,
        uint16_t max_size, virtqueue_callback_t callback, void *context);
    int (*set_config_callback)(struct virtio_device *vdev,
        void (*callback)(struct virtio_device *vdev, void *context), void *context);
    void (*driver_ok)(struct virtio_device *vdev);
    void (*fail)(struct virtio_device *vdev);
    void (*reset)(struct virtio_device *vdev);
    uint8_t (*status)(const struct virtio_device *vdev);
    int (*read_config)(struct virtio_device *vdev, uint32_t offset, void *out, uint32_t len);
    void (*write_config8)(struct virtio_device *vdev, uint32_t offset, uint8_t value);
};

#define VIRTIO_MSI_NO_VECTOR (0xffff)

// One virtio device, whatever its transport. The caller (the driver) owns the storage.
// The transport's own registers are kept here too: PCI's (`pci` non-NULL) and MMIO's
// (`mmio` non-NULL).
struct virtio_device {
    const struct virtio_ops *ops;
    struct pci_device *pci;
    volatile uint8_t *mmio;                     // virtio-mmio register block (4.2.2)
    uint64_t mmio_phys;
    uint32_t mmio_gsi;                          // its interrupt line (I/O APIC GSI)
    char name[24];                              // "00:03.0", "mmio@0xfeb00e00"
    uint16_t type;                              // enum virtio_device_type
    volatile struct virtio_pci_common_cfg *common;
    volatile uint8_t *notify_base;
    uint32_t notify_multiplier;
    volatile uint8_t *isr;
    volatile uint8_t *device_cfg;               // NULL for devices without one (rng)
    uint32_t device_cfg_length;
    uint64_t device_features;                   // offered
    uint64_t features;                          // negotiated
    uint16_t num_queues;                        // the device's maximum
    struct virtqueue *queues[VIRTIO_MAX_QUEUES];
    int config_vector;                          // CPU vector of config changes, -1 if none
    int intx_vector;                            // CPU vector of the shared INTx line, -1
    void (*config_callback)(struct virtio_device *vdev, void *context);
    void *config_context;
    uint64_t config_changes;
};

// Feature negotiation (3.1.1 steps 4-6, 2.2): accept the offered features that are in
// `wanted` (VERSION_1 always), write them, set FEATURES_OK and check the device kept it.
// Returns 0, or -1 after setting FAILED.
int virtio_negotiate(struct virtio_device *vdev, uint64_t wanted);

// Set up queue `index` with at most `max_size` entries (0: the device's size): allocate the
// rings, give them to the device, attach an interrupt (MSI-X entry index + 1, or the shared
// INTx handler) that calls `callback(vq, context)` with interrupts off, and enable the queue
// (4.1.5.1.3). EVENT_IDX is used when negotiated. Returns the queue or NULL (FAILED set).
struct virtqueue *virtio_setup_queue(struct virtio_device *vdev, uint16_t index,
    uint16_t max_size, virtqueue_callback_t callback, void *context);

// Configuration change interrupts (4.1.4.3, config_msix_vector: MSI-X entry 0).
int virtio_set_config_callback(struct virtio_device *vdev,
    void (*callback)(struct virtio_device *vdev, void *context), void *context);

// Deliver queue `vq`'s interrupt to the local APIC `apic_id` (smp_apic_id(cpu)). 0, or -1
// when the queue has no interrupt of its own (INTx, MSI, too few MSI-X entries).
int virtio_route_queue(struct virtio_device *vdev, struct virtqueue *vq, uint32_t apic_id);

// DRIVER_OK: the device is live (3.1.1 step 8).
void virtio_driver_ok(struct virtio_device *vdev);
// Something went wrong: set FAILED (2.1.1).
void virtio_fail(struct virtio_device *vdev);
// Write 0 to device_status and wait until it reads back 0 (4.1.4.3.2).
void virtio_reset(struct virtio_device *vdev);
uint8_t virtio_status(const struct virtio_device *vdev);

// Device-specific configuration, read consistently under config_generation (2.5.1): copies
// `len` bytes from `offset` into `out`. Returns 0, or -1 past the end of the structure.
int virtio_read_config(struct virtio_device *vdev, uint32_t offset, void *out, uint32_t len);
void virtio_write_config8(struct virtio_device *vdev, uint32_t offset, uint8_t value);

// Transport-neutral discovery (what a driver's probe calls): initialise `vdev` as the
// `nth` (0-based) device of `type` on any transport, PCI first, then virtio-mmio (found from
// the ACPI DSDT or virtio_mmio.device= words, scanned on first use). Leaves the device reset
// with ACKNOWLEDGE|DRIVER set, as virtio_pci_init does. Returns 0, or -1 when there is none
// (or it failed, said on the console).
int virtio_find_device(struct virtio_device *vdev, uint16_t type, int nth);

// How many devices of `type` the machine has on every transport, bound or not (touches no
// device): for a driver to say which ones it left out past its own limit.
int virtio_count_devices(uint16_t type);

// "00:03.0" or "mmio@0xfeb00e00", for messages; and how its interrupts arrive
// ("msix", "intx", "ioapic", "none").
const char *virtio_device_name(const struct virtio_device *vdev);
const char *virtio_irq_mode_name(const struct virtio_device *vdev);

static inline bool virtio_has_feature(const struct virtio_device *vdev, int bit) {
    return (vdev->features >> bit) & 1;
}

#endif
