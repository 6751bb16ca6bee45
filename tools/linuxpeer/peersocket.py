# The `socket` module the Linux peer's apps see: MicroPython's unix port socket, taking
# addresses the way lwIP's (manticore's) does.
#
# The unix port's bind/connect/sendto want a sockaddr *bytes* (as getaddrinfo returns),
# lwIP's an (host, port) tuple. apps/echod.py is written for the latter (bind(("0.0.0.0",
# port))) and runs unchanged on both because peer_run.py installs this module as
# sys.modules["socket"] before importing the app: tuples are converted with the port's
# own getaddrinfo, bytes addresses (from recvfrom, getaddrinfo) pass through.
#
# Cost on the hot path: recv/recvfrom/send/read/write are the port's own bound methods,
# stored on the instance, so calling them runs no Python code; only sendto (which may get
# a tuple) is a Python method, one call frame per datagram. Polling: the wrapper is an
# io.IOBase whose ioctl gives select.poll the real file descriptor, so asyncio's I/O queue
# works on it; kernel.syscalls.readable() hands the poller the port's socket directly.
import io

import socket as _port
from socket import *  # noqa: F401,F403 (constants, getaddrinfo, sockaddr, inet_*)

_GET_FILENO = 10  # MP_STREAM_GET_FILENO, py/stream.h
_EINVAL = 22


def _sockaddr(addr):
    """A sockaddr for the port: tuples through getaddrinfo ("" is the wildcard address,
    as in CPython and lwIP), anything else as given."""
    if isinstance(addr, tuple):
        host = addr[0] or "0.0.0.0"
        return _port.getaddrinfo(host, addr[1])[0][-1]
    return addr


class socket(io.IOBase):
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0):  # noqa: F405
        self._adopt(_port.socket(af, type, proto))

    def _adopt(self, sock):
        self._sock = sock
        self._fd = sock.fileno()
        # The port's own bound methods: no Python frame per call.
        self.recv = sock.recv
        self.recvfrom = sock.recvfrom
        self.send = sock.send
        self.read = sock.read
        self.readinto = sock.readinto
        self.readline = sock.readline
        self.write = sock.write
        self.setsockopt = sock.setsockopt
        self.setblocking = sock.setblocking
        self.settimeout = sock.settimeout
        self.listen = sock.listen
        self.fileno = sock.fileno

    def bind(self, addr):
        self._sock.bind(_sockaddr(addr))

    def connect(self, addr):
        self._sock.connect(_sockaddr(addr))

    def sendto(self, data, addr):
        if type(addr) is tuple:
            addr = _sockaddr(addr)
        return self._sock.sendto(data, addr)

    def accept(self):
        # The connection is the port's own socket: it is already connected, so it never
        # needs an address converted, and asyncio streams use it without a wrapper.
        return self._sock.accept()

    def makefile(self, *args, **kwargs):
        return self

    def close(self):
        self._sock.close()

    def ioctl(self, req, arg):
        # select.poll asks for the descriptor once, at register(); then polls it natively.
        if req == _GET_FILENO:
            return self._fd
        return -_EINVAL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<peersocket fd=%d>" % self._fd
