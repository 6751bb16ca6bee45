// The blk module: the virtio-blk disks as MicroPython block devices (the protocol of
// vfs.AbstractBlockDev, extended form), so that vfs.VfsLfs2 and vfs.VfsFat mount them.
//
//   >>> import blk, vfs
//   >>> blk.disks()                         # names, in bus order
//   ['vda', 'vdb']
//   >>> d = blk.Disk('vda')                 # or blk.Disk(0); block_size=4096 for littlefs
//   >>> d.ioctl(4, 0), d.ioctl(5, 0)        # block count, block size
//   >>> vfs.mount(vfs.VfsLfs2(d), '/data')
//
// Errors are OSError: EIO (the device said so), EROFS (VIRTIO_BLK_F_RO), EINVAL (past the
// end), ETIMEDOUT (the device stopped answering; the disk is then disabled). The driver does
// the work (drivers/virtio/virtio_blk.c); this file converts arguments.
#include <stddef.h>
#include <string.h>

#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stream.h"
#include "extmod/vfs.h"

#include "arch/x86_64/smp.h"
#include "drivers/pci/msix.h"
#include "drivers/virtio/virtio_blk.h"
#include "shared/timeutils/timeutils.h"

#if MICROPY_VFS_FAT
#include "lib/oofatfs/ff.h"
#include "lib/oofatfs/diskio.h"
#include "extmod/vfs_fat.h"
#endif

// mpremote's `mount` answers MP_STREAM_SEEK with machine.mem32 at arg and arg + 4
// (mpconfigport.h: mp_off_t is 32 bits for it).
_Static_assert(offsetof(struct mp_stream_seek_t, whence) == 4, "mpremote seeks with mem32");

typedef struct _blk_disk_obj_t {
    mp_obj_base_t base;
    struct virtio_blk *dev;
    uint32_t block_size;            // the block of readblocks/writeblocks and ioctl 4/5
} blk_disk_obj_t;

static void check(int err) {
    if (err != 0) {
        mp_raise_OSError(-err);
    }
}

static struct virtio_blk *find_disk(mp_obj_t id) {
    if (mp_obj_is_str(id)) {
        const char *name = mp_obj_str_get_str(id);
        for (int i = 0; i < virtio_blk_count; i++) {
            if (strcmp(virtio_blk_devices[i].name, name) == 0) {
                return &virtio_blk_devices[i];
            }
        }
    } else {
        mp_int_t i = mp_obj_get_int(id);
        if (i >= 0 && i < virtio_blk_count) {
            return &virtio_blk_devices[i];
        }
    }
    mp_raise_OSError(MP_ENODEV);
}

static mp_obj_t blk_disk_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *all_args) {
    enum { ARG_id, ARG_block_size };
    static const mp_arg_t allowed[] = {
        { MP_QSTR_id, MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_block_size, MP_ARG_KW_ONLY | MP_ARG_INT, {.u_int = 0} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed), allowed, args);
    struct virtio_blk *dev = find_disk(args[ARG_id].u_obj);
    // A disk has one request slot and its interrupt goes to the CPU that bound it: only
    // that CPU's interpreter may use it (the filesystem at / is CPU 0's, kernel/fs.py).
    if ((int)smp_cpu_id() != dev->owner_cpu) {
        mp_raise_msg_varg(&mp_type_OSError, MP_ERROR_TEXT("disk %s belongs to CPU %d"),
            dev->name, dev->owner_cpu);
    }
    mp_int_t bs = args[ARG_block_size].u_int ? args[ARG_block_size].u_int : (mp_int_t)dev->block_size;
    if (bs < VIRTIO_BLK_SECTOR_SIZE || bs > 65536 || (bs & (bs - 1)) != 0 || bs < (mp_int_t)dev->block_size) {
        mp_raise_ValueError(MP_ERROR_TEXT("block_size: a power of two, from the disk's block to 65536"));
    }
    blk_disk_obj_t *self = mp_obj_malloc(blk_disk_obj_t, type);
    self->dev = dev;
    self->block_size = (uint32_t)bs;
    return MP_OBJ_FROM_PTR(self);
}

static void blk_disk_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
    blk_disk_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_printf(print, "Disk('%s', block_size=%u)", self->dev->name, (unsigned)self->block_size);
}

