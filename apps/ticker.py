# ticker: prints "ticker: tick N" every tick_ms milliseconds (command line tick_ms=, default
# 200); with ticks=K it stops after K ticks (exit code 0), else it runs forever.
import asyncio

from kernel import syscalls as sc


async def main():
    period = int(sc.get_config("tick_ms", "200"))
    limit = int(sc.get_config("ticks", "0"))
    n = 0
    while not limit or n < limit:
        await asyncio.sleep_ms(period)
        n += 1
        sc.console_print("ticker: tick %d" % n)
