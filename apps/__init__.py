# Apps: one module each with a main() (plain or async), started by the kernel with
# app=NAME on the kernel command line. They talk to the kernel through kernel.syscalls.
