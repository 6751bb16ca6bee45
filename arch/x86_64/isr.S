// Entry stubs for all 256 interrupt vectors. Each stub makes the stack look the same whatever
// the vector (a dummy error code where the CPU pushes none, then the vector number) and jumps
// to one common path that saves the general and SSE registers and calls interrupt_dispatch.

// Exceptions that push an error code (SDM Vol. 3A 6.3.1, Table 6-1 "Error Code" column):
// #DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21, #VC 29, #SX 30.
#define HAS_ERROR_CODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 \
                           || (v) == 29 || (v) == 30)

// Offset of the saved RIP in struct interrupt_frame (interrupts.h): 15 registers, vector,
// error code.
#define FRAME_RIP (17 * 8)

    .section .text
    .code64

// Stubs are 16 bytes apart so idt.c computes stub n's address as isr_stub_table + 16 * n.
    .balign 16
    .globl isr_stub_table
isr_stub_table:
    .set vector, 0
    .rept 256
    .balign 16
    .if HAS_ERROR_CODE(vector)
    .else
    pushq $0                        // dummy error code
    .endif
    pushq $vector
    jmp isr_common
    .set vector, vector + 1
    .endr

// Stack on arrival: [vector][error code][rip][cs][rflags][rsp][ss]. In long mode the CPU has
// already aligned RSP to 16 bytes before pushing its five words (SDM Vol. 3A 6.14.2).
isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld                             // the SysV ABI expects DF clear on function entry
    mov %rsp, %rbx                  // RBX (callee-saved) = struct interrupt_frame *

    // A frame-pointer record [saved RBP][interrupted RIP], so that a backtrace taken inside a
    // handler walks on into the interrupted code instead of skipping its innermost function.
    pushq FRAME_RIP(%rbx)
    pushq %rbp
    mov %rsp, %rbp

    // Handlers are ordinary C compiled with SSE allowed, so the interrupted code's x87/SSE
    // state is saved around them (FXSAVE needs a 16-byte aligned 512-byte area).
    sub $512, %rsp
    and $-16, %rsp
    fxsave64 (%rsp)

    mov %rbx, %rdi
    call interrupt_dispatch

    fxrstor64 (%rsp)
    mov %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    add $16, %rsp                   // vector and error code
    iretq

// No executable stack needed (GNU ld otherwise warns and assumes one).
    .section .note.GNU-stack, "", @progbits
