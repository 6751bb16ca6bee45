"""Helpers for the network tests (fixtures are in conftest.py): the guest's REPL through
JSON, network.LAN() up, its counters, and UDP echo on a connected socket."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manticore_host import netns as netns_mod

ECHO_PORT = 7777
LISTENING = b"echod: listening on 7777/udp"
LISTENING_TCP = b"echod: listening on 7777/tcp"
GUEST_IP = netns_mod.GUEST_IP
HOST_IP = netns_mod.TapAddressing().host_ip

def guest_eval(vm, expr: str, setup: str = "", timeout: float = 30):
    """Evaluate `expr` in the guest (after `setup`) and return it, through JSON."""
    code = f"{setup}\nimport json\nprint('@@' + json.dumps({expr}))\n"
    out, err = vm.console.raw_exec(code, timeout=timeout)
    assert err == "", f"expected no error from the guest evaluating {expr!r}, got:\n{err}"
    for line in out.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise AssertionError(f"no result line from the guest for {expr!r}; it printed:\n{out}")


NET_UP = """
import network, time
nic = network.LAN()
nic.active(True)
_t0 = time.ticks_ms()
while not nic.isconnected() and time.ticks_diff(time.ticks_ms(), _t0) < {ms}:
    time.sleep_ms(10)
"""


def net_up(vm, timeout_ms: int = 15000) -> dict:
    """network.LAN() up in the guest (DHCP, or the command line's static address); returns
    {connected, ifconfig, mac}.  `nic` is a global in the guest afterwards."""
    return guest_eval(vm, "{'connected': nic.isconnected(), 'ifconfig': nic.ifconfig(), "
                          "'mac': ':'.join('%02x' % b for b in nic.config('mac'))}",
                      NET_UP.format(ms=timeout_ms), timeout=timeout_ms / 1000 + 30)


def nic_stats(vm) -> dict:
    """network.LAN().stats(): driver, glue and lwIP counters."""
    return guest_eval(vm, "network.LAN().stats()", "import network")


def flat(stats: dict, prefix: str = "") -> dict:
    """{"lwip": {"ip": {"drop": 3}}} -> {"lwip.ip.drop": 3}."""
    out = {}
    for k, v in stats.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def udp_echo(sock: socket.socket, payload: bytes, timeout: float = 2.0) -> bytes | None:
    """One request on a connected UDP socket; the reply, or None after `timeout`."""
    sock.settimeout(timeout)
    sock.send(payload)
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = sock.recv(65536)
        except (socket.timeout, ConnectionRefusedError):
            return None
        if reply == payload or time.monotonic() > deadline:
            return reply
        # a late reply to an earlier request: keep waiting for this one
        sock.settimeout(max(0.01, deadline - time.monotonic()))


def wait_echo(sock: socket.socket, timeout: float = 20.0) -> float:
    """Until the echo answers; seconds it took.  Fails the test with what went wrong."""
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < timeout:
        n += 1
        token = b"hello-%d" % n
        if udp_echo(sock, token, timeout=0.5) == token:
            return time.monotonic() - t0
    pytest.fail(f"expected echod to answer a UDP echo within {timeout:g} s; "
                f"{n} requests went unanswered", pytrace=False)


def send_burst(ns, probes, repeats: int = 3, gap: float = 0.002) -> tuple[list, list]:
    """Send every probe frame (frames.malformed_frames) `repeats` times through an AF_PACKET
    socket on the namespace's tap.  (delivered probes, [(name, strerror)] of those the
    host kernel refused, e.g. EINVAL for < 14 bytes: they never reach QEMU)."""
    psock = ns.packet_socket()
    delivered, refused = [], []
    try:
        for repeat in range(repeats):
            for p in probes:
                try:
                    psock.send(p.frame)
                    if repeat == 0:
                        delivered.append(p)
                except OSError as e:
                    if repeat == 0:
                        refused.append((p.name, e.strerror))
                time.sleep(gap)
    finally:
        psock.close()
    return delivered, refused


def collect_replies(sock: socket.socket, seconds: float = 3.0) -> dict[bytes, bytes]:
    """Datagrams arriving on `sock` for `seconds`, keyed by their first 3 bytes (a probe's
    tag), the first of each kept; closes `sock`."""
    answered = {}
    sock.settimeout(0.3)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            answered.setdefault(data[:3], data)
    finally:
        sock.close()
    return answered


def tcp_echo(port: int, payload: bytes, timeout: float = 10) -> bytes:
    """One TCP connection to 127.0.0.1:port: send `payload`, shut down our side, and return
    everything read until the peer closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
        return bytes(got)


class InvokeRun:
    """`invoke run ARGS` as a user types it, console on a pipe: wait_for() what it prints,
    quit() with Ctrl-A X (QEMU's mux) and get its exit status. Killed if still running at
    the end of the `with` block; what it printed goes into every failure message."""

    REPO = Path(__file__).resolve().parents[2]

    def __init__(self, *args: str):
        self.args = args
        self.out = b""
        # A session of its own: killing it at the end kills QEMU too, which would otherwise
        # outlive invoke, hold the pipe open and hang communicate() (OVMF spinning silently).
        self.proc = subprocess.Popen([sys.executable, "-m", "invoke", "run", *args],
                                     cwd=self.REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.communicate()

    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def wait_for(self, expect: bytes, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while expect not in self.out:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.out += self.proc.stdout.read() if self.proc.poll() is not None else b""
                pytest.fail(f"expected {expect!r} from `invoke run {' '.join(self.args)}` "
                            f"within {timeout:g} s, got:\n{self.text()}", pytrace=False)
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                self.out += os.read(self.proc.stdout.fileno(), 65536)

    def quit(self, timeout: float = 30) -> int:
        self.proc.stdin.write(b"\x01x")
        self.proc.stdin.flush()
        rest, _ = self.proc.communicate(timeout=timeout)
        self.out += rest
        return self.proc.returncode
