// The time-stamp counter, the CPU's free-running cycle counter: the kernel's clock for short
// intervals. Its rate is measured once at boot against the 8254 PIT (or read from CPUID).
//
// Calibration uses PIT channel 2, whose gate and output are wired to port 0x61 on every PC
// (Intel 8254 datasheet, order no. 231164, "Mode 0: Interrupt on Terminal Count"; the port
// 0x61 bits are the classic AT "NMI status and control" register). Channel 2 drives only the
// PC speaker, so reprogramming it disturbs nothing.
#include "arch/x86_64/tsc.h"

#include <stdbool.h>

#include "arch/x86_64/cpu.h"

enum pit_port {
    PIT_CHANNEL0_DATA = 0x40,
    PIT_CHANNEL2_DATA = 0x42,
    PIT_COMMAND = 0x43,
    PIT_GATE_CONTROL = 0x61,  // bit 0: channel 2 gate, bit 1: speaker, bit 5: channel 2 output
};

enum pit_bits {
    PIT_GATE2 = 1u << 0,
    PIT_SPEAKER = 1u << 1,
    PIT_OUTPUT2 = 1u << 5,
    // Command: channel 2 (10b), access lobyte/hibyte (11b), mode 0 (000b), binary (0).
    PIT_COMMAND_CHANNEL2_MODE0 = 0xb0,
    // Command: channel 0, lobyte/hibyte, mode 2 (rate generator: counts down by one per tick).
    PIT_COMMAND_CHANNEL0_MODE2 = 0x34,
    // Command: channel 0, counter latch (the next two data reads return a frozen count).
    PIT_COMMAND_CHANNEL0_LATCH = 0x00,
};

enum {
    PIT_HZ = 1193182,                     // 14.31818 MHz / 12
    CALIBRATION_MS = 10,
    PIT_CALIBRATION_COUNT = PIT_HZ * CALIBRATION_MS / 1000,
    SANE_TSC_HZ_MIN = 100000000ull,       // 100 MHz
    SANE_TSC_HZ_MAX = 20000000000ull,     // 20 GHz
    FALLBACK_TSC_HZ = 1000000000ull,      // a guess that at least keeps delays finite
    PIT_MAX_POLLS = 10000000,             // each port read takes ~1 us on hardware
};

uint64_t tsc_hz;

uint64_t tsc_read(void) {
    return rdtsc();
}

// CPUID leaf 0x15 gives TSC/crystal ratio and (on newer parts) the crystal frequency
// (SDM Vol. 2A, CPUID, "Time Stamp Counter and Nominal Core Crystal Clock Information").
static uint64_t tsc_hz_from_cpuid(void) {
    if (cpuid(0, 0).eax < 0x15) {
        return 0;
    }
    struct cpuid_result leaf = cpuid(0x15, 0);
    if (leaf.eax == 0 || leaf.ebx == 0 || leaf.ecx == 0) {
        return 0;
    }
    return (uint64_t)leaf.ecx * leaf.ebx / leaf.eax;
}

static uint64_t tsc_hz_from_pit(void) {
    uint8_t saved = inb(PIT_GATE_CONTROL);
    // Gate low (stops and reloads on the next rising edge), speaker off.
    outb(PIT_GATE_CONTROL, saved & ~(PIT_GATE2 | PIT_SPEAKER));
    outb(PIT_COMMAND, PIT_COMMAND_CHANNEL2_MODE0);
    outb(PIT_CHANNEL2_DATA, PIT_CALIBRATION_COUNT & 0xff);
    outb(PIT_CHANNEL2_DATA, PIT_CALIBRATION_COUNT >> 8);
    // Gate high starts the count down; OUT2 rises when it reaches zero.
    outb(PIT_GATE_CONTROL, (saved & ~PIT_SPEAKER) | PIT_GATE2);
    uint64_t start = rdtsc();
    bool expired = false;
    for (uint64_t polls = 0; polls < PIT_MAX_POLLS; polls++) {
        if (inb(PIT_GATE_CONTROL) & PIT_OUTPUT2) {
            expired = true;
            break;
        }
    }
    uint64_t end = rdtsc();
    outb(PIT_GATE_CONTROL, saved);
    if (!expired) {
        return 0;  // no PIT answering (e.g. -M microvm,pit=off)
    }
    return (end - start) * 1000 / CALIBRATION_MS;
}

static uint16_t pit_channel0_count(void) {
    outb(PIT_COMMAND, PIT_COMMAND_CHANNEL0_LATCH);
    uint8_t low = inb(PIT_CHANNEL0_DATA);
    uint8_t high = inb(PIT_CHANNEL0_DATA);
    return low | (high << 8);
}

// For machines without the port 0x61 gate register (QEMU microvm has a PIT but no speaker
// port): let channel 0 count down freely from 65536 and add up the distance it travelled.
// Its IRQ 0 is masked at the PIC and interrupts are off, so nothing else notices.
static uint64_t tsc_hz_from_pit_channel0(void) {
    outb(PIT_COMMAND, PIT_COMMAND_CHANNEL0_MODE2);
    outb(PIT_CHANNEL0_DATA, 0);
    outb(PIT_CHANNEL0_DATA, 0);
    uint16_t previous = pit_channel0_count();
    uint64_t start = rdtsc();
    uint64_t elapsed = 0;
    for (uint64_t polls = 0; elapsed < PIT_CALIBRATION_COUNT; polls++) {
        if (polls >= PIT_MAX_POLLS) {
            return 0;
        }
        uint16_t now = pit_channel0_count();
        elapsed += (uint16_t)(previous - now);  // modulo 65536: the counter wraps
        previous = now;
    }
    uint64_t end = rdtsc();
    return (end - start) * PIT_HZ / elapsed;
}

static bool is_sane(uint64_t hz) {
    return hz >= SANE_TSC_HZ_MIN && hz <= SANE_TSC_HZ_MAX;
}

void tsc_calibrate(void) {
    uint64_t hz = tsc_hz_from_cpuid();
    // A measurement can come out implausible (no PIT, or a host that stalled the vCPU for
    // a long time); try again a couple of times before settling for a guess.
    bool have_gate_port = inb(PIT_GATE_CONTROL) != 0xff;  // an absent port reads as all ones
    for (int attempt = 0; !is_sane(hz) && attempt < 3; attempt++) {
        uint64_t measured = have_gate_port ? tsc_hz_from_pit() : tsc_hz_from_pit_channel0();
        if (is_sane(measured)) {
            hz = measured;
        }
    }
    tsc_hz = is_sane(hz) ? hz : FALLBACK_TSC_HZ;
}

uint64_t tsc_to_us(uint64_t ticks) {
    if (tsc_hz == 0) {
        return 0;
    }
    // Split to avoid overflowing ticks * 1e6 (which would happen after ~1.8e13 ticks).
    return (ticks / tsc_hz) * 1000000 + (ticks % tsc_hz) * 1000000 / tsc_hz;
}

void tsc_delay_us(uint64_t us) {
    uint64_t hz = tsc_hz ? tsc_hz : FALLBACK_TSC_HZ;
    uint64_t ticks = (us / 1000000) * hz + (us % 1000000) * hz / 1000000;
    uint64_t start = rdtsc();
    while (rdtsc() - start < ticks) {
        cpu_relax();
    }
}
