// First instructions of the kernel: the boot loader (GRUB via Multiboot2, or QEMU/Xen via the
// PVH direct-boot ABI) enters here in 32-bit protected mode without paging; this code builds
// identity page tables for the first 4 GiB, switches to 64-bit long mode, turns on SSE and
// calls arch_start64(magic, info) in C on the kernel stack.

#define MULTIBOOT2_HEADER_MAGIC     0xe85250d6  // Multiboot2 spec 3.1.2
#define MULTIBOOT2_ARCH_I386        0           // "32-bit (protected) mode of i386"
#define MULTIBOOT2_TAG_END          0           // spec 3.1.3
#define MULTIBOOT2_TAG_INFO_REQUEST 1           // spec 3.1.4
#define MULTIBOOT2_TAG_ENTRY        3           // spec 3.1.6
#define MULTIBOOT2_TAG_OPTIONAL     1           // header tag flags bit 0

#define MBI_TAG_CMDLINE             1           // spec 3.6.3
#define MBI_TAG_BASIC_MEMINFO       4           // spec 3.6.4
#define MBI_TAG_MMAP                6           // spec 3.6.8
#define MBI_TAG_ACPI_OLD            14          // spec 3.6.14
#define MBI_TAG_ACPI_NEW            15          // spec 3.6.15

#define MULTIBOOT2_BOOTLOADER_MAGIC 0x36d76289  // in EAX at entry, spec 3.3
#define PVH_START_INFO_MAGIC        0x336ec578  // hvm_start_info.magic (Xen hvm/start_info.h)

#define XEN_ELFNOTE_PHYS32_ENTRY    18          // Xen public/elfnote.h

// Paging-structure entry bits (Intel SDM Vol. 3A, 4.5 "4-Level Paging", Tables 4-15..4-19).
#define PTE_PRESENT                 (1 << 0)
#define PTE_WRITABLE                (1 << 1)
#define PTE_LARGE                   (1 << 7)    // PS: this PDE maps a 2 MiB page

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
#define EFER_NXE                    (1 << 11)
#define CPUID_EXT_LONG_MODE         (1 << 29)   // CPUID.80000001h:EDX.LM
#define CPUID_EXT_NX                (1 << 20)   // CPUID.80000001h:EDX.NX

#define KERNEL_CODE_SELECTOR        0x08
#define KERNEL_DATA_SELECTOR        0x10

#define KERNEL_STACK_SIZE           (256 * 1024)
#define PAGE_SIZE                   4096

#define COM1                        0x3f8
#define DEBUG_EXIT_PORT             0xf4        // panic.h: QEMU's isa-debug-exit
#define PANIC_EXIT_VALUE            1           // panic.c: QEMU exit status (1 << 1) | 1 = 3
#define RAM_PROBE_PATTERN           0x6d616e74  // any value but 0 and all ones

// ---------------------------------------------------------------------------------------
// Multiboot2 header: in the first 32 KiB of the file, 8-byte aligned (spec 3.1.1). The
// linker script puts .multiboot2 first in the first loadable segment.
    .section .multiboot2, "a"
    .balign 8
multiboot2_header:
    .long MULTIBOOT2_HEADER_MAGIC
    .long MULTIBOOT2_ARCH_I386
    .long multiboot2_header_end - multiboot2_header
    .long -(MULTIBOOT2_HEADER_MAGIC + MULTIBOOT2_ARCH_I386 \
            + (multiboot2_header_end - multiboot2_header))

    // Ask for the tags we read; optional, so a loader lacking one still boots us.
    .balign 8
1:  .short MULTIBOOT2_TAG_INFO_REQUEST
    .short MULTIBOOT2_TAG_OPTIONAL
    .long 2f - 1b
    .long MBI_TAG_CMDLINE
    .long MBI_TAG_BASIC_MEMINFO
    .long MBI_TAG_MMAP
    .long MBI_TAG_ACPI_OLD
    .long MBI_TAG_ACPI_NEW
2:
    // Entry address: GRUB would use the ELF entry point anyway; this makes it explicit.
    .balign 8
1:  .short MULTIBOOT2_TAG_ENTRY
    .short 0
    .long 2f - 1b
    .long multiboot2_entry
2:
    .balign 8
    .short MULTIBOOT2_TAG_END
    .short 0
    .long 8
multiboot2_header_end:

// ---------------------------------------------------------------------------------------
// PVH entry note: QEMU's -kernel and Xen start an ELF kernel at this 32-bit physical address
// with EBX = struct hvm_start_info (Xen docs/misc/pvh.pandoc, "Entry point"). The descriptor
// is 8 bytes wide for ELF64 (as in Linux' arch/x86/platform/pvh/head.S); QEMU locates it
// using the note segment's alignment, so the section stays 4-byte aligned.
    .section .note.Xen, "a", @note
    .p2align 2
    .long 2f - 1f           // n_namesz
    .long 4f - 3f           // n_descsz
    .long XEN_ELFNOTE_PHYS32_ENTRY
