// The stand-ins the virtio-net harnesses share (fuzz_virtio_net.c, netif_sim.h for
// fuzz_lwip.c and fuzz_netif.c): the DMA pool (mm/mm.h) and the virtio transport, one
// virtio-net on a fake PCI function, 256-entry queues, no EVENT_IDX, and a single CPU.
// Include it after virtio_net.h, virtio_pci.h, pci.h, smp.h and mm.h; the device side
// (what the harness plays) stays in each.
#ifndef MANTICORE_FUZZ_VIRTIO_NET_STUB_H
#define MANTICORE_FUZZ_VIRTIO_NET_STUB_H

#include <stdlib.h>
#include <string.h>

// --- the DMA pool: 4 MiB, never freed (as mm/mm.h's) ---
static uint8_t *pool;
static size_t pool_used;
enum { POOL_SIZE = 4u << 20 };
void *dma_alloc(size_t size, size_t align) {
    if (!pool) {
        pool = aligned_alloc(4096, POOL_SIZE);
        memset(pool, 0, POOL_SIZE);
    }
    pool_used = (pool_used + align - 1) & ~(align - 1);
    if (pool_used + size > POOL_SIZE) {
        return NULL;
    }
    void *p = pool + pool_used;
    pool_used += size;
    return p;
}
size_t dma_free_bytes(void) { return POOL_SIZE - pool_used; }

// --- the transport ---
static uint8_t config[12] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 1, 0 };
static struct virtio_device *the_device;
struct pci_device pci_devices[PCI_MAX_DEVICES];
int pci_device_count = 1;
static void notify_queue(struct virtqueue *vq) { (void)vq; }
const char *pci_irq_mode_name(const struct pci_device *dev) { (void)dev; return "msix"; }
uint16_t virtio_pci_device_type(const struct pci_device *pci) { (void)pci; return VIRTIO_TYPE_NET; }
int virtio_pci_init(struct virtio_device *vdev, struct pci_device *pci) {
    vdev->pci = pci; vdev->config_vector = -1; vdev->num_queues = 3; the_device = vdev; return 0;
}
int virtio_find_device(struct virtio_device *vdev, uint16_t type, int nth) {
    return type == VIRTIO_TYPE_NET && nth == 0 ? virtio_pci_init(vdev, &pci_devices[0]) : -1;
}
int virtio_count_devices(uint16_t type) { return type == VIRTIO_TYPE_NET; }
const char *virtio_device_name(const struct virtio_device *vdev) { (void)vdev; return "00:00.0"; }
const char *virtio_irq_mode_name(const struct virtio_device *vdev) { (void)vdev; return "msix"; }
int virtio_route_queue(struct virtio_device *vdev, struct virtqueue *vq, uint32_t apic_id) {
    (void)vdev; (void)vq; (void)apic_id; return 0;
}
unsigned smp_cpu_id(void) { return 0; }
bool smp_cpu_online(unsigned cpu) { return cpu == 0; }
uint32_t smp_apic_id(unsigned cpu) { (void)cpu; return 0; }
int virtio_negotiate(struct virtio_device *vdev, uint64_t wanted) {
    vdev->features = (wanted | VIRTIO_FEATURE(VIRTIO_F_VERSION_1))
                     & ~VIRTIO_FEATURE(VIRTIO_F_EVENT_IDX);
    return 0;
}
struct virtqueue *virtio_setup_queue(struct virtio_device *vdev, uint16_t index,
    uint16_t max_size, virtqueue_callback_t callback, void *context) {
    struct virtqueue *vq = virtqueue_create(index, max_size ? max_size : 256);
    vq->notify = notify_queue; vq->callback = callback; vq->callback_context = context;
    vq->vector = 0x40 + index; vdev->queues[index] = vq;
    return vq;
}
int virtio_set_config_callback(struct virtio_device *vdev,
    void (*callback)(struct virtio_device *, void *), void *context) {
    vdev->config_callback = callback; vdev->config_context = context; vdev->config_vector = 0x3f;
    return 0;
}
int virtio_read_config(struct virtio_device *vdev, uint32_t offset, void *out, uint32_t len) {
    (void)vdev; memcpy(out, config + offset, len); return 0;
}
void virtio_driver_ok(struct virtio_device *vdev) { (void)vdev; }
void virtio_fail(struct virtio_device *vdev) { (void)vdev; }

#endif // MANTICORE_FUZZ_VIRTIO_NET_STUB_H
