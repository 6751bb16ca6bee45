"""WebREPL (webrepl=PASSWORD) under QEMU user networking, with a client written to
MicroPython's documented WebREPL protocol (RFC 6455 websocket, the password prompt, the
REPL in text frames): the REPL through it, wrong passwords refused and counted, and a
handshake that is not one.  File get/put needs a mounted filesystem, which the image
does not have yet (issue 12)."""

import base64
import os
import socket
import struct
import time

import pytest

from manticore_host.echobench import free_port

pytestmark = pytest.mark.timeout(120)

PASSWORD = "s3cret"


class WebREPLClient:
    def __init__(self, port: int, timeout: float = 20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET / HTTP/1.1\r\nHost: manticore\r\nConnection: Upgrade\r\n"
                          b"Upgrade: websocket\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError(f"closed during the upgrade: {head!r}")
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buf = b""

    def send_text(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81, 0x80 | len(data)]) if len(data) < 126 else \
            bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(data))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _frame(self) -> bytes | None:
        def need(n):
            while len(self.buf) < n:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise EOFError
                self.buf += chunk
        need(2)
        n = self.buf[1] & 0x7F
        off = 2
        if n == 126:
            need(4)
            n = struct.unpack(">H", self.buf[2:4])[0]
            off = 4
        need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return payload

    def read_until(self, text: bytes, timeout: float = 20) -> bytes:
        got = b""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(1)
        while text not in got and time.monotonic() < deadline:
            try:
                got += self._frame()
            except socket.timeout:
                continue
            except EOFError:
                break
        return got

    def close(self):
        self.sock.close()


@pytest.fixture
def webrepl_vm(boot):
    port = free_port(socket.SOCK_STREAM)
    vm = boot(net="user", publish=[f"{port}:8266/tcp"], append=f"webrepl={PASSWORD}")
    assert b"webrepl: WebREPL on tcp port 8266" in vm.console.log
    return vm, port


def test_webrepl_password_then_repl(webrepl_vm):
    vm, port = webrepl_vm
    c = WebREPLClient(port)
    assert b"Password: " in c.read_until(b"Password: ")
    c.send_text(PASSWORD + "\r")
    assert b"WebREPL connected" in c.read_until(b">>> ")
    c.send_text("print(6*7)\r")
    out = c.read_until(b"42")
    assert b"42" in out, f"expected the REPL's answer through WebREPL, got {out!r}"
    c.close()


def test_wrong_passwords_refused_and_counted(webrepl_vm):
    vm, port = webrepl_vm
    for attempt in range(3):
        c = WebREPLClient(port)
        c.read_until(b"Password: ")
        c.send_text(f"wrong{attempt}\r")
        out = c.read_until(b"Access denied")
        assert b"Access denied" in out, f"expected a refusal, got {out!r}"
        c.close()
        time.sleep(0.3)
    # Not a websocket at all: refused without harm.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x00\xffgarbage\r\n\r\n")
        time.sleep(0.5)
    out = vm.console.repl("import webrepl; print(webrepl.stats)")
    stats = eval(out, {})
    assert stats["denied"] == 3 and stats["bad_handshakes"] == 1, stats
    c = WebREPLClient(port)
    c.read_until(b"Password: ")
    c.send_text(PASSWORD + "\r")
    assert b"WebREPL connected" in c.read_until(b">>> "), "expected the right password to work after"
    c.close()
