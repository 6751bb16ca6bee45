// The _smp module: what the Python kernel of each CPU needs to know about the others and to
// talk to them. Thin bindings; the policy is in kernel/smp.py and kernel/channels.py.
//
//   _smp.cpu_id(), _smp.cpu_count(), _smp.cpus()        which CPU, how many, accounting
//   _smp.on_wake(cb), _smp.wake(cpu)                    IPI wake-ups: cb(0) runs on `cpu`
//   _smp.board_add(name), board_set(...), board()       every CPU's apps, for ps()/exit
//   _smp.Channel(name, slots, size)                     a bounded message queue in shared memory
//
// Every CPU runs its own interpreter with its own heap, so nothing here hands a Python object
// from one CPU to another: channels copy bytes into and out of shared memory, the board holds
// plain numbers and short names. See docs/multicore.md.
#include <string.h>

#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/objstr.h"
#include "py/runtime.h"

#include "arch/x86_64/percpu.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/tsc.h"
#include "mm/mm.h"

#include "ports/manticore/manticore.h"
#include "ports/manticore/mphalport.h"
#include "ports/manticore/netif_virtio.h"

enum {
    CHANNEL_MAX = 32,
    CHANNEL_NAME_MAX = 24,
    CHANNEL_SLOTS_MAX = 4096,
    CHANNEL_SIZE_MAX = 65536,
    CHANNEL_POOL_SIZE = 2 * 1024 * 1024,
    BOARD_MAX = 64,
    BOARD_NAME_MAX = 16,
};

// The length of a fixed-size name field (the port's libc has no strnlen).
static size_t field_len(const char *field, size_t max) {
    size_t n = 0;
    while (n < max && field[n] != '\0') {
        n++;
    }
    return n;
}

// ---------------------------------------------------------------------------------------
// Wake-ups: the wake IPI's handler (interrupt context, on the woken CPU) schedules the
// callback that CPU's kernel registered; at most one is queued at a time per CPU.

MP_REGISTER_ROOT_POINTER(mp_obj_t smp_wake_cb);

static PER_CPU volatile bool wake_pending;
static PER_CPU volatile uint64_t wake_irq_tsc;   // TSC of the latest wake interrupt

