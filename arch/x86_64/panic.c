// The kernel's last words: the panic report on the serial console (CPU exception or software
// panic), its exact format being a contract with the tests and the host symbolizer, followed
// by an exit through QEMU's isa-debug-exit device.
//
// The report (see the project's interface contract):
//   *** MANTICORE PANIC: Page fault (#PF, vector 14) ***
//   error code: 0x0000000000000000 (read, not-present, supervisor)
//   RIP    0x...  RSP 0x...  RFLAGS 0x...
//   CR2    0x...  CR3 0x...                      (page faults only)
//   RAX 0x... RBX 0x... RCX 0x... RDX 0x...      (four register lines)
//   backtrace:
//     #0 0x...                                   (#0 = RIP, then return addresses)
//   *** end of panic; exit status 3 via isa-debug-exit ***
#include "arch/x86_64/panic.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/start.h"
#include "drivers/serial/uart16550.h"

enum {
    BACKTRACE_MAX_FRAMES = 32,
    EXTRA_STACK_MAX = 24,   // each AP's kernel stack, and a few more
    PANIC_EXIT_VALUE = 1,  // isa-debug-exit turns 1 into QEMU exit status 3
};

// Page-fault error code bits (SDM Vol. 3A 4.7, Figure 4-12).
enum page_fault_error_bits {
    PF_PRESENT           = 1u << 0,   // 0: page not present; 1: protection violation
    PF_WRITE             = 1u << 1,
    PF_USER              = 1u << 2,
    PF_RESERVED_BIT      = 1u << 3,   // a reserved bit was set in a paging-structure entry
    PF_INSTRUCTION_FETCH = 1u << 4,
    PF_PROTECTION_KEY    = 1u << 5,
    PF_SHADOW_STACK      = 1u << 6,
};

// Selector error code bits for #TS, #NP, #SS, #GP (SDM Vol. 3A 6.13, Figure 6-6).
enum selector_error_bits {
    SELECTOR_ERROR_EXTERNAL = 1u << 0,
    SELECTOR_ERROR_IDT      = 1u << 1,
    SELECTOR_ERROR_LDT      = 1u << 2,
};

// Names from SDM Vol. 3A 6.3.1, Table 6-1 (and AMD APM Vol. 2, 8.2 for 28-30).
static const struct {
    const char *mnemonic;
    const char *name;
} exception_names[32] = {
    [0]  = { "#DE", "Divide error" },
    [1]  = { "#DB", "Debug exception" },
    [2]  = { "NMI", "Non-maskable interrupt" },
    [3]  = { "#BP", "Breakpoint" },
    [4]  = { "#OF", "Overflow" },
    [5]  = { "#BR", "BOUND range exceeded" },
    [6]  = { "#UD", "Invalid opcode" },
    [7]  = { "#NM", "Device not available" },
    [8]  = { "#DF", "Double fault" },
    [9]  = { NULL, "Coprocessor segment overrun" },
    [10] = { "#TS", "Invalid TSS" },
    [11] = { "#NP", "Segment not present" },
    [12] = { "#SS", "Stack-segment fault" },
    [13] = { "#GP", "General protection" },
    [14] = { "#PF", "Page fault" },
    [15] = { NULL, "Reserved exception" },
    [16] = { "#MF", "x87 floating-point error" },
    [17] = { "#AC", "Alignment check" },
    [18] = { "#MC", "Machine check" },
    [19] = { "#XM", "SIMD floating-point exception" },
    [20] = { "#VE", "Virtualization exception" },
    [21] = { "#CP", "Control protection exception" },
    [22] = { NULL, "Reserved exception" },
    [23] = { NULL, "Reserved exception" },
    [24] = { NULL, "Reserved exception" },
    [25] = { NULL, "Reserved exception" },
    [26] = { NULL, "Reserved exception" },
    [27] = { NULL, "Reserved exception" },
    [28] = { "#HV", "Hypervisor injection exception" },
    [29] = { "#VC", "VMM communication exception" },
    [30] = { "#SX", "Security exception" },
    [31] = { NULL, "Reserved exception" },
};

static bool exception_has_error_code(unsigned vector) {
    return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21
           || vector == 29 || vector == 30;
}

static volatile int panic_depth;

static struct {
    uintptr_t bottom, top;
} extra_stacks[EXTRA_STACK_MAX];
static int extra_stack_count;

void debug_exit(uint32_t value) {
    outl(DEBUG_EXIT_PORT, value);
}

void panic_register_stack(uintptr_t bottom, uintptr_t top) {
    if (extra_stack_count < EXTRA_STACK_MAX) {
        extra_stacks[extra_stack_count].bottom = bottom;
        extra_stacks[extra_stack_count].top = top;
        extra_stack_count++;
    }
}

static __attribute__((noreturn)) void panic_exit(void) {
    debug_exit(PANIC_EXIT_VALUE);
    for (;;) {
        cli();
        hlt();
    }
}

