// The C boot sequence of the manticore port: from kernel_main (entered by arch/x86_64 in long
// mode with the boot information parsed) to the MicroPython REPL.
//
// arch_start64 has already set up the serial console, GDT/IDT, paging, the (masked) 8259 PIC
// and the TSC. Order here: the command line before anything reads it, the memory map before
// the GC heap, interrupts last before Python.
#include <string.h>

#include "py/compile.h"
#include "py/gc.h"
#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "shared/runtime/gchelper.h"
#include "shared/runtime/pyexec.h"

#include "arch/x86_64/boottrace.h"
#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/fw_cfg.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/power.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/tsc.h"
#include "arch/x86_64/start.h"
#include "drivers/pci/pci.h"
#include "drivers/serial/uart16550.h"
#include "drivers/virtio/virtio_blk.h"
#include "drivers/virtio/virtio_net.h"
#include "drivers/virtio/virtio_rng.h"
#include "mm/heap_reserve.h"
#include "mm/mm.h"

#include "ports/manticore/manticore.h"
#include "ports/manticore/netif_virtio.h"
#include "ports/manticore/nic.h"
#include "extmod/modnetwork.h"

// The fw_cfg file that replaces the boot loader's command line, so that one ISO can run any
// app: qemu -fw_cfg name=opt/manticore/cmdline,string=app=echod
#define FW_CFG_CMDLINE_FILE "opt/manticore/cmdline"

// The frozen Python boot script: reads the command line, starts an app or returns to the REPL.
#define BOOT_SCRIPT "_boot.py"

char manticore_cpu_brand[49];
const char *manticore_cmdline_source = "boot loader";

static void apply_fw_cfg_cmdline(void) {
    char override[sizeof(boot_info.cmdline)];
    long len = fw_cfg_read_file(FW_CFG_CMDLINE_FILE, override, sizeof(override) - 1);
    if (len < 0) {
        return;
    }
    // QEMU's string files may or may not carry a terminating NUL.
    override[len] = '\0';
    memcpy(boot_info.cmdline, override, (size_t)len + 1);
    manticore_cmdline_source = "fw_cfg";
}

// Formatted by the kernel's ksnprintf, which the boot has run already, not mp_printf, whose
// first use is ~1 ms of a cold TCG boot (boottrace: mp_printf is not needed before the
// prompt otherwise); and written in one piece, so that no other CPU's line splits it.
static void print_boot_line(void) {
    char line[BOOT_CMDLINE_MAX + 256];
    int len = ksnprintf(line, sizeof(line),
        "manticore: %s, RAM %u MiB, heap %u KiB, DMA pool %u KiB, boot %s, cmdline '%s' (%s)\n",
        manticore_cpu_brand,
        (unsigned)(mm_layout.ram_total >> 20),
        (unsigned)(mm_layout.heap_total >> 10),
        (unsigned)(mm_layout.dma.size >> 10),
        boot_info.loader, boot_info.cmdline, manticore_cmdline_source);
    mp_hal_stdout_tx_strn_cooked(line, len < (int)sizeof(line) ? (size_t)len : sizeof(line) - 1);
}

#define GC_THRESHOLD_DIVISOR (32)
#define GC_THRESHOLD_MIN (256 * 1024)
#define GC_THRESHOLD_MAX (4 * 1024 * 1024)

static void set_gc_threshold(uint64_t heap_total) {
    // Collect after every GC_THRESHOLD_DIVISOR-th of the heap has been allocated, instead of
    // only when the heap is full: with 100+ MiB of heap a long-running server otherwise
    // allocates through the whole heap first, and allocation gets slower the further it
    // goes (echod fell from 2,700 to 550 echoes/s in 30 s). Collections stay cheap because
    // live data is small; gc.threshold() changes it at run time.
    uint64_t threshold = heap_total / GC_THRESHOLD_DIVISOR;
    if (threshold < GC_THRESHOLD_MIN) {
        threshold = GC_THRESHOLD_MIN;
    } else if (threshold > GC_THRESHOLD_MAX) {
        threshold = GC_THRESHOLD_MAX;
    }
    MP_STATE_MEM(gc_alloc_threshold) = threshold / MICROPY_BYTES_PER_GC_BLOCK;
}

