"""`invoke bench tls`: the guest as a TLS server (mbedTLS, ssl over tls), against its own
plain TCP in the same run as the ceiling.

- Handshakes per second: full TLS 1.2 handshakes (ECDHE-ECDSA with a P-256 certificate, the
  AEAD suite both ends prefer, named in the table; no session resumption), one client
  after the other, each sending one byte and reading one back.
- Bulk: MiB/s the guest sends over one TLS connection, and over one plain TCP connection.

All under QEMU user networking through a hostfwd on 127.0.0.1. The Linux + MicroPython peer
(linuxpeer.py) runs the same server code in the same run, under the same QEMU options: its
MicroPython is the unix port of the same tree, with ssl over the same mbedTLS tree and
settings (tools/linuxpeer/mbedtls_config_peer.h) and manticore's frozen/ssl.py, its
sockets through tools/linuxpeer/peersocket.py. Ratios: this project / the peer (rates:
above 1 favours this project), and each side's TLS bulk over its own plain TCP bulk.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from pathlib import Path

from manticore_host.bench import write_report
from manticore_host.echobench import free_ports
from manticore_host.qemu import VM, VMConfig, resolve_accel

HOSTNAME = "bench.manticore.test"
TLS_PORT, TCP_PORT = 8443, 8080

SERVER = """
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain({cert!r}, {key!r})
def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
    s.listen(2)
    return s
tls_l = listener({tls_port})
tcp_l = listener({tcp_port})
block = memoryview(bytes(range(256)) * 64)
def send_bulk(c, n):
    # write() may take less than it is given (a stream's write is one call): count it.
    while n > 0:
        n -= c.write(block[:min(n, len(block))])
def serve(handshakes, bulk):
    for _ in range(handshakes):
        c, _ = tls_l.accept()
        t = ctx.wrap_socket(c, server_side=True)
        t.write(t.read(1))
        t.close()
    c, _ = tls_l.accept()
    t = ctx.wrap_socket(c, server_side=True)
    t.read(1)
    send_bulk(t, bulk)
    t.close()
    c, _ = tcp_l.accept()
    c.read(1)
    send_bulk(c, bulk)
    c.close()
print('bench-ready')
"""


def _identity() -> tuple[bytes, bytes, bytes]:
    """(ca_pem, cert_pem, key_pem): a throwaway CA and a server certificate, EC P-256."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("bench CA")).issuer_name(name("bench CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - day).not_valid_after(now + day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name(HOSTNAME)).issuer_name(name("bench CA"))
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - day).not_valid_after(now + day)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTNAME)]), False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _receive_all(sock) -> int:
    n = 0
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return n
        n += len(chunk)


MEMORY = "256M"

# Bringing the network up before the server: manticore's LAN, or on the Linux peer
# (udhcpc runs in the background from /init) eth0's IPv4 address, and peersocket as
# `socket` (the unix port's bind wants a sockaddr, lwIP's and the server's a tuple).
GUEST_NET = ("import network, time\nn = network.LAN(); n.active(True)\n"
             "t0 = time.ticks_ms()\nwhile not n.isconnected() and "
             "time.ticks_diff(time.ticks_ms(), t0) < 15000:\n    time.sleep_ms(10)\n")
PEER_NET = ("import os, sys, time, peersocket\nsys.modules['socket'] = peersocket\n"
            "t0 = time.ticks_ms()\nwhile os.system('ip -4 addr show dev eth0 | grep -q inet') "
            "and time.ticks_diff(time.ticks_ms(), t0) < 15000:\n    time.sleep_ms(50)\n")


def _measure(vm, net_code: str, identity, ports, handshakes: int, bulk: int,
             who: str) -> dict:
    """Start SERVER in `vm` (at its raw REPL) and measure it from the host."""
    ca_pem, cert_pem, key_pem = identity
    tls_host, tcp_host = ports
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    out_, err = vm.console.raw_exec(
        net_code + SERVER.format(cert=cert_pem, key=key_pem, tls_port=TLS_PORT,
                                 tcp_port=TCP_PORT), timeout=60)
    if "bench-ready" not in out_:
        raise RuntimeError(f"{who}'s TLS server did not start: {out_}{err}")
    vm.console.raw_start(f"serve({handshakes}, {bulk})")
    t0 = time.monotonic()
    for _ in range(handshakes):
        with socket.create_connection(("127.0.0.1", tls_host), timeout=60) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOSTNAME) as t:
                t.sendall(b"x")
                if t.recv(1) != b"x":
                    raise RuntimeError(f"{who}'s TLS server answered wrongly")
    hs_seconds = time.monotonic() - t0
    with socket.create_connection(("127.0.0.1", tls_host), timeout=60) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOSTNAME) as t:
            cipher = t.cipher()[0]
            t.sendall(b"g")
            t0 = time.monotonic()
            got_tls = _receive_all(t)
            tls_seconds = time.monotonic() - t0
    with socket.create_connection(("127.0.0.1", tcp_host), timeout=60) as s:
        s.sendall(b"g")
        t0 = time.monotonic()
        got_tcp = _receive_all(s)
        tcp_seconds = time.monotonic() - t0
    _, err = vm.console.raw_finish(timeout=60)
    if err:
        raise RuntimeError(f"{who}'s server failed: {err}")
    if got_tls != bulk or got_tcp != bulk:
        raise RuntimeError(f"{who}: expected {bulk} bytes each, got TLS {got_tls}, "
                           f"TCP {got_tcp}")
    mib = bulk / (1 << 20)
    return {"cipher": cipher, "handshakes_per_s": handshakes / hs_seconds,
            "tls_mib_s": mib / tls_seconds, "tcp_mib_s": mib / tcp_seconds}


