# keys: owns the serial console input (acquire("console")), sleeps in wait() until the
# receive interrupt's soft-IRQ callback posts EVENT_INPUT, and echoes what arrived with the
# post-to-wake latency. A "q" ends it with exit code 0.
from kernel import syscalls as sc


async def main():
    console = sc.acquire("console")
    sc.subscribe(console, sc.EVENT_INPUT)
    sc.console_print("keys: ready")
    while True:
        for handle, bits in await sc.wait():
            data = handle.read()
            sc.console_print("keys: got %r (woke %d us after the post)"
                             % (data, sc.last_wake_latency_us()))
            if b"q" in data:
                return 0
