# producer: sends msgs= numbered messages (default 1000) into the channel chan= (default
# "demo"), waiting whenever it is full, then a final b"end". With its partner, consumer,
# it shows a channel between two CPUs:
#
#     invoke run --cpus 2 --append "app=producer@0,consumer@1 msgs=10000"
from kernel import syscalls as sc


async def main():
    count = int(sc.get_config("msgs", "1000"))
    ch = sc.channel(sc.get_config("chan", "demo"), slots=int(sc.get_config("slots", "64")),
                    size=64)
    sc.console_print("producer: sending %d messages from CPU %d" % (count, sc.cpu()))
    full = 0
    for i in range(count):
        msg = b"%d" % i
        if not ch.send(msg):
            full += 1
            await ch.put(msg)  # back-pressure: wait for the consumer to make room
    await ch.put(b"end")
    sc.console_print("producer: sent %d, waited on a full channel %d times" % (count, full))
