// The virtio 1.x PCI transport (virtio 1.2, 4.1): capability discovery, status handshake,
// feature negotiation, virtqueue setup with MSI-X vectors, notifications. See virtio_pci.h.
#include "drivers/virtio/virtio_pci.h"

#include <stddef.h>

#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/tsc.h"
#include "drivers/pci/msix.h"

// struct virtio_pci_cap (4.1.4): cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2],
// offset (le32), length (le32); the notification capability adds notify_off_multiplier.
enum {
    VIRTIO_CAP_CFG_TYPE = 3,
    VIRTIO_CAP_BAR = 4,
    VIRTIO_CAP_OFFSET = 8,
    VIRTIO_CAP_LENGTH = 12,
    VIRTIO_CAP_NOTIFY_MULTIPLIER = 16,
};

// cfg_type values (4.1.4).
enum {
    VIRTIO_PCI_CAP_COMMON_CFG = 1,
    VIRTIO_PCI_CAP_NOTIFY_CFG = 2,
    VIRTIO_PCI_CAP_ISR_CFG = 3,
    VIRTIO_PCI_CAP_DEVICE_CFG = 4,
    VIRTIO_PCI_CAP_PCI_CFG = 5,
};

// ISR status bits (4.1.4.5).
enum {
    VIRTIO_ISR_QUEUE = 1,
    VIRTIO_ISR_CONFIG = 2,
};

extern const struct virtio_ops virtio_pci_ops;

uint16_t virtio_pci_device_type(const struct pci_device *pci) {
    if (pci->vendor_id != VIRTIO_PCI_VENDOR || pci->device_id < 0x1000 || pci->device_id > 0x107f) {
        return 0;
    }
    // Modern ids are 0x1040 + type; transitional ids 0x1000-0x103f carry the type in the
    // subsystem device id (4.1.2.1).
    return pci->device_id >= 0x1040 ? pci->device_id - 0x1040 : pci->subsystem_id;
}

// The first structure of `type` in the vendor capabilities (4.1.4.1: the driver uses the first
// one it can handle), mapped; *length and *cap_offset filled in. NULL when absent.
static volatile uint8_t *find_structure(struct pci_device *pci, uint8_t type, uint32_t *length,
                                        uint8_t *cap_offset) {
    for (uint8_t cap = pci_find_capability(pci, PCI_CAP_VENDOR, 0); cap != 0;
         cap = pci_find_capability(pci, PCI_CAP_VENDOR, cap)) {
        if (pci_read8(pci, cap + VIRTIO_CAP_CFG_TYPE) != type) {
            continue;
        }
        uint8_t bar = pci_read8(pci, cap + VIRTIO_CAP_BAR);
        volatile uint8_t *base = pci_map_bar(pci, bar);
        if (bar >= PCI_BAR_COUNT || base == NULL) {
            continue;   // reserved BAR values or an I/O BAR: look for another
        }
        uint32_t offset = pci_read32(pci, cap + VIRTIO_CAP_OFFSET);
        uint32_t len = pci_read32(pci, cap + VIRTIO_CAP_LENGTH);
        if ((uint64_t)offset + len > pci->bars[bar].size) {
            continue;
        }
        *length = len;
        *cap_offset = cap;
        return base + offset;
    }
    return NULL;
}

static uint8_t pci_status(const struct virtio_device *vdev) {
    return vdev->common->device_status;
}

static void set_status(struct virtio_device *vdev, uint8_t bits) {
    vdev->common->device_status = vdev->common->device_status | bits;
}

static void pci_reset(struct virtio_device *vdev) {
    vdev->common->device_status = 0;
    // 4.1.4.3.2: after writing 0 the driver waits for device_status to read back 0.
    uint64_t deadline = tsc_read() + tsc_hz;
    while (vdev->common->device_status != 0 && tsc_read() < deadline) {
        __asm__ volatile ("pause");
    }
}

