"""MicroPython's ordinary networking from the REPL, under QEMU user networking: a DHCP lease,
a TCP client fetching from a server on the host (127.0.0.1, which the guest reaches as
10.0.2.2), and a TCP server in the guest that the host reaches through a hostfwd."""

import hashlib
import http.server
import os
import socket
import threading
import time

import pytest

from manticore_host.echobench import free_port
from nettools import guest_eval, net_up

pytestmark = pytest.mark.timeout(120)


def test_dhcp_lease_under_user_networking(boot):
    vm = boot(net="user")
    info = net_up(vm)
    assert info["connected"], f"expected nic.isconnected() after DHCP, got {info}"
    ip, mask, gw, dns = info["ifconfig"]
    assert (ip, mask, gw, dns) == ("10.0.2.15", "255.255.255.0", "10.0.2.2", "10.0.2.3"), (
        f"expected QEMU's DHCP lease (10.0.2.15/24, gw 10.0.2.2, dns 10.0.2.3), got {info['ifconfig']}")
    assert info["mac"] == "52:54:00:12:34:56", f"expected QEMU's default MAC, got {info['mac']}"
    dhcp = guest_eval(vm, "nic.ipconfig('dhcp4')")
    assert dhcp is True, f"expected ipconfig('dhcp4') True for a DHCP lease, got {dhcp!r}"
    status = guest_eval(vm, "nic.status()")
    assert status == 3, f"expected status() 3 (got IP), got {status!r}"


class _Blob(http.server.BaseHTTPRequestHandler):
    body = b""
    paths: list = []

    def do_GET(self):
        type(self).paths.append((self.path, self.client_address[0]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


FETCH = """
import socket, hashlib, binascii
s = socket.socket()
s.settimeout(20)
s.connect(('10.0.2.2', {port}))
s.write(b'GET /blob HTTP/1.0\\r\\nHost: 10.0.2.2\\r\\n\\r\\n')
h = hashlib.sha256()
head = b''
n = 0
while True:
    chunk = s.read(4096)
    if not chunk:
        break
    if head is not None:
        head += chunk
        i = head.find(b'\\r\\n\\r\\n')
        if i < 0:
            continue
        status = head.split(b'\\r\\n', 1)[0].decode()
        chunk = head[i + 4:]
        head = None
    h.update(chunk)
    n += len(chunk)
s.close()
"""


def test_tcp_client_in_guest_fetches_from_host_server(boot):
    body = os.urandom(96 * 1024)
    handler = type("Handler", (_Blob,), {"body": body, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        vm = boot(net="user")
        info = net_up(vm)
        assert info["connected"], f"expected a DHCP lease first, got {info}"
        result = guest_eval(vm, "[status, n, binascii.hexlify(h.digest()).decode()]",
                            FETCH.format(port=port), timeout=90)
    finally:
        server.shutdown()
        server.server_close()
    status, n, digest = result
    assert status == "HTTP/1.0 200 OK", f"expected the host server's 200 status line, got {status!r}"
    assert n == len(body) and digest == hashlib.sha256(body).hexdigest(), (
        f"expected the guest to receive the host's {len(body)} random bytes intact, "
        f"got {n} bytes with sha256 {digest[:16]}... (want {hashlib.sha256(body).hexdigest()[:16]}...)")
    assert handler.paths == [("/blob", "127.0.0.1")], \
        f"expected exactly one GET /blob from 127.0.0.1 (slirp), got {handler.paths}"


SERVE = """
import socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('0.0.0.0', 8080))
srv.listen(1)
print('serving 8080')
conn, peer = srv.accept()
data = b''
while len(data) < {n}:
    chunk = conn.recv(4096)
    if not chunk:
        break
    data += chunk
conn.sendall(b'LEN %d ' % len(data) + bytes(reversed(data)))
conn.close()
srv.close()
print('peer', peer[0])
"""


def test_tcp_server_in_guest_accepts_from_host(boot):
    port = free_port()
    vm = boot(net="user", publish=[f"{port}:8080/tcp"])
    info = net_up(vm)
    assert info["connected"], f"expected a DHCP lease first, got {info}"
    payload = os.urandom(20000)
    vm.console.raw_start(SERVE.format(n=len(payload)))
    vm.console.read_until(b"serving 8080", timeout=20)
    got = b""
    deadline = time.monotonic() + 60
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        s.settimeout(10)
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    out, err = vm.console.raw_finish(timeout=30)
    assert err == "", f"expected the guest server to end cleanly, got:\n{err}"
    want = b"LEN %d " % len(payload) + payload[::-1]
    assert got == want, (f"expected 'LEN {len(payload)} ' and the payload reversed "
                         f"({len(want)} bytes), got {len(got)} bytes starting {got[:24]!r}")
    assert "peer 10.0.2.2" in out, f"expected the guest to see the host as 10.0.2.2, got {out!r}"


EARLY = """
import socket, select, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('0.0.0.0', 8080))
srv.listen(2)
print('serving 8080')
ready = []
for _ in range({rounds}):
    # The host connects and sends at once; accept() only after its data is surely in.
    p = select.poll()
    p.register(srv, select.POLLIN)
    p.poll(20000)
    time.sleep_ms(400)
    conn, _ = srv.accept()
    q = select.poll()
    q.register(conn, select.POLLIN)
    ready.append(bool(q.poll(0)))
    conn.read(5)
    conn.write(b'ok')
    conn.close()
srv.close()
print('ready', ready)
"""


def test_data_sent_before_accept_is_readable_at_accept(boot):
    """A client that speaks first (a TLS ClientHello) usually sends before the server's
    accept() returns; lwIP holds such data as the PCB's refused data and, unpatched, offers it
    again only from its 250 ms TCP timer (patch 0006). Readable at once after accept()."""
    port = free_port()
    vm = boot(net="user", publish=[f"{port}:8080/tcp"])
    assert net_up(vm)["connected"]
    rounds = 3
    vm.console.raw_start(EARLY.format(rounds=rounds))
    vm.console.read_until(b"serving 8080", timeout=20)
    for i in range(rounds):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"hello")
            s.settimeout(20)
            assert s.recv(2) == b"ok", f"round {i}: expected the guest's 'ok'"
    out, err = vm.console.raw_finish(timeout=30)
    assert err == "", f"expected the guest server to end cleanly, got:\n{err}"
    assert f"ready {[True] * rounds}" in out, (
        f"expected the client's data readable right after accept() in every round, got {out!r}")
