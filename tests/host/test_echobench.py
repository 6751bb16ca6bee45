"""The echo benchmark's load generator and bookkeeping, against the host-local echo server on
127.0.0.1 (no QEMU)."""

import contextlib
import socket
import threading
import time

import pytest

from manticore_host import echobench
from manticore_host.echobench import HostEcho, echo_load, percentile, udp_client

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def misbehaving_server(reply):
    """A UDP echo server on 127.0.0.1 in a thread: for the n-th request (from 1), reply(n, data)
    returns the bytes to send back, or None to send nothing. Yields its address."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()

    def serve():
        n = 0
        while not stop.is_set():
            try:
                data, addr = srv.recvfrom(65536)
            except socket.timeout:
                continue
            n += 1
            answer = reply(n, data)
            if answer is not None:
                srv.sendto(answer, addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()
    finally:
        stop.set()
        t.join(2)
        srv.close()


def test_percentile_nearest_rank():
    values = sorted(float(i) for i in range(1, 101))
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0 and percentile(values, 0) == 1.0
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None


@pytest.mark.parametrize("size,inflight", [(64, 1), (1400, 32)])
def test_generator_against_host_echo(size, inflight):
    with HostEcho() as host:
        with udp_client(("127.0.0.1", host.port)) as s:
            r = echo_load(s, size, inflight, count=3000)
    assert r.sent == 3000 and r.received == 3000 and r.lost == 0 and r.corrupt == 0, \
        f"expected 3000 of 3000 echoes from the host-local server, got {r.summary()}"
    assert r.rate > 1000, f"expected the generator to exceed 1000 echoes/s on loopback, got {r.rate:.0f}"
    assert 0 < r.p50_us <= r.p99_us <= r.max_us


def test_generator_counts_losses_and_corruption():
    # A server that drops every third request and corrupts every fifth reply.
    def reply(n, data):
        if n % 3 == 0:
            return None
        if n % 5 == 0:
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    with misbehaving_server(reply) as addr, udp_client(addr) as s:
        r = echo_load(s, 64, 4, count=300, loss_timeout=0.1)
    assert r.sent == 300
    assert r.lost == 100, f"expected every third request lost (100), got {r.lost}"
    assert 30 <= r.corrupt <= 50, f"expected about a fifth of the answers corrupt, got {r.corrupt}"
    assert r.received + r.lost + r.corrupt == 300


def test_generator_refuses_bad_arguments():
    with pytest.raises(ValueError):
        echo_load(None, 64, 1)                          # neither seconds nor count
    with pytest.raises(ValueError):
        echo_load(None, 64, 0, count=1)
    with HostEcho() as host, udp_client(("127.0.0.1", host.port)) as s:
        with pytest.raises(ValueError, match="at least 8 bytes"):
            echo_load(s, 4, 1, count=1)


def test_table_reports_paths_and_generator_headroom():
    def case(rate):
        return {"size": 64, "inflight": 1, "sent": 10, "received": 10, "lost": 0, "corrupt": 0,
                "seconds": 1.0, "rate": rate, "p50_us": 100.0, "p99_us": 200.0, "max_us": 300.0}
    cases = ("64B x1", "64B x32", "1400B x1", "1400B x32")
    report = {"results": {"host-local": {c: case(50000.0) for c in cases},
                          "echod/user": {c: case(500.0) for c in cases},
                          "echod/tap": {"error": "tap skipped: no root"},
                          "rawecho/user": {c: case(1000.0) for c in cases},
                          "rawecho/tap": {"error": "tap skipped: no root"},
                          "linux-echod/user": {c: case(250.0) for c in cases},
                          "linux-echod/tap": {"error": "tap skipped: no root"}},
              "host_echo": "C tools/udpecho", "accel": "tcg", "accel_reason": "tcg requested",
              "seconds_per_case": 1.0}
    report["ratios"] = echobench.echo_ratios(report["results"])
    assert report["ratios"] == {
        "echod/user vs linux-echod/user": {c: 2.0 for c in cases},
        "rawecho/user vs linux-echod/user": {c: 4.0 for c in cases},
        "rawecho/user vs echod/user": {c: 2.0 for c in cases}}
    table = echobench.format_table(report)
    assert "host-local" in table and "50000" in table and "500" in table
    assert "echod/tap           error: tap skipped" in table
    assert "rawecho/tap         error: tap skipped" in table
    assert "echod/user vs linux-echod/user: 64B x1 2.00x" in table
    assert "echod/user: at most 1.0% of the generator's host-local rate" in table
    assert "rawecho/user: at most 2.0% of the generator's host-local rate" in table
    assert ("goals user 64B x1: rawecho >= 1.5x echod: 2.00x met; rawecho >= 3x linux: 4.00x "
            "met; median round trip echod/rawecho 1.00x, linux/rawecho 1.00x; "
            "p99 rawecho 200 <= echod 200 <= 0.5x linux 100 us: NOT met") in table
    assert "goals tap" not in table             # no figures over tap: no verdict


def test_table_says_where_the_time_goes():
    row = {"rate": 2000.0, "wall_us": 500.0, "p50_us": 240.0, "p99_us": 900.0,
           "qemu_cpu_us": 200.0, "client_cpu_us": 40.0, "guest_busy_us": 350.0,
           "guest_busy_pct": 70.0, "irqs_per_echo": 1.0, "c_echo_us": 20.0}
    spin = dict(row, rate=8000.0, wall_us=125.0, guest_busy_us=100.0, irqs_per_echo=0.02)
    report = {"results": {}, "host_echo": "C", "accel": "tcg", "accel_reason": "r",
              "seconds_per_case": 1.0, "ratios": {},
              "breakdown": {"rawecho-irq": row, "rawecho": spin,
                            "linux-echod": {"error": "peer image unavailable"}}}
    table = echobench.format_table(report)
    assert "where the time goes, tap, 64 B, 1 in flight" in table
    assert "an interrupt-driven echo costs the guest 350 us, of which the C echo itself 20.0 us" \
        in table
    assert "500 -> 125 us per echo, irqs/echo 1.00 -> 0.02" in table
    assert "rawecho-irq: generator busy 8% of each echo (not the bottleneck); guest busy 350 us " \
        "> QEMU's CPU 200 us: the vCPU waited for a host core" in table
    assert "rawecho: generator busy 32% of each echo (not the bottleneck); QEMU outside guest " \
        "time 100 us" in table
    assert "linux-echod     error: peer image unavailable" in table


def test_generator_counts_late_replies_apart_from_lost():
    """A reply that comes after the loss timeout is late, not lost: the request was given up
    (and replaced) but the server did answer."""
    def reply(n, data):
        if n % 10 == 0:
            time.sleep(0.15)                # past the 0.1 s loss timeout: late
        elif n % 10 == 5:
            return None                     # never answered: lost
        return data

    with misbehaving_server(reply) as addr, udp_client(addr) as s:
        r = echo_load(s, 64, 1, count=50, loss_timeout=0.1)
    assert r.lost == 5, f"expected the 5 unanswered requests lost, got {r.summary()}"
    assert r.late == 5, f"expected the 5 slow replies counted late, got {r.summary()}"
    assert r.received == 40, r.summary()


def test_free_ports_are_distinct_and_free_for_udp_and_tcp():
    """The ports for one VM's hostfwd rules: all different, each bindable for UDP and for TCP
    (QEMU refuses to start when one forward's host port is taken, and two free_port() calls
    in a row once returned the same port in CI)."""
    for _ in range(20):
        ports = echobench.free_ports(4)
        assert len(set(ports)) == 4, ports
        for port in ports:
            for proto in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, proto) as s:
                    s.bind(("127.0.0.1", port))