1:  .asciz "Xen"
2:  .p2align 2
3:  .quad pvh_entry
4:  .p2align 2

// ---------------------------------------------------------------------------------------
    .section .text.boot32, "ax"
    .code32

// Multiboot2 machine state (spec 3.3): EAX = magic, EBX = physical address of the boot
// information, protected mode, paging off, interrupts off, no usable stack.
    .globl multiboot2_entry
multiboot2_entry:
    cli
    cld
    mov %eax, %edi                  // EDI = magic for arch_start64
    mov %ebx, %esi                  // ESI = boot information pointer
    jmp common_entry32

// PVH machine state (pvh.pandoc): EBX = hvm_start_info, protected mode, paging off. There is
// no magic in a register; pass the structure's own magic field so C can check it.
    .globl pvh_entry
pvh_entry:
    cli
    cld
    mov (%ebx), %edi
    mov %ebx, %esi
    jmp common_entry32

common_entry32:
    // Our own flat 32-bit GDT first: the loaders promise flat segments but not where their
    // GDT lives, and we are about to overwrite memory.
    lgdt boot_gdt_pointer
    ljmp $0x18, $1f
1:  mov $0x20, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs

    // The first TSC reading of the boot, for boottrace's "loader" phase (everything before
    // this instruction: QEMU, firmware, boot loader). In .data: .bss is zeroed next.
    rdtsc
    mov %eax, boot_entry_tsc
    mov %edx, boot_entry_tsc + 4

    // Zero .bss: an ELF loader zero-fills memsz > filesz (gABI, "Program Header"), but QEMU
    // does not again on a warm reset (it rewrites only the file bytes). .bss.noinit, where
    // the big buffers that need no zeros live, lies below __bss_start (kernel.ld): zeroing
    // all 2.4 MiB with rep stosl took 2-4 ms of every TCG boot (boottrace "entry").
    mov $__bss_start, %edx
    mov $__bss_end, %ecx
    sub %edx, %ecx
    shr $2, %ecx
    xor %eax, %eax
    mov %edi, %ebp                  // no stack yet: park EDI in EBP while STOS uses it
    mov %edx, %edi
    rep stosl
    // ... and the boot CPU's copy of the per-CPU window's zeroed part (kernel.ld).
    mov $__percpu_bss_start, %edi
    mov $__percpu_bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    rep stosl
    mov %ebp, %edi

    // Is there RAM up to the image's end? The loaders place the image without checking it
    // against the memory QEMU was given (-m): a VM smaller than the image (its .bss, where
    // the stack and the page tables live) would fault on its first instruction after
    // paging and triple-fault, which with -no-reboot ends QEMU with status 0 and no word.
    // Writes beyond RAM are dropped (reads give 0 or all ones), so a pattern written at the
    // image's last dword reads back only if RAM is there. The dword is .bss: zero it again.
    movl $RAM_PROBE_PATTERN, __kernel_end - 4
    cmpl $RAM_PROBE_PATTERN, __kernel_end - 4
    jne no_ram_for_image
    movl $0, __kernel_end - 4

    mov %edi, boot_magic
    mov %esi, boot_info_pointer

    mov $kernel_stack_top, %esp

    // Long mode available? (CPUID.80000001h:EDX.LM, SDM Vol. 2A CPUID)
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    test $CPUID_EXT_LONG_MODE, %edx
    jz no_long_mode
    mov %edx, %ebx                  // keep the NX feature bit for EFER below

    // Identity map 0-4 GiB with 2 MiB pages: PML4[0] -> PDPT, PDPT[0..3] -> four page
    // directories of 512 entries each (SDM Vol. 3A 4.5, Figure 4-9).
    mov $boot_pdpt, %eax
    or $(PTE_PRESENT | PTE_WRITABLE), %eax
    mov %eax, boot_pml4
    mov $boot_page_directories, %eax
    or $(PTE_PRESENT | PTE_WRITABLE), %eax
    xor %ecx, %ecx
