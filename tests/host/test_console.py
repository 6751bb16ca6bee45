"""The serial Console against a fake MicroPython REPL on a socketpair (no QEMU).

The fake speaks the friendly REPL, the raw REPL and raw-paste with flow control,
byte for byte as shared/runtime/pyexec.c does, and checks that the host never sends
more than the windows it was granted."""

import re
import socket
import threading

import pytest

from manticore_host.qemu import (Console, ConsoleClosed, ConsoleTimeout,
                                 _SocketTransport)

BANNER = b"MicroPython v1.25.0 on 2025-01-01; fake with nothing\r\n" \
         b'Type "help()" for more information.\r\n>>> '


class FakeREPL(threading.Thread):
    def __init__(self, sock, window=8):
        super().__init__(daemon=True)
        self.sock, self.window = sock, window
        self.errors = []
        self.raw_paste_used = False
        self.pending = b""

    def send(self, data):
        self.sock.sendall(data)

    def getc(self):
        while not self.pending:
            data = self.sock.recv(1)
            if not data:
                raise EOFError
            self.pending += data
        c, self.pending = self.pending[:1], self.pending[1:]
        return c

    def execute(self, code):
        out, err = [], []

        def fake_print(*args):
            out.append(" ".join(str(a) for a in args) + "\r\n")
        try:
            exec(code, {"print": fake_print})
        except Exception as e:
            err.append(f"Traceback (most recent call last):\r\n{type(e).__name__}: {e}\r\n")
        return "".join(out).encode(), "".join(err).encode()

    def run(self):
        try:
            self.send(BANNER)
            self.friendly()
        except EOFError:
            pass
        except Exception as e:          # pragma: no cover - reported by the test
            self.errors.append(repr(e))

    def friendly(self):
        line = b""
        while True:
            c = self.getc()
            if c == b"\x01":
                self.raw()
                self.send(b"\r\n" + BANNER)
            elif c == b"\x03":
                line = b""
                self.send(b"\r\n>>> ")
            elif c == b"\r":
                self.send(b"\r\n")
                if line:
                    text = line.decode()
                    try:
                        value = eval(text)
                        if value is not None:
                            self.send(repr(value).encode() + b"\r\n")
                    except SyntaxError:
                        exec(text, {})
                line = b""
                self.send(b">>> ")
            else:
                line += c
                self.send(c)

    def raw(self):
        self.send(b"raw REPL; CTRL-B to exit\r\n>")
        line = b""
        while True:
            c = self.getc()
            if c == b"\x02":
                return
            if c == b"\x01":
                if line == b"\x05A":
                    self.raw_paste()
                    line = b""
                    self.send(b">")
                    continue
                self.send(b"raw REPL; CTRL-B to exit\r\n>")
                line = b""
            elif c == b"\x04":
                self.send(b"OK")
                out, err = self.execute(line.decode())
                self.send(out + b"\x04" + err + b"\x04>")
                line = b""
            else:
                line += c

    def raw_paste(self):
        self.raw_paste_used = True
        w = self.window
        self.send(b"R\x01" + w.to_bytes(2, "little") + b"\x01")
        granted, received, remain, code = 2 * w, 0, w, b""
        while True:
            c = self.getc()
            if c == b"\x04":
                self.send(b"\x04")
                break
            received += 1
            if received > granted:
                self.errors.append(f"host sent {received} bytes with {granted} granted")
            code += c
            remain -= 1
            if remain == 0:
                self.send(b"\x01")
                granted += w
                remain = w
        out, err = self.execute(code.decode())
        self.send(out + b"\x04" + err + b"\x04")


@pytest.fixture
def repl():
    host, guest = socket.socketpair()
    fake = FakeREPL(guest)
    fake.start()
    console = Console(_SocketTransport(host))
    yield console, fake
    console.close()
    guest.close()
    fake.join(2)
    assert not fake.errors


def test_banner_and_prompt(repl):
    console, _ = repl
    banner = console.expect_prompt(5)
    assert banner.startswith(b"MicroPython v1.25.0")
    assert console.log == BANNER


def test_repl(repl):
    console, _ = repl
    assert console.repl("1 + 1", timeout=5) == "2"     # the boot prompt is skipped
    assert console.repl("'a\\nb'", timeout=5) == "'a\\nb'"
    assert console.repl("x = 3", timeout=5) == ""


def test_repl_takes_a_linux_ttys_echo():
    """A Linux tty with ONLCR (the Linux peer's console) echoes Enter as \\r\\r\\n."""
    host, guest = socket.socketpair()
    console = Console(_SocketTransport(host))
    try:
        guest.sendall(b">>> ")
        console.expect_prompt(5)
        guest.sendall(b"1+1\r\r\n2\r\n>>> ")
        assert console.repl("1+1", timeout=5) == "2"
    finally:
        console.close()
        guest.close()


def test_read_until_regex_and_str(repl):
    console, _ = repl
    m = console.read_until(re.compile(rb"v(\d+)\.(\d+)"), 5)
    assert m.endswith(b"v1.25")
    assert console.read_until(".0 on", 5) == b".0 on"
    console.read_until(re.compile(r"help\(\)"), 5)


def test_timeout_message(repl):
    console, _ = repl
    console.expect_prompt(5)
    with pytest.raises(ConsoleTimeout) as info:
        console.read_until(b"never printed", 0.3)
    message = str(info.value)
    assert "b'never printed'" in message and "0.3 s" in message
    assert "MicroPython v1.25.0" in message               # the log tail
    assert not isinstance(info.value, ConsoleClosed)


def test_raw_exec(repl):
    console, fake = repl
    console.expect_prompt(5)
    out, err = console.raw_exec("print('hello', 6 * 7)\nprint(1)\n", timeout=5)
    assert (out, err) == ("hello 42\n1\n", "")
    out, err = console.raw_exec("print('before')\nraise ValueError('boom')\n", timeout=5)
    assert out == "before\n" and err.endswith("ValueError: boom\n")
    assert console.repl("2 * 3", timeout=5) == "6"
    assert not fake.raw_paste_used


def test_raw_paste_exec_respects_windows(repl):
    console, fake = repl
    console.expect_prompt(5)
    code = "".join(f"print({i} * {i})\n" for i in range(40))   # >> the 8-byte window
    out, err = console.raw_paste_exec(code, timeout=10)
    assert out == "".join(f"{i * i}\n" for i in range(40)) and err == ""
    assert fake.raw_paste_used
    out, err = console.raw_paste_exec("x = [i*i for i in range(5)]\nprint(x)\n", timeout=5)
    assert out == "[0, 1, 4, 9, 16]\n"
    assert console.repl("1", timeout=5) == "1"


def test_closed_line_fails_fast():
    host, guest = socket.socketpair()
    console = Console(_SocketTransport(host), exit_detail=lambda: "QEMU exited with status 3")
    guest.sendall(b"*** MANTICORE PANIC: test ***\n")
    guest.close()
    with pytest.raises(ConsoleClosed) as info:
        console.read_until(b">>> ", 30)
    assert "status 3" in str(info.value) and "MANTICORE PANIC" in str(info.value)
    assert isinstance(info.value, ConsoleTimeout)
    console.close()


def test_log_is_complete_without_reader(tmp_path):
    host, guest = socket.socketpair()
    console = Console(_SocketTransport(host), log_path=tmp_path / "serial.log")
    guest.sendall(b"abc" * 1000)
    guest.close()
    with pytest.raises(ConsoleClosed):
        console.read_until(b"zzz", 5)
    assert console.log == b"abc" * 1000
    console.close()
    assert (tmp_path / "serial.log").read_bytes() == b"abc" * 1000
