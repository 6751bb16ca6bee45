"""echod behind QEMU user networking: UDP and TCP 7777 reached through a hostfwd on
127.0.0.1 (`VMConfig(app="echod", net="user", publish=[...])`)."""

import hashlib
import os
import random
import socket
import threading
import time

import pytest

from nettools import udp_echo, wait_echo

pytestmark = pytest.mark.timeout(150)


def client(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    return s


def test_udp_every_size_0_to_1472_comes_back_identical(echod_user, summary):
    vm, port = echod_user
    with client(port) as s:
        wait_echo(s)
        rng = random.Random(0x4D54)
        lost, wrong = [], []
        t0 = time.monotonic()
        for size in range(0, 1473):             # 1472 = 1500 MTU - 20 IP - 8 UDP
            payload = rng.randbytes(size)
            reply = udp_echo(s, payload, timeout=2.0)
            if reply is None:
                lost.append(size)
            elif reply != payload:
                wrong.append((size, len(reply)))
            if len(lost) + len(wrong) > 20:
                break
        took = time.monotonic() - t0
    assert not lost and not wrong, (
        f"expected all 1473 payloads (0..1472 bytes, random) back byte-identical; "
        f"no reply for sizes {lost[:20]}, different reply (size, got length) for {wrong[:20]}")
    summary(f"net: UDP echo sizes 0..1472 over user networking: all identical, {took:.1f} s")


def test_udp_10000_sequential_echoes_lose_none(echod_user, summary):
    vm, port = echod_user
    with client(port) as s:
        wait_echo(s)
        lost = []
        deadline = time.monotonic() + 120
        t0 = time.monotonic()
        for i in range(10_000):
            payload = b"%08d" % i + b"." * 56
            if udp_echo(s, payload, timeout=2.0) != payload:
                lost.append(i)
                if len(lost) >= 10:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"expected 10,000 sequential echoes within 120 s; only {i} done "
                            f"({i / 120:.0f}/s)", pytrace=False)
        took = time.monotonic() - t0
    assert not lost, f"expected 10,000 sequential UDP echoes with no loss; lost (or wrong) #{lost}"
    summary(f"net: 10,000 sequential UDP echoes over user networking in {took:.1f} s "
            f"({10_000 / took:.0f}/s), none lost")


def test_tcp_echo_of_1_mib_is_exact(echod_user, summary):
    vm, port = echod_user
    data = os.urandom(1 << 20)
    got = bytearray()
    errors = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send():
            try:
                view = memoryview(data)
                for i in range(0, len(data), 16384):
                    s.sendall(view[i:i + 16384])
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append(e)

        sender = threading.Thread(target=send, daemon=True)
        t0 = time.monotonic()
        sender.start()
        s.settimeout(5)
        deadline = t0 + 120
        eof = False
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                eof = True
                break
            got += chunk
        took = time.monotonic() - t0
        sender.join(timeout=10)
    assert not errors, f"expected sending 1 MiB to work, got {errors[0]!r}"
    assert len(got) == len(data), (
        f"expected 1,048,576 bytes back, got {len(got):,} in {took:.1f} s "
        f"({'connection closed' if eof else 'timed out'})")
    if bytes(got) != data:
        first = next(i for i in range(len(data)) if got[i] != data[i])
        pytest.fail(f"expected the 1 MiB echo to be exact; first difference at byte {first:,} "
                    f"(sha256 sent {hashlib.sha256(data).hexdigest()[:16]}, "
                    f"got {hashlib.sha256(got).hexdigest()[:16]})", pytrace=False)
    assert eof, "expected echod to close the connection after our shutdown(SHUT_WR)"
    summary(f"net: TCP echo of 1 MiB over user networking exact, {took:.1f} s "
            f"({len(data) / took / 1024:.0f} KiB/s)")


def test_udp_bursts_of_32_lose_nothing(echod_user, summary):
    """32 datagrams sent back to back reach echod's socket together (one NIC interrupt, one
    lwIP batch): the socket's incoming queue (patches/0001-modlwip-udp-incoming-queue.patch,
    depth 64) keeps every one, so all 32 come back, burst after burst."""
    vm, port = echod_user
    bursts, depth = 100, 32
    with client(port) as s:
        wait_echo(s)
        s.settimeout(3.0)
        lost = []
        t0 = time.monotonic()
        for b in range(bursts):
            sent = {b"%04d.%02d" % (b, i) + b"." * 56 for i in range(depth)}
            for payload in sorted(sent):
                s.send(payload)
            got = set()
            while got != sent:
                try:
                    got.add(s.recv(2048))
                except socket.timeout:
                    break
            if got != sent:
                lost.append((b, len(sent - got)))
                if len(lost) >= 5:
                    break
        took = time.monotonic() - t0
    assert not lost, (f"expected every datagram of {bursts} bursts of {depth} echoed; "
                      f"(burst, lost) {lost}")
    summary(f"net: {bursts} bursts of {depth} UDP datagrams over user networking, none lost, "
            f"{took:.1f} s ({bursts * depth / took:.0f} echoes/s)")
