// The _nic module: the virtio-net driver as seen from Python. Counters, MAC and link state for
// everyone; for an app that acquires the NIC, the raw queues (the parakernel path of issue 5):
// received frames as memoryviews over the DMA buffers, transmission from DMA buffers, and a
// callback for RX/TX/link events delivered through the soft IRQ bridge. lwIP does not see the
// RX queue while the NIC is acquired (nic.h).
//
//   >>> import _nic
//   >>> _nic.mac(), _nic.link(), _nic.stats()['rx_frames']
//   (b'RT\x00\x124V', True, 3)
//   >>> _nic.acquire()
//   >>> _nic.send(arp_request)              # copies into a TX buffer; OSError(EAGAIN) when full
//   >>> frame, id = _nic.recv()            # zero copy; None when nothing is pending
//   >>> bytes(frame[12:14]); _nic.release(id)
//   >>> _nic.release_nic()                 # back to lwIP
#include <string.h>

#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/objarray.h"
#include "py/runtime.h"
#include "py/smallint.h"

#include "drivers/virtio/virtio_net.h"
#include "ports/manticore/nic.h"
#include "ports/manticore/softirq.h"

enum { RX_IDS = 256 };

static bool acquired;
static uint32_t held[RX_IDS / 32];                  // RX buffer ids the app holds
static void *tx_held[128];                          // TX buffers handed out by tx_buffer()
static void (*saved_notify)(void *context, unsigned events);
static void *saved_context;
static volatile unsigned raw_events;                // NET_EVENT_* since the last callback
static volatile mp_uint_t raw_rx_irq_us;            // ticks_us of the last RX interrupt
static bool callback_queued;

MP_REGISTER_ROOT_POINTER(mp_obj_t nic_rx_callback);

bool nic_raw_acquired(void) {
    return acquired;
}

static bool is_held(unsigned id) {
    return id < RX_IDS && (held[id / 32] >> (id % 32)) & 1;
}

static void set_held(unsigned id, bool on) {
    if (on) {
        held[id / 32] |= 1u << (id % 32);
    } else {
        held[id / 32] &= ~(1u << (id % 32));
    }
}

// Hard IRQ context while acquired: remember the events, run the rest as a soft IRQ.
static void raw_notify(void *context, unsigned events) {
    (void)context;
    if (events & NET_EVENT_RX) {
        raw_rx_irq_us = mp_hal_ticks_us();
    }
    raw_events |= events;
    softirq_raise(SOFTIRQ_NIC_RAW);
}

// Python time, from the scheduler: one call of the app's callback with the events collected
// since the last one (at most one is queued at a time).
static mp_obj_t raw_dispatch(mp_obj_t unused) {
    (void)unused;
    callback_queued = false;
    mp_uint_t state = MICROPY_BEGIN_ATOMIC_SECTION();
    unsigned events = raw_events;
    raw_events = 0;
    MICROPY_END_ATOMIC_SECTION(state);
    mp_obj_t callback = MP_STATE_VM(nic_rx_callback);
    if (acquired && events != 0 && callback != MP_OBJ_NULL && callback != mp_const_none) {
        mp_call_function_1(callback, MP_OBJ_NEW_SMALL_INT(events));
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(raw_dispatch_obj, raw_dispatch);

static void raw_softirq(void *context) {
    (void)context;
    mp_obj_t callback = MP_STATE_VM(nic_rx_callback);
    if (!acquired || callback == MP_OBJ_NULL || callback == mp_const_none || callback_queued) {
        return;
    }
    if (mp_sched_schedule(MP_OBJ_FROM_PTR(&raw_dispatch_obj), mp_const_none)) {
        callback_queued = true;
    }
}

void nic_raw_release(void) {
    for (unsigned id = 0; id < RX_IDS; id++) {
        if (is_held(id)) {
            set_held(id, false);
            virtio_net_rx_release((uint16_t)id);
        }
    }
    for (unsigned i = 0; i < MP_ARRAY_SIZE(tx_held); i++) {
        if (tx_held[i] != NULL) {
            virtio_net_tx_free(tx_held[i]);
            tx_held[i] = NULL;
        }
    }
    MP_STATE_VM(nic_rx_callback) = MP_OBJ_NULL;
    callback_queued = false;
    if (acquired) {
        acquired = false;
        virtio_net_set_notify(saved_notify, saved_context);
        // lwIP may have missed frames while the app owned the queue: let it look.
        if (saved_notify != NULL) {
            saved_notify(saved_context, NET_EVENT_RX | NET_EVENT_TX | NET_EVENT_LINK);
        }
    }
}

static void require_present(void) {
    if (!virtio_net_present()) {
        mp_raise_OSError(MP_ENODEV);
    }
}

static void require_acquired(void) {
    if (!acquired) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("NIC not acquired: call _nic.acquire()"));
    }
}

