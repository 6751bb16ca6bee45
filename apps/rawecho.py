# rawecho: a UDP echo server on a raw NIC queue pair, the parakernel path. It owns one queue
# pair ("eth0", or "eth1.q2" from nic=eth1 queue=2; lwIP is detached from it meanwhile) and
# answers in batches: the queue's echo_batch() takes up to BATCH frames, turns every UDP
# datagram for ip:port into its reply in the receive buffer itself (a small C helper swaps the
# addresses and ports; no checksum changes) and transmits it from there, with one device
# notification for the batch. Everything else (ARP, malformed or foreign frames) comes back as
# memoryviews over the receive DMA buffers and is handled here in Python, below.
#
# Command line: nic=ethN (default eth0), queue=N[,N...] (default 0; several: one app serves
# them all, in turn; queue@K=N[,N...] overrides it for the copy of rawecho on CPU K, so that
# app=rawecho@0,rawecho@1 queue@0=0 queue@1=1 serves one pair per CPU),
# ip=A.B.C.D (default 10.0.2.15),
# port=N (default 7; 0 echoes every port), poll=1 (busy-poll: no RX interrupts on the queue;
# the app yields to the other tasks between polls but keeps the core busy), spin=US (default
# 300; 0: off): hybrid polling, as Linux's busy_poll does it: for up to US microseconds after
# a batch the app keeps polling its queues with their interrupts off, then re-arms them and
# waits for an event (the core halts). Measured over tap under TCG (bench echo, "where the
# time goes"), an interrupt-driven wake-up (MSI, HLT exit, soft IRQ, Python callback, event,
# asyncio, task switch) costs the guest more than the echo itself, and at 1 request in flight
# every request pays it; a request that comes back within the window (one host round trip,
# about 60-100 us on an idle host) is picked up by the poll instead. The window adapts like
# KVM's halt_poll_ns: a spin that finds nothing halves it, a sleep shorter than US doubles
# it, so on a loaded host, where requests come late and a spinning vCPU takes a host core
# from QEMU's tap backend, the app falls back to plain interrupts by itself.
#
# The Python path below (handle) is the reference and the slow path:
# Per packet there is no bytes object: headers are written into the transmit buffer field by
# field, and the payload goes from the receive buffer to the transmit buffer in one
# memoryview-to-memoryview move (C memmove, DMA to DMA) -- the one move the two-ring API
# leaves (a device cannot transmit from a receive buffer). Swapping source and destination
# changes neither the IPv4 header checksum nor the UDP checksum (one's-complement sums do not
# depend on the order of the words), so neither is recomputed and the payload is never read.
import asyncio
from time import ticks_diff, ticks_us

from kernel import syscalls as sc

ETH_HLEN = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
IPPROTO_UDP = 17
ARP_LEN = 42  # Ethernet + ARP for IPv4 over Ethernet
MIN_FRAME = 60  # the shortest Ethernet frame without its FCS

# What happened to the frames, for kernel.sys / the REPL: apps.rawecho.stats
stats = {
    "rx": 0,
    "echoed": 0,
    "arp_replies": 0,
    "ignored": 0,  # not for us, or not IPv4/ARP/UDP
    "malformed": 0,  # lengths or header fields that do not add up
    "tx_full": 0,  # no transmit buffer in time: reply dropped
}
# The same per queue pair it serves ("eth0.q1": {"rx": ..., "malformed": ...}): with several
# pairs (or a burst aimed at one of them) this says where the frames came and died.
queue_stats = {}

BLOCKED = 1  # handle(): no transmit buffer, retry after EVENT_TX


def parse_ip(text):
    parts = [int(p) for p in text.split(".")]
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise ValueError("bad IPv4 address %r" % text)
    return bytes(parts)


