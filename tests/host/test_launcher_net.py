"""`--net tap` and `--net-dump`: the QEMU command lines (no QEMU runs), and the network
namespace helper (creates and removes a real namespace when running as root)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from manticore_host import netns as netns_mod
from manticore_host.netns import NetNamespace, TapAddressing
from manticore_host.qemu import VMConfig, build_command

KERNEL = Path("/img/kernel.elf")
ISO = Path("/img/kernel.iso")
REPO = Path(__file__).resolve().parents[2]


def cmd(**kw):
    kw.setdefault("kernel", KERNEL)
    kw.setdefault("iso", ISO)
    return build_command(VMConfig(**kw), "/t/qmp.sock", "/t/serial.sock", accel="tcg")


def option(command, name):
    return [command[i + 1] for i, a in enumerate(command[:-1]) if a == name]


# --------------------------------------------------------------------------- tap


def test_tap_runs_qemu_inside_the_namespace():
    c = cmd(net="tap", netns="manticore-1-1-abcd")
    assert c[:5] == ["ip", "netns", "exec", "manticore-1-1-abcd", "qemu-system-x86_64"], \
        f"expected QEMU to be started through `ip netns exec NS`, got {c[:5]}"
    assert option(c, "-netdev") == ["tap,id=net0,ifname=mtap0,script=no,downscript=no"]
    assert "virtio-net-pci,netdev=net0" in option(c, "-device")
    assert "user" not in " ".join(option(c, "-netdev"))


def test_tap_gives_the_guest_its_static_address_on_the_command_line():
    c = cmd(net="tap", netns="ns1", append="quiet")
    assert option(c, "-append") == ["quiet ip=192.168.77.2 netmask=255.255.255.0 gw=192.168.77.1"]
    c = cmd(net="tap", netns="ns1", app="echod")
    assert option(c, "-fw_cfg") == [
        "name=opt/manticore/cmdline,string=ip=192.168.77.2 netmask=255.255.255.0 "
        "gw=192.168.77.1 app=echod"], "app=NAME through fw_cfg must carry the tap addressing too"
    c = cmd(net="tap", netns="ns1", boot="iso")
    assert option(c, "-fw_cfg") == [
        "name=opt/manticore/cmdline,string=ip=192.168.77.2 netmask=255.255.255.0 gw=192.168.77.1"]


def test_tap_static_address_can_be_replaced_or_dropped():
    c = cmd(net="tap", netns="ns1", append="ip=192.168.77.9 netmask=255.255.255.0")
    assert option(c, "-append") == ["ip=192.168.77.9 netmask=255.255.255.0"]
    c = cmd(net="tap", netns="ns1", tap_static=False)
    assert "-append" not in c, "tap_static=False: the guest configures itself (DHCP)"


def test_tap_name_and_user_net_have_no_namespace():
    c = cmd(net="tap", netns="ns1", tap="vm7")
    assert option(c, "-netdev") == ["tap,id=net0,ifname=vm7,script=no,downscript=no"]
    c = cmd(net="user")
    assert c[0] == "qemu-system-x86_64" and "netns" not in c
    assert "-append" not in c, "user networking adds no static address"


def test_tap_without_namespace_refused():
    # The tap must never be created in the host's own namespace.
    with pytest.raises(ValueError, match="namespace"):
        cmd(net="tap")


@pytest.mark.parametrize("bad,message", [
    ({"net": "tap", "netns": "ns1", "tap": "a-very-long-tap-name"}, "tap"),
    ({"net": "tap", "netns": "bad name"}, "netns"),
    ({"net": "tap", "netns": "ns1", "publish": ["7777/udp"]}, "publish"),
    ({"net": "none", "net_dump": Path("/t/x.pcap")}, "net_dump"),
])
def test_tap_and_dump_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        cmd(**bad)


# --------------------------------------------------------------------------- net-dump


@pytest.mark.parametrize("net,extra", [("user", {}), ("tap", {"netns": "ns1"})])
def test_net_dump_adds_filter_dump(net, extra):
    c = cmd(net=net, net_dump=Path("/t/cap,1.pcap"), **extra)
    assert option(c, "-object") == ["filter-dump,id=dump0,netdev=net0,file=/t/cap,,1.pcap"], \
        "expected one filter-dump on net0 with the comma in the path doubled"
    assert c.index("-object") > c.index("-netdev"), "the filter must follow the netdev it names"


def test_no_dump_by_default():
    assert "-object" not in cmd(net="user")


# --------------------------------------------------------------------------- addressing


def test_tap_addressing():
    a = TapAddressing()
    assert (a.host_ip, a.netmask, a.guest_ip) == ("192.168.77.1", "255.255.255.0", "192.168.77.2")
    assert a.guest_cmdline() == "ip=192.168.77.2 netmask=255.255.255.0 gw=192.168.77.1"
    b = TapAddressing(host_cidr="10.9.0.1/16", guest_ip="10.9.0.5")
    assert b.guest_cmdline() == "ip=10.9.0.5 netmask=255.255.0.0 gw=10.9.0.1"


def test_namespace_names_are_unique_and_checked():
    names = {NetNamespace().name for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith(f"manticore-{os.getpid()}-") for n in names)
    with pytest.raises(ValueError):
        NetNamespace(name="x y")
    with pytest.raises(ValueError):
        NetNamespace(tap="sixteen-chars-xx")


def test_dry_run_prints_namespace_command_without_creating_it():
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    out = subprocess.run([sys.executable, "-m", "invoke", "run", "--net", "tap", "--dry-run",
                          "--accel", "tcg", "--boot", "kernel"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, f"expected the dry run to succeed, got {out.returncode}:\n{out.stderr}"
    assert "ip netns exec manticore-" in out.stdout and "-netdev tap,id=net0,ifname=mtap0" in out.stdout, \
        f"expected the tap command line in the dry run, got:\n{out.stdout}"
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert not {n for n in after - before if n.startswith("manticore-")}, \
        "a dry run must not create a namespace"


# --------------------------------------------------------------------------- a real namespace

needs_root = pytest.mark.skipif(not netns_mod.available()[0],
                                reason=netns_mod.available()[1] or "namespaces available")


@needs_root
@pytest.mark.timeout(60)
def test_namespace_created_and_removed():
    ns = NetNamespace()
    try:
        ns.create()
        assert ns.exists, f"expected /run/netns/{ns.name} after create()"
        links = ns.run(["ip", "-br", "addr", "show", "mtap0"], check=True).stdout
        assert "192.168.77.1/24" in links, f"expected the tap to carry 192.168.77.1/24, got {links!r}"
        host = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
        assert "mtap0" not in host.split(), "the tap must exist only inside the namespace"
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("192.168.77.1", 0))   # only possible inside the namespace
        s.close()
        with pytest.raises(OSError):
            socket.socket().bind(("192.168.77.1", 0))   # and the thread came back out
        sleeper = ns.popen(["sleep", "60"])
        assert ns.pids() == [sleeper.pid] or sleeper.pid in ns.pids()
    finally:
        ns.delete()
    assert not ns.exists, f"expected /run/netns/{ns.name} to be gone after delete()"
    assert sleeper.wait(timeout=5) is not None, "delete() must stop what ran inside"
    ns.delete()     # idempotent


@needs_root
@pytest.mark.timeout(60)
def test_namespace_removed_when_the_body_fails():
    with pytest.raises(RuntimeError, match="boom"):
        with NetNamespace() as ns:
            name = ns.name
            raise RuntimeError("boom")
    assert not os.path.exists(f"/run/netns/{name}")


@needs_root
@pytest.mark.timeout(60)
def test_stale_namespaces_of_dead_processes_are_removed():
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = NetNamespace(name=f"manticore-{dead.pid}-1-beef").create()
    live = NetNamespace().create()          # ours, this process is alive
    try:
        removed = netns_mod.remove_stale()
        assert stale.name in removed and not stale.exists
        assert live.exists, "a namespace of a live process must be left alone"
    finally:
        stale.delete()
        live.delete()


# --------------------------------------------------------------------------- NICs, queues


def test_multiqueue_tap_and_extra_nics():
    c = cmd(net="tap", netns="ns1", queues=4, nics=["user:7001:7/udp", "user"])
    assert option(c, "-netdev") == [
        "tap,id=net0,ifname=mtap0,script=no,downscript=no,queues=4",
        "user,id=net1,hostfwd=udp:127.0.0.1:7001-:7", "user,id=net2"]
    assert option(c, "-device").count("virtio-net-pci,netdev=net0,mq=on,vectors=10") == 1
    assert "virtio-net-pci,netdev=net2" in option(c, "-device")


def test_multiqueue_tap_on_microvm_has_no_msix_vectors():
    """virtio-net-device (virtio-mmio) has one interrupt line and no `vectors` property:
    QEMU refuses the PCI device's option there."""
    c = cmd(net="tap", netns="ns1", queues=2, machine="microvm", boot="kernel")
    assert "tap,id=net0,ifname=mtap0,script=no,downscript=no,queues=2" in option(c, "-netdev")
    assert "virtio-net-device,netdev=net0,mq=on" in option(c, "-device"), option(c, "-device")


def test_more_nics_on_microvm_are_virtio_mmio_devices():
    c = cmd(net="user", nics=["user:7001:7/udp"], machine="microvm", boot="kernel")
    assert option(c, "-device").count("virtio-net-device,netdev=net1") == 1, option(c, "-device")
    assert not any("virtio-net-pci" in d for d in option(c, "-device"))


def test_queues_need_tap_and_nic_specs_are_checked():
    with pytest.raises(ValueError, match="user networking has one queue only"):
        VMConfig(net="user", queues=2).validate()
    with pytest.raises(ValueError, match="1 to 8"):
        VMConfig(net="tap", queues=9).validate()
    with pytest.raises(ValueError, match="expected user"):
        VMConfig(net="none", nics=["tap"]).validate()
