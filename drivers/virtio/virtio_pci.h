// The modern virtio 1.x PCI transport (virtio 1.2, 4.1): a virtio device on PCI describes its
// register blocks (common configuration, notification, ISR status, device-specific
// configuration) with vendor-specific capabilities pointing into its BARs. This layer runs the
// status handshake and feature negotiation, sets up split virtqueues with one MSI-X vector
// each (INTx with the ISR register when MSI-X is unavailable), and is shared by every virtio
// driver (virtio-rng now, virtio-net next).
#ifndef DRIVERS_VIRTIO_VIRTIO_PCI_H
#define DRIVERS_VIRTIO_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/pci/pci.h"
#include "drivers/virtio/virtqueue.h"

#define VIRTIO_PCI_VENDOR (0x1af4)
#define VIRTIO_PCI_MAX_QUEUES (8)

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

// Common configuration structure layout (4.1.4.3).
struct virtio_pci_common_cfg {
    uint32_t device_feature_select;
    uint32_t device_feature;
    uint32_t driver_feature_select;
    uint32_t driver_feature;
    uint16_t config_msix_vector;
    uint16_t num_queues;
    uint8_t device_status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint16_t queue_size;
    uint16_t queue_msix_vector;
    uint16_t queue_enable;
    uint16_t queue_notify_off;
    uint32_t queue_desc_lo, queue_desc_hi;
    uint32_t queue_driver_lo, queue_driver_hi;
    uint32_t queue_device_lo, queue_device_hi;
} __attribute__((packed));

#define VIRTIO_MSI_NO_VECTOR (0xffff)

struct virtio_pci_device {
    struct pci_device *pci;
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
    struct virtqueue *queues[VIRTIO_PCI_MAX_QUEUES];
    int config_vector;                          // CPU vector of config changes, -1 if none
    int intx_vector;                            // CPU vector of the shared INTx line, -1
    void (*config_callback)(struct virtio_pci_device *vdev, void *context);
    void *config_context;
    uint64_t config_changes;
};

// The virtio device type of a PCI function, 0 when it is not a virtio device.
uint16_t virtio_pci_device_type(const struct pci_device *pci);

// Find the capabilities, map the BARs, reset the device and set ACKNOWLEDGE | DRIVER (3.1.1
// steps 1-3). Returns 0, or -1 (with a "virtio: ..." boot line) when the device has no modern
// interface. `vdev` is the caller's storage and lives as long as the device.
int virtio_pci_init(struct virtio_pci_device *vdev, struct pci_device *pci);

// Feature negotiation (3.1.1 steps 4-6, 2.2): accept the offered features that are in
// `wanted` (VERSION_1 always), write them, set FEATURES_OK and check the device kept it.
// Returns 0, or -1 after setting FAILED.
int virtio_pci_negotiate(struct virtio_pci_device *vdev, uint64_t wanted);

// Set up queue `index` with at most `max_size` entries (0: the device's size): allocate the
// rings, give them to the device, attach an interrupt (MSI-X entry index + 1, or the shared
// INTx handler) that calls `callback(vq, context)` with interrupts off, and enable the queue
// (4.1.5.1.3). EVENT_IDX is used when negotiated. Returns the queue or NULL (FAILED set).
struct virtqueue *virtio_pci_setup_queue(struct virtio_pci_device *vdev, uint16_t index,
    uint16_t max_size, virtqueue_callback_t callback, void *context);

// Configuration change interrupts (4.1.4.3, config_msix_vector: MSI-X entry 0).
int virtio_pci_set_config_callback(struct virtio_pci_device *vdev,
    void (*callback)(struct virtio_pci_device *vdev, void *context), void *context);

// DRIVER_OK: the device is live (3.1.1 step 8).
void virtio_pci_driver_ok(struct virtio_pci_device *vdev);
// Something went wrong: set FAILED (2.1.1).
void virtio_pci_fail(struct virtio_pci_device *vdev);
// Write 0 to device_status and wait until it reads back 0 (4.1.4.3.2).
void virtio_pci_reset(struct virtio_pci_device *vdev);
uint8_t virtio_pci_status(const struct virtio_pci_device *vdev);

// Device-specific configuration, read consistently under config_generation (2.5.1): copies
// `len` bytes from `offset` into `out`. Returns 0, or -1 past the end of the structure.
int virtio_pci_read_config(struct virtio_pci_device *vdev, uint32_t offset, void *out, uint32_t len);
void virtio_pci_write_config8(struct virtio_pci_device *vdev, uint32_t offset, uint8_t value);

static inline bool virtio_has_feature(const struct virtio_pci_device *vdev, int bit) {
    return (vdev->features >> bit) & 1;
}

#endif
