// The _nic module: the virtio-net driver as seen from Python, per NIC and per queue pair.
// Counters, MAC and link state for everyone; for an app that acquires a queue pair, the raw
// queues (the parakernel path): received frames as memoryviews over the DMA buffers, one at a
// time or in batches, transmission from DMA buffers (one notification per batch), transmit in
// place from a received buffer, interrupts suppressed while the app is busy (EVENT_IDX) or off
// altogether (busy-poll mode), and a callback for RX/TX/link events through the soft IRQ
// bridge. lwIP does not see a pair's RX queue while the pair is acquired (nic.h).
//
//   >>> import _nic
//   >>> q = _nic.queue(0, 1)               # eth0.q1; _nic.queue() is eth0.q0
//   >>> q.acquire(); q.on_rx(print)
//   >>> for frame, id in q.recv_batch(32): ...   # zero copy; [] when nothing is pending
//   >>> q.tx_inplace(id, len(frame))       # reply from the RX buffer; back to RX after TX
//   >>> q.release_queue()                  # every buffer goes back (counted)
//
// The module-level functions (acquire, recv, send, ...) act on eth0.q0, as before.
//
// State that the interrupt path and a queue's holder share is in struct nic_raw, one per
// queue pair, in C (not in Python objects), shared by every CPU's interpreter. A pair's rings
// are touched only on one CPU at a time: its holder's once acquired (the pair's interrupts
// are steered there), else the CPU its interrupts go to (lwIP's, CPU 0). Every call that
// touches them checks that; acquiring is one atomic claim (raw_lock); counters may be read
// from anywhere.
#include <string.h>

#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/objarray.h"
#include "py/objlist.h"
#include "py/runtime.h"
#include "py/smallint.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/smp.h"
#include "drivers/net/netpkt.h"
#include "drivers/virtio/virtio_net.h"
#include "ports/manticore/nic.h"
#include "ports/manticore/softirq.h"

#define NIC_RAW_MAX (VIRTIO_NET_MAX_DEVICES * VIRTIO_NET_MAX_PAIRS)
_Static_assert(NIC_RAW_MAX == 32, "nic_callbacks[] below has 32 entries");
enum { RX_IDS = VIRTIO_NET_RX_BUFFERS_MAX, TX_SLOTS = VIRTIO_NET_TX_BUFFERS_MAX };

struct nic_raw {
    struct virtio_net_queue *q;
    bool acquired;
    bool claiming;                      // an acquire() in progress (under raw_lock)
    bool poll_mode;                     // no RX interrupts: the app busy-polls
    bool callback_queued;
    uint16_t hold_limit;                // RX buffers the app may hold (incl. in-place TX)
    uint16_t held_count;
    uint32_t held[RX_IDS / 32];         // RX buffer ids the app holds
    void *tx_held[TX_SLOTS];            // TX buffers handed out by tx_buffer()
    void (*saved_notify)(void *context, unsigned events);
    void *saved_context;
    unsigned saved_cpu;                 // where the pair's interrupts went before acquire
    unsigned holder_cpu;                // the CPU of the app that acquired it (its interpreter)
    volatile unsigned events;           // NET_EVENT_* since the last callback
    volatile mp_uint_t rx_irq_us;       // ticks_us of the last RX interrupt
    uint64_t returned_rx, returned_tx;  // buffers given back at the last release
    uint64_t hold_refused;              // recv refused because hold_limit was reached
    uint64_t echo_cycles, echo_frames;  // TSC cycles inside echo_batch, frames echoed there
};

static struct nic_raw raws[NIC_RAW_MAX];
static smp_spinlock_t raw_lock;         // acquire()'s claim: acquired/claiming of every pair

MP_REGISTER_ROOT_POINTER(mp_obj_t nic_callbacks[32]);

static inline unsigned raw_index(const struct nic_raw *r) {
    return (unsigned)(r - raws);
}

static struct nic_raw *raw_of(const struct virtio_net_queue *q) {
    if (q == NULL) {
        return NULL;
    }
    return &raws[q->nic->index * VIRTIO_NET_MAX_PAIRS + q->pair];
}

bool nic_raw_acquired(const struct virtio_net_queue *q) {
    struct nic_raw *r = raw_of(q);
    return r != NULL && r->acquired;
}

static bool is_held(struct nic_raw *r, unsigned id) {
    return id < RX_IDS && (r->held[id / 32] >> (id % 32)) & 1;
}

static void set_held(struct nic_raw *r, unsigned id, bool on) {
    if (on) {
        r->held[id / 32] |= 1u << (id % 32);
        r->held_count++;
    } else {
        r->held[id / 32] &= ~(1u << (id % 32));
        r->held_count--;
    }
}

// Hard IRQ context while acquired: remember the events, run the rest as a soft IRQ.
static void raw_notify(void *context, unsigned events) {
    struct nic_raw *r = context;
    if (events & NET_EVENT_RX) {
        r->rx_irq_us = mp_hal_ticks_us();
    }
    __atomic_fetch_or(&r->events, events, __ATOMIC_RELEASE);   // link events come on CPU 0
    softirq_raise(SOFTIRQ_NIC_RAW);
}

