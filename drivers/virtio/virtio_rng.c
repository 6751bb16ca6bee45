// virtio-rng driver (virtio 1.2, 5.4): one request queue of device-writable buffers, one
// MSI-X vector, blocking reads that sleep until the device answers. See virtio_rng.h.
#include "drivers/virtio/virtio_rng.h"

#include <string.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/timer.h"
#include "arch/x86_64/tsc.h"
#include "drivers/pci/msix.h"
#include "drivers/virtio/virtio_pci.h"
#include "mm/mm.h"

enum {
    RNG_QUEUE = 0,                  // requestq (5.4.2)
    RNG_QUEUE_SIZE = 8,             // one request in flight; small is plenty
    RNG_BUFFER_SIZE = 4096,
    RNG_TIMEOUT_MS = 2000,          // QEMU answers in microseconds; this means "broken"
};

static struct virtio_device rng;
static struct virtqueue *requestq;
static uint8_t *buffer;             // DMA memory the device writes into
static int present;
static uint64_t requests, bytes_received;

int virtio_rng_present(void) {
    return present;
}

int virtio_rng_probe(void) {
    // Any transport: PCI (q35, pc) or virtio-mmio (microvm).
    if (virtio_find_device(&rng, VIRTIO_TYPE_RNG, 0) != 0) {
        return -1;
    }
    // No device-specific features (5.4.3); EVENT_IDX if offered.
    if (virtio_negotiate(&rng, VIRTIO_FEATURE(VIRTIO_F_EVENT_IDX)) != 0) {
        return -1;
    }
    buffer = dma_alloc(RNG_BUFFER_SIZE, 4096);
    if (buffer == NULL) {
        kprintf("virtio-rng: out of DMA memory\n");
        virtio_fail(&rng);
        return -1;
    }
    requestq = virtio_setup_queue(&rng, RNG_QUEUE, RNG_QUEUE_SIZE, NULL, NULL);
    if (requestq == NULL) {
        return -1;
    }
    virtio_driver_ok(&rng);
    present = 1;
    kprintf("virtio-rng: %s, %s vector 0x%x, queue of %u\n", virtio_device_name(&rng),
        virtio_irq_mode_name(&rng), requestq->vector, requestq->size);
    return 0;
}

// Sleep until the device has returned the buffer (or the deadline passes). Interrupts are
// off while checking, and timer_sleep_until's `sti; hlt` lets the MSI-X interrupt in only
// once the CPU halts, so the wake-up cannot slip in between check and halt.
static bool wait_used(void) {
    uint64_t deadline = tsc_read() + tsc_hz / 1000 * RNG_TIMEOUT_MS;
    uint64_t flags = read_rflags();
    cli();
    while (!virtqueue_has_used(requestq) && tsc_read() < deadline) {
        if (requestq->vector >= 0) {
            timer_sleep_until(deadline);
            cli();   // it may return with interrupts on: check again with them off
        } else {
            cpu_relax();
        }
    }
    bool done = virtqueue_has_used(requestq);
    if (requestq->vector >= 0) {
        timer_arm_at(0);   // the safety deadline is moot: no stray timer interrupt later
    }
    if (flags & RFLAGS_IF) {
        sti();
    }
    return done;
}

long virtio_rng_read(void *buf, size_t n) {
    if (!present) {
        return -1;
    }
    size_t done = 0;
    int empty_answers = 0;
    while (done < n) {
        size_t chunk = n - done < RNG_BUFFER_SIZE ? n - done : RNG_BUFFER_SIZE;
        if (virtqueue_add_one(requestq, (uintptr_t)buffer, chunk, true, buffer) < 0) {
            return -1;
        }
        requests++;
        virtqueue_kick(requestq);
        if (!wait_used()) {
            kprintf("virtio-rng: no answer in %d ms, device disabled\n", RNG_TIMEOUT_MS);
            present = 0;
            virtio_fail(&rng);
            return -1;
        }
        uint32_t len = 0;
        virtqueue_pop(requestq, &len);
        if (len > chunk) {
            len = chunk;
        }
        if (len == 0 && ++empty_answers > 16) {
            kprintf("virtio-rng: the device returns no data, device disabled\n");
            present = 0;
            return -1;
        }
        // The device may return fewer bytes than asked for (5.4.6.1); ask again for the rest.
        memcpy((uint8_t *)buf + done, buffer, len);
        done += len;
        bytes_received += len;
    }
    return (long)n;
}

void virtio_rng_stats(struct virtio_rng_stats *out) {
    *out = (struct virtio_rng_stats){ .vector = -1, .irq_mode = "none" };
    if (requestq != NULL) {
        out->vector = requestq->vector;
        out->irq_mode = virtio_irq_mode_name(&rng);
        out->interrupts = requestq->interrupts;
        out->kicks = requestq->kicks;
    }
    out->requests = requests;
    out->bytes = bytes_received;
}
