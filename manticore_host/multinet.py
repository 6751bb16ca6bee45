"""MicroPython's tests/multi_net suite with one instance on the image and one on the host.

`tests/run-multitests.py` of the fetched tree runs each test as two programs that talk over
the network: here instance 0 is the unix port on the host and instance 1 the image, driven
through its serial console as run-multitests' `pyb:` instance (pyboard.py's raw REPL), or the
other way round.  Both sit on the tap of a network namespace made for the run (netns.py):
the host side at 192.168.77.1, the guest at 192.168.77.2.

The host's MicroPython is the Linux peer's unix port (linuxpeer.py, the one `invoke bench`
uses), built from the same tree as the image with ssl over the same mbedTLS tree and
settings, so that the ssl tests run on both ends.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from manticore_host.fetch import micropython_dir


def host_micropython(log: Callable[[str], None] = print) -> Path:
    """The unix port that `invoke bench` runs on the host and in the Linux peer
    (linuxpeer.py): built from the same tree, with ssl over the same mbedTLS tree and
    settings as the image; rebuilt only when its inputs change."""
    from manticore_host import linuxpeer
    return linuxpeer.host_micropython(log=log)


# -- the run -----------------------------------------------------------------------------------

# The two orders: instance 0 (the server in every test but one) on the host, instance 1 on
# the image; then the other way round.
ORDERS = ("host-first", "guest-first")

# Tests of tests/multi_net that cannot pass here, per order, with the reason; they are left
# out of that order's run.  Every other test must pass in both orders.
EXPECTED_FAILURES: dict[tuple[str, str], str] = {
    ("multi_net/tcp_client_rst.py", "host-first"):
        "the client (the image) needs socket.SO_LINGER to close with a RST, which "
        "MicroPython 1.25's lwIP socket module (extmod/modlwip.c) does not have: the test "
        "skips itself",
    ("multi_net/asyncio_tcp_client_rst.py", "host-first"):
        "as tcp_client_rst.py: no SO_LINGER in modlwip, the test skips itself",
    ("multi_net/asyncio_tcp_client_rst.py", "guest-first"):
        "timing: the client sends 18 bytes and resets the connection 0.1 s later, and the "
        "expected output needs the server's first read before the RST (lwIP, like the .exp, "
        "then drops what is unread); the image under TCG on a shared host misses 0.1 s now "
        "and then (1 run in 9 here), and its first read is ECONNRESET",
    ("multi_net/tcp_client_rst.py", "guest-first"):
        "the server (the image) reads after the client's RST; lwIP discards a connection's "
        "unread data when a RST arrives and modlwip then raises EBADF where CPython reads "
        "the data (the test's own comments: 'lwip abandons data upon TCP RST', 'lwip raises "
        "here but apparently it shouldn't')",
}

NET_UP = """
import network, time
nic = network.LAN()
nic.active(True)
t0 = time.ticks_ms()
while not nic.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 15000:
    time.sleep_ms(10)
