// The virtio-mmio transport (virtio 1.2, 4.2): register-block discovery from the ACPI DSDT
// or the command line, the status handshake, features, virtqueues and the one interrupt line
// per device (through the I/O APIC). See virtio_mmio.h; the calls are those of virtio.h.
// Version 2 devices (virtio 1.x) and legacy version 1 ones (4.2.4: GuestPageSize, QueuePFN
// and QueueAlign instead of the three queue addresses, 32 feature bits, no FEATURES_OK or
// ConfigGeneration), which is what QEMU makes unless told virtio-mmio.force-legacy=false.
#include "drivers/virtio/virtio_mmio.h"

#include <stdbool.h>
#include <stddef.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/irq.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/tsc.h"

// Register offsets of a version 2 device (4.2.2, Table "MMIO Device Register Layout").
enum {
    MMIO_MAGIC_VALUE = 0x000,
    MMIO_VERSION = 0x004,
    MMIO_DEVICE_ID = 0x008,
    MMIO_DEVICE_FEATURES = 0x010,
    MMIO_DEVICE_FEATURES_SEL = 0x014,
    MMIO_DRIVER_FEATURES = 0x020,
    MMIO_DRIVER_FEATURES_SEL = 0x024,
    MMIO_QUEUE_SEL = 0x030,
    MMIO_QUEUE_NUM_MAX = 0x034,
    MMIO_QUEUE_NUM = 0x038,
    MMIO_QUEUE_READY = 0x044,
    MMIO_QUEUE_NOTIFY = 0x050,
    MMIO_INTERRUPT_STATUS = 0x060,
    MMIO_INTERRUPT_ACK = 0x064,
    MMIO_STATUS = 0x070,
    MMIO_QUEUE_DESC_LOW = 0x080,
    MMIO_QUEUE_DESC_HIGH = 0x084,
    MMIO_QUEUE_DRIVER_LOW = 0x090,
    MMIO_QUEUE_DRIVER_HIGH = 0x094,
    MMIO_QUEUE_DEVICE_LOW = 0x0a0,
    MMIO_QUEUE_DEVICE_HIGH = 0x0a4,
    MMIO_CONFIG_GENERATION = 0x0fc,
    MMIO_CONFIG = 0x100,
    // Legacy (version 1) registers (4.2.4, Table "MMIO Device Legacy Register Layout").
    MMIO_LEGACY_GUEST_PAGE_SIZE = 0x028,
    MMIO_LEGACY_QUEUE_ALIGN = 0x03c,
    MMIO_LEGACY_QUEUE_PFN = 0x040,
};

enum {
    LEGACY_PAGE_SIZE = 4096,            // what we write to GuestPageSize; QueuePFN counts these
    LEGACY_QUEUE_ALIGN = 4096,          // the used ring's alignment (QueueAlign)
    // virtio-net's VIRTIO_NET_F_MRG_RXBUF (5.1.3): with it a legacy device's header is the
    // 12-byte one (num_buffers included) that virtio-net 1.x always uses (5.1.6.1).
    LEGACY_NET_F_MRG_RXBUF = 15,
};

enum {
    MMIO_MAGIC = 0x74726976,            // "virt", little-endian (4.2.2)
    MMIO_SLOT_MIN = 0x100,              // the registers, without device configuration
    MMIO_SLOT_MAX = 1 << 20,
    INTERRUPT_USED_BUFFER = 1,          // InterruptStatus bits (4.2.2)
    INTERRUPT_CONFIG_CHANGE = 2,
    GSI_MAX = 255,
    PHYS_LIMIT_BITS = 46,               // paging.c maps device memory below this
};

struct virtio_mmio_slot virtio_mmio_slots[VIRTIO_MMIO_MAX_DEVICES];
int virtio_mmio_slot_count;
static bool scanned;

extern const struct virtio_ops virtio_mmio_ops;