class Echo:
    def __init__(self, nic, ip, port):
        self.nic = nic
        self.ip = ip  # bytes(4)
        self.mac = bytes(nic.mac())
        self.port = port

    def _is_my_ip(self, frame, offset):
        ip = self.ip
        return (frame[offset] == ip[0] and frame[offset + 1] == ip[1]
                and frame[offset + 2] == ip[2] and frame[offset + 3] == ip[3])

    def _tx(self):
        try:
            return self.nic.tx_buffer()
        except OSError:
            return None

    def handle(self, frame):
        """One received frame; returns BLOCKED when a reply needs a transmit buffer and none is free."""
        n = len(frame)
        if n < ETH_HLEN:
            stats["malformed"] += 1
            return 0
        ethertype = frame[12] << 8 | frame[13]
        if ethertype == ETHERTYPE_ARP:
            return self.arp(frame, n)
        if ethertype == ETHERTYPE_IPV4:
            return self.udp(frame, n)
        stats["ignored"] += 1
        return 0

    def arp(self, frame, n):
        # htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, oper 1 (request)
        if n < ARP_LEN:
            stats["malformed"] += 1
            return 0
        if (frame[14] != 0 or frame[15] != 1 or frame[16] != 8 or frame[17] != 0
                or frame[18] != 6 or frame[19] != 4):
            stats["malformed"] += 1
            return 0
        if frame[20] != 0 or frame[21] != 1 or not self._is_my_ip(frame, 38):
            stats["ignored"] += 1
            return 0
        got = self._tx()
        if got is None:
            return BLOCKED
        tx, tx_id = got
        tx[0:6] = frame[22:28]  # to the asker's hardware address
        tx[6:12] = self.mac
        tx[12:22] = frame[12:22]  # ethertype, htype, ptype, hlen, plen, oper...
        tx[21] = 2  # ...made a reply
        tx[22:28] = self.mac  # sender: us
        tx[28:32] = self.ip
        tx[32:42] = frame[22:32]  # target: the asker (hardware and protocol address)
        for i in range(ARP_LEN, MIN_FRAME):
            tx[i] = 0
        self.nic.tx_send(tx_id, MIN_FRAME)
        stats["arp_replies"] += 1
        return 0

    def udp(self, frame, n):
        if n < ETH_HLEN + 20:
            stats["malformed"] += 1
            return 0
        vihl = frame[14]
        ihl = (vihl & 0x0F) * 4
        total = frame[16] << 8 | frame[17]
        if vihl >> 4 != 4 or ihl < 20 or total < ihl + 8 or ETH_HLEN + total > n:
            stats["malformed"] += 1
            return 0
        if frame[23] != IPPROTO_UDP or not self._is_my_ip(frame, 30):
            stats["ignored"] += 1
            return 0
        if _ip_sum(frame, ihl) != 0xFFFF:  # RFC 1122 3.2.1.2: a bad header checksum is dropped
            stats["malformed"] += 1
            return 0
        if frame[20] & 0x3F or frame[21]:  # more fragments, or a fragment offset
            stats["ignored"] += 1
            return 0
        udp = ETH_HLEN + ihl
        udp_len = frame[udp + 4] << 8 | frame[udp + 5]
        if udp_len < 8 or udp_len > total - ihl:
            stats["malformed"] += 1
            return 0
        port = self.port
        if port and (frame[udp + 2] << 8 | frame[udp + 3]) != port:
            stats["ignored"] += 1
            return 0
        length = ETH_HLEN + ihl + udp_len
        got = self._tx()
        if got is None:
            return BLOCKED
        tx, tx_id = got
        if length > len(tx):
            self.nic.tx_free(tx_id)
            stats["malformed"] += 1
            return 0
        tx[0:6] = frame[6:12]  # Ethernet: back to the sender
        tx[6:12] = self.mac
        tx[12:14] = frame[12:14]
        tx[14:26] = frame[14:26]  # IPv4 up to and including the checksum (total length: see below)
        tx[16] = (ihl + udp_len) >> 8  # a UDP length shorter than the IP datagram: trim
        tx[17] = (ihl + udp_len) & 0xFF
        tx[26:30] = frame[30:34]  # source <- destination
        tx[30:34] = frame[26:30]  # destination <- source
        if ihl > 20:
            tx[34:ETH_HLEN + ihl] = frame[34:ETH_HLEN + ihl]  # options
        tx[udp:udp + 2] = frame[udp + 2:udp + 4]  # ports swapped
        tx[udp + 2:udp + 4] = frame[udp:udp + 2]
        tx[udp + 4:udp + 8] = frame[udp + 4:udp + 8]  # length, checksum
        if total != ihl + udp_len:
            _fix_ip_checksum(tx)
        if udp_len > 8:
            tx[udp + 8:length] = frame[udp + 8:length]  # the payload: one move, DMA to DMA
        end = length
        while end < MIN_FRAME:
            tx[end] = 0
            end += 1
        self.nic.tx_send(tx_id, end)
        stats["echoed"] += 1
        return 0