print('multinet-net', nic.ifconfig()[0])
"""
BOOT_TIMEOUT = 90.0
RESULT = re.compile(r"^(multi_net/\S+) on (\S+): (pass|FAIL|skip)\s*$")


@dataclass
class Result:
    test: str                   # multi_net/tcp_data.py
    instances: str              # "micropython|2" (host first) or "2|micropython"
    outcome: str                # pass | FAIL | skip
    order: str = ""             # host-first | guest-first


def _pyboard(tree: Path):
    sys.path.insert(0, str(tree / "tools"))
    try:
        import pyboard
    finally:
        sys.path.pop(0)
    return pyboard


def _wait_for(path: Path, marker: bytes, proc: subprocess.Popen, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = path.read_bytes() if path.exists() else b""
        if marker in data:
            return data
        if proc.poll() is not None:
            raise RuntimeError(f"QEMU exited with status {proc.returncode} before "
                               f"{marker!r} appeared")
        time.sleep(0.1)
    raise TimeoutError(f"{marker!r} did not appear in {path} within {timeout:.0f} s")


def suite_files(tree: Path) -> list[str]:
    """Every test of tests/multi_net, as run-multitests.py names them."""
    return sorted(f"multi_net/{p.name}" for p in (tree / "tests" / "multi_net").glob("*.py"))


def blocks(output: str, test: str) -> list[str]:
    """run-multitests.py's report of one test (each order's), for failure messages."""
    out = []
    for part in re.split(r"(?m)^(?=multi_net/\S+ on )", output):
        if part.startswith(test + " on "):
            out.append(part.split("\n### ")[0] if part.rstrip().endswith("pass") else part)
    return out


def planned(tree: Path, order: str, tests: list[str] | None = None) -> list[str]:
    """The tests one order runs: all of multi_net (or `tests`) but its expected failures."""
    return [t for t in (tests or suite_files(tree)) if (t, order) not in EXPECTED_FAILURES]


def run(workdir: Path, tests: list[str] | None = None, orders=ORDERS,
        accel: str = "tcg", timeout: float = 600, log: Callable[[str], None] = print,
        show_output: bool = False) -> dict:
    """Boot the image on a tap in a new namespace, then run-multitests.py there with the host's
    unix port and the image, once per order.  Returns {"results", "output", "serial_log",
    "seconds", "status"} (status: the worst exit status, None after a timeout, which also
    ends the run); raises on setup failures."""
    from manticore_host import disk, qemu
    from manticore_host.netns import TAP, NetNamespace

    tree = micropython_dir(quiet=True)
    exe = host_micropython(log=log)
    workdir.mkdir(parents=True, exist_ok=True)
    serial_log = workdir / "serial.log"
    pidfile = workdir / "qemu.pid"
    out_file = workdir / "run-multitests.out"
    t0 = time.monotonic()
    with NetNamespace() as ns:
        # run-multitests.py tells a unix instance its address by "connecting" a UDP socket
        # to 8.8.8.8 (nothing is sent): a default route over the tap gives it 192.168.77.1.
        ns.run(["ip", "route", "add", "default", "dev", TAP], check=True)
        # The TLS tests open their certificates from the current directory, as upstream's
        # README says to copy them to the board (the unix instance runs in multi_net/):
        # they go on a littlefs disk, which outlives the soft reset before every test
        # (a RAM / is made anew at each).
        certs = sorted((tree / "tests" / "multi_net").glob("*.der"))
        image = disk.make(workdir / "certs.img", size="1M", fs="lfs",
                          files=[(p, "/" + p.name) for p in certs])
        cfg = qemu.VMConfig(machine="q35", boot="kernel", memory="128M", net="tap",
                            netns=ns.name, serial="pty", accel=accel, disks=[image])
        cmd = [str(c) for c in qemu.build_command(cfg, None, None)]
        i = cmd.index("pty")
        cmd[i - 1:i + 1] = ["-chardev", f"pty,id=con0,logfile={serial_log}",
                            "-serial", "chardev:con0"]
        cmd += ["-pidfile", str(pidfile)]
        vm = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
        try:
            line = vm.stdout.readline().decode(errors="replace")
            m = re.search(r"(/dev/pts/\d+)", line)
            if not m:
                raise RuntimeError(f"QEMU did not name its pty: {line!r}")
            pts = m.group(1)
            _wait_for(serial_log, b">>> ", vm, BOOT_TIMEOUT)
            pyboard = _pyboard(tree)
            board = pyboard.Pyboard(pts)
            try:
                board.enter_raw_repl()
                up, err = board.exec_raw(NET_UP, timeout=30)
                board.exit_raw_repl()
            finally:
                board.close()
            if b"multinet-net 192.168.77.2" not in up:
                raise RuntimeError(f"the guest's NIC did not come up: {up!r} {err!r}")
            env = dict(os.environ, MICROPY_MICROPYTHON=str(exe))
            status = 0
            deadline = time.monotonic() + timeout
            results = []
            for order in orders:
                instances = ["micropython", f"pyb:{pts}"]
                if order == "guest-first":
                    instances.reverse()
                argv = [sys.executable, "run-multitests.py",
                        *(["-s"] if show_output else []),
                        "-i", instances[0], "-i", instances[1], *planned(tree, order, tests)]
                with open(out_file, "ab") as out:
                    out.write(f"### {order}: {' '.join(argv)}\n".encode())
                    out.flush()
                    runner = ns.popen(argv, cwd=tree / "tests", env=env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
                    try:
                        rc = runner.wait(timeout=max(1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        os.killpg(runner.pid, signal.SIGKILL)
                        runner.wait()
                        rc = None
                text = out_file.read_text("utf-8", "replace").split(f"### {order}: ")[-1]
                results += [Result(*m.groups(), order=order)
                            for m in map(RESULT.match, text.splitlines()) if m]
                if rc is None:
                    status = None
                    break
                status = max(status, rc)
        finally:
            try:
                os.killpg(vm.pid, signal.SIGKILL)
            except OSError:
                pass
            vm.wait()
    output = out_file.read_text("utf-8", "replace")
    return {"results": results, "output": output, "status": status,
            "serial_log": serial_log, "seconds": time.monotonic() - t0}
