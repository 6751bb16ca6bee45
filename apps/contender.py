# contender: tries to acquire the device holder holds (hold=NAME, default "console"); prints
# the EBUSY error, then retries every 50 ms until it gets the device, and exits with 0.
import asyncio

from kernel import syscalls as sc


async def main():
    name = sc.get_config("hold", "console")
    await asyncio.sleep_ms(50)  # let holder take it first
    tries = 0
    while True:
        try:
            sc.acquire(name)
            break
        except OSError as error:
            if error.errno != sc.EBUSY:
                raise
            if tries == 0:
                sc.console_print("contender: EBUSY: %s" % error.args[1])
            tries += 1
            await asyncio.sleep_ms(50)
    sc.console_print("contender: acquired %s after %d busy tries" % (name, tries))
