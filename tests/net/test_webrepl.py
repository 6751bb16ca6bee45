"""WebREPL (webrepl=PASSWORD) under QEMU user networking, with a client written to
MicroPython's documented WebREPL protocol (RFC 6455 websocket, the password prompt, the
REPL in text frames): the REPL through it, wrong passwords refused and counted, a
handshake that is not one, and file get/put (WebREPL's binary 'WA' requests, as
webrepl_cli.py sends them) onto the guest's filesystem, with bad requests refused."""

import base64
import errno
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
        self._send(0x81, text.encode())

    def send_binary(self, data: bytes) -> None:
        self._send(0x82, data)

    def _send(self, first: int, data: bytes) -> None:
        mask = os.urandom(4)
        header = bytes([first, 0x80 | len(data)]) if len(data) < 126 else \
            bytes([first, 0x80 | 126]) + struct.pack(">H", len(data))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    # -- WebREPL's file transfer (the binary half, as webrepl_cli.py speaks it) --

    binary = b""
    text_seen = b""

    def read_binary(self, n: int, timeout: float = 30) -> bytes:
        """n bytes of binary-frame payload (text frames on the way are kept aside)."""
        self.sock.settimeout(timeout)
        while len(self.binary) < n:
            opcode, payload = self.frame()
            if opcode == 2:
                self.binary += payload
            else:
                self.text_seen += payload
        out, self.binary = self.binary[:n], self.binary[n:]
        return out

    def status(self) -> int:
        resp = self.read_binary(4)
        assert resp[:2] == b"WB", f"expected a b'WB' status record, got {resp!r}"
        return struct.unpack("<H", resp[2:])[0]

    def request(self, kind: int, name: bytes, size: int = 0, name_len: int | None = None):
        self.send_binary(struct.pack("<2sBBQLH64s", b"WA", kind, 0, 0, size,
                                     len(name) if name_len is None else name_len, name))

    def put(self, name: str, data: bytes) -> int:
        self.request(1, name.encode(), len(data))
        code = self.status()
        if code:
            return code
        for i in range(0, len(data), 1024):
            self.send_binary(data[i:i + 1024])
        return self.status()

    def get(self, name: str) -> tuple[int, bytes]:
        self.request(2, name.encode())
        code = self.status()
        if code:
            return code, b""
        data = b""
        while True:
            self.send_binary(b"\0")
            n = struct.unpack("<H", self.read_binary(2))[0]
            if n == 0:
                break
            data += self.read_binary(n)
        return self.status(), data

    def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame."""
        payload = self._frame()
        return self.last_opcode, payload

    def _frame(self) -> bytes | None:
        def need(n):
            while len(self.buf) < n:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise EOFError
                self.buf += chunk
        need(2)
        self.last_opcode = self.buf[0] & 0x0F
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
    port = free_port()
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


def login(port: int) -> WebREPLClient:
    c = WebREPLClient(port)
    c.read_until(b"Password: ")
    c.send_text(PASSWORD + "\r")
    assert b"WebREPL connected" in c.read_until(b">>> "), "expected the password to be accepted"
    return c


def test_file_put_get_then_run(webrepl_vm):
    vm, port = webrepl_vm
    c = login(port)
    blob = bytes(range(256)) * 19 + os.urandom(1000)          # every byte value, 5864 bytes
    assert c.put("blob.bin", blob) == 0
    code, back = c.get("blob.bin")
    assert code == 0 and back == blob, (
        f"expected the file back byte-identical ({len(blob)} bytes), got status {code} and "
        f"{len(back)} bytes")
    script = b"import sys\nprint('webrepl-put ran on', sys.platform, 6 * 7)\n"
    assert c.put("/wrhello.py", script) == 0
    assert c.get("/wrhello.py") == (0, script)
    c.send_text("import wrhello\r")
    out = c.read_until(b"manticore 42")
    assert b"webrepl-put ran on manticore 42" in c.text_seen + out, (
        f"expected the put script to run at the REPL, got {c.text_seen + out!r}")
    # The serial console sees the same files.
    listing = vm.console.repl("import os; print(sorted(os.listdir('/')), os.stat('/blob.bin')[6])")
    assert "'blob.bin'" in listing and "'wrhello.py'" in listing, listing
    assert listing.endswith(f" {len(blob)}"), listing
    c.close()


def test_bad_file_requests_refused(webrepl_vm):
    vm, port = webrepl_vm
    c = login(port)
    assert c.put("keep.txt", b"precious\n") == 0
    # A name longer than the record's 64 bytes: refused, nothing written.
    c.request(1, b"x" * 64, 10, name_len=100)
    assert c.status() == errno.ENAMETOOLONG
    # A file that is not there, and a directory that is not there.
    assert c.get("no-such-file") == (errno.ENOENT, b"")
    assert c.put("/no/such/dir/f", b"data") == errno.ENOENT
    # Not a request at all, and an unknown request type.
    c.send_binary(b"XY" + bytes(80))
    assert c.status() == errno.EINVAL
    c.request(9, b"keep.txt")
    assert c.status() == errno.EINVAL
    # The session is still good, the old file untouched.
    assert c.get("keep.txt") == (0, b"precious\n")
    c.send_text("print('still', 6*7)\r")
    assert b"still 42" in c.read_until(b"still 42")
    c.close()
    # A wrong password: no file request gets through.
    time.sleep(0.3)
    bad = WebREPLClient(port)
    bad.read_until(b"Password: ")
    bad.send_text("wrong\r")
    assert b"Access denied" in bad.read_until(b"Access denied")
    try:
        bad.request(1, b"intruder.txt", 3)
        bad.send_binary(b"bad")
        time.sleep(0.5)
    except OSError:
        pass                                    # closed already: refused
    bad.close()
    out = vm.console.repl("import os, webrepl; print('intruder.txt' in os.listdir('/'), "
                          "webrepl.stats['file_errors'], webrepl.stats['denied'], "
                          "webrepl.last_file_error)")
    assert out.startswith("False 5 1 "), f"expected no intruder file, 5 refusals, 1 denial: {out}"


def test_pypi_webrepl_client(webrepl_vm, tmp_path):
    """The same through an existing client, the `webrepl` package on PyPI (its own websocket
    code, the header sent in two frames, its put_file/get_file_content/sendcmd)."""
    import webrepl as client_mod
    vm, port = webrepl_vm
    local = tmp_path / "pypi_put.py"
    local.write_bytes(b"print('pypi client file', 6 * 7)\n" + b"#" * 3000 + b"\n")
    c = client_mod.Webrepl(host="127.0.0.1", port=port, password=PASSWORD)
    try:
        assert c.connected, "expected the PyPI client to log in"
        c.put_file(str(local), "pypi_put.py")           # asserts a 0 status itself
        assert c.get_file_content("pypi_put.py") == local.read_bytes()
        assert c.get_ver() == (1, 25, 0)
        out = c.sendcmd("import pypi_put")
        assert b"pypi client file 42" in out, out
    finally:
        c.disconnect()


def test_failed_puts_lose_nothing(webrepl_vm):
    """A put that runs out of space (the 1 MiB RAM filesystem) and one whose client leaves
    midway: the old file stays as it was and no partial file is left behind."""
    vm, port = webrepl_vm
    c = login(port)
    assert c.put("keep.txt", b"old contents\n") == 0
    assert c.put("keep.txt", os.urandom(1536 * 1024)) == 28             # ENOSPC
    assert c.get("keep.txt") == (0, b"old contents\n")
    c.send_text("print('alive', 6*7)\r")
    assert b"alive 42" in c.read_until(b"alive 42")
    # Leave in the middle of a put.
    c.request(1, b"keep.txt", 100000)
    assert c.status() == 0
    c.send_binary(b"x" * 1000)
    time.sleep(0.3)
    c.close()
    time.sleep(1)
    out = vm.console.repl("import os; print(sorted(os.listdir('/')), open('keep.txt').read())")
    assert out.startswith("['keep.txt'] old contents"), (
        f"expected only keep.txt, unchanged, on /: {out!r}")
    c = login(port)                 # and the server takes the next client
    c.close()
