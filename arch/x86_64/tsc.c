// The time-stamp counter, the CPU's free-running cycle counter: the kernel's clock for short
// intervals. Its rate is read from CPUID (leaves 0x15/0x16, or the hypervisor's timing leaf)
// or else measured once at boot against the 8254 PIT.
//
// Calibration uses PIT channel 2, whose gate and output are wired to port 0x61 on every PC
// (Intel 8254 datasheet, order no. 231164, "Mode 0: Interrupt on Terminal Count"; the port
// 0x61 bits are the classic AT "NMI status and control" register). Channel 2 drives only the
// PC speaker, so reprogramming it disturbs nothing.
#include "arch/x86_64/tsc.h"

#include <stdbool.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/paging.h"

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
    CALIBRATION_MS = 3,                   // x2 (x3 when they differ): 6 ms of a PIT-calibrated boot
    PIT_AGREE_PERMILLE = 2,               // 0.2%: the spread of 5 ms windows under TCG
    PIT_CALIBRATION_COUNT = PIT_HZ * CALIBRATION_MS / 1000,
    SANE_TSC_HZ_MIN = 100000000ull,       // 100 MHz
    SANE_TSC_HZ_MAX = 20000000000ull,     // 20 GHz
    FALLBACK_TSC_HZ = 1000000000ull,      // a guess that at least keeps delays finite
    PIT_MAX_POLLS = 10000000,             // each port read takes ~1 us on hardware
};

uint64_t tsc_hz;
const char *tsc_calibration_source = "none";

uint64_t tsc_read(void) {
    return rdtsc();
}

// CPUID leaf 0x15 gives the TSC/crystal ratio and (on newer parts) the crystal frequency
// (SDM Vol. 2A, CPUID, "Time Stamp Counter and Nominal Core Crystal Clock Information"). When
// the crystal field is 0, leaf 0x16's base frequency (MHz) is the TSC's nominal rate, as
// Linux's native_calibrate_tsc assumes (SDM Vol. 3B 18.7.3, "Determining the Processor Base
// Frequency").
static uint64_t tsc_hz_from_cpuid(void) {
    uint32_t max_leaf = cpuid(0, 0).eax;
    if (max_leaf < 0x15) {
        return 0;
    }
    struct cpuid_result leaf = cpuid(0x15, 0);
    if (leaf.eax == 0 || leaf.ebx == 0) {
        return 0;
    }
    if (leaf.ecx != 0) {
        return (uint64_t)leaf.ecx * leaf.ebx / leaf.eax;
    }
    if (max_leaf >= 0x16) {
        uint64_t base_mhz = cpuid(0x16, 0).eax & 0xffff;
        return base_mhz * 1000000;
    }
    return 0;
}

