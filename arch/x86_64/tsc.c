// The time-stamp counter, the CPU's free-running cycle counter: the kernel's clock for short
// intervals. Its rate is read from CPUID (leaves 0x15/0x16, or the hypervisor's timing leaf)
// or else measured at boot against the HPET or the 8254 PIT (see tsc_calibrate_begin), or,
// on a machine with neither (microvm,pit=off), the RTC's periodic flag.
//
// The PIT is read through channel 0 (Intel 8254 datasheet, order no. 231164: "Mode 2: Rate
// Generator" and the Counter Latch Command), which every PC-compatible machine has, QEMU's
// microvm included (it lacks the port 0x61 speaker gate that channel 2 needs).
#include "arch/x86_64/tsc.h"

#include <stdbool.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/kprintf.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/rtc.h"

enum pit_port {
    PIT_CHANNEL0_DATA = 0x40,
    PIT_COMMAND = 0x43,
};

enum pit_command {
    // Channel 0 (00b), access lobyte/hibyte (11b), mode 2 (rate generator: counts down by one
    // per tick and reloads), binary.
    PIT_COMMAND_CHANNEL0_MODE2 = 0x34,
    // Channel 0, lobyte/hibyte, mode 0 (interrupt on terminal count: counts once).
    PIT_COMMAND_CHANNEL0_MODE0 = 0x30,
    // Channel 0, counter latch (the next two data reads return a frozen count).
    PIT_COMMAND_CHANNEL0_LATCH = 0x00,
};

