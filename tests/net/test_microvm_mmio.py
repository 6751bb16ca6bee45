"""microvm: no PCI, virtio over virtio-mmio (virtio 1.2, 4.2). echod answers UDP echoes
through virtio-net-device behind user networking, os.urandom is fed by virtio-rng-device with
its interrupt through the I/O APIC, devices are found from the DSDT (ACPI on) and from
QEMU's virtio_mmio.device= words (acpi=off), and bad words are reported and skipped."""

import json
import socket

import pytest

from nettools import udp_echo, wait_echo

pytestmark = pytest.mark.timeout(150)

ECHO_PORT = 7777


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_echod_on_microvm_over_virtio_mmio(boot, summary):
    port = free_udp_port()
    vm = boot(machine="microvm", app="echod", net="user", publish=[f"{port}:{ECHO_PORT}/udp"],
              wait_prompt=False)
    log = vm.console.read_until(b"listening", timeout=60).decode("utf-8", "replace")
    assert "virtio-net: eth0 mmio@" in log, f"expected virtio-net on a virtio-mmio transport:\n{log}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        wait_echo(s)
        bad = []
        for size in (0, 1, 64, 512, 1472) * 20:
            payload = bytes((size + i) & 0xFF for i in range(size))
            if udp_echo(s, payload, timeout=2.0) != payload:
                bad.append(size)
        assert not bad, f"echoes lost or wrong over virtio-mmio for sizes {sorted(set(bad))}"
    summary("microvm echod over virtio-mmio: 100 UDP echoes")


def rng_state(vm) -> dict:
    return json.loads(vm.repl("import os, pci, json; n = len(os.urandom(64)); "
                              "print(json.dumps(dict(pci.virtio_rng(), n=n)))"))


def test_urandom_uses_virtio_rng_on_microvm(boot):
    vm = boot(machine="microvm")
    assert "virtio-rng: mmio@" in vm.banner, f"expected virtio-rng on virtio-mmio:\n{vm.banner}"
    got = rng_state(vm)
    assert got["n"] == 64 and got["irq_mode"] == "ioapic", got
    assert got["bytes"] >= 64 and got["interrupts"] >= 1, (
        f"expected os.urandom to take the device's bytes with an interrupt, got {got}")


def test_a_queue_on_virtio_mmio_is_held_only_where_its_interrupt_goes(boot):
    """virtio-mmio interrupts come through one I/O APIC line each, routed to CPU 0: a pair
    cannot be steered to another CPU, so acquiring it on CPU 1 fails and says where it can
    be held, and the pair stays lwIP's."""
    vm = boot(machine="microvm", net="user", cpus=2, memory="256M", append="replcpu=1")
    out = vm.repl("import _nic; q = _nic.queue(0, 0); q.acquire()")
    assert "OSError: the queue's interrupts cannot be steered to CPU 1: acquire it on CPU 0" in out, out
    assert vm.repl("q.acquired(), q.stats()['cpu'], q.stats()['owner']") == "(False, 0, 'lwip')"


def test_cmdline_words_and_bad_words(boot):
    """acpi=off: QEMU puts virtio_mmio.device= words on the command line instead; ours (bad
    ones) are reported and skipped, the good ones still work."""
    bad = ("virtio_mmio.device=512@0x1000000:5 "      # inside RAM
           "virtio_mmio.device=512@0xfe000000:6 "     # nothing there
           "virtio_mmio.device=junk "
           "virtio_mmio.device=4@0xfeb08000:7")       # too small to be a device
    vm = boot(machine="microvm", append=bad, extra_args=["-machine", "acpi=off"])
    banner = vm.banner
    for expected in ("overlaps RAM", "no virtio device there", "'virtio_mmio.device=junk'",
                     "is not a device's"):
        assert expected in banner, f"expected {expected!r} reported:\n{banner}"
    assert "(cmdline)" in banner and "virtio-rng: mmio@" in banner, banner
    got = rng_state(vm)
    assert got["n"] == 64 and got["interrupts"] >= 1, got


def test_bad_words_leave_the_nic_working(boot):
    """acpi=off, bad virtio_mmio.device= words (inside RAM, nothing there) before QEMU's
    own: both reported and skipped, and virtio-net found from QEMU's word answers echoes."""
    port = free_udp_port()
    bad = "virtio_mmio.device=4K@0x200000:5 virtio_mmio.device=512@0xd0000000:6"
    vm = boot(machine="microvm", app="echod", net="user", publish=[f"{port}:{ECHO_PORT}/udp"],
              append=bad, extra_args=["-machine", "acpi=off"], wait_prompt=False)
    log = vm.console.read_until(b"listening", timeout=60).decode("utf-8", "replace")
    for expected in ("0x200000+0x1000 overlaps RAM", "0xd0000000: no virtio device there",
                     "virtio-net: eth0 mmio@"):
        assert expected in log, f"expected {expected!r}:\n{log}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        wait_echo(s)
        payload = bytes(range(256)) * 4
        assert all(udp_echo(s, payload, timeout=2.0) == payload for _ in range(10))


