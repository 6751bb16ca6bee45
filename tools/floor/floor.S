/*
 * The floor image: the least a guest can do to show it booted.  It writes
 * one byte ('*') to COM1 and leaves QEMU through isa-debug-exit (value 0,
 * so QEMU exits with status 1).  `invoke bench boot` times QEMU launch ->
 * that byte, which is the cost of QEMU + firmware + loader alone; the
 * kernel's boot time is reported as a ratio to it.
 *
 * Both boot paths the kernel uses are here: a PVH ELF note for QEMU's
 * direct boot (-kernel) and a multiboot2 header for GRUB (the floor ISO).
 * Either way the entry runs in 32-bit protected mode with paging off.
 */

#define COM1            0x3f8
#define DEBUG_EXIT_PORT 0xf4

        .code32

/* Multiboot2 header, Multiboot2 Specification section 3.1.1: magic,
 * architecture (0 = i386 protected mode), header length, checksum, then
 * the end tag (type 0, flags 0, size 8).  8-byte aligned, first 32 KiB. */
        .section .multiboot2, "a"
        .balign 8
mb2_start:
        .long   0xe85250d6
        .long   0
        .long   mb2_end - mb2_start
        .long   -(0xe85250d6 + (mb2_end - mb2_start))
        .short  0, 0
        .long   8
mb2_end:

/* PVH entry point: Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18, name
 * "Xen"), xen/include/public/elfnote.h; QEMU's -kernel loader looks it up. */
        .section .note.Xen, "a", @note
        .balign 4
        .long   4                       /* name size */
        .long   4                       /* descriptor size */
        .long   18                      /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz  "Xen"
        .long   _start

        .text
        .globl  _start
_start:
        mov     $COM1, %dx
        mov     $'*', %al
        outb    %al, %dx
        mov     $DEBUG_EXIT_PORT, %dx
        xor     %eax, %eax
        outl    %eax, %dx
1:      cli
        hlt
        jmp     1b