def _ip_sum(frame, ihl):
    """The one's-complement sum of the IPv4 header (0xFFFF when its checksum is right). Only
    the header is read, never the payload; the UDP checksum is left to the sender, who gets
    the datagram back with the same (good or bad) checksum."""
    total = 0
    for i in range(14, 14 + ihl, 2):
        total += frame[i] << 8 | frame[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _fix_ip_checksum(tx):
    ihl = (tx[14] & 0x0F) * 4
    tx[24] = 0
    tx[25] = 0
    total = 0
    for i in range(14, 14 + ihl, 2):
        total += tx[i] << 8 | tx[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    total = ~total & 0xFFFF
    tx[24] = total >> 8
    tx[25] = total & 0xFF


BATCH = 32
SPIN_MIN_US = 25  # the spin window's first step up from 0


def device_name(nic, queue):
    return nic if queue == 0 else "%s.q%d" % (nic, queue)


async def main():
    nic_name = sc.get_config("nic", "eth0")
    wanted = sc.get_config("queue@%d" % sc.cpu(), None) or sc.get_config("queue", "0")
    names = [device_name(nic_name, int(q)) for q in wanted.split(",")]
    queues = [sc.acquire(name) for name in names]
    for name in names:
        queue_stats[name] = dict((k, 0) for k in stats)
    echo = Echo(queues[0], parse_ip(sc.get_config("ip", "10.0.2.15")),
                int(sc.get_config("port", "7")))
    poll = sc.get_config("poll", "0") == "1"
    spin_us = int(sc.get_config("spin", "300"))
    window = spin_us  # this window adapts: halved when a spin finds nothing, doubled (up to
    # spin_us) when the app slept less than spin_us, as KVM's halt_poll_ns does
    spinning = False  # within the spin window after a batch: interrupts off, polling
    last_busy = ticks_us()
    for nic in queues:
        sc.subscribe(nic, sc.EVENT_RX | sc.EVENT_TX)
        if poll:
            nic.poll(True)
    sc.console_print("rawecho: %s udp port %s on %s %s%s"
                     % (".".join(str(b) for b in echo.ip), echo.port or "any", ",".join(names),
                        ":".join("%02x" % b for b in echo.mac), " (busy-poll)" if poll else ""))
    ip, port = echo.ip, echo.port
    while True:
        busy = False
        for i, nic in enumerate(queues):
            echoed, others = nic.echo_batch(BATCH, ip, port)
            if echoed:
                busy = True
                stats["rx"] += echoed
                stats["echoed"] += echoed
                mine = queue_stats[names[i]]
                mine["rx"] += echoed
                mine["echoed"] += echoed
            if others is not None:
                busy = True
                echo.nic = nic
                seen = dict(stats)
                for frame, frame_id in others:
                    stats["rx"] += 1
                    try:
                        if echo.handle(frame) == BLOCKED:
                            # Hold the frame until transmit space comes back (or 100 ms).
                            await sc.wait(0.1)
                            if echo.handle(frame) == BLOCKED:
                                stats["tx_full"] += 1
                    finally:
                        nic.release(frame_id)
                mine = queue_stats[names[i]]
                for k in stats:
                    mine[k] += stats[k] - seen[k]
        if busy:
            if window and not poll:
                last_busy = ticks_us()
                if not spinning:
                    spinning = True
                    for nic in queues:
                        nic.poll(True)
        elif poll:
            await asyncio.sleep_ms(0)  # let the other tasks run; no interrupt will come
        elif spinning and ticks_diff(ticks_us(), last_busy) < window:
            await asyncio.sleep_ms(0)  # within the spin window: poll again after the others
        elif spinning:
            spinning = False
            window >>= 1  # the spin found nothing: shorter next time (0 after a few misses)
            for nic in queues:
                nic.poll(False)  # re-arms; frames that came meanwhile post an event
        else:
            slept = ticks_us()
            await sc.wait()
            if spin_us and ticks_diff(ticks_us(), slept) < spin_us:
                window = min(spin_us, max(2 * window, SPIN_MIN_US))  # polling would have won