static uint32_t reg_read(const struct virtio_device *vdev, uint32_t offset) {
    return *(volatile uint32_t *)(vdev->mmio + offset);
}

// A version 1 device (4.2.4), told by its read-only Version register (4.2.2): the same
// functions serve both versions and branch on this.
static bool is_legacy(const struct virtio_device *vdev) {
    return reg_read(vdev, MMIO_VERSION) == 1;
}

static void reg_write(struct virtio_device *vdev, uint32_t offset, uint32_t value) {
    *(volatile uint32_t *)(vdev->mmio + offset) = value;
}

static uint8_t mmio_status(const struct virtio_device *vdev) {
    return (uint8_t)reg_read(vdev, MMIO_STATUS);
}

static void set_status(struct virtio_device *vdev, uint8_t bits) {
    reg_write(vdev, MMIO_STATUS, mmio_status(vdev) | bits);
}

static void mmio_reset(struct virtio_device *vdev) {
    reg_write(vdev, MMIO_STATUS, 0);
    // 4.2.3.1 / 2.4: the reset is done when Status reads back 0.
    uint64_t deadline = tsc_read() + tsc_hz;
    while (mmio_status(vdev) != 0 && tsc_read() < deadline) {
        __asm__ volatile ("pause");
    }
}

static void mmio_fail(struct virtio_device *vdev) {
    set_status(vdev, VIRTIO_STATUS_FAILED);
}

static void mmio_driver_ok(struct virtio_device *vdev) {
    set_status(vdev, VIRTIO_STATUS_DRIVER_OK);
}

// Legacy (4.2.4, 3.1.2): 32 feature bits, no VIRTIO_F_VERSION_1, no FEATURES_OK step.
static int legacy_negotiate(struct virtio_device *vdev, uint64_t wanted) {
    reg_write(vdev, MMIO_DEVICE_FEATURES_SEL, 0);
    uint32_t offered = reg_read(vdev, MMIO_DEVICE_FEATURES);
    vdev->device_features = offered;
    uint32_t accepted = offered & (uint32_t)wanted;
    if (vdev->type == VIRTIO_TYPE_NET) {
        // Without MRG_RXBUF a legacy net header is 10 bytes; the driver's is 12 (5.1.6.1).
        // Every buffer the driver posts holds a whole frame, so the device never merges.
        if (!(offered & (1u << LEGACY_NET_F_MRG_RXBUF))) {
            kprintf("virtio: %s: legacy virtio-net without MRG_RXBUF (a 10-byte header): "
                "not used\n", vdev->name);
            mmio_fail(vdev);
            return -1;
        }
        accepted |= 1u << LEGACY_NET_F_MRG_RXBUF;
    }
    reg_write(vdev, MMIO_DRIVER_FEATURES_SEL, 0);
    reg_write(vdev, MMIO_DRIVER_FEATURES, accepted);
    vdev->features = accepted;
    return 0;
}

