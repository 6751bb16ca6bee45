// QEMU's firmware configuration device (fw_cfg): a key/value store the host fills from the
// command line (-fw_cfg name=...,string=... or file=...), read here through its legacy
// I/O-port interface. Used for run-time settings such as opt/manticore/cmdline.
#ifndef ARCH_X86_64_FW_CFG_H
#define ARCH_X86_64_FW_CFG_H

#include <stdbool.h>
#include <stddef.h>

// True when fw_cfg answers with its "QEMU" signature.
bool fw_cfg_present(void);

// Copy up to `max` bytes of the fw_cfg file `name` (e.g. "opt/manticore/cmdline") into
// `buf`. Returns the number of bytes copied, or -1 when fw_cfg or the file is absent. No NUL
// terminator is added (QEMU's string= files carry none).
long fw_cfg_read_file(const char *name, void *buf, size_t max);

#endif
