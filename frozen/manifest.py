# What is frozen into the manticore image. Paths are relative to this file.

# MicroPython's asyncio (the C part, _asyncio, is built in).
include("$(MPY_DIR)/extmod/asyncio")

# The kernel (scheduler, syscalls, devices) and the apps, one module each; with line
# numbers, so that an app's traceback points at its line.
package("kernel", base_path="..")
package("apps", base_path="..")

# ssl over the built-in tls module (micropython-lib's is not in the source package).
module("ssl.py")

# WebREPL (webrepl=PASSWORD on the kernel command line) over _webrepl and websocket.
module("webrepl.py")

# The boot script, run once after every (soft) reset before the REPL.
module("_boot.py", opt=3)

