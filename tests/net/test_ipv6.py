"""IPv6 beside IPv4 (lwIP dual stack, ports/manticore/patches/0003-modlwip-ipv6.patch).

Under QEMU user networking: the link-local address and a SLAAC address from slirp's router
advertisement (fec0::/64), shown by network.LAN().ipconfig('addr6'); getaddrinfo with both
families; an IPv6 UDP exchange with slirp's host side.  Over a tap in the run's network
namespace (IPv6 enabled there for these tests only): UDP echo both ways over IPv6 with a
static ip6= address, and malformed extension headers and a neighbour discovery flood that
are dropped and counted while echod keeps answering."""

import os
import random
import socket
import struct
import threading
import time

import pytest

from frames import (ETH_P_IPV6, NEXT_DEST, NEXT_FRAGMENT, NEXT_HOP, NEXT_ICMP6, NEXT_ROUTING,
                    NEXT_UDP, ethernet, ext, icmp6, ip6_packet, udp6)
from manticore_host import netns as netns_mod
from nettools import (ECHO_PORT, GUEST_IP, HOST_IP, LISTENING_TCP, flat, guest_eval, net_up,
                      udp_echo, wait_echo)

pytestmark = pytest.mark.timeout(90)

SLAAC_PREFIX = "fec0:"          # slirp's default IPv6 prefix (QEMU -netdev user ipv6-prefix)

WAIT_SLAAC = """
import time
_t0 = time.ticks_ms()
def _addr6():
    return [a for a in nic.ipconfig('addr6')]
while time.ticks_diff(time.ticks_ms(), _t0) < {ms}:
    if any(a[0].startswith('{prefix}') and a[1] == 0x30 for a in _addr6()):
        break
    time.sleep_ms(50)
"""


def addresses6(vm, ms: int = 20000) -> list:
    """The guest's IPv6 addresses once one with `SLAAC_PREFIX` is preferred (or `ms` passed):
    [[address, state, preferred lifetime, valid lifetime], ...]."""
    return guest_eval(vm, "_addr6()", WAIT_SLAAC.format(ms=ms, prefix=SLAAC_PREFIX),
                      timeout=ms / 1000 + 30)


BAD_WORDS = "ip6=fd77::zz/64 gw6=ff02::1 dns6=nonsense"


def test_slaac_address_under_user_networking(boot):
    """Also: malformed ip6=/gw6=/dns6= words are reported and ignored, and lose nothing."""
    vm = boot(net="user", append=BAD_WORDS)
    info = net_up(vm)
    log = vm.console.log.decode(errors="replace")
    for word in ("ignoring ip6=fd77::zz", "ignoring gw6=ff02::1", "ignoring dns6=nonsense"):
        assert word in log, f"expected the console to say {word!r} for {BAD_WORDS!r}"
    assert info["connected"], f"expected the IPv4 lease first, got {info}"
    addrs = addresses6(vm)
    names = [a[0] for a in addrs]
    assert any(n.startswith("fe80::") for n in names), \
        f"expected a link-local fe80:: address in ipconfig('addr6'), got {addrs}"
    slaac = [a for a in addrs if a[0].startswith(SLAAC_PREFIX)]
    assert slaac, f"expected a SLAAC address in {SLAAC_PREFIX}:/64 from slirp's RA, got {addrs}"
    # Modified EUI-64 of QEMU's default MAC 52:54:00:12:34:56 (RFC 4291 appendix A).
    assert slaac[0][0].endswith("5054:ff:fe12:3456"), \
        f"expected the SLAAC address to end in the MAC's EUI-64 5054:ff:fe12:3456, got {slaac}"
    # The IPv4 side is untouched.
    assert info["ifconfig"][0] == "10.0.2.15", f"expected 10.0.2.15 as before, got {info}"


UDP6_TO_HOST = """
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2)
_got = []
for _i in range(30):
    try:
        s.sendto(b'v6-%d' % _i, ('{host}', {port}))
        _data, _addr = s.recvfrom(256)
        _got.append([_data.decode(), list(_addr)])
    except OSError as e:
        _got.append(['error', str(e)])
    if len([g for g in _got if g[0] != 'error']) >= 3:
        break
s.close()
"""