def test_legacy_virtio_mmio_devices_work(boot, tmp_path):
    """QEMU's default virtio-mmio is legacy (version 1, virtio 1.2 4.2.4): forced back on, the
    same drivers run over it: echod answers, os.urandom takes virtio-rng's bytes, and a
    disk is formatted and keeps a file."""
    import subprocess
    image = tmp_path / "vda.img"
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    port = free_udp_port()
    vm = boot(machine="microvm", app="echod", net="user", publish=[f"{port}:{ECHO_PORT}/udp"],
              disks=[image], append="repl=1",
              extra_args=["-global", "virtio-mmio.force-legacy=true"])
    banner = vm.banner
    for expected in ("device type 1 (acpi, legacy)", "device type 2 (acpi, legacy)",
                     "device type 4 (acpi, legacy)", "virtio-net: eth0 mmio@",
                     "virtio-blk: vda at mmio@", "virtio-rng: mmio@", "fs: / is vda (lfs2"):
        assert expected in banner, f"expected {expected!r}:\n{banner}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        wait_echo(s)
        for size in (1, 64, 512, 1472):
            payload = bytes((size + i) & 0xFF for i in range(size))
            assert udp_echo(s, payload, timeout=2.0) == payload, f"echo of {size} bytes"
    got = rng_state(vm)
    assert got["n"] == 64 and got["interrupts"] >= 1, got
    vm.repl("f = open('/legacy.txt', 'w'); f.write('kept'); f.close()")
    assert vm.repl("print(open('/legacy.txt').read())") == "kept"


def test_a_disk_on_microvm_is_root_and_keeps_a_file(boot, tmp_path):
    """virtio-blk-device (virtio-mmio): an all-zero disk is formatted, mounted at /, and a
    file written there is read back after a reboot."""
    import subprocess
    image = tmp_path / "vda.img"
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    vm = boot(machine="microvm", disks=[image])
    assert "virtio-blk: vda at mmio@" in vm.banner, vm.banner
    assert "fs: / is vda (lfs2" in vm.banner, vm.banner
    vm.repl("f = open('/kept.txt', 'w'); f.write('kept over mmio'); f.close()")
    vm.repl("import os; os.sync()")
    vm.kill()
    vm2 = boot(machine="microvm", disks=[image])
    assert vm2.repl("print(open('/kept.txt').read())") == "kept over mmio"


def test_two_disks_and_two_nics_on_microvm_are_all_found(boot, tmp_path):
    """Every virtio-mmio device of a type is bound, not only the first: each probe asks for
    the nth device of its type in turn (a second NIC and a second disk were skipped when
    only unbound devices were counted)."""
    import subprocess
    disks = [tmp_path / "vda.img", tmp_path / "vdb.img"]
    for d in disks:
        subprocess.run(["truncate", "-s", "4M", str(d)], check=True)
    port = free_udp_port()
    vm = boot(machine="microvm", disks=disks, net="user", nics=[f"user:{port}:7/udp"],
              app="rawecho", append="repl=1 nic=eth1", wait_prompt=False)
    vm.console.read_until(b"on eth1", timeout=60)
    log = vm.console.log.decode("utf-8", "replace")
    for line in ("virtio-blk: vda at mmio@", "virtio-blk: vdb at mmio@",
                 "virtio-net: eth0 mmio@", "virtio-net: eth1 mmio@"):
        assert line in log, f"expected {line!r} on the console:\n{log}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        wait_echo(s)
        lost = [i for i in range(50) if udp_echo(s, b"eth1-%d" % i, timeout=2.0) != b"eth1-%d" % i]
        assert not lost, f"rawecho on eth1 (virtio-mmio) lost {lost[:10]}"


def test_more_nics_than_the_driver_takes_are_said(boot):
    """Five NICs on microvm: the driver binds VIRTIO_NET_MAX_DEVICES (4) and says so."""
    vm = boot(machine="microvm", net="user", nics=["user"] * 4)
    assert "virtio-net: 5 NICs, only the first 4 are used (VIRTIO_NET_MAX_DEVICES)" \
        in vm.banner, vm.banner
    assert "virtio-net: eth3 mmio@" in vm.banner and "eth4" not in vm.banner, vm.banner