static mp_obj_t smp_wake_trampoline(mp_obj_t arg) {
    wake_pending = false;
    mp_obj_t cb = MP_STATE_VM(smp_wake_cb);
    if (cb != MP_OBJ_NULL) {
        mp_call_function_1(cb, arg);
    }
    // The callback set flags that a select.poll may be about to sleep on: make its next
    // wait re-check instead of halting (mphalport.h), or the wake-up would be lost.
    mp_hal_signal_event();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(smp_wake_trampoline_obj, smp_wake_trampoline);

static void wake_handler(void) {
    wake_irq_tsc = tsc_read();
    netif_virtio_wake();   // NIC events another CPU recorded for lwIP (CPU 0)
    if (MP_STATE_VM(smp_wake_cb) != MP_OBJ_NULL && !wake_pending) {
        if (mp_sched_schedule(MP_OBJ_FROM_PTR(&smp_wake_trampoline_obj), MP_OBJ_NEW_SMALL_INT(0))) {
            wake_pending = true;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared memory: channels' rings come from a pool carved at boot (never freed: a channel,
// once made, lives until power-off, and opening it again by name finds it).

struct channel {
    char name[CHANNEL_NAME_MAX];
    uint32_t slots, slot_size;
    uint8_t *ring;                        // slots * (4-byte length + slot_size)
    smp_spinlock_t lock;
    uint32_t head, tail;                  // free-running; head - tail messages queued
    volatile uint32_t readers_waiting;    // CPUs to wake when a message arrives (bit mask)
    volatile uint32_t writers_waiting;    // CPUs to wake when room appears
    uint64_t sent, received, refused_full;
};

struct board_entry {
    bool used;
    uint8_t cpu;
    uint8_t state;                        // 0 runnable, 1 waiting, 2 done, 3 failed
    char name[BOARD_NAME_MAX];
    int32_t exit_code;                    // -1 while running
    uint64_t wakeups, cpu_us, end_seq;
};

static struct {
    smp_spinlock_t lock;                  // channel creation, board slots
    uint8_t *pool;
    size_t pool_used;
    struct channel channels[CHANNEL_MAX];
    int channel_count;
    struct board_entry board[BOARD_MAX];
    uint64_t end_seq;
    volatile uint32_t ready_mask;         // CPUs whose kernel has started its apps
} shared;

void manticore_smp_init(void) {
    // Not zeroed here (2 MiB of memset was 2-7 ms of every TCG boot, boottrace): each
    // channel zeroes its own ring when it is made.
    shared.pool = mm_take(CHANNEL_POOL_SIZE, 4096);
    smp_set_wake_handler(wake_handler);
}

void manticore_lwip_enter(void) {
    if (smp_cpu_id() != LWIP_CPU) {
        mp_raise_msg(&mp_type_OSError,
            MP_ERROR_TEXT("sockets run on CPU 0 (lwIP's); on other CPUs use a raw queue or a channel"));
    }
    netif_virtio_start_lwip();
}

// A soft reset ends this CPU's interpreter and its apps with it: their board entries go.
void manticore_smp_reset(void) {
    MP_STATE_VM(smp_wake_cb) = MP_OBJ_NULL;
    wake_pending = false;
    unsigned cpu = smp_cpu_id();
    smp_lock(&shared.lock);
    for (int i = 0; i < BOARD_MAX; i++) {
        if (shared.board[i].used && shared.board[i].cpu == cpu) {
            shared.board[i].used = false;
        }
    }
    smp_unlock(&shared.lock);
}

// ---------------------------------------------------------------------------------------
// CPUs

static mp_obj_t smp_cpu_id_fn(void) {
    return MP_OBJ_NEW_SMALL_INT(smp_cpu_id());
}
static MP_DEFINE_CONST_FUN_OBJ_0(smp_cpu_id_obj, smp_cpu_id_fn);

static mp_obj_t smp_cpu_count_fn(void) {
    return MP_OBJ_NEW_SMALL_INT(smp_cpu_count());
}
static MP_DEFINE_CONST_FUN_OBJ_0(smp_cpu_count_obj, smp_cpu_count_fn);

// _smp.cpus(): [(cpu, apic_id, online, failed, up_us, idle_us, interrupts, wakeups,
// heap_bytes, ready)] for every CPU of the MADT.
static mp_obj_t smp_cpus_fn(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    uint64_t now = tsc_read();
    for (unsigned i = 0; i < smp_cpu_count(); i++) {
        const struct smp_cpu *c = &smp_cpus[i];
        uint64_t up = c->online ? now - c->online_tsc : 0;
        uint64_t heap = i == 0 ? mm_layout.heap_total : c->heap_size;
        mp_obj_t items[10] = {
            MP_OBJ_NEW_SMALL_INT(i),
            MP_OBJ_NEW_SMALL_INT(c->apic_id),
            mp_obj_new_bool(c->online),
            mp_obj_new_bool(c->failed),
            mp_obj_new_int_from_ull(tsc_to_us(up)),
            mp_obj_new_int_from_ull(tsc_to_us(smp_idle_tsc(i))),
            mp_obj_new_int_from_ull(c->interrupts),
            mp_obj_new_int_from_ull(c->wakeups_received),
            mp_obj_new_int_from_ull(heap),
            mp_obj_new_bool((shared.ready_mask >> i) & 1),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(10, items));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(smp_cpus_obj, smp_cpus_fn);

// _smp.on_wake(cb or None): cb(0) runs (as a scheduled callback) on this CPU after a wake-up.
static mp_obj_t smp_on_wake(mp_obj_t cb) {
    MP_STATE_VM(smp_wake_cb) = cb == mp_const_none ? MP_OBJ_NULL : cb;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(smp_on_wake_obj, smp_on_wake);

static mp_obj_t smp_wake_fn(mp_obj_t cpu) {
    mp_int_t index = mp_obj_get_int(cpu);
    if (index < 0 || (unsigned)index >= smp_cpu_count()) {
        mp_raise_ValueError(MP_ERROR_TEXT("no such CPU"));
    }
    smp_wake((unsigned)index);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(smp_wake_obj, smp_wake_fn);

// _smp.last_wake_tsc(): the TSC of this CPU's latest wake interrupt (for latency figures).
static mp_obj_t smp_last_wake_tsc(void) {
    return mp_obj_new_int_from_ull(wake_irq_tsc);
}
static MP_DEFINE_CONST_FUN_OBJ_0(smp_last_wake_tsc_obj, smp_last_wake_tsc);

// _smp.take_console(): this CPU reads the console and runs the REPL from now on (the serial
// interrupt is routed here). OSError when the interrupt cannot be moved.
static mp_obj_t smp_take_console(void) {
    if (mp_hal_console_move(smp_cpu_id()) != 0) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("the console interrupt cannot be moved (no I/O APIC)"));
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(smp_take_console_obj, smp_take_console);

static mp_obj_t smp_console_cpu(void) {
    return MP_OBJ_NEW_SMALL_INT(mp_hal_console_cpu);
}
static MP_DEFINE_CONST_FUN_OBJ_0(smp_console_cpu_obj, smp_console_cpu);

static mp_obj_t smp_set_ready(void) {
    __atomic_fetch_or(&shared.ready_mask, 1u << smp_cpu_id(), __ATOMIC_SEQ_CST);
    if (smp_cpu_id() != 0) {
        smp_wake(0);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(smp_set_ready_obj, smp_set_ready);

// ---------------------------------------------------------------------------------------
// The app board: one entry per app on any CPU, written by its own CPU's kernel.

static mp_obj_t smp_board_add(mp_obj_t name_in) {
    size_t len;
    const char *name = mp_obj_str_get_data(name_in, &len);
    smp_lock(&shared.lock);
    int slot = -1;
    for (int i = 0; i < BOARD_MAX; i++) {
        if (!shared.board[i].used) {
            slot = i;
            break;
        }
    }
    if (slot >= 0) {
        struct board_entry *e = &shared.board[slot];
        memset(e, 0, sizeof(*e));
        e->used = true;
        e->cpu = (uint8_t)smp_cpu_id();
        e->exit_code = -1;
        memcpy(e->name, name, len < BOARD_NAME_MAX - 1 ? len : BOARD_NAME_MAX - 1);
    }
    smp_unlock(&shared.lock);
    return MP_OBJ_NEW_SMALL_INT(slot);
}
static MP_DEFINE_CONST_FUN_OBJ_1(smp_board_add_obj, smp_board_add);

// _smp.board_set(slot, state, exit_code, wakeups, cpu_us): state 2 or 3 ends the app; its
// end is numbered (the last one's exit code is the machine's) and CPU 0 is woken. The entry
// changes under the lock, so board() on another CPU never sees an app ended without its
// exit code.
static mp_obj_t smp_board_set(size_t n_args, const mp_obj_t *args) {
    mp_int_t slot = mp_obj_get_int(args[0]);
    mp_int_t state = mp_obj_get_int(args[1]);
    int32_t exit_code = (int32_t)mp_obj_get_int(args[2]);
    uint64_t wakeups = (uint64_t)mp_obj_get_int(args[3]);
    uint64_t cpu_us = (uint64_t)mp_obj_get_int(args[4]);
    if (slot < 0 || slot >= BOARD_MAX) {
        return mp_const_none;
    }
    bool ended = false;
    smp_lock(&shared.lock);
    struct board_entry *e = &shared.board[slot];
    if (e->used && e->cpu == smp_cpu_id()) {
        e->exit_code = exit_code;
        e->wakeups = wakeups;
        e->cpu_us = cpu_us;
        if (state >= 2 && e->state < 2) {
            e->end_seq = ++shared.end_seq;
            ended = true;
        }
        if (e->state < 2) {
            e->state = (uint8_t)state;
        }
    }
    smp_unlock(&shared.lock);
    if (ended && smp_cpu_id() != 0) {
        smp_wake(0);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(smp_board_set_obj, 5, 5, smp_board_set);

// _smp.board(): [(slot, cpu, name, state, exit_code, wakeups, cpu_us, end_seq)]. The entries
// are copied under the lock (other CPUs add, change and free theirs meanwhile), then turned
// into objects outside it (allocating may collect).
static mp_obj_t smp_board(void) {
    struct board_entry copy[BOARD_MAX];
    smp_lock(&shared.lock);
    memcpy(copy, shared.board, sizeof(copy));
    smp_unlock(&shared.lock);
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < BOARD_MAX; i++) {
        const struct board_entry *e = &copy[i];
        if (!e->used) {
            continue;
        }
        mp_obj_t items[8] = {
            MP_OBJ_NEW_SMALL_INT(i),
            MP_OBJ_NEW_SMALL_INT(e->cpu),
            mp_obj_new_str(e->name, field_len(e->name, BOARD_NAME_MAX)),
            MP_OBJ_NEW_SMALL_INT(e->state),
            MP_OBJ_NEW_SMALL_INT(e->exit_code),
            mp_obj_new_int_from_ull(e->wakeups),
            mp_obj_new_int_from_ull(e->cpu_us),
            mp_obj_new_int_from_ull(e->end_seq),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(8, items));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(smp_board_obj, smp_board);

// ---------------------------------------------------------------------------------------
// Channels

typedef struct _smp_channel_obj_t {
    mp_obj_base_t base;
    struct channel *channel;
} smp_channel_obj_t;

static struct channel *find_or_make_channel(const char *name, size_t len, uint32_t slots,
    uint32_t size) {
    struct channel *found = NULL;
    smp_lock(&shared.lock);
    for (int i = 0; i < shared.channel_count; i++) {
        struct channel *c = &shared.channels[i];
        if (field_len(c->name, CHANNEL_NAME_MAX) == len && memcmp(c->name, name, len) == 0) {
            found = c;
            break;
        }
    }
    if (found == NULL && shared.channel_count < CHANNEL_MAX && shared.pool != NULL) {
        size_t bytes = (size_t)slots * (4 + size);
        bytes = (bytes + 15) & ~(size_t)15;
        if (bytes <= CHANNEL_POOL_SIZE - shared.pool_used) {
            found = &shared.channels[shared.channel_count++];
            memset(found, 0, sizeof(*found));
            memcpy(found->name, name, len);
            found->slots = slots;
            found->slot_size = size;
            found->ring = shared.pool + shared.pool_used;
            memset(found->ring, 0, bytes);
            shared.pool_used += bytes;
        }
    }
    smp_unlock(&shared.lock);
    return found;
}

// _smp.Channel(name, slots=64, size=256): the channel called `name`, made on first use with
// `slots` messages of at most `size` bytes; later calls get the same one (their sizes are
// ignored: the channel's own are in stats()).
static mp_obj_t smp_channel_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *all_args) {
    enum { ARG_name, ARG_slots, ARG_size };
    static const mp_arg_t allowed[] = {
        { MP_QSTR_name, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = MP_OBJ_NULL} },
        { MP_QSTR_slots, MP_ARG_INT, {.u_int = 64} },
        { MP_QSTR_size, MP_ARG_INT, {.u_int = 256} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed), allowed, args);
    size_t len;
    const char *name = mp_obj_str_get_data(args[ARG_name].u_obj, &len);
    if (len == 0 || len >= CHANNEL_NAME_MAX) {
        mp_raise_ValueError(MP_ERROR_TEXT("channel name must be 1-23 bytes"));
    }
    mp_int_t slots = args[ARG_slots].u_int, size = args[ARG_size].u_int;
    if (slots < 1 || slots > CHANNEL_SLOTS_MAX || size < 1 || size > CHANNEL_SIZE_MAX) {
        mp_raise_ValueError(MP_ERROR_TEXT("slots must be 1-4096 and size 1-65536"));
    }
    struct channel *channel = find_or_make_channel(name, len, (uint32_t)slots, (uint32_t)size);
    if (channel == NULL) {
        mp_raise_OSError(MP_ENOMEM);
    }
    smp_channel_obj_t *self = mp_obj_malloc(smp_channel_obj_t, type);
    self->channel = channel;
    return MP_OBJ_FROM_PTR(self);
}

static void wake_mask(uint32_t mask) {
    while (mask != 0) {
        unsigned cpu = (unsigned)__builtin_ctz(mask);
        mask &= mask - 1;
        smp_wake(cpu);
    }
}

static uint8_t *slot_at(struct channel *c, uint32_t index) {
    return c->ring + (size_t)(index % c->slots) * (4 + c->slot_size);
}

// ch.send(msg) -> True, or False when the channel is full (nothing is queued then).
static mp_obj_t smp_channel_send(mp_obj_t self_in, mp_obj_t msg) {
    struct channel *c = ((smp_channel_obj_t *)MP_OBJ_TO_PTR(self_in))->channel;
    mp_buffer_info_t info;
    mp_get_buffer_raise(msg, &info, MP_BUFFER_READ);
    if (info.len > c->slot_size) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("message of %u bytes exceeds the channel's %u"),
            (unsigned)info.len, (unsigned)c->slot_size);
    }
    uint64_t irq = smp_lock_irqsave(&c->lock);
    bool queued = c->head - c->tail < c->slots;
    if (queued) {
        uint8_t *slot = slot_at(c, c->head);
        uint32_t len = (uint32_t)info.len;
        memcpy(slot, &len, 4);
        memcpy(slot + 4, info.buf, info.len);
        c->head++;
        c->sent++;
    } else {
        c->refused_full++;
    }
    smp_unlock_irqrestore(&c->lock, irq);
    // A full fence between our store (head) and our load of the waiter mask, matching the
    // one in want_read: x86 may otherwise let the load pass the store (SDM Vol. 3A 9.2.3.4),
    // and both sides would miss each other: a lost wake-up.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (queued && c->readers_waiting != 0) {
        wake_mask(__atomic_exchange_n(&c->readers_waiting, 0, __ATOMIC_SEQ_CST));
    }
    return mp_obj_new_bool(queued);
}
static MP_DEFINE_CONST_FUN_OBJ_2(smp_channel_send_obj, smp_channel_send);

// ch.recv() -> the oldest message as bytes, or None when the channel is empty.
static mp_obj_t smp_channel_recv(mp_obj_t self_in) {
    struct channel *c = ((smp_channel_obj_t *)MP_OBJ_TO_PTR(self_in))->channel;
    if (c->head == c->tail) {
        return mp_const_none;
    }
    vstr_t vstr;
    vstr_init(&vstr, c->slot_size);   // allocate before taking the lock (may collect)
    uint64_t irq = smp_lock_irqsave(&c->lock);
    bool got = c->head != c->tail;
    if (got) {
        uint8_t *slot = slot_at(c, c->tail);
        uint32_t len;
        memcpy(&len, slot, 4);
        memcpy(vstr.buf, slot + 4, len);
        vstr.len = len;
        c->tail++;
        c->received++;
    }
    smp_unlock_irqrestore(&c->lock, irq);
    if (!got) {
        vstr_clear(&vstr);
        return mp_const_none;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);   // as in send
    if (c->writers_waiting != 0) {
        wake_mask(__atomic_exchange_n(&c->writers_waiting, 0, __ATOMIC_SEQ_CST));
    }
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_1(smp_channel_recv_obj, smp_channel_recv);

// ch.want_read() / ch.want_write(): ask to be woken (this CPU's wake callback) when a message
// arrives / room appears; returns True if there already is one, so the caller must not sleep.
// The bit is set before the check, and senders take the mask after queueing: no wake-up is
// lost between the two.
static mp_obj_t smp_channel_want_read(mp_obj_t self_in) {
    struct channel *c = ((smp_channel_obj_t *)MP_OBJ_TO_PTR(self_in))->channel;
    __atomic_fetch_or(&c->readers_waiting, 1u << smp_cpu_id(), __ATOMIC_SEQ_CST);
    return mp_obj_new_bool(__atomic_load_n(&c->head, __ATOMIC_SEQ_CST) != c->tail);
}
static MP_DEFINE_CONST_FUN_OBJ_1(smp_channel_want_read_obj, smp_channel_want_read);

static mp_obj_t smp_channel_want_write(mp_obj_t self_in) {
    struct channel *c = ((smp_channel_obj_t *)MP_OBJ_TO_PTR(self_in))->channel;
    __atomic_fetch_or(&c->writers_waiting, 1u << smp_cpu_id(), __ATOMIC_SEQ_CST);
    return mp_obj_new_bool(c->head - __atomic_load_n(&c->tail, __ATOMIC_SEQ_CST) < c->slots);
}
static MP_DEFINE_CONST_FUN_OBJ_1(smp_channel_want_write_obj, smp_channel_want_write);

// ch.stats() -> {"name", "slots", "size", "queued", "sent", "received", "refused_full"}: the
// counters as of one moment (under the channel's lock), so queued == sent - received holds
// for a channel made on this boot.
static mp_obj_t smp_channel_stats(mp_obj_t self_in) {
    struct channel *c = ((smp_channel_obj_t *)MP_OBJ_TO_PTR(self_in))->channel;
    uint64_t irq = smp_lock_irqsave(&c->lock);
    uint32_t queued = c->head - c->tail;
    uint64_t sent = c->sent, received = c->received, refused_full = c->refused_full;
    smp_unlock_irqrestore(&c->lock, irq);
    mp_obj_t d = mp_obj_new_dict(7);
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_name), mp_obj_new_str(c->name, field_len(c->name, CHANNEL_NAME_MAX)));
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_slots), MP_OBJ_NEW_SMALL_INT(c->slots));
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_size), MP_OBJ_NEW_SMALL_INT(c->slot_size));
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_queued), MP_OBJ_NEW_SMALL_INT(queued));
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_sent), mp_obj_new_int_from_ull(sent));
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_received), mp_obj_new_int_from_ull(received));
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_refused_full), mp_obj_new_int_from_ull(refused_full));
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_1(smp_channel_stats_obj, smp_channel_stats);

