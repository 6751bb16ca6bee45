# hello: says which CPU it runs on and ends (exit code 0): the smallest placement check,
# e.g. app=hello@0,hello@1,hello@2,hello@3.
from kernel import syscalls as sc


def main():
    sc.console_print("hello: from CPU %d of %d" % (sc.cpu(), sc.get_config("cpus")))