// --- state for everyone ----------------------------------------------------------------------

static mp_obj_t nic_present(void) {
    return mp_obj_new_bool(virtio_net_present());
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_present_obj, nic_present);

static mp_obj_t nic_mac(void) {
    require_present();
    uint8_t mac[6];
    virtio_net_mac(mac);
    return mp_obj_new_bytes(mac, 6);
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_mac_obj, nic_mac);

static mp_obj_t nic_link(void) {
    return mp_obj_new_bool(virtio_net_link_up());
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_link_obj, nic_link);

static void store(mp_obj_t dict, qstr key, uint64_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(key), mp_obj_new_int_from_ull(value));
}

// _nic.stats(): the driver's counters (struct virtio_net_stats), plus who owns the queues.
static mp_obj_t nic_stats(void) {
    struct virtio_net_stats s;
    virtio_net_get_stats(&s);
    mp_obj_t d = mp_obj_new_dict(24);
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
    store(d, MP_QSTR_rx_interrupts, s.rx_interrupts);
    store(d, MP_QSTR_tx_interrupts, s.tx_interrupts);
    store(d, MP_QSTR_config_interrupts, s.config_interrupts);
    store(d, MP_QSTR_rx_kicks, s.rx_kicks);
    store(d, MP_QSTR_tx_kicks, s.tx_kicks);
    store(d, MP_QSTR_rx_release_invalid, s.rx_release_invalid);
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_owner),
        MP_OBJ_NEW_QSTR(acquired ? MP_QSTR_raw : MP_QSTR_lwip));
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_stats_obj, nic_stats);

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

// --- ownership -------------------------------------------------------------------------------

// _nic.acquire(): take the RX/TX queues from lwIP. OSError(EBUSY) when already acquired.
static mp_obj_t nic_acquire(void) {
    require_present();
    if (acquired) {
        mp_raise_OSError(MP_EBUSY);
    }
    virtio_net_get_notify(&saved_notify, &saved_context);
    raw_events = 0;
    callback_queued = false;
    softirq_register(SOFTIRQ_NIC_RAW, raw_softirq, NULL, "nic-raw");
    acquired = true;
    virtio_net_set_notify(raw_notify, NULL);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_acquire_obj, nic_acquire);

// _nic.release_nic(): give the queues back to lwIP; buffers the app still holds go back too.
static mp_obj_t nic_release_nic(void) {
    nic_raw_release();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_release_nic_obj, nic_release_nic);

static mp_obj_t nic_acquired(void) {
    return mp_obj_new_bool(acquired);
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_acquired_obj, nic_acquired);