def test_getaddrinfo_and_udp_to_host_under_user_networking(boot):
    """slirp's host side is fec0::2 over IPv6 (the host's ::1, like 10.0.2.2 for 127.0.0.1)."""
    vm = boot(net="user")
    net_up(vm)
    addresses6(vm)
    infos = guest_eval(vm, "[list(a) for a in socket.getaddrinfo('fec0::2', 80)] + "
                           "[list(a) for a in socket.getaddrinfo('10.0.2.2', 80)]", "import socket")
    assert infos[0][0] == 10 and infos[0][4] == ["fec0::2", 80], \
        f"expected an IPv6 literal to give one AF_INET6 (10) entry, got {infos}"
    assert infos[1][0] == 2 and infos[1][4] == ["10.0.2.2", 80], \
        f"expected an IPv4 literal to give one AF_INET (2) entry, got {infos}"

    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as server:
        try:
            server.bind(("::1", 0))
        except OSError as e:
            pytest.skip(f"the host has no IPv6 loopback ({e})")
        port = server.getsockname()[1]
        stop = threading.Event()

        def echo():
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    data, addr = server.recvfrom(256)
                except socket.timeout:
                    continue
                server.sendto(data, addr)

        t = threading.Thread(target=echo, daemon=True)
        t.start()
        try:
            got = guest_eval(vm, "_got", UDP6_TO_HOST.format(host="fec0::2", port=port), timeout=90)
        finally:
            stop.set()
            t.join(2)
    ok = [g for g in got if g[0] != "error"]
    assert len(ok) >= 3, f"expected 3 IPv6 UDP echoes from the host through slirp, got {got}"
    for data, addr in ok:
        assert data.startswith("v6-") and addr == ["fec0::2", port], \
            f"expected replies from ('fec0::2', {port}), got {ok}"


# --------------------------------------------------------------------------- tap, IPv6 on


HOST6 = netns_mod.HOST6_CIDR.split("/")[0]
GUEST6 = netns_mod.GUEST6_IP
NAME = "peer.test"


def _dns_answer(query: bytes) -> bytes | None:
    """A reply to a one-question DNS query (RFC 1035 section 4): NAME has an A (HOST_IP)
    and an AAAA (HOST6) record, every other name is NXDOMAIN."""
    if len(query) < 17:
        return None
    qid, flags, qd = struct.unpack("!HHH", query[:6])
    labels, i = [], 12
    while i < len(query) and query[i] != 0:
        n = query[i]
        labels.append(query[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    question = query[12:i + 5]
    qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
    name = ".".join(labels).lower()
    rdata = None
    if name == NAME and qtype == 1:
        rdata = socket.inet_pton(socket.AF_INET, HOST_IP)
    elif name == NAME and qtype == 28:
        rdata = socket.inet_pton(socket.AF_INET6, HOST6)
    rcode = 0 if name == NAME else 3
    head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, 1 if rdata else 0, 0, 0)
    answer = b""
    if rdata:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(rdata)) + rdata
    return head + question + answer


class HostPeer:
    """Threads inside the namespace: a DNS server on dns_host:53 and a UDP echo on
    [HOST6]:port, until stop()."""

    def __init__(self, ns, dns_host: str = HOST_IP):
        self.stop_event = threading.Event()
        self.dns = ns.socket(socket.AF_INET6 if ":" in dns_host else socket.AF_INET,
                             socket.SOCK_DGRAM)
        self.dns.bind((dns_host, 53))
        self.echo = ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.echo.bind((HOST6, 0))
        self.echo_port = self.echo.getsockname()[1]
        self.dns_queries = []
        self.threads = [threading.Thread(target=self._serve, args=(s, f), daemon=True)
                        for s, f in ((self.dns, self._dns), (self.echo, lambda d: d))]
        for t in self.threads:
            t.start()

    def _dns(self, data):
        self.dns_queries.append(data)
        return _dns_answer(data)

    def _serve(self, sock, answer):
        sock.settimeout(0.2)
        while not self.stop_event.is_set():
            try:
                data, addr = sock.recvfrom(2048)
            except socket.timeout:
                continue
            reply = answer(data)
            if reply:
                sock.sendto(reply, addr)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(2)
        self.dns.close()
        self.echo.close()


