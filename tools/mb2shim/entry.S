/*
 * Entry of the multiboot2 shim (see shim.c): QEMU's PVH direct boot enters here in 32-bit
 * protected mode, paging off, EBX = struct hvm_start_info (Xen docs/misc/pvh.pandoc,
 * "Entry point"). A stack, then C.
 */

        .code32

/* XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen"), xen/include/public/elfnote.h. */
        .section .note.Xen, "a", @note
        .balign 4
        .long   4                       /* name size */
        .long   4                       /* descriptor size */
        .long   18                      /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz  "Xen"
        .long   shim_entry

        .text
        .globl  shim_entry
shim_entry:
        cli
        cld
        mov     $shim_stack_top, %esp
        push    %ebx
        call    shim_main               /* does not return */
1:      hlt
        jmp     1b

        .bss
        .balign 16
        .space  16384
shim_stack_top:

/* shim_enter(entry, magic, info): the multiboot2 machine state (spec 3.3), EAX = magic,
 * EBX = information block, flat protected mode, paging and interrupts off. */
        .text
        .globl  shim_enter
shim_enter:
        mov     4(%esp), %ecx
        mov     8(%esp), %eax
        mov     12(%esp), %ebx
        jmp     *%ecx

        .section .note.GNU-stack, "", @progbits
