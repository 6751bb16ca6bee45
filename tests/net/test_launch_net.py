"""The launcher's network plumbing with a real QEMU: `net="tap"` creates its namespace and
removes it with everything inside (also when QEMU fails to start), and `net_dump` writes a
pcap of the NIC's traffic."""

import os
import socket
import struct

import pytest

from manticore_host.echobench import free_port
from manticore_host.qemu import VM, VMConfig, VMStartError
from nettools import GUEST_IP, InvokeRun, net_up, udp_echo, wait_echo

pytestmark = pytest.mark.timeout(60)


def netns_names() -> set:
    try:
        return {n for n in os.listdir("/run/netns") if n.startswith("manticore-")}
    except OSError:
        return set()


def test_tap_vm_creates_and_removes_its_namespace(namespaces_ok, boot):
    before = netns_names()
    vm = boot(net="tap")
    ns = vm.vm.netns
    assert ns is not None and ns.exists and ns.name not in before, \
        f"expected a fresh namespace for the VM, got {ns and ns.name} (existing: {before})"
    pids = ns.pids()
    assert vm.vm.proc.pid in pids, f"expected QEMU (pid {vm.vm.proc.pid}) inside {ns.name}, found {pids}"
    info = net_up(vm)
    assert info["ifconfig"][0] == GUEST_IP, f"expected the static {GUEST_IP}, got {info}"
    vm.vm.close()
    assert not ns.exists, f"expected {ns.name} to be removed when the VM closed"
    assert netns_names() <= before, f"namespaces left behind: {netns_names() - before}"


def test_invoke_run_multiqueue_tap(namespaces_ok):
    """`invoke run --net tap --queues 2`: the run's namespace holds a multi_queue tap
    (QEMU opens it once per pair), the guest gets both pairs, and the namespace is gone
    after Ctrl-A X."""
    before = netns_names()
    with InvokeRun("--boot", "kernel", "--net", "tap", "--queues", "2",
                   "--accel", "tcg") as run:
        run.wait_for(b">>> ")
        assert "2 queue pairs (of 2)" in run.text(), run.text()
        status = run.quit()
        assert status == 0, f"expected status 0 after Ctrl-A X, got {status}:\n{run.text()}"
    assert netns_names() <= before, f"expected the run's namespace removed, left {netns_names() - before}"


def test_tap_namespace_removed_when_qemu_fails_to_start(namespaces_ok, tmp_path):
    before = netns_names()
    kernel = tmp_path / "kernel.elf"
    kernel.write_bytes(b"not an ELF")
    cfg = VMConfig(net="tap", kernel=kernel, accel="tcg")
    with pytest.raises(VMStartError):
        with VM(cfg) as vm:
            vm.start(timeout=10)
    assert netns_names() <= before, \
        f"expected no namespace left after a failed start, found {netns_names() - before}"


def read_pcap(path) -> list[bytes]:
    data = path.read_bytes()
    assert len(data) >= 24, f"expected at least a pcap header in {path}, got {len(data)} bytes"
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and linktype == 1, \
        f"expected a little-endian Ethernet pcap, got magic {magic:#x} linktype {linktype}"
    frames, off = [], 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        frames.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return frames


def test_net_dump_records_the_echo(boot, tmp_path):
    dump = tmp_path / "net0.pcap"
    port = free_port()
    vm = boot(app="echod", net="user", publish=[f"{port}:7777/udp"], net_dump=dump,
              wait_prompt=False)
    vm.console.read_until(b"echod: listening on 7777/udp", timeout=30)
    token = b"pcap-marker-" + os.urandom(8).hex().encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        wait_echo(s)
        assert udp_echo(s, token) == token
    vm.vm.close()                       # QEMU flushes and closes the dump
    frames = read_pcap(dump)
    with_token = [f for f in frames if token in f]
    assert len(with_token) >= 2, (f"expected the request and its echo in the pcap "
                                  f"({len(frames)} frames), found {len(with_token)} with the marker")
    kinds = {struct.unpack("!H", f[12:14])[0] for f in frames if len(f) >= 14}
    assert 0x0800 in kinds, f"expected IPv4 frames in the dump, got ethertypes {sorted(map(hex, kinds))}"