class Guest6:
    """The guest: echod up, network.LAN() up, `sock` a UDP socket connected to echod over
    IPv4 from inside the namespace."""

    def __init__(self, vm, ns):
        self.vm, self.ns = vm, ns
        deadline = time.monotonic() + 60
        while LISTENING_TCP not in vm.console.log:
            assert time.monotonic() < deadline, "expected echod to start listening within 60 s"
            time.sleep(0.05)
        self.info = net_up(vm)
        assert self.info["connected"] and self.info["ifconfig"][0] == GUEST_IP, \
            f"expected the guest up at {GUEST_IP}, got {self.info}"
        self.sock = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((GUEST_IP, ECHO_PORT))
        wait_echo(self.sock)

    def eval(self, expr: str, setup: str = "", timeout: float = 60):
        return guest_eval(self.vm, expr, setup, timeout=timeout)

    def close(self):
        self.sock.close()


@pytest.fixture
def ns6(namespaces_ok):
    """A namespace whose tap also has HOST6 (IPv6 on); deleted after the guest is gone
    (requested before `boot`, so torn down after it)."""
    if not os.path.exists("/proc/sys/net/ipv6"):
        pytest.skip("the host kernel has no IPv6 (no /proc/sys/net/ipv6)")
    ns = netns_mod.NetNamespace(ipv6=True).create()
    try:
        yield ns
    finally:
        ns.delete()


@pytest.fixture
def guest6(ns6, boot):
    """echod (dual stack) beside the REPL, ip6= static, gw6= and DNS the host end of the tap."""
    vm = boot(net="tap", netns=ns6.name, app="echod",
              append=f"repl=1 ip6={GUEST6}/64 gw6={HOST6} dns={HOST_IP}")
    guest = Guest6(vm, ns6)
    peer = HostPeer(ns6)
    try:
        yield guest, peer
    finally:
        peer.stop()
        guest.close()


def echo6_client(ns, timeout=20.0) -> socket.socket:
    s = ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.connect((GUEST6, ECHO_PORT))
    wait_echo(s, timeout=timeout)
    return s


