"""build_command and friends: the QEMU command line for each option (no QEMU runs)."""

import struct
from pathlib import Path

import pytest

from manticore_host.qemu import (DEBUG_EXIT, VMConfig, build_command, memory_bytes,
                                 parse_publish, qemu_escape, resolve_accel, repo_root)

KERNEL = Path("/img/kernel.elf")
ISO = Path("/img/kernel.iso")


def cmd(accel="tcg", paused=False, **kw):
    kw.setdefault("kernel", KERNEL)
    kw.setdefault("iso", ISO)
    return build_command(VMConfig(**kw), "/t/qmp.sock", "/t/serial.sock",
                         accel=accel, paused=paused)


def option(command, name):
    """Values of every occurrence of option `name`."""
    return [command[i + 1] for i, a in enumerate(command[:-1]) if a == name]


def test_defaults():
    c = cmd()
    assert c[0] == "qemu-system-x86_64"
    assert option(c, "-M") == ["q35"]
    assert option(c, "-accel") == ["tcg"] and option(c, "-cpu") == ["max"]
    assert option(c, "-smp") == ["1"] and option(c, "-m") == ["128M"]
    assert option(c, "-kernel") == [str(KERNEL)]
    assert "-append" not in c and "-fw_cfg" not in c and "-cdrom" not in c
    assert option(c, "-device") == [DEBUG_EXIT]
    assert "-no-reboot" in c and option(c, "-display") == ["none"]
    assert "-nodefaults" not in c
    assert option(c, "-qmp") == ["unix:/t/qmp.sock,server=on,wait=off"]
    assert option(c, "-chardev") == ["socket,id=ser0,path=/t/serial.sock,server=on,wait=off"]
    assert option(c, "-serial") == ["chardev:ser0"]
    assert "-S" not in c and "-s" not in c and "-netdev" not in c


def test_defaults_point_at_build():
    cfg = VMConfig()
    assert cfg.kernel == repo_root() / "build" / "kernel.elf"
    assert cfg.iso == repo_root() / "build" / "kernel.iso"
    assert (repo_root() / "tasks.py").is_file()


@pytest.mark.parametrize("machine", ["q35", "pc", "microvm"])
def test_machines_direct_boot(machine):
    assert option(cmd(machine=machine), "-M") == [machine]


def elf_with_segment(path: Path, paddr: int, memsz: int) -> Path:
    """A minimal ELF64 with one PT_LOAD of memsz bytes at physical address paddr."""
    header = struct.pack("<4sBBBB8xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 2, 62, 1,
                         paddr, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, paddr, paddr, 0, memsz, 4096)
    path.write_bytes(header + segment)
    return path


def test_memory_below_the_image_end_is_refused(tmp_path):
    elf = elf_with_segment(tmp_path / "k.elf", 0x100000, 0x350000)     # ends at 4.3 MiB
    with pytest.raises(ValueError, match=r"k.elf is loaded up to 4.3 MiB, beyond the VM's RAM"):
        VMConfig(boot="kernel", kernel=elf, memory="4M").validate()
    VMConfig(boot="kernel", kernel=elf, memory="5M").validate()
    VMConfig(boot="kernel", kernel=elf, memory="0.5G").validate()
    bzimage = tmp_path / "vmlinuz"
    bzimage.write_bytes(b"MZ" + bytes(4094))        # not an ELF: QEMU's own rules apply
    VMConfig(boot="kernel", kernel=bzimage, memory="4M").validate()
    assert memory_bytes("4M") == memory_bytes("4096K") == memory_bytes("4") == 4 << 20
    assert memory_bytes("1G") == 1 << 30


def test_machine_options_follow_the_type():
    c = cmd(machine="microvm", machine_options="acpi=off,pit=on")
    assert option(c, "-M") == ["microvm,acpi=off,pit=on"]
    for bad in ("acpi off", "acpi=off,", "x=1;rm", ",acpi=off"):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            VMConfig(machine="microvm", machine_options=bad).validate()


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_iso_boot(machine):
    c = cmd(boot="iso", machine=machine)
    assert option(c, "-cdrom") == [str(ISO)] and option(c, "-boot") == ["d"]
    assert "-kernel" not in c


