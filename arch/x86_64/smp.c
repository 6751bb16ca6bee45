// Multiprocessor start-up and the services CPUs share (see smp.h and docs/multicore.md).
//
// References: Intel SDM Vol. 3A chapter 9 (8 in older editions) "Multiple-Processor
// Management", 9.4.4 "MP Initialization Example" (INIT-SIPI-SIPI), 10.6 "Issuing
// Interprocessor Interrupts"; ACPI 6.5 5.2.12 (MADT) for the list of processors.
#include "arch/x86_64/smp.h"

#include <stddef.h>
#include <string.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/interrupts.h"
#include "arch/x86_64/irq.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/start.h"
#include "arch/x86_64/timer.h"
#include "arch/x86_64/tsc.h"

enum {
    AP_TRAMPOLINE_BASE = 0x8000,                       // ap_boot.S
    AP_STARTUP_VECTOR = AP_TRAMPOLINE_BASE >> 12,      // SIPI: start at vector * 4 KiB
    AP_ALIVE_TIMEOUT_US = 10000,                       // per STARTUP IPI
    AP_ONLINE_TIMEOUT_US = 2000000,                    // MTTCG on a loaded host is slow
    PERCPU_TEMPLATE_MAX = 4096,
};

struct smp_cpu smp_cpus[SMP_MAX_CPUS];

// This CPU's index: in the per-CPU window, so each CPU reads its own (0 on the boot CPU,
// whose copy is zeroed by boot.S).
static PER_CPU unsigned this_cpu;

static unsigned cpu_count = 1;
static int wake_vector = -1;
static void (*wake_handler)(void);
static volatile int stopping_cpu = -1;

// The initialized part of the per-CPU window as the image had it, before the boot CPU
// changed its own copy: every AP's copy starts from this.
static uint8_t percpu_template[PERCPU_TEMPLATE_MAX];

extern char ap_trampoline_start[], ap_trampoline_end[];
extern char ap_param_cr3[], ap_param_stack[], ap_param_entry[], ap_param_cpu[], ap_param_efer[],
    ap_param_alive[];

void smp_save_percpu_template(void) {
    size_t size = (size_t)(__percpu_data_end - __percpu_start);
    if (size > sizeof(percpu_template)) {
        panic("smp: the per-CPU window's initialized data (%lu bytes) exceeds the template "
              "buffer (%d bytes, arch/x86_64/smp.c)", (unsigned long)size, PERCPU_TEMPLATE_MAX);
    }
    memcpy(percpu_template, __percpu_start, size);
}

unsigned smp_cpu_id(void) {
    return this_cpu;
}

unsigned smp_cpu_count(void) {
    return cpu_count;
}

bool smp_cpu_online(unsigned cpu) {
    return cpu < cpu_count && smp_cpus[cpu].online;
}

uint32_t smp_apic_id(unsigned cpu) {
    return cpu < cpu_count ? smp_cpus[cpu].apic_id : smp_cpus[0].apic_id;
}

static void wake_interrupt(void *context) {
    (void)context;
    smp_cpus[this_cpu].wakeups_received++;
    if (wake_handler != NULL) {
        wake_handler();
    }
}

