# crasher: raises an exception after crash_ms milliseconds (default 300), to show that one
# failing app leaves the others running.
import asyncio

from kernel import syscalls as sc


def explode(after):
    raise RuntimeError("crasher: deliberate failure after %d ms" % after)


async def main():
    after = int(sc.get_config("crash_ms", "300"))
    await asyncio.sleep_ms(after)
    explode(after)