enum {
    PIT_HZ = 1193182,                     // 14.31818 MHz / 12
    SANE_TSC_HZ_MIN = 100000000ull,       // 100 MHz
    SANE_TSC_HZ_MAX = 20000000000ull,     // 20 GHz
    FALLBACK_TSC_HZ = 1000000000ull,      // a guess that at least keeps delays finite
    MAX_POLLS = 10000000,                 // each port read takes ~1 us on hardware
    // A counter that reads the same this many times in a row does not run (no PIT behind
    // the ports: microvm,pit=off reads all ones); a running one moves within a microsecond.
    STUCK_POLLS = 10000,
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

// The HPET (IA-PC HPET Specification 1.0a): a free-running counter of at least 10 MHz whose
// period (femtoseconds, GCAP_ID bits 63:32, section 2.3.4) is exact, found through the ACPI
// HPET table (its Generic Address Structure at offset 40).
enum hpet_register {
    HPET_GCAP_ID = 0x000 / 8,
    HPET_GEN_CONF = 0x010 / 8,
    HPET_MAIN_COUNTER = 0x0f0 / 8,
    HPET_ENABLE_CNF = 1u << 0,
    HPET_TABLE_ADDRESS = 40 + 4,            // the GAS's 64-bit address field
    HPET_MAX_PERIOD_FS = 100000000,         // 100 ns (section 2.3.4)
};

// Calibration runs beside the boot instead of busy-waiting in front of it (it was 6-10 ms
// of every TCG boot, boottrace): tsc_calibrate_begin samples a reference clock and the TSC
// together and takes a short provisional measurement; tsc_calibrate_finish samples both
// again once the rest of the platform and the devices are set up, and the rate over that
// whole window (several ms) replaces the provisional one before anything needs exact time.
// Each sample pairs a reference read with the TSC reads around it and keeps the tightest
// of several pairs, so a host that deschedules the vCPU in the middle of one (common under
// TCG) does not skew it; a stall anywhere else in the window costs nothing, as both clocks
// keep counting.
enum {
    PROVISIONAL_US = 250,                  // ~1% under TCG: enough for delays and timeouts
    MIN_WINDOW_US = 3000,                  // the finished window: ~0.01% under TCG
    SAMPLE_PAIRS = 4,
};

struct paired_sample {
    uint64_t tsc, counter;
};

static struct {
    enum { REFERENCE_NONE, REFERENCE_HPET, REFERENCE_PIT } reference;
    volatile uint64_t *hpet;
    uint64_t hpet_period_fs;
    uint64_t hpet_saved_conf;
    struct paired_sample start;
} calibration;

static uint16_t pit_channel0_count(void) {
    outb(PIT_COMMAND, PIT_COMMAND_CHANNEL0_LATCH);
    uint8_t low = inb(PIT_CHANNEL0_DATA);
    uint8_t high = inb(PIT_CHANNEL0_DATA);
    return low | (high << 8);
}

static uint64_t reference_read(void) {
    return calibration.reference == REFERENCE_HPET ? calibration.hpet[HPET_MAIN_COUNTER]
                                                   : pit_channel0_count();
}

static struct paired_sample reference_sample(void) {
    struct paired_sample best = { 0, 0 };
    uint64_t tightest = ~0ull;
    for (int i = 0; i < SAMPLE_PAIRS; i++) {
        uint64_t before = rdtsc();
        uint64_t counter = reference_read();
        uint64_t after = rdtsc();
        if (after - before < tightest) {
            tightest = after - before;
            best = (struct paired_sample){ before + (after - before) / 2, counter };
        }
    }
    return best;
}

// Reference ticks from `from` to `to`. The HPET's 64-bit main counter counts up; PIT
// channel 0 counts down from 65536 and wraps every 55 ms, so its distance is only known
// modulo 65536: `expected` (from the TSC at a rough rate) supplies the whole wraps.
static uint64_t reference_ticks(uint64_t from, uint64_t to, uint64_t expected) {
    if (calibration.reference == REFERENCE_HPET) {
        return to - from;
    }
    uint64_t modulo = (uint16_t)(from - to);
    if (expected <= modulo) {
        return modulo;
    }
    return modulo + (expected - modulo + 32768) / 65536 * 65536;
}

static uint64_t reference_hz_times(uint64_t tsc_ticks, uint64_t reference_ticks) {
    // hz = tsc ticks / seconds of reference ticks, in 128 bits.
    if (reference_ticks == 0) {
        return 0;
    }
    if (calibration.reference == REFERENCE_HPET) {
        return (uint64_t)((unsigned __int128)tsc_ticks * 1000000000000000ull
                          / ((unsigned __int128)reference_ticks * calibration.hpet_period_fs));
    }
    return (uint64_t)((unsigned __int128)tsc_ticks * PIT_HZ / reference_ticks);
}

static uint64_t reference_ticks_per_second(void) {
    return calibration.reference == REFERENCE_HPET
        ? 1000000000000000ull / calibration.hpet_period_fs : PIT_HZ;
}

static bool hpet_open(void) {
    const uint8_t *table = acpi_find_table("HPET");
    uint32_t length = table ? acpi_get_u32(table + 4) : 0;
    if (!table || length < HPET_TABLE_ADDRESS + 8 || table[40] != 0) {
        return false;   // absent, too short, or not in memory space
    }
    uint64_t base = acpi_get_u64(table + HPET_TABLE_ADDRESS);
    volatile uint64_t *hpet = paging_map_mmio(base, 1024);
    uint64_t period_fs = hpet[HPET_GCAP_ID] >> 32;
    if (period_fs == 0 || period_fs > HPET_MAX_PERIOD_FS) {
        return false;
    }
    calibration.hpet = hpet;
    calibration.hpet_period_fs = period_fs;
    calibration.hpet_saved_conf = hpet[HPET_GEN_CONF];
    hpet[HPET_GEN_CONF] = calibration.hpet_saved_conf | HPET_ENABLE_CNF;
    return true;
}

// For every machine with an 8254 (QEMU microvm has one, but no port 0x61 speaker gate): let
// channel 0 count down freely from 65536 (mode 2). Its IRQ 0 is masked at the PIC and the
// I/O APIC, so nothing else notices. Mode 0 with a count of 1 afterwards stops it: the
// output goes high once and stays (datasheet, "Mode 0"), so the emulator has nothing left
// to schedule.
static void pit_channel0_run(void) {
    outb(PIT_COMMAND, PIT_COMMAND_CHANNEL0_MODE2);
    outb(PIT_CHANNEL0_DATA, 0);
    outb(PIT_CHANNEL0_DATA, 0);
}

static void pit_channel0_stop(void) {
    outb(PIT_COMMAND, PIT_COMMAND_CHANNEL0_MODE0);
    outb(PIT_CHANNEL0_DATA, 1);
    outb(PIT_CHANNEL0_DATA, 0);
}

static void reference_close(void) {
    if (calibration.reference == REFERENCE_HPET) {
        calibration.hpet[HPET_GEN_CONF] = calibration.hpet_saved_conf;
    } else if (calibration.reference == REFERENCE_PIT) {
        pit_channel0_stop();
    }
    calibration.reference = REFERENCE_NONE;
}

// Busy-wait until the reference has counted `us` past calibration.start; the TSC rate over
// that stretch, or 0 when the reference does not move (no PIT answering: microvm,pit=off).
static uint64_t measure_for(uint64_t us) {
    uint64_t target = reference_ticks_per_second() * us / 1000000;
    uint64_t previous = calibration.start.counter;
    uint64_t elapsed = 0;
    uint64_t unchanged = 0;
    for (uint64_t polls = 0; elapsed < target; polls++) {
        if (polls >= MAX_POLLS || unchanged >= STUCK_POLLS) {
            return 0;
        }
        uint64_t now = reference_read();
        unchanged = now == previous ? unchanged + 1 : 0;
        // Step by step, so that the PIT's wraps are counted while we watch it.
        elapsed += calibration.reference == REFERENCE_HPET ? now - previous
                                                           : (uint16_t)(previous - now);
        previous = now;
        cpu_relax();
    }
    struct paired_sample end = reference_sample();
    uint64_t ticks = reference_ticks(calibration.start.counter, end.counter, elapsed);
    return reference_hz_times(end.tsc - calibration.start.tsc, ticks);
}

static bool is_sane(uint64_t hz) {
    return hz >= SANE_TSC_HZ_MIN && hz <= SANE_TSC_HZ_MAX;
}

void tsc_calibrate_begin(void) {
    uint64_t hz = tsc_hz_from_cpuid();
    tsc_calibration_source = "cpuid";
    if (!is_sane(hz)) {
        hz = tsc_hz_from_hypervisor();
        tsc_calibration_source = "hypervisor";
    }
    if (is_sane(hz)) {
        tsc_hz = hz;
        return;
    }
    if (hpet_open()) {
        calibration.reference = REFERENCE_HPET;
        tsc_calibration_source = "hpet";
    } else {
        pit_channel0_run();
        calibration.reference = REFERENCE_PIT;
        tsc_calibration_source = "pit";
    }
    calibration.start = reference_sample();
    hz = measure_for(PROVISIONAL_US);
    if (!is_sane(hz)) {
        // No PIT either (microvm,pit=off): the RTC's periodic flag, measured once, here.
        reference_close();
        hz = rtc_measure_tsc_hz();
        tsc_calibration_source = "rtc";
    }
    if (!is_sane(hz)) {
        hz = FALLBACK_TSC_HZ;   // nothing that counts: keep delays finite at least
        tsc_calibration_source = "guess";
        kprintf("tsc: no clock to measure the TSC against (no CPUID leaf, HPET, PIT or RTC): "
                "guessing %lu MHz, so time runs at the wrong rate\n",
                (unsigned long)(hz / 1000000));
    }
    tsc_hz = hz;
}

void tsc_calibrate_finish(void) {
    if (calibration.reference == REFERENCE_NONE) {
        return;
    }
    uint64_t min_window = tsc_hz / 1000000 * MIN_WINDOW_US;
    while (rdtsc() - calibration.start.tsc < min_window) {
        cpu_relax();    // a boot faster than the window (KVM without the CPUID leaves)
    }
    struct paired_sample end = reference_sample();
    uint64_t tsc_ticks = end.tsc - calibration.start.tsc;
    // The provisional rate is within a few percent, so the PIT's whole wraps are certain
    // while the window is shorter than ~25 ms / that error: seconds. Past a second (a host
    // that stopped this vCPU for that long), measure afresh instead.
    uint64_t expected = (uint64_t)((unsigned __int128)tsc_ticks * reference_ticks_per_second()
                                   / tsc_hz);
    uint64_t hz;
    if (calibration.reference == REFERENCE_PIT && expected > PIT_HZ) {
        calibration.start = reference_sample();
        hz = measure_for(MIN_WINDOW_US);
    } else {
        hz = reference_hz_times(tsc_ticks, reference_ticks(calibration.start.counter,
                                                           end.counter, expected));
    }
    if (is_sane(hz)) {
        tsc_hz = hz;
    }
    reference_close();
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
