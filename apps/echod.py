# echod: UDP and TCP echo on port 7777, with the standard socket and select APIs.
#
#   invoke run --app echod --publish 7777/udp     # then, on the host: nc -u -4 localhost 7777
#
# One poll loop serves the UDP socket, the TCP listener and every TCP connection. Sockets are
# non-blocking; a TCP connection whose echo does not fit the send buffer is not read again
# until the rest has gone out (back-pressure: at most READ_SIZE bytes owed per client). An error in one
# client (reset, malformed use, out of buffers) closes that client only: it is counted in
# `stats` and the server keeps serving until the machine is powered off.
import select
import socket

PORT = 7777
BACKLOG = 4
READ_SIZE = 4096

# Counters, readable from the REPL while echod runs in the background (import apps.echod).
stats = {
    "udp_packets": 0,
    "udp_bytes": 0,
    "udp_errors": 0,
    "tcp_accepted": 0,
    "tcp_closed": 0,
    "tcp_bytes": 0,
    "tcp_errors": 0,
    "errors": 0,
}

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_POLLHUP_ERR = select.POLLHUP | select.POLLERR


def _bind(kind, port):
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.setblocking(False)
    return sock


class _Connection:
    """One TCP client: what it sent that still has to go back."""

    def __init__(self, sock):
        self.sock = sock
        self.pending = b""


class Echod:
    def __init__(self, port=PORT):
        self.port = port
        self.poller = select.poll()
        self.conns = {}
        self.buf = bytearray(READ_SIZE)
        self.view = memoryview(self.buf)
        self.udp = _bind(socket.SOCK_DGRAM, port)
        self.poller.register(self.udp, _POLLIN)
        print("echod: listening on %d/udp" % port)
        self.tcp = _bind(socket.SOCK_STREAM, port)
        self.tcp.listen(BACKLOG)
        self.poller.register(self.tcp, _POLLIN)
        print("echod: listening on %d/tcp" % port)

    # -- UDP: one datagram in, the same bytes back to the sender.

    def _udp_ready(self):
        try:
            data, addr = self.udp.recvfrom(2048)
        except OSError:
            return          # EAGAIN: poll was early
        try:
            self.udp.sendto(data, addr)
            stats["udp_packets"] += 1
            stats["udp_bytes"] += len(data)
        except OSError:
            stats["udp_errors"] += 1     # e.g. no TX buffer or no ARP entry: the client retries

    # -- TCP.

    def _accept(self):
        try:
            sock, _ = self.tcp.accept()
        except OSError:
            return
        sock.setblocking(False)
        self.conns[sock] = _Connection(sock)
        self.poller.register(sock, _POLLIN)
        stats["tcp_accepted"] += 1

    def _close(self, conn):
        self.conns.pop(conn.sock, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, OSError):
            pass
        try:
            conn.sock.close()
        except OSError:
            pass
        stats["tcp_closed"] += 1

    def _send(self, conn, data):
        """Send what the socket takes now; keep the rest and wait for POLLOUT."""
        n = conn.sock.write(data) or 0
        if n < len(data):
            conn.pending = bytes(data[n:])
            self.poller.modify(conn.sock, _POLLOUT)     # and stop reading meanwhile
        elif conn.pending:
            conn.pending = b""
            self.poller.modify(conn.sock, _POLLIN)

    def _tcp_ready(self, conn, events):
        if conn.pending:
            if events & _POLLOUT:
                self._send(conn, conn.pending)
            elif events & _POLLHUP_ERR:
                self._close(conn)
            return
        n = conn.sock.readinto(self.buf)
        if n is None:
            return          # EAGAIN: poll was early
        if n == 0:
            self._close(conn)   # the peer closed its side and everything went back
            return
        stats["tcp_bytes"] += n
        self._send(conn, self.view[:n])

    def _ready(self, sock, events):
        if sock is self.udp:
            self._udp_ready()
        elif sock is self.tcp:
            self._accept()
        else:
            conn = self.conns.get(sock)
            if conn is not None:
                try:
                    self._tcp_ready(conn, events)
                except Exception as error:  # reset, timeout, MemoryError: this client only
                    stats["tcp_errors"] += 1
                    print("echod: tcp client dropped:", repr(error))
                    self._close(conn)

    def serve(self):
        poller = self.poller
        while True:
            for sock, events in poller.ipoll(-1):
                try:
                    self._ready(sock, events)
                except Exception as error:      # never let one bad packet end the server
                    stats["errors"] += 1
                    print("echod:", repr(error))


def main(port=PORT):
    Echod(port).serve()
