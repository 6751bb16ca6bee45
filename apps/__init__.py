# Manticore's apps: one module each with a main() (plain or async), frozen into the image and
# started by the kernel as tasks from the kernel command line (app=NAME[,NAME...]). They talk
# to the kernel through kernel.syscalls and to the network through socket or the raw queue.