// Python time, from the scheduler: one call of the app's callback with the events collected
// since the last one (at most one is queued at a time per queue pair).
static mp_obj_t raw_dispatch(mp_obj_t index_in) {
    struct nic_raw *r = &raws[MP_OBJ_SMALL_INT_VALUE(index_in)];
    r->callback_queued = false;
    unsigned events = __atomic_exchange_n(&r->events, 0, __ATOMIC_ACQ_REL);
    mp_obj_t callback = MP_STATE_VM(nic_callbacks)[raw_index(r)];
    if (r->acquired && events != 0 && callback != MP_OBJ_NULL && callback != mp_const_none) {
        mp_call_function_1(callback, MP_OBJ_NEW_SMALL_INT(events));
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(raw_dispatch_obj, raw_dispatch);

static void raw_softirq(void *context) {
    (void)context;
    for (unsigned i = 0; i < NIC_RAW_MAX; i++) {
        struct nic_raw *r = &raws[i];
        mp_obj_t callback = MP_STATE_VM(nic_callbacks)[i];
        // Only pairs held on this CPU: their callbacks live in this CPU's interpreter.
        if (!r->acquired || r->holder_cpu != smp_cpu_id() || r->events == 0
            || callback == MP_OBJ_NULL || callback == mp_const_none || r->callback_queued) {
            continue;
        }
        if (mp_sched_schedule(MP_OBJ_FROM_PTR(&raw_dispatch_obj), MP_OBJ_NEW_SMALL_INT(i))) {
            r->callback_queued = true;
        }
    }
}

// Give the pair back to lwIP (or to nobody): every RX buffer the app holds goes back to the
// ring and every TX buffer to the free list, counted in returned_rx / returned_tx.
static void raw_release(struct nic_raw *r) {
    if (!r->acquired) {
        return;
    }
    struct virtio_net_queue *q = r->q;
    r->returned_rx = r->returned_tx = 0;
    virtio_net_tx_reclaim(q);   // in-place replies the device has sent go back to RX
    for (unsigned id = 0; id < RX_IDS; id++) {
        if (is_held(r, id)) {
            set_held(r, id, false);
            virtio_net_rx_release(q, (uint16_t)id);
            r->returned_rx++;
        }
    }
    virtio_net_rx_flush(q);
    for (unsigned i = 0; i < TX_SLOTS; i++) {
        if (r->tx_held[i] != NULL) {
            virtio_net_tx_free(q, r->tx_held[i]);
            r->tx_held[i] = NULL;
            r->returned_tx++;
        }
    }
    MP_STATE_VM(nic_callbacks)[raw_index(r)] = MP_OBJ_NULL;
    r->callback_queued = false;
    r->acquired = false;
    if (r->poll_mode) {
        r->poll_mode = false;
        virtio_net_rx_interrupts_on(q);
    }
    virtio_net_set_notify(q, r->saved_notify, r->saved_context);
    if (q->cpu != r->saved_cpu) {
        virtio_net_set_cpu(q, r->saved_cpu);
    }
    // lwIP may have missed frames while the app owned the queue: let it look.
    if (r->saved_notify != NULL) {
        r->saved_notify(r->saved_context, NET_EVENT_RX | NET_EVENT_TX | NET_EVENT_LINK);
    }
}

// A soft reset on this CPU: the pairs its apps held go back; other CPUs' stay theirs.
void nic_raw_release(void) {
    for (unsigned i = 0; i < NIC_RAW_MAX; i++) {
        if (raws[i].acquired && raws[i].holder_cpu == smp_cpu_id()) {
            raw_release(&raws[i]);
        }
        MP_STATE_VM(nic_callbacks)[i] = MP_OBJ_NULL;
    }
}

// For calls that are harmless on a free pair but, on an acquired one, touch what only its
// holder may (its held buffers, its TX ring): the holder's CPU is the one its interrupts reach.
static void require_not_elsewhere(struct nic_raw *r) {
    if (r->acquired && r->holder_cpu != smp_cpu_id()) {
        mp_raise_msg_varg(&mp_type_OSError, MP_ERROR_TEXT("queue held by CPU %u"), r->holder_cpu);
    }
}

// Calls that touch the pair's rings: acquired, and on the holder's CPU.
static void require_acquired(struct nic_raw *r) {
    if (!r->acquired) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("queue not acquired: call acquire()"));
    }
    require_not_elsewhere(r);
}

// --- queue objects ---------------------------------------------------------------------------

typedef struct _nic_queue_obj_t {
    mp_obj_base_t base;
    struct nic_raw *raw;
} nic_queue_obj_t;

static const mp_obj_type_t nic_queue_type;

static struct nic_raw *raw_for(unsigned nic, unsigned pair) {
    struct virtio_net_queue *q = virtio_net_queue(nic, pair);
    if (q == NULL) {
        mp_raise_OSError(MP_ENODEV);
    }
    struct nic_raw *r = raw_of(q);
    r->q = q;
    if (r->hold_limit == 0) {
        // The app may hold half the ring (recv'd, or sent in place and not yet completed):
        // the device always keeps the other half, so one slow app cannot starve its RX ring.
        r->hold_limit = q->rx_count / 2;
    }
    return r;
}

