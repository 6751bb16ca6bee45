// The application processors' way from reset to C. A STARTUP IPI starts an AP in real mode
// at CS:IP = vector * 256 : 0 (Intel SDM Vol. 3A 9.4.4 / 8.4.4.1, "Typical AP Initialization
// Sequence"), so this code is copied below 1 MiB (AP_TRAMPOLINE_BASE) before the IPI and runs
// there: real mode -> 32-bit protected mode -> IA-32e mode (SDM Vol. 3A 10.8.5, as boot.S
// does for the boot CPU) -> the C entry named in the parameter block at its end, on the
// stack and page-table root smp.c wrote there for this CPU. APs start one at a time, so one
// parameter block serves all of them.
//
// Everything below refers to itself as AT(symbol): its address once copied.

#define AP_TRAMPOLINE_BASE          0x8000      // smp.c: the STARTUP vector is 0x08
#define AT(symbol)                  ((symbol) - ap_trampoline_start + AP_TRAMPOLINE_BASE)

#define CR0_PE                      (1 << 0)
#define CR0_MP                      (1 << 1)
#define CR0_EM                      (1 << 2)
#define CR0_NE                      (1 << 5)
#define CR0_WP                      (1 << 16)
#define CR0_PG                      (1 << 31)
#define CR4_PAE                     (1 << 5)
#define CR4_OSFXSR                  (1 << 9)
#define CR4_OSXMMEXCPT              (1 << 10)
#define MSR_EFER                    0xc0000080
#define EFER_LME                    (1 << 8)

    .section .rodata.ap_trampoline, "a"
    .globl ap_trampoline_start, ap_trampoline_end
    .globl ap_param_cr3, ap_param_stack, ap_param_entry, ap_param_cpu, ap_param_efer, ap_param_alive

    .code16
ap_trampoline_start:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl AT(ap_gdt_pointer)
    mov %cr0, %eax
    or $CR0_PE, %eax
    mov %eax, %cr0
    ljmpl $0x18, $AT(ap_protected_mode)

    .code32
ap_protected_mode:
    mov $0x20, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    movl $1, AT(ap_param_alive)     // tell the boot CPU this AP is executing
    mov %cr4, %eax
    or $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    mov %eax, %cr4
    mov AT(ap_param_cr3), %eax      // this CPU's root: its own per-CPU window
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or AT(ap_param_efer), %eax      // LME, and NXE when the boot CPU has it
    wrmsr
    mov %cr0, %eax
    and $~CR0_EM, %eax
    or $(CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG), %eax
    mov %eax, %cr0
    ljmp $0x08, $AT(ap_long_mode)

    .code64
ap_long_mode:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    fninit
    mov AT(ap_param_stack), %rsp
    mov AT(ap_param_cpu), %edi
    mov AT(ap_param_entry), %rax
    xor %ebp, %ebp                  // ends the backtrace chain
    call *%rax
1:  cli
    hlt
    jmp 1b

// The same flat descriptors as boot.S's GDT: 64-bit code 0x08, data 0x10, 32-bit code 0x18
// and data 0x20 (SDM Vol. 3A 3.4.5).
    .balign 16
ap_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
ap_gdt_end:
ap_gdt_pointer:
    .short ap_gdt_end - ap_gdt - 1
    .long AT(ap_gdt)

// The parameter block smp.c fills in for each AP (offsets taken from these symbols).
    .balign 8
ap_param_cr3:
    .quad 0
ap_param_stack:
    .quad 0
ap_param_entry:
    .quad 0
ap_param_cpu:
    .long 0
ap_param_efer:
    .long 0
ap_param_alive:
    .long 0
ap_trampoline_end:

    .section .note.GNU-stack, "", @progbits
