// MicroPython configuration for the manticore port: bare x86-64 under QEMU.
//
// The port starts from the "full features" level (the one ports/unix and rp2 use) and lists
// only its deviations below, one per line.

#include <stddef.h>
#include <stdint.h>

// Feature level and core options.
#define MICROPY_CONFIG_ROM_LEVEL                (MICROPY_CONFIG_ROM_LEVEL_FULL_FEATURES)
#define MICROPY_ENABLE_GC                       (1)
#define MICROPY_GC_SPLIT_HEAP                   (1) // the heap in areas, added as it grows
#define MICROPY_GC_SPLIT_HEAP_AUTO              (1) // from the CPU's reserve (main.c)
#define MP_PLAT_ALLOC_HEAP(size)                manticore_gc_area_take(size)
#define MP_PLAT_FREE_HEAP(area)                 manticore_gc_area_give(area)
void *manticore_gc_area_take(size_t size);
void manticore_gc_area_give(void *area);
#define MICROPY_ENABLE_FINALISER                (1)
#define MICROPY_STACK_CHECK                     (1)
#define MICROPY_STACK_CHECK_MARGIN              (8192)
#define MICROPY_ENABLE_EMERGENCY_EXCEPTION_BUF  (1)
#define MICROPY_EMERGENCY_EXCEPTION_BUF_SIZE    (256)
#define MICROPY_LONGINT_IMPL                    (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_FLOAT_IMPL                      (MICROPY_FLOAT_IMPL_DOUBLE)
#define MICROPY_OPT_COMPUTED_GOTO               (1)
#define MICROPY_ROM_TEXT_COMPRESSION            (0) // size is not tight; readable messages
#define MICROPY_MALLOC_USES_ALLOCATED_SIZE      (1)
#define MICROPY_MEM_STATS                       (1)
#define MICROPY_PERSISTENT_CODE_LOAD            (1)
#define MICROPY_WARNINGS                        (1)
#define MICROPY_ERROR_REPORTING                 (MICROPY_ERROR_REPORTING_DETAILED)
#define MICROPY_ENABLE_SCHEDULER                (1)
#define MICROPY_SCHEDULER_DEPTH                 (16)
#define MICROPY_SCHEDULER_STATIC_NODES          (1) // soft IRQs: C work queued from hard IRQs (softirq.c)
#define MICROPY_KBD_EXCEPTION                   (1)
#define MICROPY_READER_VFS                      (1)
// Every import passes the kernel's watch first (modkernel.c: _kernel.on_first_import, how the
// scheduler loads when code first imports asyncio), then MicroPython's own import.
#define mp_builtin___import__                   manticore_import
#define MICROPY_VFS                             (1) // / is a disk or a RAM disk (kernel/fs.py)
#define MICROPY_FATFS_ENABLE_LFN                (1) // long file names on FAT, as other ports
#define MICROPY_FATFS_RPATH                     (2)
#define MICROPY_HELPER_REPL                     (1)
#define MICROPY_REPL_AUTO_INDENT                (1)
#define MICROPY_REPL_EMACS_KEYS                 (1)

// Native code emitters: the x64 code generator for @micropython.native and .viper. The heap
// is no-execute: finished code is copied to the CPU's executable area (nativecode.c, W^X).
#define MICROPY_EMIT_X64                        (1)
void *manticore_native_commit(void *buf, size_t len, void *reloc);
#define MP_PLAT_COMMIT_EXEC(buf, len, reloc)    manticore_native_commit(buf, len, reloc)

// Modules and their options.
// errno: MicroPython's default list plus the filesystem errors a disk gives (EROFS, ENOSPC...).
#define MICROPY_PY_ERRNO_LIST \
    X(EPERM) X(ENOENT) X(EIO) X(EBADF) X(EAGAIN) X(ENOMEM) X(EACCES) X(EEXIST) X(ENODEV) \
    X(ENOTDIR) X(EISDIR) X(EINVAL) X(EFBIG) X(ENOSPC) X(EROFS) X(EOPNOTSUPP) X(EADDRINUSE) \
    X(ECONNABORTED) X(ECONNRESET) X(ENOBUFS) X(ENOTCONN) X(ETIMEDOUT) X(ECONNREFUSED) \
    X(EHOSTUNREACH) X(EALREADY) X(EINPROGRESS)
