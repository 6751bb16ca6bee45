// The port's part of the os module, included by extmod/modos.c through
// MICROPY_PY_OS_INCLUDEFILE.
#include <string.h>

#include "py/runtime.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/percpu.h"
#include "drivers/virtio/virtio_rng.h"
#include "ports/manticore/manticore.h"

// Entropy sources, best first: virtio-rng (the host's /dev/urandom through the device), then
// the CPU's RDRAND (CPUID.01H:ECX bit 30) and RDSEED (CPUID.(EAX=07H,ECX=0):EBX bit 18;
// Intel SDM vol. 1, 7.3.17), then a xorshift generator stirred with the TSC.
static bool cpu_has_rdrand(void) {
    return (cpuid(1, 0).ecx >> 30) & 1;
}

static bool cpu_has_rdseed(void) {
    return cpuid(0, 0).eax >= 7 && ((cpuid(7, 0).ebx >> 18) & 1);
}

// RDRAND/RDSEED may transiently fail (CF=0); retry a few times as the SDM recommends (7.3.17.1).
static bool rdrand64(uint64_t *out) {
    for (int i = 0; i < 10; i++) {
        uint8_t ok;
        __asm__ volatile ("rdrand %0; setc %1" : "=r" (*out), "=qm" (ok));
        if (ok) {
            return true;
        }
    }
    return false;
}

static bool rdseed64(uint64_t *out) {
    for (int i = 0; i < 100; i++) {
        uint8_t ok;
        __asm__ volatile ("rdseed %0; setc %1" : "=r" (*out), "=qm" (ok));
        if (ok) {
            return true;
        }
        cpu_relax();
    }
    return false;
}

static uint64_t xorshift_word(void) {
    static PER_CPU uint64_t state;
    if (state == 0) {
        state = rdtsc() | 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state ^ rdtsc();
}

// A word from the CPU: RDRAND for bulk output, RDSEED when asked for seed quality.
static uint64_t cpu_random_word(bool seed) {
    uint64_t value;
    if (seed && cpu_has_rdseed() && rdseed64(&value)) {
        return value;
    }
    if (cpu_has_rdrand() && rdrand64(&value)) {
        return value;
    }
    if (!seed && cpu_has_rdseed() && rdseed64(&value)) {
        return value;
    }
    return xorshift_word();
}

// The seed of the random module (MICROPY_PY_RANDOM_SEED_INIT_FUNC via mp_hal_random_seed)
// and lwIP's LWIP_RAND (ports, DNS ids, TCP initial sequence numbers). Each word comes from
// the device and is given out once; they are fetched eight at a time because every request
// is a round trip through the emulator's main loop (one word per request made two of them
// per boot, and one more per TCP connection; now a boot makes one). Each CPU has a pool of
// its own (PER_CPU: the random module's seed on any CPU), so it needs no lock.
static PER_CPU struct {
    uint64_t words[8];
    unsigned left;
} seed_pool;

uint64_t manticore_random_seed(void) {
    if (seed_pool.left == 0
        && virtio_rng_read(seed_pool.words, sizeof(seed_pool.words)) == (long)sizeof(seed_pool.words)) {
        seed_pool.left = MP_ARRAY_SIZE(seed_pool.words);
    }
    if (seed_pool.left == 0) {
        return cpu_random_word(true);
    }
    uint64_t seed = seed_pool.words[--seed_pool.left];
    seed_pool.words[seed_pool.left] = 0;
    return seed;
}

// n bytes of the best entropy there is (os.urandom, mbedTLS's entropy collector).
void manticore_entropy(void *buf, size_t n) {
    if (n == 0 || virtio_rng_read(buf, n) == (long)n) {
        return;
    }
    for (size_t i = 0; i < n; i += 8) {
        uint64_t word = cpu_random_word(false);
        size_t chunk = n - i < 8 ? n - i : 8;
        memcpy((char *)buf + i, &word, chunk);
    }
}

static mp_obj_t mp_os_urandom(mp_obj_t num) {
    mp_int_t n = mp_obj_get_int(num);
    if (n < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("negative length"));
    }
    vstr_t vstr;
    vstr_init_len(&vstr, n);
    manticore_entropy(vstr.buf, n);
    return mp_obj_new_bytes_from_vstr(&vstr);
}
static MP_DEFINE_CONST_FUN_OBJ_1(mp_os_urandom_obj, mp_os_urandom);