def test_udp_echo_both_ways_over_ipv6_on_a_tap(guest6, summary):
    g, peer = guest6
    # Host client, guest server: echod's one dual-stack socket answers IPv6 and IPv4.
    s6 = echo6_client(g.ns)
    try:
        for i in range(20):
            payload = b"v6-request-%d" % i
            assert udp_echo(s6, payload) == payload, \
                f"expected echod to echo over IPv6 from [{HOST6}] (request {i} unanswered)"
    finally:
        s6.close()
    for i in range(5):
        payload = b"v4-request-%d" % i
        assert udp_echo(g.sock, payload) == payload, \
            f"expected the same dual-stack echod to answer IPv4 too (request {i} unanswered)"

    # Guest client, host server.
    got = g.eval("_got", UDP6_TO_HOST.format(host=HOST6, port=peer.echo_port))
    ok = [x for x in got if x[0] != "error"]
    assert len(ok) >= 3 and all(a == [HOST6, peer.echo_port] for _, a in ok), \
        f"expected 3 IPv6 echoes from ({HOST6!r}, {peer.echo_port}), got {got}"

    # getaddrinfo: both families for a name, from the DNS server on the tap's IPv4 end.
    infos = g.eval(f"[list(a) for a in socket.getaddrinfo({NAME!r}, 7)]", "import socket")
    fams = sorted((a[0], a[4][0]) for a in infos)
    assert fams == [(2, HOST_IP), (10, HOST6)], \
        f"expected getaddrinfo({NAME!r}) to give {HOST_IP} (AF_INET) and {HOST6} (AF_INET6), " \
        f"got {infos}; the DNS server saw {len(peer.dns_queries)} queries"
    only6 = g.eval(f"[list(a) for a in socket.getaddrinfo({NAME!r}, 7, socket.AF_INET6)]",
                   "import socket")
    assert [(a[0], a[4][0]) for a in only6] == [(10, HOST6)], \
        f"expected family=AF_INET6 to give only the AAAA record, got {only6}"
    missing = g.eval("repr(_e)", "import socket\ntry:\n    socket.getaddrinfo('nx.test', 7)\n"
                                 "    _e = None\nexcept OSError as e:\n    _e = e")
    assert missing.startswith("OSError"), f"expected OSError for an unknown name, got {missing}"
    wrong = g.eval("repr(_e)", "import socket\n"
                               "_s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                               f"try:\n    _s.sendto(b'x', ({HOST6!r}, 9))\n    _e = None\n"
                               "except OSError as e:\n    _e = e\n_s.close()")
    assert "97" in wrong or "EAFNOSUPPORT" in wrong, \
        f"expected an AF_INET socket to refuse an IPv6 address with EAFNOSUPPORT, got {wrong}"
    bad = g.eval("repr(_e)", "import socket\n"
                             "_s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
                             "try:\n    _s.sendto(b'x', ('fd77::zz', 9))\n    _e = None\n"
                             "except ValueError as e:\n    _e = e\n_s.close()")
    assert bad.startswith("ValueError"), \
        f"expected ValueError for the address 'fd77::zz', not a datagram to fd77::; got {bad}"
    # The link-local address is usable once duplicate address detection (one probe, RFC 4862
    # section 5.4, about a second) found no one else with it.
    addrs = g.eval("[list(a) for a in network.LAN().ipconfig('addr6')]",
                   "import network, time\n_t0 = time.ticks_ms()\n"
                   "while time.ticks_diff(time.ticks_ms(), _t0) < 15000 and not any("
                   "a[0].startswith('fe80::') for a in network.LAN().ipconfig('addr6')):\n"
                   "    time.sleep_ms(50)")
    addrs = [a[0] for a in addrs]
    assert GUEST6 in addrs and any(a.startswith("fe80::") for a in addrs), \
        f"expected ipconfig('addr6') to list {GUEST6} (ip6=) and a link-local address, got {addrs}"
    tcp = tcp_both_ways(g)

    # gw6=: a packet to an off-link address leaves for the gateway's MAC (the tap's).
    psock = g.ns.packet_socket()
    psock.settimeout(0.3)
    off_link = "fd99::9"
    try:
        g.eval("1", "import socket\n_s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
                    f"for _i in range(3):\n    _s.sendto(b'via-gw6', ({off_link!r}, 9))\n"
                    "_s.close()")
        seen = None
        deadline = time.monotonic() + 5
        while seen is None and time.monotonic() < deadline:
            try:
                frame = psock.recv(2048)
            except socket.timeout:
                continue
            if frame[12:14] == b"\x86\xdd" and \
                    frame[38:54] == socket.inet_pton(socket.AF_INET6, off_link):
                seen = frame
    finally:
        psock.close()
    assert seen is not None and seen[:6] == g.ns.tap_mac(), \
        f"expected a datagram to {off_link} sent to the gw6= gateway's MAC " \
        f"{g.ns.tap_mac().hex()}, got {seen[:6].hex() if seen else 'nothing on the tap'}"
    summary(f"ipv6: echod over IPv6 and IPv4 on one socket, guest->host UDP over IPv6, "
            f"getaddrinfo {fams}, TCP {tcp}")


TCP_SERVER = """
import socket
_l = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
_l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
_l.bind(('::', {port}))
_l.listen(2)
_l.settimeout(20)
_peers = []
for _i in range(2):
    _c, _a = _l.accept()
    _c.settimeout(10)
    _d = _c.recv(64)
    _c.send(b'ack:' + _d)
    _c.close()
    _peers.append([list(_a), _d.decode()])
_l.close()
"""

TCP_CLIENT = """
import socket
_ai = [a for a in socket.getaddrinfo({name!r}, {port}) if a[0] == socket.AF_INET6][0]
_s = socket.socket(_ai[0], socket.SOCK_STREAM)
_s.settimeout(10)
_s.connect(_ai[-1])
_s.send(b'hello over tcp6')
_reply = _s.recv(64)
_s.close()
"""


