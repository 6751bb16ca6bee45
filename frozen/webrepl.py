"""WebREPL (kernel command line webrepl=PASSWORD): MicroPython's WebREPL protocol on TCP
port 8266, over the built-in websocket and _webrepl modules (the Python half upstream keeps
in micropython-lib, which Debian's source package lacks, written anew for this port).

One client at a time, beside the serial console (os.dupterm).  The password (at most 9
characters) is the protection; wrong ones are refused and counted in `stats`.  Traffic is
not encrypted: use it only on networks you trust.

File get/put is WebREPL's binary protocol (webrepl_cli.py, the browser client): after the
password, a binary frame carries an 82-byte request record `"<2sBBQLH64s"` (b"WA", type 1
put / 2 get / 3 version, flags, offset, size, name length, name), answered by b"WB" and a
16-bit little-endian status, 0 for success.  A put then sends `size` bytes and gets a
second status; a get sends one b"\\0" per chunk and receives `<H length>` and the bytes, a
zero length ending the file, then a status.  This module does it (not the C _webrepl,
whose file code raises out of the console on a missing file and trusts the name length):
refusals are an errno as the status (ENOENT, ENAMETOOLONG, EINVAL, ENOSPC...), the
session goes on, and a put lands under a temporary name first, so a failed one leaves
the old file as it was."""

import binascii
import errno
import hashlib
import io
import os
import socket
import struct
import sys

import _netrepl
import _webrepl
import websocket

PORT = 8266
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

stats = {"accepted": 0, "denied": 0, "bad_handshakes": 0, "refused_busy": 0,
         "puts": 0, "gets": 0, "file_errors": 0}
last_file_error = None      # "put /x: ENOSPC" and so on, for the console

_REQUEST = "<2sBBQLH64s"    # the file request record (modwebrepl.c's struct webrepl_file)
_REQUEST_SIZE = 82
_PUT, _GET, _VERSION = 1, 2, 3
_NAME_MAX = 64
_CHUNK = 1024
_CLOSE, _GET_DATA_OPTS, _SET_DATA_OPTS = 4, 8, 9     # py/stream.h's ioctl requests
_TEXT, _BINARY = 1, 2                   # RFC 6455 section 5.2 opcodes
# MicroPython's errno module names only the common errors; the statuses are Linux's numbers.
_ENAMETOOLONG = getattr(errno, "ENAMETOOLONG", 36)
_ERRNAMES = {_ENAMETOOLONG: "ENAMETOOLONG", 28: "ENOSPC"}
_listener = None
_client = None