// The hypervisor timing leaf (0x40000010, VMware's convention that KVM and QEMU follow with
// "vmware-cpuid-freq"): EAX is the TSC rate in kHz. Only when CPUID.01H:ECX[31] says there is
// a hypervisor and its maximum leaf (0x40000000.EAX) includes it.
static uint64_t tsc_hz_from_hypervisor(void) {
    if (!(cpuid(1, 0).ecx & (1u << 31)) || cpuid(0x40000000, 0).eax < 0x40000010) {
        return 0;
    }
    return (uint64_t)cpuid(0x40000010, 0).eax * 1000;
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

// The HPET (IA-PC HPET Specification 1.0a): a free-running counter of at least 10 MHz whose
// period (femtoseconds, GCAP_ID bits 63:32, section 2.3.4) is exact, found through the ACPI
// HPET table (its Generic Address Structure at offset 40). Each sample pairs a counter read
// with the TSC reads around it and keeps the tightest of several pairs, so a host that
// deschedules the vCPU in the middle of one (common under TCG) does not skew the result.
enum hpet_register {
    HPET_GCAP_ID = 0x000 / 8,
    HPET_GEN_CONF = 0x010 / 8,
    HPET_MAIN_COUNTER = 0x0f0 / 8,
    HPET_ENABLE_CNF = 1u << 0,
    HPET_TABLE_ADDRESS = 40 + 4,            // the GAS's 64-bit address field
    HPET_MAX_PERIOD_FS = 100000000,         // 100 ns (section 2.3.4)
    HPET_CALIBRATION_MS = 10,               // 10 ms: 0.01% at 100 MHz; boot time counts
};

struct paired_sample {
    uint64_t tsc, counter;
};

static struct paired_sample hpet_sample(volatile uint64_t *hpet) {
    struct paired_sample best = { 0, 0 };
    uint64_t tightest = ~0ull;
    for (int i = 0; i < 8; i++) {
        uint64_t before = rdtsc();
        uint64_t counter = hpet[HPET_MAIN_COUNTER];
        uint64_t after = rdtsc();
        if (after - before < tightest) {
            tightest = after - before;
            best = (struct paired_sample){ before + (after - before) / 2, counter };
        }
    }
    return best;
}

static uint64_t tsc_hz_from_hpet(void) {
    const uint8_t *table = acpi_find_table("HPET");
    // Byte by byte: firmware need not align tables (UBSan caught a misaligned u32 load).
    uint32_t length = table ? (table[4] | table[5] << 8 | table[6] << 16
                               | (uint32_t)table[7] << 24) : 0;
    if (!table || length < HPET_TABLE_ADDRESS + 8 || table[40] != 0) {
        return 0;   // absent, too short, or not in memory space
    }
    uint64_t base = 0;
    for (int i = 7; i >= 0; i--) {
        base = base << 8 | table[HPET_TABLE_ADDRESS + i];
    }
    volatile uint64_t *hpet = paging_map_mmio(base, 1024);
    uint64_t period_fs = hpet[HPET_GCAP_ID] >> 32;
    if (period_fs == 0 || period_fs > HPET_MAX_PERIOD_FS) {
        return 0;
    }
    uint64_t conf = hpet[HPET_GEN_CONF];
    hpet[HPET_GEN_CONF] = conf | HPET_ENABLE_CNF;
    uint64_t window = (uint64_t)HPET_CALIBRATION_MS * 1000000000000ull / period_fs;
    struct paired_sample start = hpet_sample(hpet);
    uint64_t polls = 0;
    while (hpet[HPET_MAIN_COUNTER] - start.counter < window && polls++ < PIT_MAX_POLLS) {
        cpu_relax();
    }
    struct paired_sample end = hpet_sample(hpet);
    hpet[HPET_GEN_CONF] = conf;
    uint64_t ticks = end.counter - start.counter;
    if (ticks < window) {
        return 0;   // the counter does not run
    }
    // hz = tsc ticks / (ticks * period_fs / 1e15), kept in 128 bits.
    return (uint64_t)((unsigned __int128)(end.tsc - start.tsc) * 1000000000000000ull
                      / ((unsigned __int128)ticks * period_fs));
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

static uint64_t median3(uint64_t a, uint64_t b, uint64_t c) {
    if (a > b) { uint64_t t = a; a = b; b = t; }
    if (b > c) { b = c; }
    return a > b ? a : b;
}

void tsc_calibrate(void) {
    uint64_t hz = tsc_hz_from_cpuid();
    tsc_calibration_source = "cpuid";
    if (!is_sane(hz)) {
        hz = tsc_hz_from_hypervisor();
        tsc_calibration_source = "hypervisor";
    }
    if (!is_sane(hz)) {
        hz = tsc_hz_from_hpet();
        tsc_calibration_source = "hpet";
    }
    if (!is_sane(hz)) {
        // Measurements against the PIT: one can come out wrong when the host stalls the vCPU
        // in the middle of it (or implausible when no PIT answers). Two that agree within
        // PIT_AGREE_PERMILLE are taken (their mean); else a third decides (the median).
        bool have_gate_port = inb(PIT_GATE_CONTROL) != 0xff;  // an absent port reads all ones
        uint64_t m[3];
        for (int i = 0; i < 2; i++) {
            m[i] = have_gate_port ? tsc_hz_from_pit() : tsc_hz_from_pit_channel0();
        }
        uint64_t gap = m[0] > m[1] ? m[0] - m[1] : m[1] - m[0];
        if (is_sane(m[0]) && is_sane(m[1]) && gap <= m[0] / 1000 * PIT_AGREE_PERMILLE) {
            hz = (m[0] + m[1]) / 2;
        } else {
            m[2] = have_gate_port ? tsc_hz_from_pit() : tsc_hz_from_pit_channel0();
            hz = median3(m[0], m[1], m[2]);
        }
        tsc_calibration_source = "pit";
    }
    if (!is_sane(hz)) {
        hz = FALLBACK_TSC_HZ;
        tsc_calibration_source = "guess";
    }
    tsc_hz = hz;
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
