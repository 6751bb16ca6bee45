"""`invoke bench tls`: the guest as a TLS server (mbedTLS, ssl over tls), against its own
plain TCP in the same run as the ceiling.

- Handshakes per second: full TLS 1.2 handshakes (ECDHE-ECDSA P-256, AES-128-GCM, no session
  resumption), one client after the other, each sending one byte and reading one back.
- Bulk: MiB/s the guest sends over one TLS connection, and over one plain TCP connection.

All under QEMU user networking through a hostfwd on 127.0.0.1. The Linux + MicroPython peer
is not compared here yet (its MicroPython is the unix port's, with the system mbedTLS).
"""

from __future__ import annotations

import datetime
import socket
import ssl
import tempfile
import time
from pathlib import Path

from manticore_host.bench import write_report
from manticore_host.echobench import free_port
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
block = bytes(range(256)) * 64
def send_bulk(c, n):
    while n > 0:
        k = min(n, len(block))
        c.write(block[:k])
        n -= k
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


def run_tls_bench(quick: bool = False, accel: str = "auto", out: Path | None = None,
                  log=print) -> dict:
    accel_name, reason = resolve_accel(accel)
    handshakes = 10 if quick else 50
    bulk = (4 if quick else 32) << 20
    log(f"bench tls: {'quick' if quick else 'full'} run, accel {accel_name} ({reason})")
    ca_pem, cert_pem, key_pem = _identity()
    tls_host, tcp_host = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    cfg = VMConfig(boot="kernel", memory="256M", accel=accel_name, net="user",
                   publish=[f"{tls_host}:{TLS_PORT}/tcp", f"{tcp_host}:{TCP_PORT}/tcp"])
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    with VM(cfg) as vm:
        vm.start(timeout=60)
        vm.console.expect_prompt(60)
        out_, err = vm.console.raw_exec(
            "import network, time\nn = network.LAN(); n.active(True)\n"
            "t0 = time.ticks_ms()\nwhile not n.isconnected() and "
            "time.ticks_diff(time.ticks_ms(), t0) < 15000:\n    time.sleep_ms(10)\n"
            + SERVER.format(cert=cert_pem, key=key_pem, tls_port=TLS_PORT, tcp_port=TCP_PORT),
            timeout=60)
        if "bench-ready" not in out_:
            raise RuntimeError(f"the guest's TLS server did not start: {out_}{err}")
        vm.console.raw_start(f"serve({handshakes}, {bulk})")
        t0 = time.monotonic()
        for _ in range(handshakes):
            with socket.create_connection(("127.0.0.1", tls_host), timeout=60) as raw:
                with ctx.wrap_socket(raw, server_hostname=HOSTNAME) as t:
                    t.sendall(b"x")
                    if t.recv(1) != b"x":
                        raise RuntimeError("the guest's TLS server answered wrongly")
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
            raise RuntimeError(f"the guest's server failed: {err}")
    if got_tls != bulk or got_tcp != bulk:
        raise RuntimeError(f"expected {bulk} bytes each, got TLS {got_tls}, TCP {got_tcp}")
    mib = bulk / (1 << 20)
    report = {
        "accel": accel_name, "quick": quick, "cipher": cipher,
        "handshakes": handshakes, "handshakes_per_s": handshakes / hs_seconds,
        "bulk_mib": mib, "tls_mib_s": mib / tls_seconds, "tcp_mib_s": mib / tcp_seconds,
        "ratios": {"TLS bulk / plain TCP bulk": (mib / tls_seconds) / (mib / tcp_seconds)},
        "linux_peer": "not compared yet",
    }
    return write_report("tls", report, format_table(report), out, log)


def format_table(report: dict) -> str:
    return "\n".join([
        f"guest as TLS server ({report['cipher']}, {report['accel']})",
        f"{'full handshakes, one at a time':40} {report['handshakes_per_s']:9.1f} /s",
        f"{'bulk over TLS':40} {report['tls_mib_s']:9.1f} MiB/s",
        f"{'bulk over plain TCP (ceiling)':40} {report['tcp_mib_s']:9.1f} MiB/s",
        f"{'TLS / plain TCP':40} {report['ratios']['TLS bulk / plain TCP bulk']:9.2f}x",
        "Linux + MicroPython peer: not compared yet",
    ])