static struct nic_raw *self_raw(mp_obj_t self_in) {
    nic_queue_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return self->raw;
}

// _nic.queue(nic=0, pair=0): the queue pair object (OSError ENODEV if there is none).
static mp_obj_t nic_queue_make(size_t n_args, const mp_obj_t *args) {
    mp_int_t nic = n_args > 0 ? mp_obj_get_int(args[0]) : 0;
    mp_int_t pair = n_args > 1 ? mp_obj_get_int(args[1]) : 0;
    if (nic < 0 || pair < 0) {
        mp_raise_OSError(MP_ENODEV);
    }
    nic_queue_obj_t *o = mp_obj_malloc(nic_queue_obj_t, &nic_queue_type);
    o->raw = raw_for((unsigned)nic, (unsigned)pair);
    return MP_OBJ_FROM_PTR(o);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(nic_queue_make_obj, 0, 2, nic_queue_make);

static mp_obj_t default_queue(void) {
    return nic_queue_make(0, NULL);
}

static void store(mp_obj_t dict, qstr key, uint64_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(key), mp_obj_new_int_from_ull(value));
}

static mp_obj_t q_stats(mp_obj_t self_in) {
    struct nic_raw *r = self_raw(self_in);
    struct virtio_net_stats s;
    virtio_net_get_stats(r->q, &s);
    mp_obj_t d = mp_obj_new_dict(32);
    store(d, MP_QSTR_rx_frames, s.rx_frames);
    store(d, MP_QSTR_rx_bytes, s.rx_bytes);
    store(d, MP_QSTR_tx_frames, s.tx_frames);
    store(d, MP_QSTR_tx_bytes, s.tx_bytes);
    store(d, MP_QSTR_rx_dropped_malformed, s.rx_dropped_malformed);
    store(d, MP_QSTR_rx_dropped_no_buffer, s.rx_dropped_no_buffer);
    store(d, MP_QSTR_tx_busy, s.tx_busy);
    store(d, MP_QSTR_link_changes, s.link_changes);
    store(d, MP_QSTR_rx_buffers_total, s.rx_buffers_total);
    store(d, MP_QSTR_rx_buffers_free_in_ring, s.rx_buffers_free_in_ring);
    store(d, MP_QSTR_rx_buffers_held, s.rx_buffers_held);
    store(d, MP_QSTR_tx_buffers_total, s.tx_buffers_total);
    store(d, MP_QSTR_tx_buffers_free, s.tx_buffers_free);
    store(d, MP_QSTR_tx_in_flight, s.tx_in_flight);
    store(d, MP_QSTR_tx_inplace_in_flight, s.tx_inplace_in_flight);
    store(d, MP_QSTR_tx_inplace, s.tx_inplace);
    store(d, MP_QSTR_rx_interrupts, s.rx_interrupts);
    store(d, MP_QSTR_tx_interrupts, s.tx_interrupts);
    store(d, MP_QSTR_config_interrupts, s.config_interrupts);
    store(d, MP_QSTR_rx_kicks, s.rx_kicks);
    store(d, MP_QSTR_tx_kicks, s.tx_kicks);
    store(d, MP_QSTR_rx_release_invalid, s.rx_release_invalid);
    store(d, MP_QSTR_app_held, r->held_count);
    store(d, MP_QSTR_hold_limit, r->hold_limit);
    store(d, MP_QSTR_hold_refused, r->hold_refused);
    store(d, MP_QSTR_echo_cycles, r->echo_cycles);
    store(d, MP_QSTR_echo_frames, r->echo_frames);
    store(d, MP_QSTR_returned_rx, r->returned_rx);
    store(d, MP_QSTR_returned_tx, r->returned_tx);
    store(d, MP_QSTR_vector_rx, (uint64_t)(int64_t)r->q->rxq->vector);
    store(d, MP_QSTR_vector_tx, (uint64_t)(int64_t)r->q->txq->vector);
    store(d, MP_QSTR_cpu, r->q->cpu);
    store(d, MP_QSTR_poll, r->poll_mode);
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_owner),
        MP_OBJ_NEW_QSTR(r->acquired ? MP_QSTR_raw
            : (r->q->notify_callback != NULL ? MP_QSTR_lwip : MP_QSTR_none)));
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_stats_obj, q_stats);

static mp_obj_t q_mac(mp_obj_t self_in) {
    return mp_obj_new_bytes(self_raw(self_in)->q->nic->mac, 6);
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_mac_obj, q_mac);

static mp_obj_t q_link(mp_obj_t self_in) {
    return mp_obj_new_bool(virtio_net_link_up(self_raw(self_in)->q->nic));
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_link_obj, q_link);