def test_iso_on_microvm_refused():
    with pytest.raises(ValueError, match="microvm.*q35 or pc"):
        cmd(boot="iso", machine="microvm")


@pytest.mark.parametrize("boot", ["kernel", "iso"])
def test_uefi_on_microvm_refused_with_one_way_out(boot):
    # Not "use boot=iso" for one and "use boot=kernel" for the other: a loop of advice.
    with pytest.raises(ValueError, match="microvm has no UEFI firmware.*boot=kernel with "
                                         "firmware bios; UEFI needs machine q35 or pc"):
        cmd(boot=boot, machine="microvm", firmware="uefi")


def test_uefi_on_pc_without_acpi_refused():
    # OVMF spins silently there; q35 keeps its ACPI tables under acpi=off and boots.
    with pytest.raises(ValueError, match="OVMF does not start on pc with acpi=off.*firmware bios"):
        cmd(boot="iso", machine="pc", machine_options="acpi=off", firmware="uefi")
    assert "-bios" in cmd(boot="iso", machine="q35", machine_options="acpi=off", firmware="uefi")
    assert "-bios" in cmd(boot="iso", machine="pc", firmware="uefi")


def test_pc_without_acpi_gets_a_socket_per_cpu():
    # SeaBIOS's MP table lists one CPU per package: the only CPU list without ACPI.
    assert option(cmd(machine="pc", machine_options="acpi=off", cpus=4), "-smp") == ["4,sockets=4"]
    assert option(cmd(machine="pc", cpus=4), "-smp") == ["4"]
    assert option(cmd(machine="microvm", machine_options="acpi=off", cpus=4), "-smp") == ["4"]


def test_kvm_uses_host_cpu():
    c = cmd(accel="kvm")
    assert option(c, "-accel") == ["kvm"] and option(c, "-cpu") == ["host"]
    assert option(cmd(accel="kvm", cpu="qemu64"), "-cpu") == ["qemu64"]


def test_cpus_memory():
    c = cmd(cpus=4, memory="1G")
    assert option(c, "-smp") == ["4"] and option(c, "-m") == ["1G"]


@pytest.mark.parametrize("bad", [{"cpus": 0}, {"memory": "lots"}, {"machine": "virt"},
                                 {"boot": "pxe"}, {"serial": "tcp"}, {"net": "wifi"},
                                 {"accel": "hvf"}])
def test_bad_values(bad):
    with pytest.raises(ValueError):
        cmd(**bad)


def test_append_direct_boot():
    c = cmd(append="quiet foo=1,2")
    assert option(c, "-append") == ["quiet foo=1,2"]   # its own argv word: no escaping
    assert "-fw_cfg" not in c


def test_append_iso_goes_through_fw_cfg():
    c = cmd(boot="iso", append="quiet")
    assert "-append" not in c
    assert option(c, "-fw_cfg") == ["name=opt/manticore/cmdline,string=quiet"]


def test_app_direct_boot_repeats_append():
    c = cmd(app="echod", append="quiet")
    assert option(c, "-append") == ["quiet"]
    assert option(c, "-fw_cfg") == ["name=opt/manticore/cmdline,string=quiet app=echod"]


def test_app_iso():
    assert option(cmd(boot="iso", app="echod"), "-fw_cfg") == \
        ["name=opt/manticore/cmdline,string=app=echod"]


def test_explicit_fw_cfg_cmdline_and_commas():
    c = cmd(fw_cfg_cmdline="a=1,2,,3", append="ignored")
    assert option(c, "-fw_cfg") == ["name=opt/manticore/cmdline,string=a=1,,2,,,,3"]
    c = cmd(fw_cfg_cmdline="x", app="web")
    assert option(c, "-fw_cfg") == ["name=opt/manticore/cmdline,string=x app=web"]


def test_qemu_escape():
    assert qemu_escape("a,b") == "a,,b"
    assert qemu_escape("plain") == "plain"
    assert qemu_escape(",,") == ",,,,"