static mp_obj_t smp_channel_unary_op(mp_unary_op_t op, mp_obj_t self_in) {
    struct channel *c = ((smp_channel_obj_t *)MP_OBJ_TO_PTR(self_in))->channel;
    if (op == MP_UNARY_OP_LEN) {
        return MP_OBJ_NEW_SMALL_INT(c->head - c->tail);
    }
    return MP_OBJ_NULL;
}

static void smp_channel_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
    (void)kind;
    struct channel *c = ((smp_channel_obj_t *)MP_OBJ_TO_PTR(self_in))->channel;
    mp_printf(print, "<channel %s %u/%u>", c->name, (unsigned)(c->head - c->tail), (unsigned)c->slots);
}

static const mp_rom_map_elem_t smp_channel_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_send), MP_ROM_PTR(&smp_channel_send_obj) },
    { MP_ROM_QSTR(MP_QSTR_recv), MP_ROM_PTR(&smp_channel_recv_obj) },
    { MP_ROM_QSTR(MP_QSTR_want_read), MP_ROM_PTR(&smp_channel_want_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_want_write), MP_ROM_PTR(&smp_channel_want_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&smp_channel_stats_obj) },
};
static MP_DEFINE_CONST_DICT(smp_channel_locals, smp_channel_locals_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    smp_channel_type,
    MP_QSTR_Channel,
    MP_TYPE_FLAG_NONE,
    make_new, smp_channel_make_new,
    print, smp_channel_print,
    unary_op, smp_channel_unary_op,
    locals_dict, &smp_channel_locals
    );