static void pci_fail(struct virtio_device *vdev) {
    set_status(vdev, VIRTIO_STATUS_FAILED);
}

static void pci_driver_ok(struct virtio_device *vdev) {
    set_status(vdev, VIRTIO_STATUS_DRIVER_OK);
}

static void print_device(const struct virtio_device *vdev, const char *fmt, const char *what) {
    const struct pci_device *p = vdev->pci;
    kprintf("virtio: %02x:%02x.%x ", p->bus, p->device, p->function);
    kprintf(fmt, what);
    kprintf("\n");
}

int virtio_pci_init(struct virtio_device *vdev, struct pci_device *pci) {
    *vdev = (struct virtio_device){ .ops = &virtio_pci_ops, .pci = pci, .config_vector = -1,
        .intx_vector = -1 };
    ksnprintf(vdev->name, sizeof(vdev->name), "%02x:%02x.%x", pci->bus, pci->device,
        pci->function);
    vdev->type = virtio_pci_device_type(pci);
    uint32_t length;
    uint8_t cap;
    vdev->common = (volatile void *)find_structure(pci, VIRTIO_PCI_CAP_COMMON_CFG, &length, &cap);
    if (vdev->common == NULL || length < sizeof(struct virtio_pci_common_cfg)) {
        print_device(vdev, "%s", "no modern virtio interface (legacy-only device): not used");
        return -1;
    }
    vdev->notify_base = find_structure(pci, VIRTIO_PCI_CAP_NOTIFY_CFG, &length, &cap);
    if (vdev->notify_base == NULL) {
        print_device(vdev, "%s", "no notification capability: not used");
        return -1;
    }
    vdev->notify_multiplier = pci_read32(pci, cap + VIRTIO_CAP_NOTIFY_MULTIPLIER);
    vdev->isr = find_structure(pci, VIRTIO_PCI_CAP_ISR_CFG, &length, &cap);
    vdev->device_cfg = find_structure(pci, VIRTIO_PCI_CAP_DEVICE_CFG, &vdev->device_cfg_length, &cap);
    pci_enable(pci, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);

    // 3.1.1: reset, ACKNOWLEDGE (we noticed the device), DRIVER (we can drive it).
    pci_reset(vdev);
    set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE);
    set_status(vdev, VIRTIO_STATUS_DRIVER);
    vdev->num_queues = vdev->common->num_queues;
    return 0;
}

