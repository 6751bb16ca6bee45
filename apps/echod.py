# echod: UDP (IPv4 and IPv6) and TCP echo on port 7777, with the standard socket API under asyncio.
#
#   invoke run --app echod --publish 7777/udp     # then, on the host: nc -u -4 localhost 7777
#
# Two tasks of one app: the UDP task waits until its socket is readable (the kernel's
# `readable` syscall: the core halts meanwhile) and echoes every datagram to its sender; the
# TCP side is asyncio's stream server, one task per client, which reads at most READ_SIZE
# bytes and writes them back before reading again (back-pressure through drain()). An error
# in one client (reset, out of buffers) closes that client only: it is counted in `stats`
# and the server keeps serving until the machine is powered off.
import socket

import asyncio
from kernel import syscalls

PORT = 7777
BACKLOG = 4
READ_SIZE = 4096

# Counters, readable from the REPL while echod runs beside it (import apps.echod).
stats = {
    "udp_packets": 0,
    "udp_bytes": 0,
    "udp_errors": 0,
    "tcp_accepted": 0,
    "tcp_closed": 0,
    "tcp_bytes": 0,
    "tcp_errors": 0,
}


def _udp_socket(port):
    # Dual stack where the system has IPv6: an AF_INET6 socket bound to "::" serves IPv4
    # clients too (their addresses come back as IPv4 ones); IPv4 alone otherwise.
    for family, host in ((getattr(socket, "AF_INET6", None), "::"), (socket.AF_INET, "0.0.0.0")):
        if family is None:
            continue
        sock = None
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            break
        except OSError:
            if sock is not None:
                sock.close()
            if family == socket.AF_INET:
                raise
    sock.setblocking(False)
    return sock


async def serve_udp(sock):
    while True:
        await syscalls.readable(sock)
        try:
            data, addr = sock.recvfrom(2048)
        except OSError:
            continue  # EAGAIN: woken early
        try:
            sock.sendto(data, addr)
            stats["udp_packets"] += 1
            stats["udp_bytes"] += len(data)
        except OSError:
            stats["udp_errors"] += 1  # e.g. no TX buffer or no ARP entry: the client retries


async def serve_tcp_client(reader, writer):
    stats["tcp_accepted"] += 1
    try:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                break  # the peer closed its side and everything went back
            stats["tcp_bytes"] += len(data)
            writer.write(data)
            await writer.drain()
    except Exception as error:  # reset, timeout, MemoryError: this client only
        stats["tcp_errors"] += 1
        print("echod: tcp client dropped:", repr(error))
    finally:
        stats["tcp_closed"] += 1
        try:
            writer.close()
            await writer.wait_closed()
        except OSError:
            pass


async def main(port=PORT):
    udp = _udp_socket(port)
    print("echod: listening on %d/udp" % port)
    server = await asyncio.start_server(serve_tcp_client, "0.0.0.0", port, BACKLOG)
    print("echod: listening on %d/tcp" % port)
    try:
        await serve_udp(udp)
    finally:
        server.close()
        udp.close()
