# faulter: a CPU exception (or C panic) on purpose, through kdebug.crash(fault=, default
# "null"), after saying on which CPU: the test that a fault on any core stops every core
# with a panic report naming the CPU, and QEMU exits with the panic status.
import kdebug

from kernel import syscalls as sc


def main():
    kind = sc.get_config("fault", "null")
    sc.console_print("faulter: crashing ('%s') on CPU %d" % (kind, sc.cpu()))
    kdebug.crash(kind)
