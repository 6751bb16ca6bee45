"""WebREPL (kernel command line webrepl=PASSWORD): MicroPython's WebREPL protocol on TCP
port 8266, over the built-in websocket and _webrepl modules (the Python half upstream keeps
in micropython-lib, which Debian's source package lacks, written anew for this port).

One client at a time, beside the serial console (os.dupterm).  The password (at most 9
characters) is the protection; wrong ones are refused and counted in `stats`.  Traffic is
not encrypted: use it only on networks you trust."""

import binascii
import hashlib
import io
import os
import socket

import _netrepl
import _webrepl
import websocket

PORT = 8266
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

stats = {"accepted": 0, "denied": 0, "bad_handshakes": 0, "refused_busy": 0}
_listener = None
_client = None


class _Counted(io.IOBase):
    """The websocket as _webrepl sees it, counting the refusals it writes."""

    def __init__(self, ws):
        self.ws = ws

    def readinto(self, buf):
        return self.ws.readinto(buf)

    def write(self, data):
        if b"Access denied" in data:
            stats["denied"] += 1
        return self.ws.write(data)

    def ioctl(self, op, arg):
        return self.ws.ioctl(op, arg)

    def close(self):
        self.ws.close()


_pending = {}      # socket -> the HTTP request received so far


def _upgrade(sock, request):
    """Answer the HTTP Upgrade of RFC 6455 section 4.2; False for anything else."""
    lines = request.split(b"\r\n")
    if not lines[0].startswith(b"GET "):
        return False
    key = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    if not key:
        return False
    accept = binascii.b2a_base64(hashlib.sha1(key + GUID).digest())[:-1]
    sock.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    return True


def _active(obj):
    current = os.dupterm(None)
    if current is not None:
        os.dupterm(current)
    return current is obj and obj is not None


def _on_request(sock):
    # Runs from lwIP's receive callback: never blocks (lwIP itself runs in soft IRQs that
    # cannot run while this does), so the request is gathered over as many calls as it takes.
    global _client
    if sock not in _pending:
        return
    try:
        data = sock.read(512)
    except OSError:
        data = b""
    if data is None:
        return
    request = _pending[sock] + data
    if data and b"\r\n\r\n" not in request and len(request) < 2048:
        _pending[sock] = request
        return
    del _pending[sock]
    sock.setsockopt(socket.SOL_SOCKET, 20, None)
    try:
        ok = bool(data) and _upgrade(sock, request)
    except OSError:
        ok = False
    if not ok:
        stats["bad_handshakes"] += 1
        sock.close()
        return
    if _client is not None and _active(_client[1]):
        stats["refused_busy"] += 1
        sock.close()
        return
    if _client is not None:
        _client[0].close()
    stats["accepted"] += 1
    ws = websocket.websocket(sock, True)
    repl = _webrepl._webrepl(_Counted(ws))     # writes "Password: " and checks the answer
    _client = (sock, repl)
    os.dupterm(repl)
    # The REPL, waiting for a key, learns of WebREPL input through this (netrepl.c).
    sock.setsockopt(socket.SOL_SOCKET, 20, _netrepl.dupterm_notify)
    _netrepl.dupterm_notify(None)


def _on_connect(listener):
    try:
        sock, peer = listener.accept()
    except OSError:
        return
    if len(_pending) >= 4:          # clients that never finish their request
        for old in list(_pending):
            old.close()
        _pending.clear()
    sock.setblocking(False)
    _pending[sock] = b""
    sock.setsockopt(socket.SOL_SOCKET, 20, _on_request)
    _on_request(sock)


def start(password, port=PORT):
    """Serve WebREPL on TCP `port` with `password` (1-9 characters)."""
    global _listener
    if not 0 < len(password) < 10:
        raise ValueError("the WebREPL password has 1 to 9 characters")
    stop()
    _webrepl.password(password)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(2)
    listener.setsockopt(socket.SOL_SOCKET, 20, _on_connect)
    _listener = listener


def stop():
    global _listener, _client
    if _client is not None:
        if _active(_client[1]):
            os.dupterm(None)
        _client[0].close()
        _client = None
    if _listener is not None:
        _listener.close()
        _listener = None
