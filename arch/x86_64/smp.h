// Multiprocessor support: starting the application processors (APs) and the few services
// CPUs share. CPUs are numbered 0..smp_cpu_count()-1 in MADT order (CPU 0 is the boot CPU);
// a CPU's local APIC id is what MSI/MSI-X messages and I/O APIC entries name as their
// destination (Intel SDM Vol. 3A 10.11.1, 10.6.2).
//
// What a CPU owns (docs/multicore.md): a struct smp_cpu below (shared, so any CPU can read
// another's accounting), its own page-table root, whose only difference from the boot
// CPU's is the per-CPU window (percpu.h: MicroPython's whole static state, the GDT, TSS and
// IST stacks, timer deadlines, soft IRQs), a kernel stack with an unmapped guard page below
// it, and a GC heap carved for it at boot.
#ifndef ARCH_X86_64_SMP_H
#define ARCH_X86_64_SMP_H

#include <stdbool.h>
#include <stdint.h>

#define SMP_MAX_CPUS (16)

enum {
    AP_KERNEL_STACK_SIZE = 256 * 1024,
};

struct smp_cpu {
    unsigned index;
    uint32_t apic_id;
    volatile bool online;             // running the kernel
    bool failed;                      // did not answer the start-up IPIs, or had no memory
    uint64_t cr3;                     // its page-table root
    uint64_t window_phys;             // where its copy of the per-CPU window lives
    uintptr_t stack_bottom, stack_top;
    uint64_t heap_base, heap_size;    // its GC heap (APs; the boot CPU's is mm_layout's)
    uint64_t online_tsc;              // TSC when it came online
    volatile uint64_t idle_tsc;       // TSC ticks spent halted (up to the last wake-up)
    volatile uint64_t halted_since;   // TSC when the current halt began, 0 while running
    volatile uint64_t interrupts;     // interrupts taken (all vectors)
    volatile uint64_t wakeups_received;   // wake-up IPIs taken
    volatile uint64_t wakeups_sent;
};

extern struct smp_cpu smp_cpus[SMP_MAX_CPUS];

// The index of the CPU executing this code (0 on the boot CPU).
unsigned smp_cpu_id(void);
// CPUs the machine has (the MADT's enabled processors, at most SMP_MAX_CPUS), online or not.
unsigned smp_cpu_count(void);
// True when `cpu` is started and running.
bool smp_cpu_online(unsigned cpu);
// The local APIC id of `cpu`: the destination to program into an MSI-X entry or an I/O APIC
// redirection entry so that the interrupt is taken on that CPU.
uint32_t smp_apic_id(unsigned cpu);

// Boot CPU, after paging, ACPI, the APICs, irq and the timer: record the CPUs of the MADT and
// allocate the wake-up vector. Carving memory for the APs and starting them comes later
// (smp_start_aps), once the memory map is known.
void smp_init(void);
// The very first thing the boot CPU does (start.c): keep the per-CPU window's initial data.
void smp_save_percpu_template(void);

// Start every AP of the MADT (INIT-SIPI-SIPI, SDM Vol. 3A 9.4.4 / 8.4.4 "MP Initialization
// Example"), one at a time. Each gets `stack_size` bytes of stack (plus a guard page) and
// its own window from `carve` (page-aligned physical memory below 4 GiB, NULL when out),
// comes up with its own GDT/TSS/IDT, local APIC and timer, and calls entry(cpu) with
// interrupts disabled. A CPU that does not answer within a second is reported and skipped.
// Returns the number of CPUs online.
unsigned smp_start_aps(void *(*carve)(uint64_t size, uint64_t align), void (*entry)(unsigned cpu));

// Wake `cpu` (an IPI on the wake-up vector; on the calling CPU itself, a direct call): its
// wake handler (smp_set_wake_handler) runs there in interrupt context.
void smp_wake(unsigned cpu);
// The handler the wake-up vector calls on every CPU (the port's: it schedules Python work).
void smp_set_wake_handler(void (*handler)(void));

// Halt until the next interrupt (sti; hlt), counting the time as idle. Interrupts must be
// disabled on entry (the caller checked for work); they are enabled on return.
void smp_idle_halt(void);
// TSC ticks `cpu` has spent halted since it came online, the current halt included.
uint64_t smp_idle_tsc(unsigned cpu);
// Called by the interrupt dispatcher for every interrupt.
void smp_count_interrupt(void);

// A fault on any CPU: stop every other CPU with an NMI (SDM Vol. 3A 10.6.1, delivery mode
// NMI, shorthand all-excluding-self) so nothing runs on while the report is printed. Returns
// false when another CPU is already reporting (the caller then just halts).
bool smp_stop_others(void);
// True on a CPU that was told to stop by smp_stop_others (the NMI handler then halts).
bool smp_stopping(void);

// Spin locks for the few structures CPUs share (the console, channels, virtio-rng, ...).
// Ticket locks: CPUs get the lock in the order they asked, so one CPU taking it in a tight
// loop cannot starve another (with a plain test-and-set the CPU that just released it, cache
// line in hand, nearly always won again). Zero-initialized is unlocked. A lock that an
// interrupt handler takes must be taken with interrupts off everywhere: a handler that
// interrupts a CPU waiting for its turn would otherwise wait behind it forever.
typedef struct {
    volatile uint32_t next;         // the ticket the next smp_lock takes
    volatile uint32_t serving;      // the ticket that holds the lock
} smp_spinlock_t;
void smp_lock(smp_spinlock_t *lock);
void smp_unlock(smp_spinlock_t *lock);
// The same with interrupts off on this CPU while it waits and holds the lock: for locks an
// interrupt handler may take (above), and for register sequences an interrupt handler must
// not split. Returns the caller's RFLAGS, for smp_unlock_irqrestore.
uint64_t smp_lock_irqsave(smp_spinlock_t *lock);
void smp_unlock_irqrestore(smp_spinlock_t *lock, uint64_t flags);

#endif