static int mmio_negotiate(struct virtio_device *vdev, uint64_t wanted) {
    if (is_legacy(vdev)) {
        return legacy_negotiate(vdev, wanted);
    }
    reg_write(vdev, MMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t offered = reg_read(vdev, MMIO_DEVICE_FEATURES);
    reg_write(vdev, MMIO_DEVICE_FEATURES_SEL, 1);
    offered |= (uint64_t)reg_read(vdev, MMIO_DEVICE_FEATURES) << 32;
    vdev->device_features = offered;
    if (!(offered & VIRTIO_FEATURE(VIRTIO_F_VERSION_1))) {
        kprintf("virtio: %s does not offer VIRTIO_F_VERSION_1: not used\n", vdev->name);
        mmio_fail(vdev);
        return -1;
    }
    uint64_t accepted = offered & (wanted | VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
    reg_write(vdev, MMIO_DRIVER_FEATURES_SEL, 0);
    reg_write(vdev, MMIO_DRIVER_FEATURES, (uint32_t)accepted);
    reg_write(vdev, MMIO_DRIVER_FEATURES_SEL, 1);
    reg_write(vdev, MMIO_DRIVER_FEATURES, (uint32_t)(accepted >> 32));
    set_status(vdev, VIRTIO_STATUS_FEATURES_OK);    // 3.1.1 steps 5-6
    if (!(mmio_status(vdev) & VIRTIO_STATUS_FEATURES_OK)) {
        kprintf("virtio: %s refused the negotiated features\n", vdev->name);
        mmio_fail(vdev);
        return -1;
    }
    vdev->features = accepted;
    return 0;
}

// 4.2.3.3: the driver notifies by writing the queue index to QueueNotify.
static void notify_queue(struct virtqueue *vq) {
    *(volatile uint32_t *)vq->notify_address = vq->index;
}

// One line for everything: InterruptStatus says why, writing it to InterruptACK lowers the
// line (4.2.3.4, 4.2.3.5).
static void line_interrupt(void *context) {
    struct virtio_device *vdev = context;
    uint32_t status = reg_read(vdev, MMIO_INTERRUPT_STATUS);
    reg_write(vdev, MMIO_INTERRUPT_ACK, status);
    if (status & INTERRUPT_USED_BUFFER) {
        for (int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
            if (vdev->queues[i] != NULL) {
                virtqueue_interrupt(vdev->queues[i]);
            }
        }
    }
    if (status & INTERRUPT_CONFIG_CHANGE) {
        vdev->config_changes++;
        if (vdev->config_callback != NULL) {
            vdev->config_callback(vdev, vdev->config_context);
        }
    }
}

static int attach_line(struct virtio_device *vdev) {
    if (vdev->intx_vector < 0) {
        // QEMU's microvm declares the lines level-triggered, active high (its DSDT's
        // Interrupt descriptors); acknowledging in the handler lowers them.
        vdev->intx_vector = irq_route_gsi(vdev->mmio_gsi, true, false, line_interrupt, vdev,
            vdev->name);
        if (vdev->intx_vector < 0) {
            kprintf("virtio: %s: no I/O APIC route for GSI %u: polled only\n", vdev->name,
                vdev->mmio_gsi);
        }
    }
    return vdev->intx_vector;
}

static int mmio_set_config_callback(struct virtio_device *vdev,
    void (*callback)(struct virtio_device *vdev, void *context), void *context) {
    vdev->config_context = context;
    vdev->config_callback = callback;
    return attach_line(vdev) < 0 ? -1 : 0;
}

static struct virtqueue *mmio_setup_queue(struct virtio_device *vdev, uint16_t index,
    uint16_t max_size, virtqueue_callback_t callback, void *context) {
    if (index >= VIRTIO_MAX_QUEUES) {
        kprintf("virtio: %s: queue %u is beyond what the driver supports\n", vdev->name, index);
        mmio_fail(vdev);
        return NULL;
    }
    // 4.2.3.2: select the queue, check it is not in use, read QueueNumMax (0: no such queue).
    reg_write(vdev, MMIO_QUEUE_SEL, index);
    uint32_t size = reg_read(vdev, MMIO_QUEUE_NUM_MAX);
    bool legacy = is_legacy(vdev);
    // In use: QueueReady set, or (legacy, 4.2.4) a QueuePFN already given.
    if (size == 0 || reg_read(vdev, legacy ? MMIO_LEGACY_QUEUE_PFN : MMIO_QUEUE_READY) != 0) {
        kprintf("virtio: %s: queue %u unavailable\n", vdev->name, index);
        mmio_fail(vdev);
        return NULL;
    }
    size = virtqueue_choose_size(size, max_size);
    struct virtqueue *vq = vdev->queues[index];
    if (vq == NULL || vq->size != size) {
        vq = legacy ? virtqueue_create_legacy(index, (uint16_t)size, LEGACY_QUEUE_ALIGN)
                    : virtqueue_create(index, (uint16_t)size);
    } else {
        virtqueue_reset(vq);
    }
    if (vq == NULL) {
        kprintf("virtio: %s: out of DMA memory for a virtqueue\n", vdev->name);
        mmio_fail(vdev);
        return NULL;
    }
    vq->event_idx = virtio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
    vq->notify = notify_queue;
    vq->transport = vdev;
    vq->notify_address = (uintptr_t)(vdev->mmio + MMIO_QUEUE_NOTIFY);
    vq->callback = callback;
    vq->callback_context = context;
    vdev->queues[index] = vq;

    reg_write(vdev, MMIO_QUEUE_NUM, size);
    if (legacy) {
        // 4.2.4: QueueAlign, then the page number of the one contiguous block (2.7.2).
        reg_write(vdev, MMIO_LEGACY_QUEUE_ALIGN, LEGACY_QUEUE_ALIGN);
        reg_write(vdev, MMIO_LEGACY_QUEUE_PFN,
            (uint32_t)(virtqueue_desc_address(vq) / LEGACY_PAGE_SIZE));
        vq->vector = attach_line(vdev);
        return vq;
    }
    uint64_t desc = virtqueue_desc_address(vq);
    uint64_t avail = virtqueue_avail_address(vq);
    uint64_t used = virtqueue_used_address(vq);
    reg_write(vdev, MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
    reg_write(vdev, MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
    reg_write(vdev, MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
    reg_write(vdev, MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
    reg_write(vdev, MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
    reg_write(vdev, MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
    vq->vector = attach_line(vdev);
    reg_write(vdev, MMIO_QUEUE_READY, 1);
    return vq;
}

static int mmio_read_config(struct virtio_device *vdev, uint32_t offset, void *out,
    uint32_t len) {
    if ((uint64_t)offset + len > vdev->device_cfg_length) {
        return -1;
    }
    if (is_legacy(vdev)) {
        // A legacy device has no ConfigGeneration (4.2.4): read until a second read agrees.
        for (int tries = 0; tries < 8; tries++) {
            bool same = true;
            for (uint32_t i = 0; i < len; i++) {
                ((uint8_t *)out)[i] = vdev->mmio[MMIO_CONFIG + offset + i];
            }
            for (uint32_t i = 0; i < len; i++) {
                same = same && ((uint8_t *)out)[i] == vdev->mmio[MMIO_CONFIG + offset + i];
            }
            if (same) {
                break;
            }
        }
        return 0;
    }
    // 4.2.2: read under ConfigGeneration until it is the same before and after (2.5.1).
    uint32_t before, after;
    do {
        before = reg_read(vdev, MMIO_CONFIG_GENERATION);
        for (uint32_t i = 0; i < len; i++) {
            ((uint8_t *)out)[i] = vdev->mmio[MMIO_CONFIG + offset + i];
        }
        after = reg_read(vdev, MMIO_CONFIG_GENERATION);
    } while (before != after);
    return 0;
}

static void mmio_write_config8(struct virtio_device *vdev, uint32_t offset, uint8_t value) {
    if (offset < vdev->device_cfg_length) {
        vdev->mmio[MMIO_CONFIG + offset] = value;
    }
}

const struct virtio_ops virtio_mmio_ops = {
    .transport = "mmio",
    .negotiate = mmio_negotiate,
    .setup_queue = mmio_setup_queue,
    .set_config_callback = mmio_set_config_callback,
    .driver_ok = mmio_driver_ok,
    .fail = mmio_fail,
    .reset = mmio_reset,
    .status = mmio_status,
    .read_config = mmio_read_config,
    .write_config8 = mmio_write_config8,
};

// --- discovery -----------------------------------------------------------------------------

static bool overlaps(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) {
    return a < b + b_len && b < a + a_len;
}

static void add_slot(uint64_t phys, uint64_t size, uint32_t gsi, const char *source) {
    for (int i = 0; i < virtio_mmio_slot_count; i++) {
        const struct virtio_mmio_slot *s = &virtio_mmio_slots[i];
        if (s->phys == phys && s->size == size && s->gsi == gsi) {
            return;     // the same transport named twice (DSDT and command line)
        }
        if (overlaps(phys, size, s->phys, s->size)) {
            kprintf("virtio-mmio: %s 0x%lx+0x%lx overlaps the device at 0x%lx: skipped\n",
                source, (unsigned long)phys, (unsigned long)size, (unsigned long)s->phys);
            return;
        }
    }
    if (size < MMIO_SLOT_MIN || size > MMIO_SLOT_MAX) {
        kprintf("virtio-mmio: %s 0x%lx: size 0x%lx is not a device's (0x%x..0x%x): skipped\n",
            source, (unsigned long)phys, (unsigned long)size, MMIO_SLOT_MIN, MMIO_SLOT_MAX);
        return;
    }
    if (phys >= (1ull << PHYS_LIMIT_BITS) || size > (1ull << PHYS_LIMIT_BITS) - phys) {
        kprintf("virtio-mmio: %s 0x%lx+0x%lx is beyond the physical address space: skipped\n",
            source, (unsigned long)phys, (unsigned long)size);
        return;
    }
    if (gsi > GSI_MAX) {
        kprintf("virtio-mmio: %s 0x%lx: interrupt %u does not exist: skipped\n", source,
            (unsigned long)phys, gsi);
        return;
    }
    for (int i = 0; i < boot_info.mem_count; i++) {
        const struct boot_mem_region *r = &boot_info.mem[i];
        if (r->type != BOOT_MEM_RESERVED && overlaps(phys, size, r->base, r->length)) {
            kprintf("virtio-mmio: %s 0x%lx+0x%lx overlaps RAM at 0x%lx+0x%lx: skipped\n",
                source, (unsigned long)phys, (unsigned long)size, (unsigned long)r->base,
                (unsigned long)r->length);
            return;
        }
    }
    if (virtio_mmio_slot_count >= VIRTIO_MMIO_MAX_DEVICES) {
        kprintf("virtio-mmio: more than %d devices: 0x%lx skipped\n", VIRTIO_MMIO_MAX_DEVICES,
            (unsigned long)phys);
        return;
    }
    volatile uint8_t *regs = paging_map_mmio(phys, size);
    uint32_t magic = *(volatile uint32_t *)(regs + MMIO_MAGIC_VALUE);
    if (magic != MMIO_MAGIC) {
        kprintf("virtio-mmio: %s 0x%lx: no virtio device there (magic 0x%08x): skipped\n",
            source, (unsigned long)phys, magic);
        return;
    }
    uint32_t version = *(volatile uint32_t *)(regs + MMIO_VERSION);
    uint32_t type = *(volatile uint32_t *)(regs + MMIO_DEVICE_ID);
    if (version != 1 && version != 2) {
        // 2: virtio 1.x (4.2.2); 1: legacy (4.2.4), what QEMU makes unless told
        // -global virtio-mmio.force-legacy=false.
        kprintf("virtio-mmio: %s 0x%lx: version %u (1, legacy, or 2 expected): skipped\n",
            source, (unsigned long)phys, version);
        return;
    }
    struct virtio_mmio_slot *s = &virtio_mmio_slots[virtio_mmio_slot_count++];
    *s = (struct virtio_mmio_slot){
        .phys = phys, .size = (uint32_t)size, .gsi = gsi, .type = (uint16_t)type,
        .version = (uint8_t)version, .source = source,
    };
    if (type != 0) {    // 0: an empty transport (QEMU's microvm has a row of them)
        kprintf("virtio-mmio: 0x%lx irq %u device type %u (%s%s)\n", (unsigned long)phys, gsi,
            type, source, version == 1 ? ", legacy" : "");
    }
}

// QEMU's microvm DSDT (hw/i386/acpi-microvm.c) describes each transport as
//   Device (VRnn) { Name (_HID, "LNRO0005") ... Name (_CRS, ResourceTemplate () {
//     Memory32Fixed (ReadWrite, base, size)  Interrupt (..., Level, ActiveHigh, ...) {gsi} }) }
// Like find_s5 in acpi.c this matches the encoding (ACPI 6.5, 20.2 and 6.4.3) instead of
// running AML: the _HID string, then the first Memory32Fixed (tag 0x86, length 9) and
// Extended Interrupt (tag 0x89) descriptors before the next device's _HID.
static void scan_dsdt(void) {
    if (acpi_info.dsdt_address == 0) {
        return;
    }
    const uint8_t *table = (const uint8_t *)(uintptr_t)acpi_info.dsdt_address;
    uint32_t length = acpi_get_u32(table + 4);
    if (length < 36 || length > (1u << 20)) {
        return;
    }
    static const char hid[] = "\x0dLNRO0005";  // StringPrefix, then the string
    const size_t hid_len = sizeof(hid) - 1;
    for (uint32_t i = 36; i + hid_len <= length; i++) {
        size_t k = 0;
        while (k < hid_len && table[i + k] == (uint8_t)hid[k]) {
            k++;
        }
        if (k != hid_len) {
            continue;
        }
        uint64_t base = 0, size = 0;
        uint32_t gsi = 0;
        bool have_mem = false, have_irq = false;
        for (uint32_t j = i + hid_len; j + 9 <= length && j < i + 256; j++) {
            if (j > i + hid_len && table[j] == 0x0d && j + hid_len <= length &&
                table[j + 1] == 'L' && table[j + 2] == 'N' && table[j + 3] == 'R') {
                break;      // the next device
            }
            if (!have_mem && table[j] == 0x86 && table[j + 1] == 0x09 && table[j + 2] == 0x00 &&
                j + 12 <= length) {
                base = acpi_get_u32(table + j + 4);
                size = acpi_get_u32(table + j + 8);
                have_mem = true;
            } else if (!have_irq && table[j] == 0x89 && table[j + 2] == 0x00 &&
                       table[j + 1] >= 6 && j + 9 <= length && table[j + 4] >= 1) {
                gsi = acpi_get_u32(table + j + 5);
                have_irq = true;
            }
            if (have_mem && have_irq) {
                add_slot(base, size, gsi, "acpi");
                break;
            }
        }
        i += (uint32_t)hid_len - 1;
    }
}

static int parse_number(const char **p, uint64_t *out) {
    const char *s = *p;
    uint64_t v = 0;
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    const char *start = s;
    for (;; s++) {
        int d;
        if (*s >= '0' && *s <= '9') {
            d = *s - '0';
        } else if (base == 16 && *s >= 'a' && *s <= 'f') {
            d = *s - 'a' + 10;
        } else if (base == 16 && *s >= 'A' && *s <= 'F') {
            d = *s - 'A' + 10;
        } else {
            break;
        }
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) {
            return -1;      // overflow
        }
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (s == start) {
        return -1;
    }
    *p = s;
    *out = v;
    return 0;
}

int virtio_mmio_parse_word(const char *value, uint64_t *phys, uint64_t *size, uint32_t *irq,
    const char **why) {
    const char *p = value;
    uint64_t n;
    if (parse_number(&p, size) != 0) {
        *why = "expected SIZE@ADDR:IRQ";
        return -1;
    }
    int shift = *p == 'K' || *p == 'k' ? 10 : *p == 'M' || *p == 'm' ? 20 :
        *p == 'G' || *p == 'g' ? 30 : 0;
    if (shift) {
        p++;
        if (*size > (UINT64_MAX >> shift)) {
            *why = "size too large";
            return -1;
        }
        *size <<= shift;
    }
    if (*p++ != '@' || parse_number(&p, phys) != 0) {
        *why = "expected SIZE@ADDR:IRQ";
        return -1;
    }
    if (*p++ != ':' || parse_number(&p, &n) != 0 || n > UINT32_MAX) {
        *why = "expected :IRQ after the address";
        return -1;
    }
    *irq = (uint32_t)n;
    if (*p == ':') {        // an optional platform device id (Linux); not needed here
        p++;
        if (parse_number(&p, &n) != 0) {
            *why = "bad device id after the IRQ";
            return -1;
        }
    }
    if (*p != '\0' && *p != ' ') {
        *why = "trailing characters";
        return -1;
    }
    return 0;
}

// The loader's command line, not the fw_cfg override that may have replaced it (an app
// started with `-fw_cfg opt/manticore/cmdline` must not lose QEMU microvm's device words).
static void scan_cmdline(void) {
    static const char key[] = "virtio_mmio.device=";
    const char *p = boot_info.loader_cmdline;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        const char *word = p;
        while (*p && *p != ' ') {
            p++;
        }
        size_t k = 0;
        while (k < sizeof(key) - 1 && word + k < p && word[k] == key[k]) {
            k++;
        }
        if (k != sizeof(key) - 1) {
            continue;
        }
        uint64_t phys, size;
        uint32_t irq;
        const char *why = NULL;
        if (virtio_mmio_parse_word(word + k, &phys, &size, &irq, &why) != 0) {
            // kprintf has no %.*s: copy the word out to print it.
            char text[64];
            size_t n = (size_t)(p - word);
            if (n > sizeof(text) - 1) {
                n = sizeof(text) - 1;
            }
            for (size_t c = 0; c < n; c++) {
                text[c] = word[c];
            }
            text[n] = '\0';
            kprintf("virtio-mmio: '%s': %s: skipped\n", text, why);
            continue;
        }
        add_slot(phys, size, irq, "cmdline");
    }
}

int virtio_mmio_scan(void) {
    if (!scanned) {
        scanned = true;
        scan_dsdt();
        scan_cmdline();
    }
    return virtio_mmio_slot_count;
}

int virtio_mmio_find(struct virtio_device *vdev, uint16_t type, int nth) {
    virtio_mmio_scan();
    for (int i = 0; i < virtio_mmio_slot_count; i++) {
        struct virtio_mmio_slot *s = &virtio_mmio_slots[i];
        // nth counts every device of the type, bound or not, as the PCI side does: the
        // drivers' probes ask for nth = 0, 1, 2, ... in turn (counting only unbound ones
        // skipped every second device).
        if (s->type != type || nth-- != 0) {
            continue;
        }
        if (s->claimed) {
            return -1;      // a driver has it already
        }
        *vdev = (struct virtio_device){
            .ops = &virtio_mmio_ops, .mmio = (volatile uint8_t *)(uintptr_t)s->phys,
            .mmio_phys = s->phys, .mmio_gsi = s->gsi, .type = type, .config_vector = -1,
            .intx_vector = -1, .device_cfg_length = s->size - MMIO_CONFIG,
        };
        ksnprintf(vdev->name, sizeof(vdev->name), "mmio@0x%lx", (unsigned long)s->phys);
        s->claimed = 1;
        // 3.1.1: reset, ACKNOWLEDGE, DRIVER; virtqueues are counted by QueueNumMax per queue.
        mmio_reset(vdev);
        set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE);
        set_status(vdev, VIRTIO_STATUS_DRIVER);
        if (s->version == 1) {
            // 4.2.4: the page size QueuePFN counts in, before any queue is set up.
            reg_write(vdev, MMIO_LEGACY_GUEST_PAGE_SIZE, LEGACY_PAGE_SIZE);
        }
        vdev->num_queues = VIRTIO_MAX_QUEUES;
        return 0;
    }
    return -1;
}
