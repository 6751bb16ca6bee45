// virtio-rng, the virtio entropy device (virtio 1.2, 5.4): the driver posts device-writable
// buffers on its single request queue and the device fills them with random bytes from the
// host. It feeds os.urandom and the seed of the random module.
#ifndef DRIVERS_VIRTIO_VIRTIO_RNG_H
#define DRIVERS_VIRTIO_VIRTIO_RNG_H

#include <stddef.h>
#include <stdint.h>

// Bind the first virtio-rng in pci_devices[] (after pci_init and the interrupt setup).
// Returns 0, or -1 when there is none or it failed (a "virtio-rng: ..." boot line says why).
int virtio_rng_probe(void);

// True once virtio_rng_probe succeeded.
int virtio_rng_present(void);

// Fill buf with n random bytes from the device: posts a device-writable buffer, notifies,
// and halts (sti; hlt) until the queue's interrupt says it was used. Blocking, interrupt
// driven, callable on any CPU: requests from several CPUs take turns (a spin lock), and a
// reader on a CPU other than the interrupt's is woken by an IPI from it. Returns n, or -1
// without a working device (or when the device stops answering: then it is not used again
// and the caller falls back to another source).
long virtio_rng_read(void *buf, size_t n);

struct virtio_rng_stats {
    int vector;                     // CPU vector of the request queue, -1 when polled
    const char *irq_mode;           // "msix" | "intx" | "none"
    uint64_t requests;              // buffers posted
    uint64_t bytes;                 // bytes received
    uint64_t interrupts;            // request queue interrupts
    uint64_t kicks;
};
void virtio_rng_stats(struct virtio_rng_stats *out);

#endif