// Each CPU's GC heap grows from its reserve (mm/heap_reserve.h): the interpreter starts on
// a first area of at most GC_FIRST_AREA, and MicroPython's split-heap-auto (py/gc.c,
// gc_try_add_heap) adds areas, doubling the heap, when a collection leaves too little free;
// areas that empty go back. Zeroing a whole heap's allocation table (1/64 of it) was ~0.7 ms
// of a 256 MiB VM's TCG boot and ~80 ms of a 16 GiB one's (boottrace "cpus+heap"). Only the
// CPU itself uses its reserve.
#define GC_FIRST_AREA (16 * 1024 * 1024)

static struct heap_reserve heap_reserves[SMP_MAX_CPUS];

static void start_gc_heap(const struct mm_region *regions, int count) {
    struct heap_reserve *reserve = &heap_reserves[smp_cpu_id()];
    heap_reserve_init(reserve);
    for (int i = 0; i < count; i++) {
        heap_reserve_add(reserve, regions[i].base, regions[i].size);
    }
    uint64_t first = heap_reserve_largest(reserve);
    if (first > GC_FIRST_AREA) {
        first = GC_FIRST_AREA;
    }
    uint8_t *area = heap_reserve_take(reserve, first);
    if (area == NULL) {
        panic("memory: no room for a first GC heap area on CPU %u", smp_cpu_id());
    }
    gc_init(area, area + first);
    set_gc_threshold(reserve->total);
}

// MicroPython's hooks for split-heap-auto (mpconfigport.h).
size_t gc_get_max_new_split(void) {
    return (size_t)heap_reserve_largest(&heap_reserves[smp_cpu_id()]);
}

void *manticore_gc_area_take(size_t size) {
    return heap_reserve_take(&heap_reserves[smp_cpu_id()], size);
}

void manticore_gc_area_give(void *area) {
    heap_reserve_give(&heap_reserves[smp_cpu_id()], area);
}

// ---------------------------------------------------------------------------------------
// The other CPUs. Each runs an interpreter of its own (docs/multicore.md): MicroPython's
// static state is in the per-CPU window, so the same code below works on its own copy of
// everything, with its own GC heap and stack. It runs the boot script too, which starts the
// apps placed on this CPU; afterwards the CPU serves wake-ups and halts in between.

static void run_interpreter(void);

static void kernel_main_ap(unsigned cpu) {
    struct smp_cpu *self = &smp_cpus[cpu];
    mp_stack_ctrl_init();
    mp_stack_set_limit((mp_uint_t)(self->stack_top - self->stack_bottom) - 16 * 1024);
    struct mm_region share = { .base = self->heap_base, .size = self->heap_size };
    start_gc_heap(&share, 1);
    __asm__ volatile ("sti");
    run_interpreter();
}