def test_serial_stdio_is_muxed_with_monitor():
    c = cmd(serial="stdio")
    assert option(c, "-chardev") == ["stdio,id=ser0,mux=on,signal=off"]
    assert option(c, "-serial") == ["chardev:ser0"]
    assert option(c, "-mon") == ["chardev=ser0,mode=readline"]


def test_serial_pty():
    c = build_command(VMConfig(serial="pty", kernel=KERNEL), None, None, accel="tcg")
    assert option(c, "-serial") == ["pty"] and "-chardev" not in c and "-qmp" not in c


def test_serial_unix_path_with_comma():
    c = cmd(serial="unix:/tmp/a,b.sock")
    assert option(c, "-chardev") == ["socket,id=ser0,path=/tmp/a,,b.sock,server=on,wait=off"]


def test_qmp_path_with_comma_refused():
    with pytest.raises(ValueError, match="comma"):
        build_command(VMConfig(kernel=KERNEL), "/t/a,b", "/t/s", accel="tcg")


def test_debug_exit_can_be_dropped():
    assert DEBUG_EXIT not in cmd(debug_exit=False)


def test_gdb_and_paused():
    c = cmd(gdb=True)
    assert "-s" in c and c.count("-S") == 1
    c = cmd(paused=True)
    assert "-S" in c and "-s" not in c
    assert cmd(gdb=True, paused=True).count("-S") == 1


def test_extra_args_last():
    c = cmd(extra_args=["-d", "int"])
    assert c[-2:] == ["-d", "int"]


def test_publish_stored_without_net():
    c = cmd(publish=["8080:80"])
    assert "-netdev" not in c


def test_net_user_with_publish():
    c = cmd(net="user", publish=["8080:80", "5353:53/udp", "2222"])
    assert option(c, "-netdev") == [
        "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:53,"
        "hostfwd=tcp:127.0.0.1:2222-:2222"]
    assert "virtio-net-pci,netdev=net0" in option(c, "-device")


def test_net_on_microvm_is_virtio_mmio():
    c = cmd(net="user", machine="microvm", publish=["7777/udp"])
    devices = option(c, "-device")
    assert "virtio-net-device,netdev=net0" in devices and "virtio-rng-device" in devices
    assert not any("-pci" in d for d in devices), devices
    assert "virtio-mmio.force-legacy=false" in option(c, "-global")


def test_microvm_without_net_still_gets_rng():
    c = cmd(machine="microvm")
    assert "virtio-rng-device" in option(c, "-device") and "-netdev" not in c


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_firmware(firmware):
    c = cmd(boot="iso", firmware=firmware)
    from manticore_host.qemu import OVMF
    assert (option(c, "-bios") == [str(OVMF)]) == (firmware == "uefi"), c


@pytest.mark.parametrize("bad,message", [
    ({"firmware": "coreboot", "boot": "iso"}, "firmware"),
    ({"firmware": "uefi", "boot": "kernel"}, "boot=iso"),
])
def test_firmware_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        cmd(**bad)


@pytest.mark.parametrize("spec,expected", [
    ("80", (80, 80, "tcp")),
    ("8080:80", (8080, 80, "tcp")),
    ("53/udp", (53, 53, "udp")),
    ("5353:53/UDP", (5353, 53, "udp")),
    ("1:65535/tcp", (1, 65535, "tcp")),
])
def test_parse_publish(spec, expected):
    assert tuple(parse_publish(spec)) == expected


@pytest.mark.parametrize("spec,message", [
    ("", "HOST\\[:GUEST\\]"),
    ("http", "HOST\\[:GUEST\\]"),
    ("80:", "HOST\\[:GUEST\\]"),
    ("80:80:80", "HOST\\[:GUEST\\]"),
    ("0", "host port 0"),
    ("70000:80", "host port 70000"),
    ("80:70000", "guest port 70000"),
    ("80/sctp", "protocol 'sctp'"),
])
def test_parse_publish_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_publish(spec)


def test_bad_publish_fails_validation():
    with pytest.raises(ValueError, match="outside"):
        cmd(publish=["99999"])


def test_resolve_accel_explicit():
    assert resolve_accel("tcg")[0] == "tcg"
    assert resolve_accel("kvm")[0] == "kvm"
    with pytest.raises(ValueError):
        resolve_accel("fast")
