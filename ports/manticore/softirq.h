// Soft IRQs: the bridge from hard interrupts to work that runs in Python time. A hard IRQ
// handler (interrupts off, no Python, no allocation) calls softirq_raise(id); that records a
// pending bit and queues one static MicroPython scheduler node (mp_sched_schedule_node,
// MICROPY_SCHEDULER_STATIC_NODES), so the registered C handlers run at the next bytecode
// boundary, or from the idle loop: the interrupt that raised the soft IRQ also ends the
// `sti; hlt` of mp_hal_wait_for_event, whose caller runs pending callbacks before halting again.
//
// Handlers run with interrupts enabled, the scheduler locked (they are not re-entered), and
// may allocate, call into lwIP or queue Python callbacks with mp_sched_schedule. An exception
// in a handler is printed and does not stop the other handlers. A handler that raises its own
// soft IRQ again runs again before Python resumes: use that only for bounded work.
#ifndef MICROPY_INCLUDED_MANTICORE_SOFTIRQ_H
#define MICROPY_INCLUDED_MANTICORE_SOFTIRQ_H

#include <stdbool.h>
#include <stdint.h>

enum softirq_id {
    SOFTIRQ_NET = 0,            // virtio-net RX/TX/link events for the consumer of the NIC
    SOFTIRQ_NET_TIMER = 1,      // lwIP timeouts (sys_check_timeouts) when their deadline passes
    SOFTIRQ_NIC_RAW = 2,        // the raw NIC binding (_nic) while an app has acquired the NIC
    SOFTIRQ_USER = 3,           // first id free for other drivers
    SOFTIRQ_MAX = 16,
};

typedef void (*softirq_handler_t)(void *context);

// Install (or with NULL remove) the handler of `id`; `name` is for softirq statistics.
void softirq_register(int id, softirq_handler_t handler, void *context, const char *name);

// Mark `id` pending and schedule the handlers. Safe from hard IRQ context and from Python time;
// raising an already pending id is coalesced.
void softirq_raise(int id);

// Bit mask of the pending ids.
uint32_t softirq_pending(void);

// Run the pending handlers now (the scheduler node does this; a polling loop may too).
void softirq_run(void);

struct softirq_stats {
    const char *name;           // NULL when nothing is registered
    uint64_t raised;            // softirq_raise calls
    uint64_t runs;              // handler invocations
};
void softirq_get_stats(int id, struct softirq_stats *stats);

#endif // MICROPY_INCLUDED_MANTICORE_SOFTIRQ_H