// Give each AP an equal share of the GC heap (the boot CPU keeps the rest and what does not
// divide evenly), then start them; they come up while the boot CPU goes on to its REPL.
static void start_other_cpus(void) {
    manticore_smp_init();
    unsigned count = smp_cpu_count();
    manticore_native_setup(count);
    if (count <= 1) {
        smp_start_aps(mm_carve, kernel_main_ap);   // none to start: it retires their start page
        return;
    }
    uint64_t share = (mm_layout.heap_total / count) & ~(uint64_t)0xfff;
    for (unsigned cpu = 1; cpu < count; cpu++) {
        // Anywhere in RAM: with more than ~3 GiB, most of it lies above 4 GiB, and below it a
        // share would not fit (a 5 GiB VM's CPU 1 once started with no heap and faulted).
        void *heap = mm_take_anywhere(share, 4096);
        if (heap == NULL) {
            mp_printf(&mp_plat_print, "smp: no room for CPU %u's %u KiB of heap in one piece; "
                "it stays off\n", cpu, (unsigned)(share >> 10));
            smp_cpus[cpu].failed = true;
            continue;
        }
        smp_cpus[cpu].heap_base = (uintptr_t)heap;
        smp_cpus[cpu].heap_size = share;
    }
    uint64_t started = tsc_read();
    unsigned online = smp_start_aps(mm_carve, kernel_main_ap);
    mp_printf(&mp_plat_print, "smp: %u of %u CPUs online in %u us, %u KiB of heap each beside CPU 0's\n",
        online, count, (unsigned)tsc_to_us(tsc_read() - started), (unsigned)(share >> 10));
}
void kernel_main(void) {
    cpu_brand_string(manticore_cpu_brand);
    apply_fw_cfg_cmdline();

    const char *why = NULL;
    if (mm_init(&boot_info, (uint64_t)(uintptr_t)__kernel_end, &why) != 0) {
        panic("memory: %s", why);
    }
    boottrace_mark("memory");

    // Devices, once the platform (ACPI, APICs, irq, timer: arch_start64) and the DMA pool
    // are up.
    pci_init();
    boottrace_mark("pci");
    virtio_rng_probe();
    virtio_net_probe();
    virtio_blk_probe();    // vda, vdb, ... (kernel/fs.py mounts vda at /)
    boottrace_mark("virtio");
    netif_virtio_init();   // lwIP and its netif over virtio-net (no NIC: lwIP starts on first use)
    boottrace_mark("lwip");
    arch_calibration_finish();   // exact clocks from here on: the setup above was its window

    mp_hal_console_init();
    start_other_cpus();
    __asm__ volatile ("sti");

    // The C stack: Python recursion must hit MicroPython's limit (RuntimeError) long before
    // the guard page below the stack (a panic).
    mp_stack_ctrl_init();
    mp_stack_set_limit((mp_uint_t)(kernel_stack_top - kernel_stack_bottom) - 16 * 1024);
    start_gc_heap(mm_layout.heap, mm_layout.heap_count);
    boottrace_mark("cpus+heap");

    run_interpreter();
}

// Every CPU's life after its heap is set up: the boot script, then the REPL if the console
// is this CPU's (CPU 0's unless replcpu= moved it), else serving wake-ups. A soft reset
// (Ctrl-D) starts this CPU's interpreter over; the other CPUs go on.
static void run_interpreter(void) {
    bool boot_cpu = smp_cpu_id() == 0;
    for (;;) {
        manticore_native_reset();   // the previous interpreter's native code is gone
        mp_init();
        mod_network_init();   // network.LAN's registry (a root pointer: after every mp_init)
        manticore_kernel_reset();
        if (boot_cpu) {
            boottrace_mark("mp_init");
            print_boot_line();
        }

        pyexec_frozen_module(BOOT_SCRIPT, true);
        if (boot_cpu) {
            boottrace_report();   // boottrace=1, unless kernel/boot.py printed it already
        }
        while (mp_hal_console_cpu != smp_cpu_id()) {
            mp_event_wait_indefinite();   // no REPL here: halt between wake-ups
        }

        int exit_kind = 0;
        for (;;) {
            if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL) {
                if ((exit_kind = pyexec_raw_repl()) != 0) {
                    break;
                }
            } else {
                if ((exit_kind = pyexec_friendly_repl()) != 0) {
                    break;
                }
            }
        }

        // Both Ctrl-D and SystemExit end the REPL with PYEXEC_FORCED_EXIT. Ctrl-D and
        // SystemExit in the raw REPL (tools, tests: "raise SystemExit" means "skip") soft
        // reset, as on every MicroPython board; SystemExit typed at the friendly REPL
        // (sys.exit()) powers the machine off.
        if (pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL
            && mp_hal_last_rx_char != CHAR_CTRL_D) {
            mp_printf(&mp_plat_print, "manticore: power off\n");
            power_off();
        }

        mp_printf(&mp_plat_print, "MPY: soft reboot\n");
        nic_raw_release();   // this CPU's apps' raw NIC queues go back (to lwIP)
        gc_sweep_all();
        mp_deinit();
    }
}

void gc_collect(void) {
    gc_collect_start();
    gc_helper_collect_regs_and_stack();
    gc_collect_end();
}

void nlr_jump_fail(void *val) {
    panic("uncaught NLR jump (exception object %p)", val);
}

void NORETURN __fatal_error(const char *msg) {
    panic("MicroPython fatal error: %s", msg);
}

#ifndef NDEBUG
void MP_WEAK __assert_func(const char *file, int line, const char *func, const char *expr) {
    panic("assertion '%s' failed in %s at %s:%d", expr, func, file, line);
}
#endif