def tcp_both_ways(g) -> str:
    """A guest AF_INET6 listener on '::' accepts an IPv6 and an IPv4 client (dual stack) and
    reports their addresses; a guest client connects to a host server by name over IPv6."""
    port = 7780
    results = {}

    def clients():
        for family, addr in ((socket.AF_INET6, GUEST6), (socket.AF_INET, GUEST_IP)):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                c = g.ns.socket(family, socket.SOCK_STREAM)
                c.settimeout(5)
                try:
                    c.connect((addr, port))
                    c.sendall(b"from-" + addr.encode())
                    results[addr] = c.recv(64)
                    break
                except OSError:
                    time.sleep(0.2)
                finally:
                    c.close()

    t = threading.Thread(target=clients, daemon=True)
    t.start()
    peers = g.eval("_peers", TCP_SERVER.format(port=port))
    t.join(25)
    assert results.get(GUEST6) == b"ack:from-" + GUEST6.encode() and \
        results.get(GUEST_IP) == b"ack:from-" + GUEST_IP.encode(), \
        f"expected the guest's AF_INET6 listener to answer an IPv6 and an IPv4 client, " \
        f"got {results}"
    assert peers[0][0][0] == HOST6 and peers[1][0][0] == HOST_IP, \
        f"expected accept() to report [{HOST6}] then {HOST_IP}, got {peers}"

    server = g.ns.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST6, 0))
    server.listen(1)
    server.settimeout(30)
    sport = server.getsockname()[1]
    seen = []

    def serve():
        try:
            conn, addr = server.accept()
            with conn:
                conn.settimeout(10)
                seen.append((addr[0], conn.recv(64)))
                conn.sendall(b"welcome")
        except OSError as e:
            seen.append(("error", str(e)))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        reply = g.eval("_reply", TCP_CLIENT.format(name=NAME, port=sport))
    finally:
        t.join(15)
        server.close()
    assert reply == "welcome" and seen and seen[0] == (GUEST6, b"hello over tcp6"), \
        f"expected a TCP exchange from [{GUEST6}] with the host's [{HOST6}]:{sport}, " \
        f"got reply {reply!r}, server saw {seen}"
    return "guest server (v6+v4 clients) and guest client (v6, by name)"


def test_dns6_server_from_the_command_line(ns6, boot):
    """dns6= alone (static IPv4 without dns=): names resolve through an IPv6 DNS server."""
    vm = boot(net="tap", netns=ns6.name, append=f"ip6={GUEST6}/64 dns6={HOST6}")
    peer = HostPeer(ns6, dns_host=HOST6)
    try:
        info = net_up(vm)
        assert info["connected"], f"expected the guest up, got {info}"
        got = guest_eval(vm, f"[[a[0], a[4][0]] for a in socket.getaddrinfo({NAME!r}, 7)]",
                         "import socket")
    finally:
        peer.stop()
    assert sorted(map(tuple, got)) == [(2, HOST_IP), (10, HOST6)], \
        f"expected both records of {NAME} through the DNS server at [{HOST6}], got {got} " \
        f"({len(peer.dns_queries)} queries seen there)"


# --------------------------------------------------------------------------- bad input