void smp_init(void) {
    uint32_t boot_apic_id = lapic_id();
    smp_cpus[0].index = 0;
    smp_cpus[0].apic_id = boot_apic_id;
    unsigned count = 1;
    // CPU 0 is the boot CPU wherever the MADT (or MP table) lists it; the others keep its order.
    for (int i = 0; i < acpi_info.cpu_count && count < SMP_MAX_CPUS; i++) {
        if (acpi_info.apic_ids[i] == boot_apic_id) {
            continue;
        }
        smp_cpus[count].index = count;
        smp_cpus[count].apic_id = acpi_info.apic_ids[i];
        count++;
    }
    if (acpi_info.cpu_count > SMP_MAX_CPUS) {
        kprintf("smp: the firmware lists %d CPUs; using the first %d (SMP_MAX_CPUS)\n",
                acpi_info.cpu_count, SMP_MAX_CPUS);
    }
    cpu_count = count;
    smp_cpus[0].online = true;
    smp_cpus[0].online_tsc = rdtsc();
    smp_cpus[0].stack_bottom = (uintptr_t)kernel_stack_bottom;
    smp_cpus[0].stack_top = (uintptr_t)kernel_stack_top;
    smp_cpus[0].cr3 = read_cr3();
    smp_cpus[0].window_phys = (uintptr_t)__percpu_start;

    if (lapic_enabled()) {
        wake_vector = irq_alloc_vector();
        if (wake_vector >= 0 && irq_install(wake_vector, wake_interrupt, NULL, "ipi-wake") != 0) {
            irq_free_vector(wake_vector);
            wake_vector = -1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Start-up

static void (*ap_entry_function)(unsigned cpu);

// The C entry of every AP (called by ap_boot.S on its own stack and root).
static void __attribute__((noreturn)) ap_entry(unsigned cpu) {
    // Forget the start page's translation, cached while ap_boot.S ran there with paging on:
    // CPU 0 makes that page no-execute once every AP is up (paging_retire_ap_trampoline),
    // and a stale entry would keep it executable here (SDM 4.10.4.1: a CR3 load flushes it).
    write_cr3(read_cr3());
    this_cpu = cpu;
    gdt_init();          // its own GDT, TSS and IST stacks (per-CPU window)
    idt_load();          // the one shared IDT
    lapic_init_ap();
    timer_init_ap();
    smp_cpus[cpu].online_tsc = rdtsc();
    __atomic_store_n(&smp_cpus[cpu].online, true, __ATOMIC_RELEASE);
    ap_entry_function(cpu);
    panic("smp: CPU %u's entry returned", cpu);
}

static void write_param64(char *symbol, uint64_t value) {
    uint64_t *slot = (uint64_t *)(uintptr_t)(AP_TRAMPOLINE_BASE + (symbol - ap_trampoline_start));
    *slot = value;
}

static volatile uint32_t *param32(char *symbol) {
    return (volatile uint32_t *)(uintptr_t)(AP_TRAMPOLINE_BASE + (symbol - ap_trampoline_start));
}

static bool wait_until(volatile uint32_t *word, volatile bool *flag, uint64_t timeout_us) {
    uint64_t deadline = rdtsc() + tsc_hz / 1000000 * timeout_us;
    while (rdtsc() < deadline) {
        if ((word != NULL && *word != 0) || (flag != NULL && *flag)) {
            return true;
        }
        cpu_relax();
    }
    return false;
}

// INIT, then STARTUP twice unless the first one worked (SDM Vol. 3A 9.4.4.1). The SDM's
// 10 ms after INIT and 200 us between the STARTUPs were for external 82489DX APICs; Linux
// (arch/x86/kernel/smpboot.c, init_udelay) drops the first on every CPU since family 6 and
// so do we; the second is replaced by waiting for the AP to say it runs.
static bool start_one(struct smp_cpu *cpu) {
    *param32(ap_param_alive) = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    lapic_send_ipi(cpu->apic_id, LAPIC_IPI_INIT | LAPIC_IPI_ASSERT | LAPIC_IPI_LEVEL);
    lapic_send_ipi(cpu->apic_id, LAPIC_IPI_INIT | LAPIC_IPI_LEVEL);   // de-assert (xAPIC)
    for (int attempt = 0; attempt < 2; attempt++) {
        lapic_send_ipi(cpu->apic_id, LAPIC_IPI_STARTUP | LAPIC_IPI_ASSERT | AP_STARTUP_VECTOR);
        if (wait_until(param32(ap_param_alive), NULL, AP_ALIVE_TIMEOUT_US)) {
            break;
        }
    }
    return wait_until(NULL, &cpu->online, AP_ONLINE_TIMEOUT_US);
}

unsigned smp_start_aps(void *(*carve)(uint64_t size, uint64_t align), void (*entry)(unsigned cpu)) {
    if (cpu_count <= 1 || !lapic_enabled()) {
        paging_retire_ap_trampoline();   // no AP will ever start
        return 1;
    }
    ap_entry_function = entry;
    memcpy((void *)(uintptr_t)AP_TRAMPOLINE_BASE, ap_trampoline_start,
           (size_t)(ap_trampoline_end - ap_trampoline_start));
    uint64_t window_size = (uint64_t)(__percpu_end - __percpu_start);
    uint64_t data_size = (uint64_t)(__percpu_data_end - __percpu_start);
    uint32_t efer = (uint32_t)(rdmsr(MSR_IA32_EFER) & (EFER_LME | EFER_NXE)) | EFER_LME;

    unsigned online = 1;
    bool unanswered = false;   // an AP that was started but did not come up in time
    for (unsigned i = 1; i < cpu_count; i++) {
        struct smp_cpu *cpu = &smp_cpus[i];
        if (cpu->failed) {
            continue;   // the caller could not give it what it needs (its heap): it stays off
        }
        uint8_t *stack = carve(AP_KERNEL_STACK_SIZE + PAGING_PAGE_SIZE, PAGING_PAGE_SIZE);
        uint8_t *window = carve(window_size, PAGING_PAGE_SIZE);
        if (stack == NULL || window == NULL) {
            kprintf("smp: no memory left to start CPU %u (APIC id %u); it stays off\n", i,
                    cpu->apic_id);
            cpu->failed = true;
            continue;
        }
        // The AP's window: the image's initial data, the rest zero (as boot.S does for CPU 0).
        memcpy(window, percpu_template, data_size);
        memset(window + data_size, 0, window_size - data_size);
        cpu->window_phys = (uintptr_t)window;
        cpu->stack_bottom = (uintptr_t)stack + PAGING_PAGE_SIZE;
        cpu->stack_top = cpu->stack_bottom + AP_KERNEL_STACK_SIZE;
        paging_unmap_guard_page((uintptr_t)stack);   // an overflow faults, never corrupts
        panic_register_stack(cpu->stack_bottom, cpu->stack_top);
        cpu->cr3 = paging_new_cpu_root(cpu->window_phys);
        if (cpu->cr3 == 0 || cpu->cr3 >= 0x100000000ull) {
            kprintf("smp: no page-table root for CPU %u; it stays off\n", i);
            cpu->failed = true;
            continue;
        }
        write_param64(ap_param_cr3, cpu->cr3);
        write_param64(ap_param_stack, cpu->stack_top);
        write_param64(ap_param_entry, (uintptr_t)ap_entry);
        *param32(ap_param_cpu) = i;
        *param32(ap_param_efer) = efer;
        if (start_one(cpu)) {
            online++;
        } else {
            cpu->failed = true;
            unanswered = true;
            kprintf("smp: CPU %u (APIC id %u) did not come up (%s); the others carry on\n", i,
                    cpu->apic_id, *param32(ap_param_alive) ? "started but never reached C"
                                                          : "no answer to INIT-SIPI-SIPI");
        }
    }
    if (!unanswered) {
        paging_retire_ap_trampoline();
    } else {
        // A CPU that did not answer in time may still be on its way through the page.
        kprintf("smp: the AP start page at 0x%x stays executable\n", AP_TRAMPOLINE_BASE);
    }
    return online;
}

// ---------------------------------------------------------------------------------------
// Wake-ups, idle accounting, stopping

void smp_set_wake_handler(void (*handler)(void)) {
    wake_handler = handler;
}

void smp_wake(unsigned cpu) {
    if (cpu >= cpu_count || !smp_cpus[cpu].online) {
        return;
    }
    smp_cpus[this_cpu].wakeups_sent++;
    if (cpu == this_cpu) {
        uint64_t flags = read_rflags();
        cli();
        smp_cpus[cpu].wakeups_received++;
        if (wake_handler != NULL) {
            wake_handler();
        }
        if (flags & RFLAGS_IF) {
            sti();
        }
        return;
    }
    if (wake_vector >= 0) {
        lapic_send_ipi(smp_cpus[cpu].apic_id, LAPIC_IPI_FIXED | LAPIC_IPI_ASSERT | (uint32_t)wake_vector);
    }
}

void smp_idle_halt(void) {
    struct smp_cpu *cpu = &smp_cpus[this_cpu];
    uint64_t start = rdtsc();
    cpu->halted_since = start;
    sti_hlt();
    cpu->halted_since = 0;
    cpu->idle_tsc += rdtsc() - start;
}

uint64_t smp_idle_tsc(unsigned index) {
    const struct smp_cpu *cpu = &smp_cpus[index];
    uint64_t since = cpu->halted_since;
    uint64_t now = rdtsc();
    return cpu->idle_tsc + (since != 0 && now > since ? now - since : 0);
}

void smp_count_interrupt(void) {
    smp_cpus[this_cpu].interrupts++;
}

bool smp_stop_others(void) {
    int expected = -1;
    int self = (int)this_cpu;
    if (!__atomic_compare_exchange_n(&stopping_cpu, &expected, self, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST)) {
        return expected == self;
    }
    if (cpu_count > 1 && lapic_enabled()) {
        lapic_send_ipi(0, LAPIC_IPI_NMI | LAPIC_IPI_ASSERT | LAPIC_IPI_ALL_BUT_SELF);
    }
    return true;
}

bool smp_stopping(void) {
    int stopper = stopping_cpu;
    return stopper >= 0 && stopper != (int)this_cpu;
}

void smp_lock(smp_spinlock_t *lock) {
    uint32_t ticket = __atomic_fetch_add(&lock->next, 1, __ATOMIC_RELAXED);
    while (__atomic_load_n(&lock->serving, __ATOMIC_ACQUIRE) != ticket) {
        cpu_relax();
    }
}

void smp_unlock(smp_spinlock_t *lock) {
    // Only the holder writes `serving`: a plain read of it is its own last value.
    __atomic_store_n(&lock->serving, lock->serving + 1, __ATOMIC_RELEASE);
}

uint64_t smp_lock_irqsave(smp_spinlock_t *lock) {
    uint64_t flags = read_rflags();
    cli();
    smp_lock(lock);
    return flags;
}

void smp_unlock_irqrestore(smp_spinlock_t *lock, uint64_t flags) {
    smp_unlock(lock);
    if (flags & RFLAGS_IF) {
        sti();
    }
}