// _nic.on_rx(callback or None): callback(events) runs in Python time, soon after an RX
// (1), TX-space (2) or link (4) interrupt, while the NIC is acquired. It should drain recv()
// until None: the next RX interrupt comes only after the ring was found empty.
static mp_obj_t nic_on_rx(mp_obj_t callback) {
    if (callback != mp_const_none && !mp_obj_is_callable(callback)) {
        mp_raise_TypeError(MP_ERROR_TEXT("callback must be callable or None"));
    }
    MP_STATE_VM(nic_rx_callback) = callback;
    if (acquired && callback != mp_const_none) {
        raw_events |= NET_EVENT_RX;    // frames may be waiting already
        softirq_raise(SOFTIRQ_NIC_RAW);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(nic_on_rx_obj, nic_on_rx);

// _nic.rx_irq_us(): time.ticks_us() of the last RX interrupt taken while acquired (hard IRQ
// context), for measuring interrupt -> wait() wake-up latency against time.ticks_us().
static mp_obj_t nic_rx_irq_us(void) {
    return MP_OBJ_NEW_SMALL_INT(raw_rx_irq_us & (MICROPY_PY_TIME_TICKS_PERIOD - 1));
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_rx_irq_us_obj, nic_rx_irq_us);

// --- receive ---------------------------------------------------------------------------------

// _nic.recv(): (memoryview of the Ethernet frame in its DMA buffer, buffer id), or None. The
// memoryview is valid until release(id); keep the number of held frames well below
// stats()['rx_buffers_total'], or the device runs out of buffers and drops frames.
static mp_obj_t nic_recv(void) {
    require_acquired();
    struct net_frame frame;
    if (!virtio_net_rx_poll(&frame)) {
        return mp_const_none;
    }
    set_held(frame.buffer_id, true);
    mp_obj_t t[2] = {
        mp_obj_new_memoryview('B' | MP_OBJ_ARRAY_TYPECODE_FLAG_RW, frame.len, frame.data),
        MP_OBJ_NEW_SMALL_INT(frame.buffer_id),
    };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_recv_obj, nic_recv);

// _nic.release(id): the frame's buffer goes back to the RX ring.
static mp_obj_t nic_release(mp_obj_t id_in) {
    mp_int_t id = mp_obj_get_int(id_in);
    if (id < 0 || !is_held((unsigned)id)) {
        mp_raise_ValueError(MP_ERROR_TEXT("not a held RX buffer id"));
    }
    set_held((unsigned)id, false);
    virtio_net_rx_release((uint16_t)id);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(nic_release_obj, nic_release);

// --- transmit --------------------------------------------------------------------------------

static void *tx_alloc_or_raise(void) {
    void *buffer = virtio_net_tx_alloc();
    if (buffer == NULL) {
        mp_raise_OSError(MP_EAGAIN);   // back-pressure: every TX buffer is in the ring
    }
    return buffer;
}

// _nic.send(frame): copy a complete Ethernet frame (14..VIRTIO_NET_TX_MTU bytes, no FCS) into
// a TX buffer and queue it. OSError(EAGAIN) when no TX buffer is free (on_rx hears event 2
// when one is). Returns the length. Allowed without acquire (lwIP keeps working).
static mp_obj_t nic_send(mp_obj_t frame_in) {
    require_present();
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(frame_in, &bufinfo, MP_BUFFER_READ);
    if (bufinfo.len < 14 || bufinfo.len > VIRTIO_NET_TX_MTU) {
        mp_raise_ValueError(MP_ERROR_TEXT("frame length out of range"));
    }
    void *buffer = tx_alloc_or_raise();
    memcpy(buffer, bufinfo.buf, bufinfo.len);
    if (virtio_net_tx_send(buffer, (uint16_t)bufinfo.len) != 0) {
        virtio_net_tx_free(buffer);
        mp_raise_OSError(MP_EAGAIN);
    }
    return MP_OBJ_NEW_SMALL_INT(bufinfo.len);
}
static MP_DEFINE_CONST_FUN_OBJ_1(nic_send_obj, nic_send);

// _nic.tx_buffer(): (writable memoryview of VIRTIO_NET_TX_MTU bytes in a DMA buffer, id) to
// build a frame in place; then tx_send(id, length) (zero copy) or tx_free(id).
static mp_obj_t nic_tx_buffer(void) {
    require_acquired();
    void *buffer = tx_alloc_or_raise();
    unsigned slot = 0;
    while (slot < MP_ARRAY_SIZE(tx_held) && tx_held[slot] != NULL) {
        slot++;
    }
    if (slot == MP_ARRAY_SIZE(tx_held)) {   // only if the driver had more TX buffers than slots
        virtio_net_tx_free(buffer);
        mp_raise_OSError(MP_EAGAIN);
    }
    tx_held[slot] = buffer;
    mp_obj_t t[2] = {
        mp_obj_new_memoryview('B' | MP_OBJ_ARRAY_TYPECODE_FLAG_RW, VIRTIO_NET_TX_MTU, buffer),
        MP_OBJ_NEW_SMALL_INT(slot),
    };
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_0(nic_tx_buffer_obj, nic_tx_buffer);

static unsigned tx_slot(mp_obj_t id_in) {
    mp_int_t slot = mp_obj_get_int(id_in);
    if (slot < 0 || slot >= (mp_int_t)MP_ARRAY_SIZE(tx_held) || tx_held[slot] == NULL) {
        mp_raise_ValueError(MP_ERROR_TEXT("not a held TX buffer id"));
    }
    return (unsigned)slot;
}

static mp_obj_t nic_tx_send(mp_obj_t id_in, mp_obj_t len_in) {
    unsigned slot = tx_slot(id_in);
    mp_int_t len = mp_obj_get_int(len_in);
    if (len < 14 || len > VIRTIO_NET_TX_MTU) {
        mp_raise_ValueError(MP_ERROR_TEXT("frame length out of range"));
    }
    if (virtio_net_tx_send(tx_held[slot], (uint16_t)len) != 0) {
        mp_raise_OSError(MP_EAGAIN);   // the buffer stays the app's: retry or tx_free
    }
    tx_held[slot] = NULL;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(nic_tx_send_obj, nic_tx_send);

static mp_obj_t nic_tx_free(mp_obj_t id_in) {
    unsigned slot = tx_slot(id_in);
    virtio_net_tx_free(tx_held[slot]);
    tx_held[slot] = NULL;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(nic_tx_free_obj, nic_tx_free);

static const mp_rom_map_elem_t nic_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__nic) },
    { MP_ROM_QSTR(MP_QSTR_present), MP_ROM_PTR(&nic_present_obj) },
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