def _peer(accel_name: str, identity, handshakes: int, bulk: int, log) -> dict:
    from manticore_host import linuxpeer
    peer = linuxpeer.ensure_image(log=log)
    ports = free_ports(2)
    cfg = linuxpeer.peer_config(
        peer, mode="raw", memory=MEMORY, accel=accel_name, net="user",
        publish=[f"{ports[0]}:{TLS_PORT}/tcp", f"{ports[1]}:{TCP_PORT}/tcp"])
    with VM(cfg) as vm:
        vm.start(timeout=60)
        vm.console.read_until(linuxpeer.READY["raw"], 120)
        return _measure(vm, PEER_NET, identity, ports, handshakes, bulk, "the Linux peer")


def run_tls_bench(quick: bool = False, accel: str = "auto", out: Path | None = None,
                  linux: bool = True, log=print) -> dict:
    accel_name, reason = resolve_accel(accel)
    handshakes = 10 if quick else 50
    bulk = (4 if quick else 32) << 20
    log(f"bench tls: {'quick' if quick else 'full'} run, accel {accel_name} ({reason})")
    identity = _identity()
    ports = free_ports(2)
    cfg = VMConfig(boot="kernel", memory=MEMORY, accel=accel_name, net="user",
                   publish=[f"{ports[0]}:{TLS_PORT}/tcp", f"{ports[1]}:{TCP_PORT}/tcp"])
    with VM(cfg) as vm:
        vm.start(timeout=60)
        vm.console.expect_prompt(60)
        ours = _measure(vm, GUEST_NET, identity, ports, handshakes, bulk, "the guest")
    mib = bulk / (1 << 20)
    report = {
        "accel": accel_name, "quick": quick, "cipher": ours["cipher"],
        "handshakes": handshakes, "handshakes_per_s": ours["handshakes_per_s"],
        "bulk_mib": mib, "tls_mib_s": ours["tls_mib_s"], "tcp_mib_s": ours["tcp_mib_s"],
        "ratios": {"TLS bulk / plain TCP bulk": ours["tls_mib_s"] / ours["tcp_mib_s"]},
    }
    if linux:
        try:
            lx = _peer(accel_name, identity, handshakes, bulk, log)
            report["linux_peer"] = lx
            report["ratios"].update({
                "handshakes/s, this project / Linux+MicroPython":
                    ours["handshakes_per_s"] / lx["handshakes_per_s"],
                "TLS bulk MiB/s, this project / Linux+MicroPython":
                    ours["tls_mib_s"] / lx["tls_mib_s"],
                "plain TCP bulk MiB/s, this project / Linux+MicroPython":
                    ours["tcp_mib_s"] / lx["tcp_mib_s"],
                "Linux+MicroPython: TLS bulk / plain TCP bulk":
                    lx["tls_mib_s"] / lx["tcp_mib_s"]})
        except Exception as e:          # reported; this project's figures still stand
            report["linux_peer"] = {"error": (str(e).splitlines() or [type(e).__name__])[0]}
            log(f"bench tls: the Linux peer failed: {report['linux_peer']['error']}")
    else:
        report["linux_peer"] = {"error": "left out (--no-linux)"}
    return write_report("tls", report, format_table(report), out, log)


def format_table(report: dict) -> str:
    lx = report.get("linux_peer") or {}
    ok = "error" not in lx and "handshakes_per_s" in lx

    def row(what, key, unit, digits=1):
        ours = f"{report[key]:12.{digits}f}"
        theirs = f"{lx[key]:12.{digits}f}" if ok else f"{'-':>12}"
        ratio = f"{report[key] / lx[key]:8.2f}x" if ok and lx[key] else f"{'-':>9}"
        return f"{what + ' (' + unit + ')':40} {ours} {theirs} {ratio}"

    lines = [f"TLS server ({report['cipher']}, {report['accel']})",
             f"{'':40} {'this project':>12} {'Linux+MPy':>12} {'ratio':>9}",
             row("full handshakes, one at a time", "handshakes_per_s", "/s"),
             row("bulk over TLS", "tls_mib_s", "MiB/s"),
             row("bulk over plain TCP (ceiling)", "tcp_mib_s", "MiB/s")]
    ours_r = report["ratios"]["TLS bulk / plain TCP bulk"]
    theirs_r = f"{lx['tls_mib_s'] / lx['tcp_mib_s']:12.2f}" if ok else f"{'-':>12}"
    lines.append(f"{'TLS / plain TCP':40} {ours_r:12.2f} {theirs_r}")
    if not ok:
        lines.append(f"Linux + MicroPython peer: {lx.get('error', 'not measured')}")
    elif lx.get("cipher") != report["cipher"]:
        lines.append(f"note: the peer negotiated {lx.get('cipher')}")
    return "\n".join(lines)
