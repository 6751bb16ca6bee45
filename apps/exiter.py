# exiter: exits with the code given on the command line (code=N, default 0) after
# exit_ms milliseconds (default 50).
import asyncio

from kernel import syscalls as sc


async def main():
    code = int(sc.get_config("code", "0"))
    await asyncio.sleep_ms(int(sc.get_config("exit_ms", "50")))
    sc.console_print("exiter: exit(%d)" % code)
    sc.exit(code)
    sc.console_print("exiter: still here after exit()?")  # never printed