#define MICROPY_PY_SYS_PLATFORM                 "manticore"
#define MICROPY_PY_SYS_STDFILES                 (1)
#define MICROPY_PY_SYS_STDIO_BUFFER             (1)
#define MICROPY_PY_SYS_EXIT                     (1)
#define MICROPY_PY_SYS_SETTRACE                 (0)
#define MICROPY_PY_OS                           (1)
#define MICROPY_PY_OS_INCLUDEFILE               "ports/manticore/modos.c"
#define MICROPY_PY_OS_UNAME                     (1)
#define MICROPY_PY_OS_URANDOM                   (1)
#define MICROPY_PY_OS_DUPTERM                   (1) // a stream beside the console (WebREPL); netrepl.c
#define MICROPY_PY_OS_SYNC                      (0) // os.sync is modblk.c's: FAT and the disks' flush
#define MICROPY_PY_TIME                         (1)
#define MICROPY_PY_TIME_INCLUDEFILE             "ports/manticore/modtime.c"
#define MICROPY_PY_TIME_TIME_TIME_NS            (1)
#define MICROPY_PY_TIME_GMTIME_LOCALTIME_MKTIME (1)
#define MICROPY_EPOCH_IS_1970                   (1) // time() and the RTC count from 1970, as CPython
#define MICROPY_PY_MACHINE                      (1)
#define MICROPY_PY_MACHINE_INCLUDEFILE          "ports/manticore/modmachine.c"
#define MICROPY_PY_MACHINE_RESET                (1)
#define MICROPY_PY_MACHINE_BARE_METAL_FUNCS     (1)
#define MICROPY_PY_MACHINE_DISABLE_IRQ_ENABLE_IRQ (1)
#define MICROPY_PY_MACHINE_PIN_BASE             (0)
#define MICROPY_PY_MACHINE_PULSE                (0)
#define MICROPY_PY_MACHINE_SOFTI2C              (0)
#define MICROPY_PY_MACHINE_SOFTSPI              (0)
#define MICROPY_PY_MACHINE_EXTRA_GLOBALS \
    { MP_ROM_QSTR(MP_QSTR_poweroff), MP_ROM_PTR(&machine_poweroff_obj) }, \
    { MP_ROM_QSTR(MP_QSTR_cmdline), MP_ROM_PTR(&machine_cmdline_obj) },
#define MICROPY_PY_SELECT                       (1)
#define MICROPY_PY_ASYNCIO                      (1)
#define MICROPY_PY_RANDOM_SEED_INIT_FUNC        (mp_hal_random_seed())
// TLS, sha1/md5 and AES through mbedTLS (MICROPY_SSL_MBEDTLS from the Makefile; the port's
// config is mbedtls/mbedtls_config_port.h). The ssl module is frozen/ssl.py over tls.
#define MICROPY_PY_HASHLIB_SHA1                 (1)
#define MICROPY_PY_HASHLIB_MD5                  (1)
#define MICROPY_PY_CRYPTOLIB                    (1)
#define MICROPY_PY_CRYPTOLIB_CTR                (1)
#define MICROPY_PY_SSL                          (1)
#define MICROPY_TRACKED_ALLOC                   (1) // mbedTLS allocates on the GC heap
#define MICROPY_PY_WEBSOCKET                    (1) // WebREPL (frozen/webrepl.py)
#define MICROPY_PY_WEBREPL                      (1)
#define MICROPY_PY_BTREE                        (0)
#define MICROPY_PY_NETWORK                      (1)
#define MICROPY_PY_NETWORK_HOSTNAME_DEFAULT     "manticore"
#define MICROPY_PY_SOCKET                       (1) // lwIP's (extmod/modlwip.c; MICROPY_PY_LWIP from the Makefile)
#define MICROPY_PY_LWIP_SOCK_RAW                (1)
// Unread datagrams a UDP/raw socket keeps (patches/0001-modlwip-udp-incoming-queue.patch;
// upstream 1.25 keeps one). 64 > 32 requests in flight plus stragglers of timed-out ones.
#define MICROPY_PY_LWIP_INCOMING_QUEUE_LEN      (64)
#define MICROPY_PY_BLUETOOTH                    (0)
#define MICROPY_PY_FRAMEBUF                     (0)
#define MICROPY_PY_OPENAMP                      (0)
#define MICROPY_PY_ONEWIRE                      (0)