// Which known, mapped stack [address, address + size) lies in: 0 for the kernel stack, 1-3
// for the IST stacks, 4 and up for registered ones; -1 when none (reading there might fault).
static int known_stack_of(uintptr_t address, size_t size) {
    if (address + size < address) {
        return -1;
    }
    if (address >= (uintptr_t)kernel_stack_bottom
        && address + size <= (uintptr_t)kernel_stack_top) {
        return 0;
    }
    for (int slot = 1; slot <= IST_SLOT_COUNT; slot++) {
        uintptr_t bottom, top;
        gdt_ist_stack_bounds(slot, &bottom, &top);
        if (address >= bottom && address + size <= top) {
            return slot;
        }
    }
    for (int i = 0; i < extra_stack_count; i++) {
        if (address >= extra_stacks[i].bottom && address + size <= extra_stacks[i].top) {
            return 1 + IST_SLOT_COUNT + i;
        }
    }
    return -1;
}

// With frame pointers every frame starts [saved RBP][return address]; follow the chain while
// it stays aligned, inside a known stack and, within one stack, moves towards older frames
// (a step from an IST stack to the interrupted stack may go either way).
static void print_backtrace(uint64_t rip, uint64_t rbp) {
    kprintf("backtrace:\n");
    kprintf("  #0 0x%016lx\n", rip);
    for (int depth = 1; depth < BACKTRACE_MAX_FRAMES; depth++) {
        int stack = known_stack_of(rbp, 16);
        if (rbp == 0 || (rbp & 7) != 0 || stack < 0) {
            break;
        }
        const uint64_t *saved = (const uint64_t *)rbp;
        uint64_t return_address = saved[1];
        if (return_address == 0) {
            break;
        }
        kprintf("  #%d 0x%016lx\n", depth, return_address);
        uint64_t caller_rbp = saved[0];
        if (caller_rbp <= rbp && known_stack_of(caller_rbp, 16) == stack) {
            break;
        }
        rbp = caller_rbp;
    }
}

static void print_registers(const struct interrupt_frame *f, bool page_fault) {
    kprintf("RIP    0x%016lx  RSP 0x%016lx  RFLAGS 0x%016lx\n", f->rip, f->rsp, f->rflags);
    if (page_fault) {
        kprintf("CR2    0x%016lx  CR3 0x%016lx\n", read_cr2(), read_cr3());
    }
    kprintf("RAX 0x%016lx RBX 0x%016lx RCX 0x%016lx RDX 0x%016lx\n",
            f->rax, f->rbx, f->rcx, f->rdx);
    kprintf("RSI 0x%016lx RDI 0x%016lx RBP 0x%016lx R8  0x%016lx\n", f->rsi, f->rdi, f->rbp, f->r8);
    kprintf("R9  0x%016lx R10 0x%016lx R11 0x%016lx R12 0x%016lx\n", f->r9, f->r10, f->r11, f->r12);
    kprintf("R13 0x%016lx R14 0x%016lx R15 0x%016lx\n", f->r13, f->r14, f->r15);
}

static void print_error_code(unsigned vector, uint64_t code) {
    kprintf("error code: 0x%016lx", code);
    if (vector == EXCEPTION_PAGE_FAULT) {
        kprintf(" (%s, %s, %s", (code & PF_WRITE) ? "write" : "read",
                (code & PF_PRESENT) ? "protection-violation" : "not-present",
                (code & PF_USER) ? "user" : "supervisor");
        if (code & PF_RESERVED_BIT) {
            kprintf(", reserved-bit");
        }
        if (code & PF_INSTRUCTION_FETCH) {
            kprintf(", instruction-fetch");
        }
        if (code & PF_PROTECTION_KEY) {
            kprintf(", protection-key");
        }
        if (code & PF_SHADOW_STACK) {
            kprintf(", shadow-stack");
        }
        kprintf(")");
    } else if (vector >= EXCEPTION_INVALID_TSS && vector <= EXCEPTION_GENERAL_PROTECTION) {
        if (code == 0) {
            kprintf(" (no selector)");
        } else {
            kprintf(" (%s index 0x%lx%s)",
                    (code & SELECTOR_ERROR_IDT)   ? "IDT"
                    : (code & SELECTOR_ERROR_LDT) ? "LDT"
                                                  : "GDT",
                    (code & 0xffff) >> 3,
                    (code & SELECTOR_ERROR_EXTERNAL) ? ", external" : "");
        }
    }
    kprintf("\n");
}

static void print_end(void) {
    kprintf("*** end of panic; exit status 3 via isa-debug-exit ***\n");
}

// Another CPU is reporting a panic and stopped this one with an NMI: halt for good.
static __attribute__((noreturn)) void halt_stopped_cpu(void) {
    for (;;) {
        cli();
        hlt();
    }
}

// Which CPU is reporting; printed right after the first line of the report.
static void print_cpu_line(void) {
    unsigned cpu = smp_cpu_id();
    kprintf("cpu: %u of %u (APIC id %u)\n", cpu, smp_cpu_count(), smp_apic_id(cpu));
}