class _FileTransfer:
    """The binary half of a session: file requests, fed the bytes of binary frames."""

    def __init__(self, ws):
        self.ws = ws
        self.head = b""
        self.file = None            # the file being put or got
        self.path = None
        self.tmp = None             # a put's temporary name
        self.type = 0
        self.left = 0               # a put's bytes still to come
        self.error = 0              # a put that failed midway: its errno, data still drained

    def _send(self, data):
        old = self.ws.ioctl(_SET_DATA_OPTS, _BINARY)
        try:
            self.ws.write(data)
        finally:
            self.ws.ioctl(_SET_DATA_OPTS, old)

    def _status(self, code, what=None):
        global last_file_error
        if code:
            stats["file_errors"] += 1
            name = errno.errorcode.get(code) or _ERRNAMES.get(code, code)
            last_file_error = "%s: %s" % (what, name)
        self._send(b"WB" + struct.pack("<H", code))

    def feed(self, data):
        while data:
            if self.type == _PUT:
                data = self._put(data)
            elif self.type == _GET:
                data = self._get(data)
            else:
                need = _REQUEST_SIZE - len(self.head)
                self.head += data[:need]
                data = data[need:]
                if len(self.head) == _REQUEST_SIZE:
                    self._request(self.head)
                    self.head = b""

    def _request(self, head):
        sig, type_, _flags, _offset, size, name_len, name = struct.unpack(_REQUEST, head)
        if sig != b"WA":
            return self._status(errno.EINVAL, "request without WA")
        if type_ == _VERSION:
            return self._send(bytes(sys.implementation.version[:3]))
        if type_ not in (_PUT, _GET):
            return self._status(errno.EINVAL, "request type %d" % type_)
        what = "put" if type_ == _PUT else "get"
        if name_len > _NAME_MAX:
            return self._status(_ENAMETOOLONG, "%s (a %d-byte name)" % (what, name_len))
        try:
            path = name[:name_len].decode()
        except UnicodeError:
            path = ""
        if not path or "\0" in path:
            return self._status(errno.EINVAL, "%s (no name)" % what)
        what += " " + path
        try:
            if type_ == _GET:
                self.file = open(path, "rb")
            else:
                self.tmp = path + ".webrepl-part"
                self.file = open(self.tmp, "wb")
        except OSError as e:
            self.file = self.tmp = None
            return self._status(e.errno or errno.EIO, what)
        self.type, self.path, self.left, self.error = type_, path, size, 0
        self._send(b"WB\0\0")
        if type_ == _PUT and size == 0:
            self._put(b"")

    def _put(self, data):
        n = min(len(data), self.left)
        if n and not self.error:
            try:
                self.file.write(data[:n])
            except OSError as e:
                self.error = e.errno or errno.EIO
        self.left -= n
        if self.left == 0:
            self.type = 0
            try:
                self.file.close()
                if not self.error:
                    try:
                        os.rename(self.tmp, self.path)
                    except OSError:         # FAT renames only onto a free name
                        os.remove(self.path)
                        os.rename(self.tmp, self.path)
            except OSError as e:
                self.error = self.error or e.errno or errno.EIO
            if self.error:
                try:
                    os.remove(self.tmp)
                except OSError:
                    pass
                self._status(self.error, "put " + self.path)
            else:
                stats["puts"] += 1
                self._status(0)
            self.file = self.tmp = None
        return data[n:]

    def _get(self, data):
        # One chunk for every b"\0" the client sends.
        for i in range(len(data)):
            try:
                chunk = self.file.read(_CHUNK)
                code = 0
            except OSError as e:
                chunk, code = b"", e.errno or errno.EIO
            self._send(struct.pack("<H", len(chunk)) + chunk)
            if not chunk:
                self.type = 0
                self.file.close()
                self.file = None
                if not code:
                    stats["gets"] += 1
                self._status(code, "get " + self.path)
                return data[i + 1:]
        return b""

    def abort(self):
        if self.file is not None:
            try:
                self.file.close()
                if self.tmp:
                    os.remove(self.tmp)
            except OSError:
                pass
            self.file = None


class _Counted(io.IOBase):
    """The websocket as _webrepl sees it: counts the refusals it writes and, once the
    password has been accepted, takes the binary frames (file requests) for itself, so
    that _webrepl sees only the REPL's text."""

    def __init__(self, ws):
        self.ws = ws
        self.authed = False
        self.files = _FileTransfer(ws)
        self.chunk = bytearray(_CHUNK)
        self.text = b""

    def readinto(self, buf):
        if not self.authed:
            return self.ws.readinto(buf)
        while not self.text:
            n = self.ws.readinto(self.chunk)
            if not n:
                return n                # None: nothing yet; 0: the client left
            if self.ws.ioctl(_GET_DATA_OPTS, 0) == _BINARY:
                self.files.feed(bytes(self.chunk[:n]))
            else:
                self.text = bytes(self.chunk[:n])
        n = min(len(buf), len(self.text))
        buf[:n] = self.text[:n]
        self.text = self.text[n:]
        return n

    def write(self, data):
        if not self.authed:
            if b"Access denied" in data:
                stats["denied"] += 1
            elif b"WebREPL connected" in data:
                self.authed = True
        return self.ws.write(data)

    def ioctl(self, op, arg):
        if op == _CLOSE:            # how _webrepl and os.dupterm close their stream
            self.close()
            return 0
        if op == _GET_DATA_OPTS and self.authed:
            return _TEXT            # what reaches _webrepl is text only
        return self.ws.ioctl(op, arg)

    def close(self):
        self.files.abort()
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