// q.acquire(): take the pair's queues from lwIP (or from nobody). OSError(EBUSY) if held.
static mp_obj_t q_acquire(mp_obj_t self_in) {
    struct nic_raw *r = self_raw(self_in);
    // One claim at a time: two CPUs asking at once must not both get the pair.
    smp_lock(&raw_lock);
    bool free = !r->acquired && !r->claiming;
    if (free) {
        r->claiming = true;
    }
    smp_unlock(&raw_lock);
    if (!free) {
        mp_raise_OSError(MP_EBUSY);
    }
    // The pair's interrupts go to the CPU of the app that acquires it: its soft IRQ and
    // callback run there. A transport that cannot steer them (INTx, or virtio-mmio's I/O APIC
    // line) leaves them where they are, and then only that CPU can hold the pair.
    unsigned here = smp_cpu_id();
    unsigned before = r->q->cpu;
    if (before != here && virtio_net_set_cpu(r->q, here) != 0) {
        r->claiming = false;
        mp_raise_msg_varg(&mp_type_OSError,
            MP_ERROR_TEXT("the queue's interrupts cannot be steered to CPU %u: acquire it on CPU %u"),
            here, before);
    }
    r->saved_cpu = before;
    virtio_net_get_notify(r->q, &r->saved_notify, &r->saved_context);
    r->events = 0;
    r->callback_queued = false;
    r->poll_mode = false;
    r->hold_refused = 0;
    r->echo_cycles = r->echo_frames = 0;
    softirq_register(SOFTIRQ_NIC_RAW, raw_softirq, NULL, "nic-raw");
    r->holder_cpu = here;
    r->acquired = true;
    r->claiming = false;
    virtio_net_set_notify(r->q, raw_notify, r);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_acquire_obj, q_acquire);

// q.release_queue(): give the pair back; returns (rx, tx): the buffers that went back with it.
static mp_obj_t q_release_queue(mp_obj_t self_in) {
    struct nic_raw *r = self_raw(self_in);
    require_not_elsewhere(r);
    bool was = r->acquired;
    raw_release(r);
    if (!was) {
        return mp_const_none;
    }
    mp_obj_t t[2] = { mp_obj_new_int_from_ull(r->returned_rx), mp_obj_new_int_from_ull(r->returned_tx) };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_release_queue_obj, q_release_queue);

static mp_obj_t q_acquired(mp_obj_t self_in) {
    return mp_obj_new_bool(self_raw(self_in)->acquired);
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_acquired_obj, q_acquired);

