# consumer: receives from the channel chan= (default "demo") until b"end", checks that the
# numbered messages arrive complete and in order, and says so (exit code 1 if not).
from kernel import syscalls as sc


async def main():
    ch = sc.channel(sc.get_config("chan", "demo"), slots=int(sc.get_config("slots", "64")),
                    size=64)
    expected = 0
    bad = 0
    while True:
        msg = await ch.get()
        if msg == b"end":
            break
        if int(msg) != expected:
            bad += 1
        expected = int(msg) + 1
    sc.console_print("consumer: received %d messages on CPU %d, %d out of order"
                     % (expected, sc.cpu(), bad))
    return 1 if bad else 0