void panic_exception(struct interrupt_frame *frame) {
    cli();
    unsigned vector = frame->vector & 0xff;
    if (vector == EXCEPTION_NMI && smp_stopping()) {
        halt_stopped_cpu();
    }
    if (!smp_stop_others()) {
        halt_stopped_cpu();   // another CPU panicked first; its report is the one that counts
    }
    uart_force_output();
    const char *mnemonic = vector < 32 ? exception_names[vector].mnemonic : NULL;
    const char *name = vector < 32 ? exception_names[vector].name : "Unexpected interrupt";

    if (__atomic_fetch_add(&panic_depth, 1, __ATOMIC_SEQ_CST) > 0) {
        kprintf("\n*** MANTICORE PANIC: %s (vector %u) at RIP 0x%016lx while reporting a panic;"
                " giving up ***\n", name, vector, frame->rip);
        panic_exit();
    }

    kprintf("\n*** MANTICORE PANIC: %s", name);
    if (mnemonic) {
        kprintf(" (%s, vector %u) ***\n", mnemonic, vector);
    } else {
        kprintf(" (vector %u) ***\n", vector);
    }
    print_cpu_line();
    if (exception_has_error_code(vector)) {
        print_error_code(vector, frame->error_code);
    }
    print_registers(frame, vector == EXCEPTION_PAGE_FAULT);
    print_backtrace(frame->rip, frame->rbp);
    print_end();
    panic_exit();
}

// The general registers as far as C lets us see them: by the time this runs, panic's own
// prologue and argument handling have used some of them. The caller's RSP, RBP and RIP,
// which the report and the backtrace rely on, are taken exactly from panic's frame instead.
__attribute__((noinline)) static void capture_registers(struct interrupt_frame *f) {
    __asm__ volatile (
        "mov %%rax, %c[rax](%[f])\n\t"
        "mov %%rbx, %c[rbx](%[f])\n\t"
        "mov %%rcx, %c[rcx](%[f])\n\t"
        "mov %%rdx, %c[rdx](%[f])\n\t"
        "mov %%rsi, %c[rsi](%[f])\n\t"
        "mov %%rdi, %c[rdi](%[f])\n\t"
        "mov %%r8,  %c[r8](%[f])\n\t"
        "mov %%r9,  %c[r9](%[f])\n\t"
        "mov %%r10, %c[r10](%[f])\n\t"
        "mov %%r11, %c[r11](%[f])\n\t"
        "mov %%r12, %c[r12](%[f])\n\t"
        "mov %%r13, %c[r13](%[f])\n\t"
        "mov %%r14, %c[r14](%[f])\n\t"
        "mov %%r15, %c[r15](%[f])\n\t"
        :
        : [f] "r"(f),
          [rax] "i"(offsetof(struct interrupt_frame, rax)),
          [rbx] "i"(offsetof(struct interrupt_frame, rbx)),
          [rcx] "i"(offsetof(struct interrupt_frame, rcx)),
          [rdx] "i"(offsetof(struct interrupt_frame, rdx)),
          [rsi] "i"(offsetof(struct interrupt_frame, rsi)),
          [rdi] "i"(offsetof(struct interrupt_frame, rdi)),
          [r8] "i"(offsetof(struct interrupt_frame, r8)),
          [r9] "i"(offsetof(struct interrupt_frame, r9)),
          [r10] "i"(offsetof(struct interrupt_frame, r10)),
          [r11] "i"(offsetof(struct interrupt_frame, r11)),
          [r12] "i"(offsetof(struct interrupt_frame, r12)),
          [r13] "i"(offsetof(struct interrupt_frame, r13)),
          [r14] "i"(offsetof(struct interrupt_frame, r14)),
          [r15] "i"(offsetof(struct interrupt_frame, r15))
        : "memory");
}

void panic(const char *fmt, ...) {
    struct interrupt_frame frame;
    capture_registers(&frame);
    cli();
    // panic's own frame: [RBP] = the caller's RBP, [RBP + 8] = the return address into the
    // caller, and the caller's RSP was just above that.
    const uint64_t *own_frame = __builtin_frame_address(0);
    frame.rbp = own_frame[0];
    frame.rip = (uint64_t)__builtin_return_address(0);
    frame.rsp = (uint64_t)(own_frame + 2);
    frame.rflags = read_rflags();
    frame.vector = 0;
    frame.error_code = 0;
    if (!smp_stop_others()) {
        halt_stopped_cpu();
    }
    uart_force_output();

    va_list args;
    if (__atomic_fetch_add(&panic_depth, 1, __ATOMIC_SEQ_CST) > 0) {
        kprintf("\n*** MANTICORE PANIC: (while reporting a panic) ");
        va_start(args, fmt);
        kvprintf(fmt, args);
        va_end(args);
        kprintf("; giving up ***\n");
        panic_exit();
    }

    kprintf("\n*** MANTICORE PANIC: ");
    va_start(args, fmt);
    kvprintf(fmt, args);
    va_end(args);
    kprintf(" ***\n");
    print_cpu_line();
    print_registers(&frame, false);
    print_backtrace(frame.rip, frame.rbp);
    print_end();
    panic_exit();
}