def malformed6(g_mac, h_mac, sport) -> list[tuple[str, bytes, str]]:
    """(name, frame, counter that must grow) for IPv6 packets with bad extension headers,
    each carrying a UDP request to echod that must not be answered."""
    out = []

    def add(name, headers_next, headers, counter, **kw):
        data = b"E%02d:malformed-extension-header" % len(out)
        seg = udp6(HOST6, GUEST6, sport, ECHO_PORT, data)
        pkt = ip6_packet(HOST6, GUEST6, headers_next, headers + seg, **kw)
        out.append((name, ethernet(g_mac, h_mac, ETH_P_IPV6, pkt), counter))

    add("hop-by-hop option 0x5e (unknown, action 01: discard)",
        NEXT_HOP, ext(NEXT_UDP, b"\x5e\x02\0\0\x01\x00"), "lwip.ip6.drop")
    add("hop-by-hop option 0x9e (unknown, action 10: discard, ICMP parameter problem)",
        NEXT_HOP, ext(NEXT_UDP, b"\x9e\x02\0\0\x01\x00"), "lwip.ip6.drop")
    add("destination option 0xde (unknown, action 11)",
        NEXT_DEST, ext(NEXT_UDP, b"\xde\x02\0\0\x01\x00"), "lwip.ip6.drop")
    add("hop-by-hop header whose length runs past the packet",
        NEXT_HOP, bytes([NEXT_UDP, 200]) + b"\x01\x04\0\0\0\0", "lwip.ip6.drop")
    add("destination options header whose length runs past the packet",
        NEXT_DEST, bytes([NEXT_UDP, 90]) + b"\x01\x04\0\0\0\0", "lwip.ip6.drop")
    add("routing header type 0 (deprecated, RFC 5095) with segments left",
        NEXT_ROUTING, ext(NEXT_UDP, b"\x00\x01" + b"\0" * 4 + socket.inet_pton(
            socket.AF_INET6, HOST6)), "lwip.ip6.drop")
    add("routing header with an odd length and segments left",
        NEXT_ROUTING, bytes([NEXT_UDP, 1, 2, 1]) + b"\0" * 12, "lwip.ip6.drop")
    add("fragment header, more fragments, payload not a multiple of 8",
        NEXT_FRAGMENT, bytes([NEXT_UDP, 0]) + struct.pack("!HI", 1, 0x4d54), "lwip.ip6.drop")
    add("payload length larger than the frame", NEXT_DEST,
        ext(NEXT_UDP, b"\x01\x04\0\0\0\0"), "lwip.ip6.drop", payload_length=1200)
    add("unknown next header 253 after destination options", NEXT_DEST,
        ext(253, b"\x01\x04\0\0\0\0"), "lwip.ip6.drop")
    return out


def nd_flood(g_mac, h_mac, rng, count: int) -> tuple[list[bytes], int]:
    """Neighbour discovery a link may throw at a host: (frames, how many must be dropped).
    Solicitations and advertisements with a hop limit below 255 (RFC 4861 section 7.1: they
    could come from off link), router advertisements from global addresses or with
    zero-length options, and valid solicitations from made-up neighbours, each of which
    would take a neighbour cache entry."""
    frames, bad = [], 0
    target = socket.inet_pton(socket.AF_INET6, GUEST6)
    sol = "ff02::1:ff00:2"                      # GUEST6's solicited-node group
    sol_mac = bytes.fromhex("3333ff000002")
    for i in range(count):
        mac = bytes([0x02, 0x77, rng.randrange(256), rng.randrange(256), rng.randrange(256),
                     i & 0xFF])
        src = "fd77::%x:%x" % (rng.randrange(1, 0xFFFF), rng.randrange(1, 0xFFFF))
        kind = i % 4
        if kind == 0:       # NS, hop limit 64: dropped
            body = b"\0" * 4 + target + b"\x01\x01" + mac
            pkt = ip6_packet(src, sol, NEXT_ICMP6, icmp6(src, sol, 135, body), hop_limit=64)
            bad += 1
        elif kind == 1:     # NA, hop limit 1: dropped
            body = b"\x20\0\0\0" + socket.inet_pton(socket.AF_INET6, src) + b"\x02\x01" + mac
            pkt = ip6_packet(src, "ff02::1", NEXT_ICMP6, icmp6(src, "ff02::1", 136, body),
                             hop_limit=1)
            bad += 1
        elif kind == 2:     # RA from a global address, or from link-local with a 0-length option
            if i % 8 == 2:
                rsrc, opts = src, b""
            else:
                rsrc, opts = "fe80::77:%x" % rng.randrange(1, 0xFFFF), b"\x01\x00" + b"\0" * 6
            body = struct.pack("!BBHII", 64, 0, 1800, 0, 0) + opts
            pkt = ip6_packet(rsrc, "ff02::1", NEXT_ICMP6, icmp6(rsrc, "ff02::1", 134, body),
                             hop_limit=255)
            bad += 1
        else:               # a valid NS from a new neighbour: answered, cache entry recycled
            body = b"\0" * 4 + target + b"\x01\x01" + mac
            pkt = ip6_packet(src, sol, NEXT_ICMP6, icmp6(src, sol, 135, body), hop_limit=255)
        dst_mac = sol_mac if kind in (0, 3) else bytes.fromhex("333300000001")
        frames.append(ethernet(dst_mac, h_mac, ETH_P_IPV6, pkt))
    return frames, bad


