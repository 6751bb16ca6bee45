// QEMU's firmware configuration device (fw_cfg): a key/value store the host fills from the
// command line (-fw_cfg name=...,string=... or file=...), read here through its legacy
// I/O-port interface. Used for run-time settings such as opt/manticore/cmdline.
//
// Reference: QEMU docs/specs/fw_cfg.rst ("Selector (Control) Register", "Data Register",
// "Firmware Configuration Items"): on x86 the selector is the 16-bit port 0x510 and the data
// the 8-bit port 0x511, on pc, q35 and microvm alike.
#include "arch/x86_64/fw_cfg.h"

#include <stdint.h>

#include "arch/x86_64/cpu.h"

enum fw_cfg_port {
    FW_CFG_PORT_SELECTOR = 0x510,
    FW_CFG_PORT_DATA = 0x511,
};

enum fw_cfg_item {
    FW_CFG_SIGNATURE = 0x0000,  // reads "QEMU"
    FW_CFG_FILE_DIR = 0x0019,   // be32 count, then struct fw_cfg_file entries
};

// A file directory entry; multi-byte fields are big-endian (fw_cfg.rst, "File Directory").
struct fw_cfg_file {
    uint32_t size_be;
    uint16_t select_be;
    uint16_t reserved;
    char name[56];
};

static uint32_t from_be32(uint32_t value) {
    return __builtin_bswap32(value);
}

static uint16_t from_be16(uint16_t value) {
    return __builtin_bswap16(value);
}

// Selecting an item rewinds its read offset to 0; each data read advances it by one byte.
static void fw_cfg_select(uint16_t item) {
    outw(FW_CFG_PORT_SELECTOR, item);
}

static void fw_cfg_read(void *buf, size_t length) {
    uint8_t *bytes = buf;
    for (size_t i = 0; i < length; i++) {
        bytes[i] = inb(FW_CFG_PORT_DATA);
    }
}

bool fw_cfg_present(void) {
    char signature[4];
    fw_cfg_select(FW_CFG_SIGNATURE);
    fw_cfg_read(signature, sizeof(signature));
    return signature[0] == 'Q' && signature[1] == 'E' && signature[2] == 'M' && signature[3] == 'U';
}

static bool names_equal(const char *a, const char *b, size_t max) {
    for (size_t i = 0; i < max; i++) {
        if (a[i] != b[i]) {
            return false;
        }
        if (a[i] == '\0') {
            return true;
        }
    }
    return b[max] == '\0';
}

long fw_cfg_read_file(const char *name, void *buf, size_t max) {
    if (!fw_cfg_present()) {
        return -1;
    }
    uint32_t count_be;
    fw_cfg_select(FW_CFG_FILE_DIR);
    fw_cfg_read(&count_be, sizeof(count_be));
    uint32_t count = from_be32(count_be);
    for (uint32_t i = 0; i < count; i++) {
        struct fw_cfg_file entry;
        fw_cfg_read(&entry, sizeof(entry));
        if (!names_equal(entry.name, name, sizeof(entry.name))) {
            continue;
        }
        uint32_t size = from_be32(entry.size_be);
        size_t length = size < max ? size : max;
        fw_cfg_select(from_be16(entry.select_be));
        fw_cfg_read(buf, length);
        return (long)length;
    }
    return -1;
}
