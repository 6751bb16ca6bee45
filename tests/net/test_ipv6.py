"""IPv6 beside IPv4 (lwIP dual stack, ports/manticore/patches/0003-modlwip-ipv6.patch).

Under QEMU user networking: the link-local address and a SLAAC address from slirp's router
advertisement (fec0::/64), shown by network.LAN().ipconfig('addr6'); getaddrinfo with both
families; an IPv6 UDP exchange with slirp's host side.  Over a tap in the run's network
namespace (IPv6 enabled there for these tests only): UDP echo both ways over IPv6 with a
static ip6= address, and malformed extension headers and a neighbour discovery flood that
are dropped and counted while echod keeps answering."""

import pytest

from nettools import guest_eval, net_up

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


def test_slaac_address_under_user_networking(boot):
    vm = boot(net="user")
    info = net_up(vm)
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
