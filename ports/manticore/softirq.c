// Soft IRQs: hard interrupt -> pending bit -> one static scheduler node -> C handlers at the
// next bytecode boundary or in the idle loop. See softirq.h.
#include "ports/manticore/softirq.h"

#include "py/mphal.h"
#include "py/runtime.h"

#include "arch/x86_64/percpu.h"

#if !MICROPY_SCHEDULER_STATIC_NODES
#error "softirq needs MICROPY_SCHEDULER_STATIC_NODES (mpconfigport.h)"
#endif

struct softirq {
    softirq_handler_t handler;
    void *context;
    const char *name;
    uint64_t raised;
    uint64_t runs;
};

// Per CPU (arch/x86_64/percpu.h): a hard interrupt raises the soft IRQ on the CPU that took
// it, and that CPU's interpreter runs the handler; a handler is registered on the CPU that
// will consume it (the one its device's interrupts are steered to).
static PER_CPU struct softirq table[SOFTIRQ_MAX];
static PER_CPU volatile uint32_t pending;
// Static storage: it outlives soft resets, and mp_init keeps a node that is still queued
// (py/runtime.c), so a soft IRQ raised across a reset still runs.
static PER_CPU mp_sched_node_t node;

static void run_node(mp_sched_node_t *n) {
    (void)n;
    softirq_run();
}

void softirq_register(int id, softirq_handler_t handler, void *context, const char *name) {
    if (id < 0 || id >= SOFTIRQ_MAX) {
        return;
    }
    mp_uint_t state = MICROPY_BEGIN_ATOMIC_SECTION();
    table[id].handler = handler;
    table[id].context = context;
    table[id].name = handler != NULL ? name : NULL;
    MICROPY_END_ATOMIC_SECTION(state);
}

void softirq_raise(int id) {
    if (id < 0 || id >= SOFTIRQ_MAX) {
        return;
    }
    mp_uint_t state = MICROPY_BEGIN_ATOMIC_SECTION();
    pending |= 1u << id;
    table[id].raised++;
    MICROPY_END_ATOMIC_SECTION(state);
    // Queues the node unless it is queued already (then the bit rides along). It also moves
    // sched_state from idle to pending, which mp_hal_wait_for_event checks with interrupts off
    // before it halts: the interrupt that raised us ends the halt, and the waiting loop runs
    // the node before it halts again.
    mp_sched_schedule_node(&node, run_node);
}

uint32_t softirq_pending(void) {
    return pending;
}

void softirq_run(void) {
    for (;;) {
        mp_uint_t state = MICROPY_BEGIN_ATOMIC_SECTION();
        uint32_t bits = pending;
        pending = 0;
        MICROPY_END_ATOMIC_SECTION(state);
        if (bits == 0) {
            return;
        }
        for (int id = 0; id < SOFTIRQ_MAX; id++) {
            if (!(bits & (1u << id))) {
                continue;
            }
            struct softirq *s = &table[id];
            softirq_handler_t handler = s->handler;
            if (handler == NULL) {
                continue;   // raised before anyone registered: nothing to do
            }
            s->runs++;
            // Scheduler nodes run unprotected (py/scheduler.c); an exception escaping here
            // would leave the scheduler locked for good. Print it and go on.
            nlr_buf_t nlr;
            if (nlr_push(&nlr) == 0) {
                handler(s->context);
                nlr_pop();
                // The handler may have made something ready that Python waits for: let the
                // wait that follows re-check instead of halting (mphalport.h).
                mp_hal_signal_event();
            } else {
                mp_printf(&mp_plat_print, "softirq %s: ", s->name ? s->name : "?");
                mp_obj_print_exception(&mp_plat_print, MP_OBJ_FROM_PTR(nlr.ret_val));
            }
        }
        // A handler may have raised its own soft IRQ again (or a hard IRQ did meanwhile):
        // the node is queued again in that case too, so returning would also work; looping
        // here saves a trip through the scheduler.
    }
}

void softirq_get_stats(int id, struct softirq_stats *out) {
    *out = (struct softirq_stats){ 0 };
    if (id >= 0 && id < SOFTIRQ_MAX) {
        out->name = table[id].name;
        out->raised = table[id].raised;
        out->runs = table[id].runs;
    }
}
