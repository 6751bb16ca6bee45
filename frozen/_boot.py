# The manticore boot script: frozen into the image and run after every (soft) reset.
#
# It starts the kernel (kernel/boot.py), which reads the kernel command line (the boot
# loader's, or QEMU fw_cfg's opt/manticore/cmdline): with app=NAME[,NAME...] it runs those
# apps as tasks and powers off when the last one ends; without one, or with repl=1, the REPL
# follows, with the apps running whenever it waits for input. `kernel` stays in the REPL's
# namespace: kernel.ps(), kernel.sys.get_config("app").
import _kernel

_kernel.boottrace("_boot.py")  # the boot line, loading this script
import kernel

_kernel.boottrace("import:kernel")  # with asyncio, sched and smp (syscalls loads on use)
import kernel.boot

_kernel.boottrace("import:kernel.boot")  # and config, devices, fs, net
kernel.boot.main()
