"""The REPL over TCP (netrepl=PORT) under QEMU user networking, through a hostfwd on
127.0.0.1: mpremote's exec and run over socket://, one session at a time with a clear
refusal for a second, Ctrl-C over the network, and random bytes and half-open clients that
leave the kernel and the listener as they were."""

import random
import socket
import subprocess
import sys
import time

import pytest

from manticore_host.echobench import free_port

pytestmark = pytest.mark.timeout(180)

GUEST_PORT = 8023


@pytest.fixture
def netrepl_vm(boot):
    port = free_port()
    vm = boot(net="user", publish=[f"{port}:{GUEST_PORT}/tcp"], append=f"netrepl={GUEST_PORT}")
    assert b"netrepl: the REPL on tcp port 8023 too" in vm.console.log, (
        "expected the kernel to announce the REPL over TCP at boot")
    return vm, port


def mpremote(port: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpremote", "connect",
                           f"socket://127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=timeout)


def stats(vm) -> dict:
    out = vm.console.repl("import _netrepl; print(_netrepl.stats())")
    return eval(out, {})


def read_for(sock: socket.socket, pattern: bytes, timeout: float = 20) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while pattern not in data and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    return data


def test_mpremote_exec_and_run_over_socket(netrepl_vm, tmp_path, summary):
    vm, port = netrepl_vm
    t0 = time.monotonic()
    r = mpremote(port, "exec", "print(6*7)")
    took = time.monotonic() - t0
    assert r.returncode == 0 and r.stdout == "42\n", (
        f"expected mpremote exec over socket:// to print 42, got rc {r.returncode}, "
        f"stdout {r.stdout!r}, stderr {r.stderr[-800:]!r}")
    script = tmp_path / "hello.py"
    script.write_text("import sys\nfor i in range(3):\n    print('line', i)\nprint(sys.platform)\n")
    r = mpremote(port, "run", str(script))
    assert r.returncode == 0 and r.stdout == "line 0\nline 1\nline 2\nmanticore\n", (
        f"expected mpremote run to print the script's lines, got rc {r.returncode}, "
        f"stdout {r.stdout!r}, stderr {r.stderr[-800:]!r}")
    s = stats(vm)
    assert s["accepted"] == 2 and s["ended"] == 2 and not s["connected"], (
        f"expected two sessions, both ended, none connected, got {s}")
    summary(f"netrepl: mpremote exec over socket:// in {took:.2f} s")


def test_second_session_refused_then_served_after_the_first_leaves(netrepl_vm):
    vm, port = netrepl_vm
    first = socket.create_connection(("127.0.0.1", port), timeout=10)
    first.sendall(b"\r")
    assert b">>> " in read_for(first, b">>> "), "expected the friendly prompt on the first"
    second = socket.create_connection(("127.0.0.1", port), timeout=10)
    refusal = read_for(second, b"try again later")
    second.close()
    assert b"another session is connected" in refusal, (
        f"expected the second client told why it is refused, got {refusal!r}")
    first.sendall(b"print(7*6)\r")
    assert b"42" in read_for(first, b"42"), "expected the first session unaffected"
    first.close()
    r = mpremote(port, "exec", "print('after')")
    assert r.stdout == "after\n", f"expected a new session after the first left, got {r}"
    s = stats(vm)
    assert s["refused"] == 1 and s["accepted"] == 2, f"got {s}"


def test_ctrl_c_over_the_network_interrupts_the_running_code(netrepl_vm):
    vm, port = netrepl_vm
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\r")
        read_for(s, b">>> ")
        s.sendall(b"while True: pass\r\r")
        time.sleep(1.0)
        s.sendall(b"\x03")
        out = read_for(s, b"KeyboardInterrupt")
        assert b"KeyboardInterrupt" in out, (
            f"expected Ctrl-C over TCP to interrupt the loop, got {out[-300:]!r}")
        s.sendall(b"print(1+1)\r")
        assert b"2" in read_for(s, b"\r\n2\r\n"), "expected the REPL to answer afterwards"
    assert stats(vm)["interrupts"] >= 1


def test_random_bytes_and_half_open_clients_leave_it_serving(netrepl_vm):
    vm, port = netrepl_vm
    rng = random.Random(0x13)
    for _ in range(5):
        # Random bytes from a client that then vanishes: fed to the REPL as keys, which may
        # do anything a user could type, but not bring the kernel or the listener down.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(bytes(rng.randrange(256) for _ in range(2000)))
            time.sleep(0.3)
    # A client that connects and says nothing holds the session; others are refused
    # meanwhile; once it goes, the listener serves again.
    half_open = socket.create_connection(("127.0.0.1", port), timeout=10)
    time.sleep(0.3)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert b"another session" in read_for(s, b"try again later")
    half_open.close()
    time.sleep(0.3)
    vm.console.write(b"\x03\x02\r")      # back to the friendly REPL if the bytes left it
    time.sleep(0.5)
    vm.console.drain()
    assert vm.console.repl("print(3*4)") == "12", "expected the serial REPL alive"
    r = mpremote(port, "exec", "print('still here')")
    assert r.stdout == "still here\n", f"expected the listener still serving, got {r}"
    s = stats(vm)
    assert s["accepted"] == 7 and s["refused"] == 1 and not s["connected"], f"got {s}"