static const mp_rom_map_elem_t smp_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__smp) },
    { MP_ROM_QSTR(MP_QSTR_cpu_id), MP_ROM_PTR(&smp_cpu_id_obj) },
    { MP_ROM_QSTR(MP_QSTR_cpu_count), MP_ROM_PTR(&smp_cpu_count_obj) },
    { MP_ROM_QSTR(MP_QSTR_cpus), MP_ROM_PTR(&smp_cpus_obj) },
    { MP_ROM_QSTR(MP_QSTR_on_wake), MP_ROM_PTR(&smp_on_wake_obj) },
    { MP_ROM_QSTR(MP_QSTR_wake), MP_ROM_PTR(&smp_wake_obj) },
    { MP_ROM_QSTR(MP_QSTR_last_wake_tsc), MP_ROM_PTR(&smp_last_wake_tsc_obj) },
    { MP_ROM_QSTR(MP_QSTR_set_ready), MP_ROM_PTR(&smp_set_ready_obj) },
    { MP_ROM_QSTR(MP_QSTR_take_console), MP_ROM_PTR(&smp_take_console_obj) },
    { MP_ROM_QSTR(MP_QSTR_console_cpu), MP_ROM_PTR(&smp_console_cpu_obj) },
    { MP_ROM_QSTR(MP_QSTR_board_add), MP_ROM_PTR(&smp_board_add_obj) },
    { MP_ROM_QSTR(MP_QSTR_board_set), MP_ROM_PTR(&smp_board_set_obj) },
    { MP_ROM_QSTR(MP_QSTR_board), MP_ROM_PTR(&smp_board_obj) },
    { MP_ROM_QSTR(MP_QSTR_Channel), MP_ROM_PTR(&smp_channel_type) },
};
static MP_DEFINE_CONST_DICT(smp_module_globals, smp_module_globals_table);

const mp_obj_module_t mp_module_smp = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&smp_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__smp, mp_module_smp);