// q.on_rx(callback or None): callback(events) runs in Python time, soon after an RX (1),
// TX-space (2) or link (4) interrupt, while acquired. It should drain recv() until None:
// the next RX interrupt comes only after the ring was found empty (EVENT_IDX, 2.7.7.2).
static mp_obj_t q_on_rx(mp_obj_t self_in, mp_obj_t callback) {
    struct nic_raw *r = self_raw(self_in);
    if (callback != mp_const_none && !mp_obj_is_callable(callback)) {
        mp_raise_TypeError(MP_ERROR_TEXT("callback must be callable or None"));
    }
    require_not_elsewhere(r);   // an acquired pair's callback runs in its holder's interpreter
    MP_STATE_VM(nic_callbacks)[raw_index(r)] = callback;
    if (r->acquired && callback != mp_const_none) {
        __atomic_fetch_or(&r->events, NET_EVENT_RX, __ATOMIC_RELEASE);   // frames may be waiting
        softirq_raise(SOFTIRQ_NIC_RAW);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(q_on_rx_obj, q_on_rx);

// q.poll(on): busy-poll mode: no RX interrupts on this pair at all (for an app that owns its
// core and calls recv/recv_batch in a loop). poll(False) re-arms them.
static mp_obj_t q_poll(mp_obj_t self_in, mp_obj_t on_in) {
    struct nic_raw *r = self_raw(self_in);
    require_acquired(r);
    r->poll_mode = mp_obj_is_true(on_in);
    if (r->poll_mode) {
        virtio_net_rx_interrupts_off(r->q);
    } else if (virtio_net_rx_interrupts_on(r->q)) {
        __atomic_fetch_or(&r->events, NET_EVENT_RX, __ATOMIC_RELEASE);
        softirq_raise(SOFTIRQ_NIC_RAW);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(q_poll_obj, q_poll);

static mp_obj_t q_rx_irq_us(mp_obj_t self_in) {
    return MP_OBJ_NEW_SMALL_INT(self_raw(self_in)->rx_irq_us & (MICROPY_PY_TIME_TICKS_PERIOD - 1));
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_rx_irq_us_obj, q_rx_irq_us);

// --- receive ---------------------------------------------------------------------------------

static bool raw_take(struct nic_raw *r, struct net_frame *frame) {
    if (r->held_count + r->q->stats.tx_inplace_in_flight >= r->hold_limit) {
        virtio_net_tx_reclaim(r->q);
    }
    if (r->held_count + r->q->stats.tx_inplace_in_flight >= r->hold_limit) {
        r->hold_refused++;
        return false;
    }
    bool got = r->poll_mode ? virtio_net_rx_poll_quiet(r->q, frame) : virtio_net_rx_poll(r->q, frame);
    if (got) {
        set_held(r, frame->buffer_id, true);
    }
    return got;
}

static mp_obj_t frame_tuple(const struct net_frame *frame) {
    mp_obj_t t[2] = {
        mp_obj_new_memoryview('B' | MP_OBJ_ARRAY_TYPECODE_FLAG_RW, frame->len, frame->data),
        MP_OBJ_NEW_SMALL_INT(frame->buffer_id),
    };
    return mp_obj_new_tuple(2, t);
}

// q.recv(): (memoryview of the Ethernet frame in its DMA buffer, buffer id), or None (nothing
// pending, or hold_limit buffers held already). Valid until release(id) or tx_inplace(id).
static mp_obj_t q_recv(mp_obj_t self_in) {
    struct nic_raw *r = self_raw(self_in);
    require_acquired(r);
    struct net_frame frame;
    if (!raw_take(r, &frame)) {
        return mp_const_none;
    }
    return frame_tuple(&frame);
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_recv_obj, q_recv);

// q.recv_batch(max): a list of up to `max` (memoryview, id) frames, [] when none is pending.
static mp_obj_t q_recv_batch(mp_obj_t self_in, mp_obj_t max_in) {
    struct nic_raw *r = self_raw(self_in);
    require_acquired(r);
    mp_int_t max = mp_obj_get_int(max_in);
    mp_obj_t list = mp_obj_new_list(0, NULL);
    struct net_frame frame;
    while (max-- > 0 && raw_take(r, &frame)) {
        mp_obj_list_append(list, frame_tuple(&frame));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_2(q_recv_batch_obj, q_recv_batch);

static unsigned held_id(struct nic_raw *r, mp_obj_t id_in) {
    mp_int_t id = mp_obj_get_int(id_in);
    if (id < 0 || !is_held(r, (unsigned)id)) {
        mp_raise_ValueError(MP_ERROR_TEXT("not a held RX buffer id"));
    }
    return (unsigned)id;
}

// q.release(id): the frame's buffer goes back to the RX ring.
static mp_obj_t q_release(mp_obj_t self_in, mp_obj_t id_in) {
    struct nic_raw *r = self_raw(self_in);
    require_not_elsewhere(r);
    unsigned id = held_id(r, id_in);
    set_held(r, id, false);
    virtio_net_rx_release(r->q, (uint16_t)id);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(q_release_obj, q_release);

// q.tx_inplace(id, length, kick=True): transmit `length` bytes of held RX buffer `id` as they
// are (reply in place). The buffer stays counted against hold_limit until the device has
// sent it, then goes back to the RX ring by itself. kick=False batches: see tx_kick().
static mp_obj_t q_tx_inplace(size_t n_args, const mp_obj_t *args) {
    struct nic_raw *r = self_raw(args[0]);
    require_acquired(r);
    unsigned id = held_id(r, args[1]);
    mp_int_t len = mp_obj_get_int(args[2]);
    bool kick = n_args < 4 || mp_obj_is_true(args[3]);
    if (len < 14 || len > VIRTIO_NET_TX_MTU) {
        mp_raise_ValueError(MP_ERROR_TEXT("frame length out of range"));
    }
    if (virtio_net_tx_inplace(r->q, (uint16_t)id, (uint16_t)len, kick) != 0) {
        mp_raise_OSError(MP_EAGAIN);   // TX ring full: the buffer stays held
    }
    set_held(r, id, false);    // the driver returns it to the RX ring after TX completion
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(q_tx_inplace_obj, 3, 4, q_tx_inplace);

// q.echo_batch(max, ip, port): the whole UDP echo fast path in C for up to `max` frames:
// every IPv4/UDP datagram to ip:port (port 0: any) is answered in place (netpkt_udp_echo:
// addresses and ports swapped, checksums unchanged), one TX notification for the batch.
// Other frames are returned as a list of (memoryview, id) for the app to handle. Returns
// (echoed, others).
static mp_obj_t q_echo_batch(size_t n_args, const mp_obj_t *args) {
    struct nic_raw *r = self_raw(args[0]);
    require_acquired(r);
    mp_int_t max = mp_obj_get_int(args[1]);
    mp_buffer_info_t ip;
    mp_get_buffer_raise(args[2], &ip, MP_BUFFER_READ);
    if (ip.len != 4) {
        mp_raise_ValueError(MP_ERROR_TEXT("ip must be 4 bytes"));
    }
    mp_int_t port = mp_obj_get_int(args[3]);
    const uint8_t *mac = r->q->nic->mac;
    mp_obj_t others = mp_const_none;
    mp_int_t echoed = 0;
    uint64_t t0 = rdtsc();
    struct net_frame frame;
    while (max-- > 0 && raw_take(r, &frame)) {
        // Shorter than the minimum Ethernet frame: pad in the buffer (there is room).
        unsigned out = frame.len < 60 ? 60 : frame.len;
        if (netpkt_udp_echo(frame.data, frame.len, mac, ip.buf, (uint16_t)port)
            && (out == frame.len || (memset(frame.data + frame.len, 0, out - frame.len), true))
            && virtio_net_tx_inplace(r->q, frame.buffer_id, (uint16_t)out, false) == 0) {
            set_held(r, frame.buffer_id, false);
            echoed++;
            continue;
        }
        if (others == mp_const_none) {
            others = mp_obj_new_list(0, NULL);
        }
        mp_obj_list_append(others, frame_tuple(&frame));
    }
    if (echoed) {
        virtio_net_tx_kick(r->q);
        r->echo_cycles += rdtsc() - t0;     // only batches that echoed: the per-packet cost
        r->echo_frames += echoed;
    }
    mp_obj_t t[2] = { MP_OBJ_NEW_SMALL_INT(echoed), others };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(q_echo_batch_obj, 4, 4, q_echo_batch);

// --- transmit --------------------------------------------------------------------------------

static void *tx_alloc_or_raise(struct nic_raw *r) {
    void *buffer = virtio_net_tx_alloc(r->q);
    if (buffer == NULL) {
        mp_raise_OSError(MP_EAGAIN);   // back-pressure: every TX buffer is in the ring
    }
    return buffer;
}

// q.send(frame): copy a complete Ethernet frame (14..MTU bytes, no FCS) into a TX buffer
// and queue it. OSError(EAGAIN) when no TX buffer is free. Returns the length. Allowed
// without acquire (lwIP keeps working), on the CPU the pair's interrupts go to.
static mp_obj_t q_send(mp_obj_t self_in, mp_obj_t frame_in) {
    struct nic_raw *r = self_raw(self_in);
    require_not_elsewhere(r);
    if (!r->acquired && r->q->cpu != smp_cpu_id()) {
        // The pair is lwIP's (or nobody's): its TX ring is used on the CPU its interrupts
        // reach, lwIP's; a frame queued from here could race lwIP's own.
        mp_raise_msg_varg(&mp_type_OSError,
            MP_ERROR_TEXT("an unacquired queue sends only from CPU %u (its interrupts'); acquire it here"),
            r->q->cpu);
    }
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(frame_in, &bufinfo, MP_BUFFER_READ);
    if (bufinfo.len < 14 || bufinfo.len > VIRTIO_NET_TX_MTU) {
        mp_raise_ValueError(MP_ERROR_TEXT("frame length out of range"));
    }
    void *buffer = tx_alloc_or_raise(r);
    memcpy(buffer, bufinfo.buf, bufinfo.len);
    if (virtio_net_tx_send(r->q, buffer, (uint16_t)bufinfo.len) != 0) {
        virtio_net_tx_free(r->q, buffer);
        mp_raise_OSError(MP_EAGAIN);
    }
    return MP_OBJ_NEW_SMALL_INT(bufinfo.len);
}
static MP_DEFINE_CONST_FUN_OBJ_2(q_send_obj, q_send);

// q.tx_buffer(): (writable memoryview of MTU bytes in a DMA buffer, id) to build a frame in
// place; then tx_send(id, length[, kick]) (zero copy) or tx_free(id).
static mp_obj_t q_tx_buffer(mp_obj_t self_in) {
    struct nic_raw *r = self_raw(self_in);
    require_acquired(r);
    void *buffer = tx_alloc_or_raise(r);
    unsigned slot = 0;
    while (slot < TX_SLOTS && r->tx_held[slot] != NULL) {
        slot++;
    }
    if (slot == TX_SLOTS) {
        virtio_net_tx_free(r->q, buffer);
        mp_raise_OSError(MP_EAGAIN);
    }
    r->tx_held[slot] = buffer;
    mp_obj_t t[2] = {
        mp_obj_new_memoryview('B' | MP_OBJ_ARRAY_TYPECODE_FLAG_RW, VIRTIO_NET_TX_MTU, buffer),
        MP_OBJ_NEW_SMALL_INT(slot),
    };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_tx_buffer_obj, q_tx_buffer);

static unsigned tx_slot(struct nic_raw *r, mp_obj_t id_in) {
    mp_int_t slot = mp_obj_get_int(id_in);
    if (slot < 0 || slot >= TX_SLOTS || r->tx_held[slot] == NULL) {
        mp_raise_ValueError(MP_ERROR_TEXT("not a held TX buffer id"));
    }
    return (unsigned)slot;
}

// q.tx_send(id, length, kick=True): kick=False queues without notifying the device; one
// tx_kick() after the batch sends one notification for all of it.
static mp_obj_t q_tx_send(size_t n_args, const mp_obj_t *args) {
    struct nic_raw *r = self_raw(args[0]);
    require_not_elsewhere(r);
    unsigned slot = tx_slot(r, args[1]);
    mp_int_t len = mp_obj_get_int(args[2]);
    bool kick = n_args < 4 || mp_obj_is_true(args[3]);
    if (len < 14 || len > VIRTIO_NET_TX_MTU) {
        mp_raise_ValueError(MP_ERROR_TEXT("frame length out of range"));
    }
    if (virtio_net_tx_queue(r->q, r->tx_held[slot], (uint16_t)len, kick) != 0) {
        mp_raise_OSError(MP_EAGAIN);   // the buffer stays the app's: retry or tx_free
    }
    r->tx_held[slot] = NULL;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(q_tx_send_obj, 3, 4, q_tx_send);

static mp_obj_t q_tx_kick(mp_obj_t self_in) {
    struct nic_raw *r = self_raw(self_in);
    require_not_elsewhere(r);
    virtio_net_tx_kick(r->q);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_tx_kick_obj, q_tx_kick);

static mp_obj_t q_tx_free(mp_obj_t self_in, mp_obj_t id_in) {
    struct nic_raw *r = self_raw(self_in);
    require_not_elsewhere(r);
    unsigned slot = tx_slot(r, id_in);
    virtio_net_tx_free(r->q, r->tx_held[slot]);
    r->tx_held[slot] = NULL;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(q_tx_free_obj, q_tx_free);

static mp_obj_t q_name(mp_obj_t self_in) {
    struct nic_raw *r = self_raw(self_in);
    char text[16];
    size_t n = strlen(r->q->nic->name);
    memcpy(text, r->q->nic->name, n);
    if (r->q->pair != 0) {
        text[n++] = '.';
        text[n++] = 'q';
        text[n++] = (char)('0' + r->q->pair);
    }
    return mp_obj_new_str(text, n);
}
static MP_DEFINE_CONST_FUN_OBJ_1(q_name_obj, q_name);

static const mp_rom_map_elem_t nic_queue_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_name), MP_ROM_PTR(&q_name_obj) },
    { MP_ROM_QSTR(MP_QSTR_mac), MP_ROM_PTR(&q_mac_obj) },
    { MP_ROM_QSTR(MP_QSTR_link), MP_ROM_PTR(&q_link_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&q_stats_obj) },
    { MP_ROM_QSTR(MP_QSTR_acquire), MP_ROM_PTR(&q_acquire_obj) },
    { MP_ROM_QSTR(MP_QSTR_release_queue), MP_ROM_PTR(&q_release_queue_obj) },
    { MP_ROM_QSTR(MP_QSTR_acquired), MP_ROM_PTR(&q_acquired_obj) },
    { MP_ROM_QSTR(MP_QSTR_on_rx), MP_ROM_PTR(&q_on_rx_obj) },
    { MP_ROM_QSTR(MP_QSTR_poll), MP_ROM_PTR(&q_poll_obj) },
    { MP_ROM_QSTR(MP_QSTR_rx_irq_us), MP_ROM_PTR(&q_rx_irq_us_obj) },
    { MP_ROM_QSTR(MP_QSTR_recv), MP_ROM_PTR(&q_recv_obj) },
    { MP_ROM_QSTR(MP_QSTR_recv_batch), MP_ROM_PTR(&q_recv_batch_obj) },
    { MP_ROM_QSTR(MP_QSTR_release), MP_ROM_PTR(&q_release_obj) },
    { MP_ROM_QSTR(MP_QSTR_tx_inplace), MP_ROM_PTR(&q_tx_inplace_obj) },
    { MP_ROM_QSTR(MP_QSTR_echo_batch), MP_ROM_PTR(&q_echo_batch_obj) },
    { MP_ROM_QSTR(MP_QSTR_send), MP_ROM_PTR(&q_send_obj) },
    { MP_ROM_QSTR(MP_QSTR_tx_buffer), MP_ROM_PTR(&q_tx_buffer_obj) },
    { MP_ROM_QSTR(MP_QSTR_tx_send), MP_ROM_PTR(&q_tx_send_obj) },
    { MP_ROM_QSTR(MP_QSTR_tx_kick), MP_ROM_PTR(&q_tx_kick_obj) },
    { MP_ROM_QSTR(MP_QSTR_tx_free), MP_ROM_PTR(&q_tx_free_obj) },
};
static MP_DEFINE_CONST_DICT(nic_queue_locals, nic_queue_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    nic_queue_type,
    MP_QSTR_Queue,
    MP_TYPE_FLAG_NONE,
    locals_dict, &nic_queue_locals
    );

// --- module level: the NICs, and eth0.q0 as before ------------------------------------------

static mp_obj_t nic_present(void) {
    return mp_obj_new_bool(virtio_net_count() > 0);
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_present_obj, nic_present);

// _nic.queues(): one tuple per queue pair: (name, nic, pair, rx vector, tx vector, cpu,
// owner) with owner 'raw', 'lwip' or 'none'.
static mp_obj_t nic_queues(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (unsigned n = 0; n < virtio_net_count(); n++) {
        struct virtio_net *nic = virtio_net_device(n);
        for (unsigned p = 0; p < nic->pairs; p++) {
            nic_queue_obj_t o = { { &nic_queue_type }, raw_for(n, p) };
            struct nic_raw *r = o.raw;
            mp_obj_t t[7] = {
                q_name(MP_OBJ_FROM_PTR(&o)), MP_OBJ_NEW_SMALL_INT(n), MP_OBJ_NEW_SMALL_INT(p),
                MP_OBJ_NEW_SMALL_INT(r->q->rxq->vector), MP_OBJ_NEW_SMALL_INT(r->q->txq->vector),
                MP_OBJ_NEW_SMALL_INT(r->q->cpu),
                MP_OBJ_NEW_QSTR(r->acquired ? MP_QSTR_raw
                    : (r->q->notify_callback != NULL ? MP_QSTR_lwip : MP_QSTR_none)),
            };
            mp_obj_list_append(list, mp_obj_new_tuple(7, t));
        }
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_queues_obj, nic_queues);

#define DEFAULT_0(fn, method) \
    static mp_obj_t fn(void) { return method(default_queue()); } \
    static MP_DEFINE_CONST_FUN_OBJ_0(fn##_obj, fn);
#define DEFAULT_1(fn, method) \
    static mp_obj_t fn(mp_obj_t a) { return method(default_queue(), a); } \
    static MP_DEFINE_CONST_FUN_OBJ_1(fn##_obj, fn);

DEFAULT_0(nic_mac, q_mac)
DEFAULT_0(nic_link, q_link)
DEFAULT_0(nic_stats, q_stats)
DEFAULT_0(nic_acquire, q_acquire)
DEFAULT_0(nic_acquired, q_acquired)
DEFAULT_0(nic_rx_irq_us, q_rx_irq_us)
DEFAULT_0(nic_recv, q_recv)
DEFAULT_0(nic_tx_buffer, q_tx_buffer)
DEFAULT_1(nic_on_rx, q_on_rx)
DEFAULT_1(nic_release, q_release)
DEFAULT_1(nic_send, q_send)
DEFAULT_1(nic_tx_free, q_tx_free)

static mp_obj_t nic_release_nic(void) {
    q_release_queue(default_queue());
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_release_nic_obj, nic_release_nic);

static mp_obj_t nic_tx_send(mp_obj_t id, mp_obj_t len) {
    mp_obj_t args[3] = { default_queue(), id, len };
    return q_tx_send(3, args);
}
static MP_DEFINE_CONST_FUN_OBJ_2(nic_tx_send_obj, nic_tx_send);

// _nic.softirqs(): {name: (raised, runs)} of the registered soft IRQs.
static mp_obj_t nic_softirqs(void) {
    mp_obj_t d = mp_obj_new_dict(0);
    for (int id = 0; id < SOFTIRQ_MAX; id++) {
        struct softirq_stats s;
        softirq_get_stats(id, &s);
        if (s.name == NULL) {
            continue;
        }
        mp_obj_t t[2] = { mp_obj_new_int_from_ull(s.raised), mp_obj_new_int_from_ull(s.runs) };
        mp_obj_dict_store(d, mp_obj_new_str(s.name, strlen(s.name)), mp_obj_new_tuple(2, t));
    }
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_softirqs_obj, nic_softirqs);

static const mp_rom_map_elem_t nic_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__nic) },
    { MP_ROM_QSTR(MP_QSTR_present), MP_ROM_PTR(&nic_present_obj) },
    { MP_ROM_QSTR(MP_QSTR_queue), MP_ROM_PTR(&nic_queue_make_obj) },
    { MP_ROM_QSTR(MP_QSTR_queues), MP_ROM_PTR(&nic_queues_obj) },
    { MP_ROM_QSTR(MP_QSTR_Queue), MP_ROM_PTR(&nic_queue_type) },
    { MP_ROM_QSTR(MP_QSTR_mac), MP_ROM_PTR(&nic_mac_obj) },
    { MP_ROM_QSTR(MP_QSTR_link), MP_ROM_PTR(&nic_link_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&nic_stats_obj) },
    { MP_ROM_QSTR(MP_QSTR_softirqs), MP_ROM_PTR(&nic_softirqs_obj) },
    { MP_ROM_QSTR(MP_QSTR_acquire), MP_ROM_PTR(&nic_acquire_obj) },
    { MP_ROM_QSTR(MP_QSTR_release_nic), MP_ROM_PTR(&nic_release_nic_obj) },
    { MP_ROM_QSTR(MP_QSTR_acquired), MP_ROM_PTR(&nic_acquired_obj) },
    { MP_ROM_QSTR(MP_QSTR_on_rx), MP_ROM_PTR(&nic_on_rx_obj) },
    { MP_ROM_QSTR(MP_QSTR_rx_irq_us), MP_ROM_PTR(&nic_rx_irq_us_obj) },
    { MP_ROM_QSTR(MP_QSTR_recv), MP_ROM_PTR(&nic_recv_obj) },
    { MP_ROM_QSTR(MP_QSTR_release), MP_ROM_PTR(&nic_release_obj) },
    { MP_ROM_QSTR(MP_QSTR_send), MP_ROM_PTR(&nic_send_obj) },
    { MP_ROM_QSTR(MP_QSTR_tx_buffer), MP_ROM_PTR(&nic_tx_buffer_obj) },
    { MP_ROM_QSTR(MP_QSTR_tx_send), MP_ROM_PTR(&nic_tx_send_obj) },
    { MP_ROM_QSTR(MP_QSTR_tx_free), MP_ROM_PTR(&nic_tx_free_obj) },
    { MP_ROM_QSTR(MP_QSTR_EVENT_RX), MP_ROM_INT(NET_EVENT_RX) },
    { MP_ROM_QSTR(MP_QSTR_EVENT_TX), MP_ROM_INT(NET_EVENT_TX) },
    { MP_ROM_QSTR(MP_QSTR_EVENT_LINK), MP_ROM_INT(NET_EVENT_LINK) },
    { MP_ROM_QSTR(MP_QSTR_BUFFER_SIZE), MP_ROM_INT(NET_BUFFER_SIZE) },
    { MP_ROM_QSTR(MP_QSTR_MTU), MP_ROM_INT(VIRTIO_NET_TX_MTU) },
};
static MP_DEFINE_CONST_DICT(nic_module_globals, nic_module_globals_table);

const mp_obj_module_t mp_module_nic = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&nic_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__nic, mp_module_nic);
