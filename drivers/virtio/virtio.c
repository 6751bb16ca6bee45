// The transport-neutral virtio calls of virtio.h: each goes to the device's transport
// (vdev->ops: virtio_pci.c or virtio_mmio.c), and virtio_find_device looks for a device of
// a type on every transport, so a driver's probe is the same on q35 (PCI) and on microvm
// (virtio-mmio).
#include "drivers/virtio/virtio.h"

#include "drivers/pci/msix.h"
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_mmio.h"
#include "drivers/virtio/virtio_pci.h"

int virtio_negotiate(struct virtio_device *vdev, uint64_t wanted) {
    return vdev->ops->negotiate(vdev, wanted);
}

struct virtqueue *virtio_setup_queue(struct virtio_device *vdev, uint16_t index,
    uint16_t max_size, virtqueue_callback_t callback, void *context) {
    return vdev->ops->setup_queue(vdev, index, max_size, callback, context);
}

int virtio_set_config_callback(struct virtio_device *vdev,
    void (*callback)(struct virtio_device *vdev, void *context), void *context) {
    return vdev->ops->set_config_callback(vdev, callback, context);
}

void virtio_driver_ok(struct virtio_device *vdev) {
    vdev->ops->driver_ok(vdev);
}

void virtio_fail(struct virtio_device *vdev) {
    vdev->ops->fail(vdev);
}

void virtio_reset(struct virtio_device *vdev) {
    vdev->ops->reset(vdev);
}

uint8_t virtio_status(const struct virtio_device *vdev) {
    return vdev->ops->status(vdev);
}

int virtio_read_config(struct virtio_device *vdev, uint32_t offset, void *out, uint32_t len) {
    return vdev->ops->read_config(vdev, offset, out, len);
}

void virtio_write_config8(struct virtio_device *vdev, uint32_t offset, uint8_t value) {
    vdev->ops->write_config8(vdev, offset, value);
}

int virtio_find_device(struct virtio_device *vdev, uint16_t type, int nth) {
    for (int i = 0; i < pci_device_count; i++) {
        if (virtio_pci_device_type(&pci_devices[i]) == type && nth-- == 0) {
            return virtio_pci_init(vdev, &pci_devices[i]);
        }
    }
    return virtio_mmio_find(vdev, type, nth);
}

int virtio_count_devices(uint16_t type) {
    int count = 0;
    for (int i = 0; i < pci_device_count; i++) {
        count += virtio_pci_device_type(&pci_devices[i]) == type;
    }
    virtio_mmio_scan();
    for (int i = 0; i < virtio_mmio_slot_count; i++) {
        count += virtio_mmio_slots[i].type == type;
    }
    return count;
}

const char *virtio_device_name(const struct virtio_device *vdev) {
    return vdev->name;
}

const char *virtio_irq_mode_name(const struct virtio_device *vdev) {
    if (vdev->pci != NULL) {
        return pci_irq_mode_name(vdev->pci);
    }
    return vdev->mmio != NULL ? "ioapic" : "none";
}