// readblocks(n, buf[, offset]) / writeblocks(n, buf[, offset]): byte position n * block_size +
// offset, length len(buf).
static mp_obj_t blk_disk_rw(size_t n_args, const mp_obj_t *args, bool write) {
    blk_disk_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    mp_int_t block = mp_obj_get_int(args[1]);
    mp_int_t offset = n_args > 3 ? mp_obj_get_int(args[3]) : 0;
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(args[2], &bufinfo, write ? MP_BUFFER_READ : MP_BUFFER_WRITE);
    if (block < 0 || offset < 0) {
        mp_raise_OSError(MP_EINVAL);
    }
    uint64_t pos = (uint64_t)block * self->block_size + (uint64_t)offset;
    if (write) {
        check(virtio_blk_write(self->dev, pos, bufinfo.buf, bufinfo.len));
    } else {
        check(virtio_blk_read(self->dev, pos, bufinfo.buf, bufinfo.len));
    }
    return mp_const_none;
}

static mp_obj_t blk_disk_readblocks(size_t n_args, const mp_obj_t *args) {
    return blk_disk_rw(n_args, args, false);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(blk_disk_readblocks_obj, 3, 4, blk_disk_readblocks);

static mp_obj_t blk_disk_writeblocks(size_t n_args, const mp_obj_t *args) {
    return blk_disk_rw(n_args, args, true);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(blk_disk_writeblocks_obj, 3, 4, blk_disk_writeblocks);

// ioctl(op, arg): the operations of vfs.AbstractBlockDev (MP_BLOCKDEV_IOCTL_*).
static mp_obj_t blk_disk_ioctl(mp_obj_t self_in, mp_obj_t op_in, mp_obj_t arg_in) {
    blk_disk_obj_t *self = MP_OBJ_TO_PTR(self_in);
    (void)arg_in;
    switch (mp_obj_get_int(op_in)) {
        case MP_BLOCKDEV_IOCTL_INIT:
        case MP_BLOCKDEV_IOCTL_DEINIT:
            return MP_OBJ_NEW_SMALL_INT(self->dev->broken ? -MP_EIO : 0);
        case MP_BLOCKDEV_IOCTL_SYNC:
            return MP_OBJ_NEW_SMALL_INT(virtio_blk_flush(self->dev));
        case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
            return mp_obj_new_int_from_ull(self->dev->capacity * VIRTIO_BLK_SECTOR_SIZE / self->block_size);
        case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
            return MP_OBJ_NEW_SMALL_INT(self->block_size);
        case MP_BLOCKDEV_IOCTL_BLOCK_ERASE:
            return MP_OBJ_NEW_SMALL_INT(0);     // a disk needs no erase before a write
        default:
            return mp_const_none;
    }
}
static MP_DEFINE_CONST_FUN_OBJ_3(blk_disk_ioctl_obj, blk_disk_ioctl);

static void dict_set(mp_obj_t dict, qstr key, mp_obj_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(key), value);
}

// info(): what the driver knows of the disk, and its counters.
static mp_obj_t blk_disk_info(mp_obj_t self_in) {
    blk_disk_obj_t *self = MP_OBJ_TO_PTR(self_in);
    struct virtio_blk *d = self->dev;
    mp_obj_t dict = mp_obj_new_dict(16);
    dict_set(dict, MP_QSTR_name, mp_obj_new_str(d->name, strlen(d->name)));
    dict_set(dict, MP_QSTR_size, mp_obj_new_int_from_ull(d->capacity * VIRTIO_BLK_SECTOR_SIZE));
    dict_set(dict, MP_QSTR_sector_size, MP_OBJ_NEW_SMALL_INT(VIRTIO_BLK_SECTOR_SIZE));
    dict_set(dict, MP_QSTR_device_block_size, MP_OBJ_NEW_SMALL_INT(d->block_size));
    dict_set(dict, MP_QSTR_readonly, mp_obj_new_bool(d->read_only));
    dict_set(dict, MP_QSTR_flush, mp_obj_new_bool(d->can_flush));
    dict_set(dict, MP_QSTR_broken, mp_obj_new_bool(d->broken));
    const char *mode = virtio_irq_mode_name(&d->vdev);   // PCI or virtio-mmio
    dict_set(dict, MP_QSTR_irq_mode, mp_obj_new_str(mode, strlen(mode)));
    dict_set(dict, MP_QSTR_vector, MP_OBJ_NEW_SMALL_INT(d->vq->vector));
    dict_set(dict, MP_QSTR_interrupts, mp_obj_new_int_from_ull(d->vq->interrupts));
    dict_set(dict, MP_QSTR_reads, mp_obj_new_int_from_ull(d->reads));
    dict_set(dict, MP_QSTR_writes, mp_obj_new_int_from_ull(d->writes));
    dict_set(dict, MP_QSTR_flushes, mp_obj_new_int_from_ull(d->flushes));
    dict_set(dict, MP_QSTR_errors, mp_obj_new_int_from_ull(d->errors));
    dict_set(dict, MP_QSTR_bytes_read, mp_obj_new_int_from_ull(d->bytes_read));
    dict_set(dict, MP_QSTR_bytes_written, mp_obj_new_int_from_ull(d->bytes_written));
    dict_set(dict, MP_QSTR_cache_hits, mp_obj_new_int_from_ull(d->cache_hits));
    dict_set(dict, MP_QSTR_timeout_ms, MP_OBJ_NEW_SMALL_INT(d->timeout_ms));
    return dict;
}
static MP_DEFINE_CONST_FUN_OBJ_1(blk_disk_info_obj, blk_disk_info);

// set_timeout(ms): how long a request may take before the disk is declared broken (default
// 15 s; a test shortens it against a throttled disk).
static mp_obj_t blk_disk_set_timeout(mp_obj_t self_in, mp_obj_t ms_in) {
    blk_disk_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_int_t ms = mp_obj_get_int(ms_in);
    if (ms < 1 || ms > 3600000) {
        mp_raise_ValueError(MP_ERROR_TEXT("timeout: 1 to 3600000 ms"));
    }
    self->dev->timeout_ms = (uint32_t)ms;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(blk_disk_set_timeout_obj, blk_disk_set_timeout);

static const mp_rom_map_elem_t blk_disk_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_set_timeout), MP_ROM_PTR(&blk_disk_set_timeout_obj) },
    { MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&blk_disk_readblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&blk_disk_writeblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&blk_disk_ioctl_obj) },
    { MP_ROM_QSTR(MP_QSTR_info), MP_ROM_PTR(&blk_disk_info_obj) },
};
static MP_DEFINE_CONST_DICT(blk_disk_locals, blk_disk_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(
    blk_disk_type,
    MP_QSTR_Disk,
    MP_TYPE_FLAG_NONE,
    make_new, blk_disk_make_new,
    print, blk_disk_print,
    locals_dict, &blk_disk_locals
    );

static mp_obj_t blk_disks(void) {
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < virtio_blk_count; i++) {
        const char *name = virtio_blk_devices[i].name;
        mp_obj_list_append(list, mp_obj_new_str(name, strlen(name)));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_0(blk_disks_obj, blk_disks);

static const mp_rom_map_elem_t blk_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_blk) },
    { MP_ROM_QSTR(MP_QSTR_disks), MP_ROM_PTR(&blk_disks_obj) },
    { MP_ROM_QSTR(MP_QSTR_Disk), MP_ROM_PTR(&blk_disk_type) },
};
static MP_DEFINE_CONST_DICT(blk_module_globals, blk_module_globals_table);

