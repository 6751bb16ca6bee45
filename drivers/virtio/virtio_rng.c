// virtio-rng driver (virtio 1.2, 5.4): one request queue of device-writable buffers, one
// MSI-X vector, blocking reads that sleep until the device answers, from any CPU. See
// virtio_rng.h.
#include "drivers/virtio/virtio_rng.h"

#include <string.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/smp.h"
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
    // A reader on a CPU the queue's interrupt does not reach still sleeps, woken by an IPI
    // from the interrupt's CPU; it looks at the used ring at least this often in case that
    // CPU cannot take the interrupt now (interrupts off, or itself waiting for this lock).
    RNG_FOREIGN_POLL_US = 500,
};

// The one virtio-rng device. Every CPU may read it (os.urandom, the random module's seed),
// one request at a time: the lock covers the queue, the DMA buffer and the counters.
struct virtio_rng {
    struct virtio_device vdev;
    struct virtqueue *requestq;
    uint8_t *buffer;                // DMA memory the device writes into
    int present;
    unsigned irq_cpu;               // the CPU the queue's interrupt is routed to (the prober)
    volatile int waiter_cpu;        // the CPU waiting for the device's answer, -1 when none
    smp_spinlock_t lock;
    uint64_t requests, bytes_received;
};

static struct virtio_rng rng = { .waiter_cpu = -1 };

int virtio_rng_present(void) {
    return rng.present;
}

// The queue's interrupt, on irq_cpu with interrupts off: a reader on another CPU is halted
// waiting for it, and only an IPI reaches it there.
static void request_done(struct virtqueue *vq, void *context) {
    (void)vq;
    struct virtio_rng *dev = context;
    int waiter = dev->waiter_cpu;
    if (waiter >= 0 && (unsigned)waiter != smp_cpu_id()) {
        smp_wake((unsigned)waiter);
    }
}

int virtio_rng_probe(void) {
    // Any transport: PCI (q35, pc) or virtio-mmio (microvm).
    if (virtio_find_device(&rng.vdev, VIRTIO_TYPE_RNG, 0) != 0) {
        return -1;
    }
    // No device-specific features (5.4.3); EVENT_IDX if offered.
    if (virtio_negotiate(&rng.vdev, VIRTIO_FEATURE(VIRTIO_F_EVENT_IDX)) != 0) {
        return -1;
    }
    rng.buffer = dma_alloc(RNG_BUFFER_SIZE, 4096);
    if (rng.buffer == NULL) {
        kprintf("virtio-rng: out of DMA memory\n");
        virtio_fail(&rng.vdev);
        return -1;
    }
    // MSI-X and the I/O APIC route the queue's interrupt to the CPU that sets it up.
    rng.irq_cpu = smp_cpu_id();
    rng.requestq = virtio_setup_queue(&rng.vdev, RNG_QUEUE, RNG_QUEUE_SIZE, request_done, &rng);
    if (rng.requestq == NULL) {
        return -1;
    }
    virtio_driver_ok(&rng.vdev);
    rng.present = 1;
    kprintf("virtio-rng: %s, %s vector 0x%x, queue of %u\n", virtio_device_name(&rng.vdev),
        virtio_irq_mode_name(&rng.vdev), rng.requestq->vector, rng.requestq->size);
    return 0;
}

// Sleep until the device has returned the buffer (or the deadline passes). Interrupts are
// off while checking, and timer_sleep_until's `sti; hlt` lets the wake-up in (the queue's
// interrupt, or request_done's IPI on another CPU) only once the CPU halts, so it cannot
// slip in between check and halt.
static bool wait_used(struct virtio_rng *dev) {
    struct virtqueue *vq = dev->requestq;
    uint64_t deadline = tsc_read() + tsc_hz / 1000 * RNG_TIMEOUT_MS;
    bool foreign = smp_cpu_id() != dev->irq_cpu;
    uint64_t flags = read_rflags();
    cli();
    dev->waiter_cpu = (int)smp_cpu_id();
    // Store, then load the used ring: without the fence x86 may read the ring first (SDM
    // Vol. 3A 9.2.3.4), and request_done on irq_cpu could miss this waiter and send no IPI.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    while (!virtqueue_has_used(vq) && tsc_read() < deadline) {
        if (vq->vector >= 0) {
            uint64_t wake = deadline;
            if (foreign) {
                uint64_t poll = tsc_read() + tsc_hz / 1000000 * RNG_FOREIGN_POLL_US;
                wake = poll < deadline ? poll : deadline;
            }
            timer_sleep_until(wake);
            cli();   // it may return with interrupts on: check again with them off
        } else {
            cpu_relax();
        }
    }
    dev->waiter_cpu = -1;
    bool done = virtqueue_has_used(vq);
    if (vq->vector >= 0) {
        timer_arm_at(0);   // the safety deadline is moot: no stray timer interrupt later
    }
    if (flags & RFLAGS_IF) {
        sti();
    }
    return done;
}

// One request for up to RNG_BUFFER_SIZE bytes into buf, with the lock held. Returns the bytes
// the device gave (0 is possible), or -1 when the device failed (it is then not used again).
static long read_chunk(struct virtio_rng *dev, void *buf, size_t chunk) {
    if (virtqueue_add_one(dev->requestq, (uintptr_t)dev->buffer, chunk, true, dev->buffer) < 0) {
        return -1;
    }
    dev->requests++;
    virtqueue_kick(dev->requestq);
    if (!wait_used(dev)) {
        kprintf("virtio-rng: no answer in %d ms, device disabled\n", RNG_TIMEOUT_MS);
        dev->present = 0;
        virtio_fail(&dev->vdev);
        return -1;
    }
    uint32_t len = 0;
    virtqueue_pop(dev->requestq, &len);
    if (len > chunk) {
        len = chunk;
    }
    memcpy(buf, dev->buffer, len);
    dev->bytes_received += len;
    return len;
}

long virtio_rng_read(void *buf, size_t n) {
    if (!rng.present) {
        return -1;
    }
    size_t done = 0;
    int empty_answers = 0;
    while (done < n) {
        size_t chunk = n - done < RNG_BUFFER_SIZE ? n - done : RNG_BUFFER_SIZE;
        // Taken per request, with interrupts as the caller had them: a CPU spinning here
        // still takes the queue's interrupt for the CPU that holds the lock.
        smp_lock(&rng.lock);
        long got = rng.present ? read_chunk(&rng, (uint8_t *)buf + done, chunk) : -1;
        smp_unlock(&rng.lock);
        if (got < 0) {
            return -1;
        }
        if (got == 0 && ++empty_answers > 16) {
            kprintf("virtio-rng: the device returns no data, device disabled\n");
            rng.present = 0;
            return -1;
        }
        // The device may return fewer bytes than asked for (5.4.6.1); ask again for the rest.
        done += (size_t)got;
    }
    return (long)n;
}

void virtio_rng_stats(struct virtio_rng_stats *out) {
    *out = (struct virtio_rng_stats){ .vector = -1, .irq_mode = "none" };
    if (rng.requestq != NULL) {
        out->vector = rng.requestq->vector;
        out->irq_mode = virtio_irq_mode_name(&rng.vdev);
        out->interrupts = rng.requestq->interrupts;
        out->kicks = rng.requestq->kicks;
    }
    out->requests = rng.requests;
    out->bytes = rng.bytes_received;
}
