"""Network namespaces with a tap device, for `--net tap` runs, tests and benchmarks.

    from manticore_host.netns import NetNamespace

    with NetNamespace() as ns:                  # ip netns add manticore-PID-N-XXXX; tap inside
        ns.run(["ip", "addr"])                  # a command inside the namespace
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)   # a socket that lives in it
        ...                                     # the namespace and its tap are gone afterwards

Everything a namespace holds (the tap device, its address, the routes) exists only inside
it: traffic to the guest's 192.168.77.0/24 never reaches the host's own interfaces, and
deleting the namespace removes the tap with it.  QEMU runs inside the namespace
(`ip netns exec NS qemu-system-x86_64 ... -netdev tap,ifname=TAP,script=no`), so it opens
the tap there.  Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), as CI has.

Host-side code talks to the guest either through `run`/`popen` (a process inside the
namespace) or through `socket` (this process's thread enters the namespace just long enough
to create the socket with setns(2); the socket stays bound to the namespace).
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = "manticore-"
TAP = "mtap0"
HOST_CIDR = "192.168.77.1/24"
GUEST_IP = "192.168.77.2"
# IPv6 on the tap (NetNamespace(ipv6=True) only): a unique-local /64 (RFC 4193), the guest
# static from ip6= on its command line.
HOST6_CIDR = "fd77::1/64"
GUEST6_IP = "fd77::2"
CLONE_NEWNET = 0x40000000           # <sched.h>
NETNS_RUN_DIR = Path("/run/netns")  # where `ip netns add` pins namespaces
COMMAND_TIMEOUT = 20.0

_counter = itertools.count(1)
_libc = None


class NetnsError(RuntimeError):
    """A namespace could not be set up; the message has the failing command and its output."""


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


def available() -> tuple[bool, str]:
    """(True, "") when this process can create namespaces and taps, else (False, why not)."""
    if os.geteuid() != 0:
        return False, "network namespaces and tap devices need root"
    if shutil.which("ip") is None:
        return False, "the `ip` command (iproute2) is not installed"
    if not os.path.exists("/dev/net/tun"):
        return False, "/dev/net/tun does not exist (no tun/tap support)"
    return True, ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(log=None) -> list[str]:
    """Delete namespaces this module created in processes that no longer exist (a run that
    was killed before its cleanup); returns their names.  Other namespaces are left alone."""
    removed = []
    try:
        names = sorted(p.name for p in NETNS_RUN_DIR.iterdir())
    except OSError:
        return removed
    for name in names:
        m = re.fullmatch(re.escape(PREFIX) + r"(\d+)-\d+-[0-9a-f]+", name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        ns = NetNamespace(name=name)
        ns._created = True
        ns.delete()
        removed.append(name)
        if log:
            log(f"netns: removed stale namespace {name}")
    return removed


@dataclass(frozen=True)
class TapAddressing:
    """The layer-3 plan for a tap link: the host end and the guest (static, from the kernel
    command line ip=/netmask=/gw=)."""
    host_cidr: str = HOST_CIDR
    guest_ip: str = GUEST_IP

    @property
    def host_ip(self) -> str:
        return str(ipaddress.ip_interface(self.host_cidr).ip)

    @property
    def netmask(self) -> str:
        return str(ipaddress.ip_interface(self.host_cidr).netmask)

    def guest_cmdline(self) -> str:
        """Kernel command line words giving the guest its static configuration."""
        return f"ip={self.guest_ip} netmask={self.netmask} gw={self.host_ip}"


class NetNamespace:
    """One network namespace holding one tap device with the host-side address; a context
    manager (created on entry, deleted with everything in it on exit, whatever happened)."""

    def __init__(self, name: str | None = None, tap: str = TAP,
                 addressing: TapAddressing = TapAddressing(), mtu: int = 1500,
                 multi_queue: bool = False, ipv6: bool = False):
        if name is None:
            name = f"{PREFIX}{os.getpid()}-{next(_counter)}-{secrets.token_hex(2)}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(f"namespace name {name!r}: expected letters, digits, _ . -")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", tap):
            raise ValueError(f"tap name {tap!r}: expected at most 15 letters, digits, _ . -")
        self.name = name
        self.tap = tap
        self.addressing = addressing
        self.mtu = mtu
        self.multi_queue = multi_queue      # a tap QEMU opens once per queue (queues=N)
        self.ipv6 = ipv6                    # HOST6_CIDR on the tap as well
        self._created = False

    # -- lifecycle --

    def _ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["ip", *args]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise NetnsError(f"`{' '.join(cmd)}` did not finish in {COMMAND_TIMEOUT:g} s") from None
        if check and result.returncode != 0:
            raise NetnsError(f"`{' '.join(cmd)}` failed (status {result.returncode}): "
                             f"{(result.stderr or result.stdout).strip()}")
        return result

    def create(self) -> "NetNamespace":
        ok, why = available()
        if not ok:
            raise NetnsError(f"cannot create a network namespace: {why}")
        self._ip("netns", "add", self.name)
        self._created = True
        try:
            n = ("-n", self.name)
            # IPv4 only unless asked: no IPv6 router solicitations or MLD reports from the
            # host end, so every frame the guest sees on the tap was sent on purpose. With
            # ipv6, the tap gets HOST6_CIDR without duplicate address detection (usable at
            # once) and ignores router advertisements.
            v6 = "0" if self.ipv6 else "1"
            self._sysctl("net/ipv6/conf/default/disable_ipv6", v6)
            self._sysctl("net/ipv6/conf/all/disable_ipv6", v6)
            if self.ipv6:
                self._sysctl("net/ipv6/conf/default/accept_ra", "0")
                self._sysctl("net/ipv6/conf/default/accept_dad", "0")
            self._ip(*n, "link", "set", "lo", "up")
            self._ip(*n, "tuntap", "add", "dev", self.tap, "mode", "tap",
                     *(("multi_queue",) if self.multi_queue else ()))
            self._ip(*n, "link", "set", self.tap, "mtu", str(self.mtu))
            self._ip(*n, "addr", "add", self.addressing.host_cidr, "dev", self.tap)
            if self.ipv6:
                self._ip(*n, "addr", "add", HOST6_CIDR, "dev", self.tap, "nodad")
            self._ip(*n, "link", "set", self.tap, "up")
        except BaseException:
            self.delete()
            raise
        return self

    def _sysctl(self, key: str, value: str) -> None:
        """Set /proc/sys/KEY inside the namespace (silently skipped where it does not exist,
        e.g. a kernel without IPv6)."""
        path = f"/proc/sys/{key}"
        self.run(["sh", "-c", f"[ ! -e {path} ] || echo {value} > {path}"], check=True)

    def pids(self) -> list[int]:
        """Processes running inside the namespace (all started by us: QEMU, helpers)."""
        if not self._created:
            return []
        result = self._ip("netns", "pids", self.name, check=False)
        return [int(p) for p in result.stdout.split() if p.isdigit()]

    def delete(self) -> None:
        """Stop what still runs inside (SIGTERM, then SIGKILL), delete the namespace with its
        tap.  Idempotent; never raises for a namespace that is already gone."""
        if not self._created:
            return
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        self._ip("netns", "del", self.name, check=False)
        self._created = False

    @property
    def exists(self) -> bool:
        return (NETNS_RUN_DIR / self.name).exists()

    def __enter__(self) -> "NetNamespace":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()

    # -- doing things inside --

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT, check: bool = False,
            **kw) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (captured text output, bounded time)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.prefix() + [str(a) for a in argv], timeout=timeout,
                              check=check, **kw)

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        """Start a command inside the namespace (the caller waits for it or kills it)."""
        return subprocess.Popen(self.prefix() + [str(a) for a in argv], **kw)

    @contextmanager
    def entered(self):
        """Run the body with this thread inside the namespace (setns(2) is per thread);
        sockets created in it stay in the namespace after the thread leaves."""
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
        try:
            target = os.open(NETNS_RUN_DIR / self.name, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield self
            finally:
                _setns(own)
        finally:
            os.close(own)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
               proto: int = 0) -> socket.socket:
        """A socket created inside the namespace (usable from any thread)."""
        with self.entered():
            return socket.socket(family, type, proto)

    def packet_socket(self) -> socket.socket:
        """A raw AF_PACKET socket bound to the tap: whole Ethernet frames in and out."""
        s = self.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
        s.bind((self.tap, 0))
        return s

    def tap_mac(self) -> bytes:
        """The tap's (host side's) MAC address."""
        out = self.run(["cat", f"/sys/class/net/{self.tap}/address"], check=True).stdout
        return bytes.fromhex(out.strip().replace(":", ""))

    def neighbour(self, ip: str) -> tuple[str | None, str]:
        """(MAC or None, state) of `ip` in the namespace's ARP table."""
        out = self.run(["ip", "neigh", "show", ip, "dev", self.tap]).stdout.split()
        mac = out[out.index("lladdr") + 1] if "lladdr" in out else None
        return mac, (out[-1] if out else "absent")

    def tap_stats(self) -> dict[str, dict[str, int]]:
        """The tap's kernel counters: {"rx": {"packets": .., "dropped": ..}, "tx": {...}}."""
        out = self._ip("-n", self.name, "-s", "-j", "link", "show", self.tap).stdout
        return json.loads(out)[0]["stats64"]