FLOOD = 2000


def test_malformed_extension_headers_and_nd_flood_are_dropped_and_counted(guest6, summary):
    g, _peer = guest6
    ns = g.ns
    g_mac = bytes.fromhex(g.info["mac"].replace(":", ""))
    h_mac = ns.tap_mac()
    s6 = echo6_client(ns)
    replies = ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    replies.bind((HOST6, 0))
    replies.settimeout(0.2)
    sport = replies.getsockname()[1]
    probes = malformed6(g_mac, h_mac, sport)
    flood, flood_bad = nd_flood(g_mac, h_mac, random.Random(6), FLOOD)
    before = flat(g.eval("network.LAN().stats()", "import network"))

    psock = ns.packet_socket()
    try:
        for _round in range(3):
            for _name, frame, _counter in probes:
                psock.send(frame)
                time.sleep(0.002)
        t0 = time.monotonic()
        for i, frame in enumerate(flood):
            psock.send(frame)
            if i % 50 == 49:
                time.sleep(0.005)       # bursts the tap's queue holds: loss would blur counts
        flood_s = time.monotonic() - t0
    finally:
        psock.close()

    answered = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            answered.append(replies.recv(2048)[:3])
        except socket.timeout:
            pass
    replies.close()

    # echod still answers over both families.
    try:
        wait_echo(s6, timeout=10)
        for i in range(10):
            payload = b"after-flood-%d" % i
            assert udp_echo(s6, payload) == payload, \
                f"expected echod to answer over IPv6 after the flood (request {i} unanswered)"
    finally:
        s6.close()
    assert udp_echo(g.sock, b"after-flood-v4") == b"after-flood-v4", \
        "expected echod to answer over IPv4 after the flood"
    after = flat(g.eval("network.LAN().stats()", "import network"))
    assert g.vm.vm.returncode is None, "QEMU exited during the flood"

    assert not answered, \
        f"expected no echo of the malformed packets, got replies tagged {sorted(set(answered))}"
    moved = {k: after[k] - before.get(k, 0) for k in after
             if isinstance(after[k], int) and after[k] != before.get(k, 0)}
    drops6 = sum(moved.get(k, 0) for k in ("lwip.ip6.drop", "lwip.ip6_frag.drop"))
    assert drops6 >= 3 * len(probes), (
        f"expected lwip.ip6.drop (+ip6_frag.drop) to grow by >= {3 * len(probes)} for "
        f"{len(probes)} malformed kinds x3, got {drops6}; moved: {moved}")
    # Invalid ND messages are nd6.drop; router advertisements beyond the router list's
    # LWIP_ND6_NUM_ROUTERS entries are refused as nd6.memerr. Frames lost before the guest
    # (the tap's queue) are allowed for: at worst they were all invalid ones.
    nd_recv = moved.get("lwip.nd6.recv", 0)
    nd_drop = moved.get("lwip.nd6.drop", 0) + moved.get("lwip.nd6.memerr", 0)
    assert nd_recv >= FLOOD * 3 // 4, \
        f"expected the guest to see most of the {FLOOD} ND frames, nd6.recv moved by " \
        f"{nd_recv}; moved: {moved}"
    lost = max(0, FLOOD - nd_recv)
    assert nd_drop >= flood_bad - lost, (
        f"expected lwip.nd6.drop + memerr to grow by >= {flood_bad} - {lost} (lost "
        f"on the way) for the invalid ND messages in a {FLOOD}-frame flood, got {nd_drop}; "
        f"moved: {moved}")
    summary(f"ipv6: {len(probes)} malformed extension-header kinds x3 -> ip6 drops +{drops6}; "
            f"ND flood {FLOOD} frames in {flood_s:.2f} s -> nd6.recv +{nd_recv}, drop+memerr "
            f"+{nd_drop} ({flood_bad} invalid sent); echod answers")
