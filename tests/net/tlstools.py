"""Test certificates made in the test (never stored): a CA, server certificates it signs
(valid, expired, for the wrong host) and a self-signed one, as PEM, with EC P-256 keys (what
mbedTLS handshakes fastest under TCG).  And a TLS server on the host for the guest to reach."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOSTNAME = "tls.manticore.test"


@dataclass
class Identity:
    cert_pem: bytes
    key_pem: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class ThrowawayCA:
    """A throwaway certificate authority."""

    def __init__(self, cn: str = "manticore test CA"):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(cn)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, hostname: str = HOSTNAME, days_valid: tuple[int, int] = (-1, 30),
              self_signed: bool = False, ip: str | None = None) -> Identity:
        now = datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list = [x509.DNSName(hostname)]
        if ip:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(hostname))
                   .issuer_name(_name(hostname) if self_signed else self.name)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now + datetime.timedelta(days=days_valid[0]))
                   .not_valid_after(now + datetime.timedelta(days=days_valid[1]))
                   .add_extension(x509.SubjectAlternativeName(sans), False))
        cert = builder.sign(key if self_signed else self.key, hashes.SHA256())
        return Identity(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


class HostTLSServer:
    """A tiny HTTPS responder on 127.0.0.1 (the guest reaches it as 10.0.2.2 under user
    networking): answers each request with `body`; records handshake failures."""

    def __init__(self, identity: Identity, body: bytes = b"hello from the host over TLS\n"):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._files = []
        import tempfile
        cert = tempfile.NamedTemporaryFile(suffix=".pem")
        key = tempfile.NamedTemporaryFile(suffix=".pem")
        cert.write(identity.cert_pem)
        cert.flush()
        key.write(identity.key_pem)
        key.flush()
        self._files = [cert, key]
        self.context.load_cert_chain(cert.name, key.name)
        self.body = body
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(30)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    self.requests.append(request)
                    tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n"
                                % len(self.body) + self.body)
            except (OSError, ssl.SSLError) as e:
                self.failures.append(repr(e))
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(5)
        for f in self._files:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