static int pci_negotiate(struct virtio_device *vdev, uint64_t wanted) {
    volatile struct virtio_pci_common_cfg *c = vdev->common;
    c->device_feature_select = 0;
    uint64_t offered = c->device_feature;
    c->device_feature_select = 1;
    offered |= (uint64_t)c->device_feature << 32;
    vdev->device_features = offered;
    if (!(offered & VIRTIO_FEATURE(VIRTIO_F_VERSION_1))) {
        print_device(vdev, "%s", "does not offer VIRTIO_F_VERSION_1: not used");
        pci_fail(vdev);
        return -1;
    }
    uint64_t accepted = offered & (wanted | VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
    c->driver_feature_select = 0;
    c->driver_feature = (uint32_t)accepted;
    c->driver_feature_select = 1;
    c->driver_feature = (uint32_t)(accepted >> 32);
    // 3.1.1 steps 5-6: FEATURES_OK, then re-read: a device that cleared it refuses the set.
    set_status(vdev, VIRTIO_STATUS_FEATURES_OK);
    if (!(c->device_status & VIRTIO_STATUS_FEATURES_OK)) {
        print_device(vdev, "%s", "refused the negotiated features");
        pci_fail(vdev);
        return -1;
    }
    vdev->features = accepted;
    // Read num_queues again: a device may size its queues by the features (QEMU's
    // virtio-net offers the extra queue pairs and moves the control queue only with MQ).
    vdev->num_queues = c->num_queues;
    return 0;
}

// --- notifications and interrupts ----------------------------------------------------------

// 4.1.4.4: the queue's notify address is notify_base + queue_notify_off * multiplier; without
// VIRTIO_F_NOTIFICATION_DATA the driver writes the 16-bit queue index there (4.1.5.2).
static void notify_queue(struct virtqueue *vq) {
    *(volatile uint16_t *)vq->notify_address = vq->index;
}

static void queue_interrupt(void *context) {
    virtqueue_interrupt(context);
}

static void config_interrupt(void *context) {
    struct virtio_device *vdev = context;
    vdev->config_changes++;
    if (vdev->config_callback != NULL) {
        vdev->config_callback(vdev, vdev->config_context);
    }
}

// INTx (no MSI-X): one level-triggered line for everything; reading ISR status tells which
// and deasserts it (4.1.4.5, 4.1.5.3, 4.1.5.4).
static void intx_interrupt(void *context) {
    struct virtio_device *vdev = context;
    uint8_t isr = *vdev->isr;
    if (isr & VIRTIO_ISR_QUEUE) {
        for (int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
            if (vdev->queues[i] != NULL) {
                virtqueue_interrupt(vdev->queues[i]);
            }
        }
    }
    if (isr & VIRTIO_ISR_CONFIG) {
        config_interrupt(vdev);
    }
}

static int attach_intx(struct virtio_device *vdev) {
    if (vdev->intx_vector < 0 && vdev->isr != NULL) {
        vdev->intx_vector = pci_irq_attach(vdev->pci, 0, intx_interrupt, vdev,
            pci_device_name(vdev->pci));
    }
    return vdev->intx_vector;
}

static bool use_msix(struct virtio_device *vdev) {
    if (vdev->pci->irq_mode == PCI_IRQ_NONE && msix_enable(vdev->pci) < 0) {
        vdev->pci->irq_mode = PCI_IRQ_INTX;
    }
    return vdev->pci->irq_mode == PCI_IRQ_MSIX;
}

static int pci_set_config_callback(struct virtio_device *vdev,
    void (*callback)(struct virtio_device *vdev, void *context), void *context) {
    vdev->config_context = context;
    vdev->config_callback = callback;
    if (use_msix(vdev) && vdev->pci->msix_size >= 1) {
        if (vdev->config_vector < 0) {
            vdev->config_vector = pci_irq_attach(vdev->pci, 0, config_interrupt, vdev,
                pci_device_name(vdev->pci));
        }
        if (vdev->config_vector < 0) {
            return -1;
        }
        vdev->common->config_msix_vector = 0;
        // 4.1.5.1.2: the device answers NO_VECTOR when it could not map the vector.
        return vdev->common->config_msix_vector == VIRTIO_MSI_NO_VECTOR ? -1 : 0;
    }
    return attach_intx(vdev) < 0 ? -1 : 0;
}

static struct virtqueue *pci_setup_queue(struct virtio_device *vdev, uint16_t index,
    uint16_t max_size, virtqueue_callback_t callback, void *context) {
    volatile struct virtio_pci_common_cfg *c = vdev->common;
    if (index >= vdev->num_queues || index >= VIRTIO_MAX_QUEUES) {
        print_device(vdev, "%s", "has fewer queues than the driver needs");
        pci_fail(vdev);
        return NULL;
    }
    // 4.1.5.1.3: select the queue, read its size (0: unavailable), choose ours (a power of
    // two no larger than the device's), give the three areas, the vector, then enable.
    c->queue_select = index;
    uint16_t size = c->queue_size;
    if (size == 0 || c->queue_enable) {
        print_device(vdev, "%s", "queue unavailable");
        pci_fail(vdev);
        return NULL;
    }
    size = virtqueue_choose_size(size, max_size);
    struct virtqueue *vq = vdev->queues[index];
    if (vq == NULL || vq->size != size) {
        vq = virtqueue_create(index, size);
    } else {
        virtqueue_reset(vq);
    }
    if (vq == NULL) {
        print_device(vdev, "%s", "out of DMA memory for a virtqueue");
        pci_fail(vdev);
        return NULL;
    }
    vq->event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
    vq->notify = notify_queue;
    vq->transport = vdev;
    vq->notify_address = (uintptr_t)(vdev->notify_base
        + (uint32_t)c->queue_notify_off * vdev->notify_multiplier);
    vq->callback = callback;
    vq->callback_context = context;
    vdev->queues[index] = vq;

    c->queue_size = size;
    uint64_t desc = virtqueue_desc_address(vq);
    uint64_t avail = virtqueue_avail_address(vq);
    uint64_t used = virtqueue_used_address(vq);
    c->queue_desc_lo = (uint32_t)desc;
    c->queue_desc_hi = (uint32_t)(desc >> 32);
    c->queue_driver_lo = (uint32_t)avail;
    c->queue_driver_hi = (uint32_t)(avail >> 32);
    c->queue_device_lo = (uint32_t)used;
    c->queue_device_hi = (uint32_t)(used >> 32);

    if (use_msix(vdev) && index + 1u < vdev->pci->msix_size) {
        if (vq->vector < 0) {
            vq->vector = pci_irq_attach(vdev->pci, index + 1, queue_interrupt, vq,
                pci_device_name(vdev->pci));
        }
        c->queue_msix_vector = index + 1;
        if (vq->vector < 0 || c->queue_msix_vector == VIRTIO_MSI_NO_VECTOR) {
            print_device(vdev, "%s", "could not get an MSI-X vector for a queue");
            pci_fail(vdev);
            return NULL;
        }
    } else if (vdev->pci->irq_mode == PCI_IRQ_MSIX) {
        c->queue_msix_vector = VIRTIO_MSI_NO_VECTOR;   // too few entries: polled only
        vq->vector = -1;
    } else {
        vq->vector = attach_intx(vdev);
    }
    c->queue_enable = 1;
    return vq;
}

int virtio_route_queue(struct virtio_device *vdev, struct virtqueue *vq, uint32_t apic_id) {
    if (vdev->pci == NULL || vdev->pci->irq_mode != PCI_IRQ_MSIX || vq == NULL || vq->vector < 0
        || vq->vector == vdev->intx_vector) {
        return -1;
    }
    // The queue's MSI-X entry is index + 1 (virtio_setup_queue); only its address changes.
    return msix_program(vdev->pci, vq->index + 1u, (uint8_t)vq->vector, apic_id);
}

static int pci_read_config(struct virtio_device *vdev, uint32_t offset, void *out, uint32_t len) {
    if (vdev->device_cfg == NULL || (uint64_t)offset + len > vdev->device_cfg_length) {
        return -1;
    }
    // 2.5.1 / 4.1.4.3.1: re-read until config_generation is the same before and after.
    uint8_t before, after;
    do {
        before = vdev->common->config_generation;
        for (uint32_t i = 0; i < len; i++) {
            ((uint8_t *)out)[i] = vdev->device_cfg[offset + i];
        }
        after = vdev->common->config_generation;
    } while (before != after);
    return 0;
}

static void pci_write_config8(struct virtio_device *vdev, uint32_t offset, uint8_t value) {
    if (vdev->device_cfg != NULL && offset < vdev->device_cfg_length) {
        vdev->device_cfg[offset] = value;
    }
}

const struct virtio_ops virtio_pci_ops = {
    .transport = "pci",
    .negotiate = pci_negotiate,
    .setup_queue = pci_setup_queue,
    .set_config_callback = pci_set_config_callback,
    .driver_ok = pci_driver_ok,
    .fail = pci_fail,
    .reset = pci_reset,
    .status = pci_status,
    .read_config = pci_read_config,
    .write_config8 = pci_write_config8,
};
