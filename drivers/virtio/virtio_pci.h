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
#include "drivers/virtio/virtio.h"
#include "drivers/virtio/virtqueue.h"

#define VIRTIO_PCI_VENDOR (0x1af4)

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

// The virtio device type of a PCI function, 0 when it is not a virtio device.
uint16_t virtio_pci_device_type(const struct pci_device *pci);

// Find the capabilities, map the BARs, reset the device and set ACKNOWLEDGE | DRIVER (3.1.1
// steps 1-3). Returns 0, or -1 (with a "virtio: ..." boot line) when the device has no modern
// interface. `vdev` is the caller's storage and lives as long as the device.
int virtio_pci_init(struct virtio_device *vdev, struct pci_device *pci);

#endif
