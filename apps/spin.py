# spin: computes forever in plain Python and never yields: the test of isolation between
# cores. Placed on its own CPU (app=echod@0,spin@1) it takes that CPU whole and nothing else
# notices; placed beside other apps it stops them (the scheduler is cooperative).
from kernel import syscalls as sc


def main():
    sc.console_print("spin: computing on CPU %d, never yielding" % sc.cpu())
    n = 0
    while True:
        n += 1