const mp_obj_module_t mp_module_blk = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&blk_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_blk, mp_module_blk);

// os.sync() (through the os module's attribute delegation in modacpi.c): write FAT's caches
// out, then ask each of this CPU's disks to make what it holds durable (VIRTIO_BLK_T_FLUSH).
// littlefs commits on every file close/flush and flushes the disk then itself.
static mp_obj_t blk_os_sync(void) {
    #if MICROPY_VFS_FAT
    for (mp_vfs_mount_t *vfs = MP_STATE_VM(vfs_mount_table); vfs != NULL; vfs = vfs->next) {
        if (mp_obj_is_type(vfs->obj, &mp_fat_vfs_type)) {
            disk_ioctl(MP_OBJ_TO_PTR(vfs->obj), CTRL_SYNC, NULL);
        }
    }
    #endif
    int err = 0;
    for (int i = 0; i < virtio_blk_count; i++) {
        // Only this CPU's disks: another CPU's has its one request slot and its interrupt
        // there (and this CPU's mounts hold nothing of it).
        if (virtio_blk_devices[i].owner_cpu != (int)smp_cpu_id()) {
            continue;
        }
        int e = virtio_blk_flush(&virtio_blk_devices[i]);
        err = err ? err : e;
    }
    check(err);
    return mp_const_none;
}
MP_DEFINE_CONST_FUN_OBJ_0(blk_os_sync_obj, blk_os_sync);

// FatFs timestamps (lib/oofatfs/ff.h: get_fattime) from the CMOS RTC's clock.
#if MICROPY_VFS_FAT
DWORD get_fattime(void) {
    timeutils_struct_time_t tm;
    timeutils_seconds_since_epoch_to_struct_time(mp_hal_time_ns() / 1000000000ull, &tm);
    if (tm.tm_year < 1980) {
        tm.tm_year = 1980;
    }
    return ((DWORD)(tm.tm_year - 1980) << 25) | ((DWORD)tm.tm_mon << 21) | ((DWORD)tm.tm_mday << 16)
           | ((DWORD)tm.tm_hour << 11) | ((DWORD)tm.tm_min << 5) | ((DWORD)tm.tm_sec / 2);
}
#endif
