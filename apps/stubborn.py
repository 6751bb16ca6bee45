# stubborn: spins forever in an except: loop that swallows every exception, KeyboardInterrupt
# included, so neither Ctrl-C nor an error ends it. The fault campaign's test of containment
# (tests/smp/test_app_faults.py): on a CPU of its own it takes that CPU and nothing else
# notices, as spin does (docs/multicore.md).
from kernel import syscalls as sc


def main():
    sc.console_print("stubborn: swallowing every exception on CPU %d" % sc.cpu())
    swallowed = 0
    while True:
        try:
            n = 0
            while True:
                n += 1
        except:  # noqa: E722 - the point: KeyboardInterrupt is swallowed too
            swallowed += 1
