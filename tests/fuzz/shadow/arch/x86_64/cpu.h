// Host stand-in for arch/x86_64/cpu.h, found before the real one when tests/fuzz builds the
// kernel's C parsers as ordinary host programs: port I/O reads as all ones (nothing answers,
// as on an empty bus), writes and privileged instructions do nothing.
#ifndef ARCH_X86_64_CPU_H
#define ARCH_X86_64_CPU_H
#include <stdbool.h>
#include <stdint.h>
enum rflags_bits { RFLAGS_IF = 1u << 9 };
struct cpuid_result { uint32_t eax, ebx, ecx, edx; };
static inline void outb(uint16_t port, uint8_t value) { (void)port; (void)value; }
static inline void outw(uint16_t port, uint16_t value) { (void)port; (void)value; }
static inline void outl(uint16_t port, uint32_t value) { (void)port; (void)value; }
static inline uint8_t inb(uint16_t port) { (void)port; return 0xff; }
static inline uint16_t inw(uint16_t port) { (void)port; return 0xffff; }
static inline uint32_t inl(uint16_t port) { (void)port; return 0xffffffffu; }
static inline void io_wait(void) {}
static inline uint64_t rdtsc(void) { return 0; }
static inline uint64_t read_rflags(void) { return 0; }
static inline void cli(void) {}
static inline void sti(void) {}
static inline void cpu_relax(void) {}
static inline bool interrupts_enabled(void) { return false; }
static inline struct cpuid_result cpuid(uint32_t leaf, uint32_t subleaf) {
    (void)leaf; (void)subleaf; return (struct cpuid_result){ 0, 0, 0, 0 };
}
#endif