1:  mov %eax, boot_pdpt(, %ecx, 8)
    add $PAGE_SIZE, %eax
    inc %ecx
    cmp $4, %ecx
    jb 1b

    // 2048 PDEs: entry i maps physical i * 2 MiB. The high dword holds address bits 32-35.
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $(PTE_PRESENT | PTE_WRITABLE | PTE_LARGE), %eax
    mov %eax, boot_page_directories(, %ecx, 8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, boot_page_directories + 4(, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    // Enter IA-32e mode (SDM Vol. 3A 10.8.5 "Initializing IA-32e Mode"): PAE on, CR3, then
    // EFER.LME, then CR0.PG.
    mov %cr4, %eax
    or $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    test $CPUID_EXT_NX, %ebx
    jz 1f
    or $EFER_NXE, %eax
1:  wrmsr
    // SSE needs CR0.EM = 0 and CR0.MP = 1 (SDM Vol. 3A 14.1.3 "Initialization of the SSE
    // Extensions"); NE selects native #MF reporting; WP makes read-only pages read-only for us.
    mov %cr0, %eax
    and $~CR0_EM, %eax
    or $(CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG), %eax
    mov %eax, %cr0

    // Now in compatibility mode; a far jump through a 64-bit code descriptor enters 64-bit
    // mode (SDM Vol. 3A 10.8.5 step 5).
    ljmp $KERNEL_CODE_SELECTOR, $long_mode_entry

// Early failures, before there is a stack (it is .bss, possibly beyond RAM): say why on
// COM1 (QEMU's 16550 needs no set-up to transmit), then end QEMU through isa-debug-exit
// with the panic's status 3 (panic.h), or halt where that device is absent.
no_long_mode:
    mov $no_long_mode_message, %esi
    mov $boot_fail_exit, %ebp
    jmp early_puts

no_ram_for_image:
    mov $no_ram_message, %esi
    mov $1f, %ebp
    jmp early_puts
1:  mov $__kernel_end, %ebx         // the image's end, as 8 hex digits
    mov $8, %ecx
2:  rol $4, %ebx
    mov %bl, %al
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 3f
    add $('a' - '9' - 1), %al
3:  mov %al, %ah
    mov $(COM1 + 5), %dx
4:  inb %dx, %al
    test $0x20, %al
    jz 4b
    mov %ah, %al
    mov $COM1, %dx
    outb %al, %dx
    loop 2b
    mov $no_ram_message_end, %esi
    mov $boot_fail_exit, %ebp
    jmp early_puts

// Print the NUL-terminated string at ESI on COM1, then jump to EBP (no stack to return on).
early_puts:
1:  mov $(COM1 + 5), %dx            // wait for LSR.THRE
2:  inb %dx, %al
    test $0x20, %al
    jz 2b
    mov $COM1, %dx
    lodsb
    test %al, %al
    jz 3f
    outb %al, %dx
    jmp 1b
3:  jmp *%ebp

boot_fail_exit:
    mov $DEBUG_EXIT_PORT, %dx
    mov $PANIC_EXIT_VALUE, %eax
    outl %eax, %dx
1:  cli
    hlt
    jmp 1b

// ---------------------------------------------------------------------------------------
    .code64
    .section .text, "ax"
long_mode_entry:
    mov $KERNEL_DATA_SELECTOR, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs

    fninit
    mov $kernel_stack_top, %rsp     // 16-byte aligned: the call below pushes the return address
    xor %ebp, %ebp                  // RBP = 0 ends the backtrace chain
    mov boot_magic(%rip), %edi
    mov boot_info_pointer(%rip), %esi
    call arch_start64
1:  cli
    hlt
    jmp 1b

// ---------------------------------------------------------------------------------------
    .section .rodata
no_long_mode_message:
    .asciz "manticore: this CPU has no 64-bit long mode; cannot boot\r\n"
no_ram_message:
    .asciz "manticore: the VM's RAM ends below the kernel image's end at 0x"
no_ram_message_end:
    .asciz ": give it more memory (QEMU -m); cannot boot\r\n"

// Boot GDT (SDM Vol. 3A 3.4.5 "Segment Descriptors"): 64-bit code and data at the selectors
// the C GDT keeps (0x08, 0x10), plus flat 32-bit code/data for the protected-mode part.
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        // 0x08: 64-bit code, L=1, DPL 0
    .quad 0x00cf92000000ffff        // 0x10: data, writable
    .quad 0x00cf9a000000ffff        // 0x18: 32-bit code, D=1, 4 GiB
    .quad 0x00cf92000000ffff        // 0x20: 32-bit data, 4 GiB
boot_gdt_end:
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

// ---------------------------------------------------------------------------------------
    .section .data
    .balign 8
    .globl boot_entry_tsc
boot_entry_tsc:
    .quad 0

    .section .bss
    .balign 4
boot_magic:
    .long 0
boot_info_pointer:
    .long 0

    .section .bss.page_tables, "aw", @nobits
    .balign PAGE_SIZE
    .globl boot_pml4, boot_pdpt, boot_page_directories
boot_pml4:
    .skip PAGE_SIZE
boot_pdpt:
    .skip PAGE_SIZE
boot_page_directories:
    .skip 4 * PAGE_SIZE

// The kernel stack with one guard page below it; paging_init unmaps the guard page so an
// overflow faults (and the double-fault handler, on its own IST stack, reports it). A stack
// needs no zeroing: .bss.noinit (kernel.ld).
    .section .bss.noinit.kernel_stack, "aw", @nobits
    .balign PAGE_SIZE
    .globl kernel_stack_guard, kernel_stack_bottom, kernel_stack_top
kernel_stack_guard:
    .skip PAGE_SIZE
kernel_stack_bottom:
    .skip KERNEL_STACK_SIZE
kernel_stack_top:

// No executable stack needed (GNU ld otherwise warns and assumes one).
    .section .note.GNU-stack, "", @progbits
