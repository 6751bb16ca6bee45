# churn: allocates as fast as it can (short-lived lists, strings and bytes), so its heap is
# collected back to back, and never yields. Each CPU has its own heap and collector, so apps
# on other CPUs must not notice (tests and `invoke bench smp` check that). With churn_ms=N
# it ends after N ms and prints how many collections it caused.
import gc
from time import ticks_ms, ticks_diff

from kernel import syscalls as sc


def main():
    limit = int(sc.get_config("churn_ms", "0"))
    sc.console_print("churn: allocating on CPU %d" % sc.cpu())
    start = ticks_ms()
    rounds = 0
    before = gc.mem_free()
    while not limit or ticks_diff(ticks_ms(), start) < limit:
        junk = [bytes(64) for _ in range(64)]
        junk.append("round %d" % rounds)
        rounds += 1
    sc.console_print("churn: %d rounds, heap free %d -> %d" % (rounds, before, gc.mem_free()))
