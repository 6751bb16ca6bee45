# holder: acquires a device (hold=NAME, default "console") for hold_ms milliseconds (default
# 500), then ends without releasing it: the kernel gives it back. With hold_fail=1 it ends by
# raising instead, which must give the device back all the same.
import asyncio

from kernel import syscalls as sc


async def main():
    name = sc.get_config("hold", "console")
    sc.acquire(name)
    sc.console_print("holder: holding %s" % name)
    await asyncio.sleep_ms(int(sc.get_config("hold_ms", "500")))
    if sc.get_config("hold_fail") == "1":
        raise ValueError("holder: failing while holding %s" % name)
    sc.console_print("holder: done")
