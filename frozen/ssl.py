"""ssl: CPython's ssl module, as far as MicroPython's tls (mbedTLS) carries it.

MicroPython ships this module in micropython-lib, which Debian's source package lacks; this is
the port's own.  Certificates and keys are bytes (PEM or DER) or file names."""

import tls
from tls import (CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED, MBEDTLS_VERSION,
                 PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER)


def _data(value):
    """Bytes as given; a str is a file name (a certificate file on a mounted filesystem)."""
    if isinstance(value, str):
        with open(value, "rb") as f:
            return f.read()
    return value


class SSLContext:
    def __init__(self, protocol=PROTOCOL_TLS_CLIENT):
        self._context = tls.SSLContext(protocol)
        self.protocol = protocol

    @property
    def verify_mode(self):
        return self._context.verify_mode

    @verify_mode.setter
    def verify_mode(self, mode):
        self._context.verify_mode = mode

    def load_cert_chain(self, certfile, keyfile):
        self._context.load_cert_chain(_data(certfile), _data(keyfile))

    def load_verify_locations(self, cafile=None, cadata=None):
        if cafile is None and cadata is None:
            raise ValueError("cafile or cadata must be given")
        if cafile is not None:
            self._context.load_verify_locations(_data(cafile))
        if cadata is not None:
            self._context.load_verify_locations(cadata)

    def get_ciphers(self):
        return self._context.get_ciphers()

    def set_ciphers(self, ciphers):
        self._context.set_ciphers(ciphers)

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                    server_hostname=None):
        return self._context.wrap_socket(sock, server_side=server_side,
                                         do_handshake_on_connect=do_handshake_on_connect,
                                         server_hostname=server_hostname)


def wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=CERT_NONE,
                cadata=None, server_hostname=None, do_handshake=True):
    """The older one-call form (MicroPython's ssl.wrap_socket)."""
    context = SSLContext(PROTOCOL_TLS_SERVER if server_side else PROTOCOL_TLS_CLIENT)
    if cert is not None or key is not None:
        context.load_cert_chain(cert, key)
    if cadata is not None:
        context.load_verify_locations(cadata=cadata)
    context.verify_mode = cert_reqs
    return context.wrap_socket(sock, server_side=server_side,
                               do_handshake_on_connect=do_handshake,
                               server_hostname=server_hostname)