// network.LAN: the virtio-net NIC under lwIP (network_lan.c).
extern const struct _mp_obj_type_t network_lan_type;
#define MICROPY_PORT_NETWORK_INTERFACES \
    { MP_ROM_QSTR(MP_QSTR_LAN), MP_ROM_PTR(&network_lan_type) },

// lwIP runs only in thread context (Python, its bytecode-boundary soft IRQs and the idle
// loop), never in a hard IRQ, so the stack needs no lock. Leaving a section of lwIP calls
// re-arms the kernel timer for lwIP's next timeout, which those calls may have moved.
void netif_virtio_lwip_exit(void);
// lwIP belongs to CPU 0 (docs/multicore.md): a socket call on another CPU raises OSError
// before it touches the stack.
void manticore_lwip_enter(void);
#define MICROPY_PY_LWIP_ENTER                   { manticore_lwip_enter(); }
#define MICROPY_PY_LWIP_REENTER
#define MICROPY_PY_LWIP_EXIT                    { netif_virtio_lwip_exit(); }

// Banner: "MicroPython v1.25.0 on <date>; manticore with x86-64"; the line before it (main.c)
// names the CPU, RAM and heap, which are only known at run time.
#define MICROPY_HW_BOARD_NAME                   "manticore"
#define MICROPY_HW_MCU_NAME                     "x86-64"
#define MICROPY_BANNER_MACHINE                  MICROPY_HW_BOARD_NAME " with " MICROPY_HW_MCU_NAME

// Type definitions for x86-64 (LP64).
#define MP_SSIZE_MAX                            (0x7fffffffffffffff)
#define UINT_FMT                                "%lu"
#define INT_FMT                                 "%ld"
typedef int64_t mp_int_t;   // must be pointer size
typedef uint64_t mp_uint_t; // must be pointer size
// Stream offsets are 32-bit, as on the 32-bit boards: littlefs files stop at 2 GiB anyway
// (LFS_FILE_MAX), and mpremote's `mount` reads a seek request (struct mp_stream_seek_t) with
// machine.mem32[arg] for the offset and mem32[arg + 4] for whence, which is only right when
// the offset is 4 bytes.
typedef int32_t mp_off_t;

#include <alloca.h>

// lib/libm_dbl has no log2; py/modmath.c provides one.
#define MP_NEED_LOG2                            (1)

#define MP_STATE_PORT MP_STATE_VM

// Waiting for an event: the core halts until the next interrupt (serial input is interrupt
// driven); with a timeout it arms the one-shot LAPIC timer for the deadline first.
#define MICROPY_INTERNAL_WFE(timeout_ms)        mp_hal_wait_for_event(timeout_ms)

// Interrupts are the only concurrency on one core: an atomic section masks them.
#define MICROPY_BEGIN_ATOMIC_SECTION()          mp_hal_disable_irq()
#define MICROPY_END_ATOMIC_SECTION(state)       mp_hal_restore_irq(state)

uint64_t mp_hal_random_seed(void);
void mp_hal_wait_for_event(int timeout_ms);
uint64_t mp_hal_disable_irq(void);
void mp_hal_restore_irq(uint64_t state);
