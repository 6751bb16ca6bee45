"""The one QEMU launcher: used by `invoke run`, the tests and the benchmarks.

    from manticore_host.qemu import VMConfig, VM

    with VM(VMConfig(boot="kernel", machine="q35")).start() as vm:
        vm.console.expect_prompt()
        assert vm.console.repl("1 + 1") == "2"
        vm.console.write("import machine; machine.poweroff()\\r")
        assert vm.wait(10) == 0

`build_command` turns a `VMConfig` into QEMU's argument list; `VM` runs it
with QMP and the serial console on unix sockets in a private temporary
directory, starting the guest paused and letting it run only once both are
connected, so that no serial output is ever lost.  `resolve_accel` decides
between KVM and TCG (KVM only after a probe boot succeeded).

Networking: net="user" (QEMU's slirp; `publish` becomes hostfwd on
127.0.0.1) or net="tap" (VM.start creates a network namespace holding a tap
device, runs QEMU inside it and removes both at close; see netns.py; the
guest gets ip=/netmask=/gw= on its command line).  `net_dump` writes a pcap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

QEMU = "qemu-system-x86_64"
MACHINES = ("q35", "pc", "microvm")
ACCELS = ("auto", "kvm", "tcg")
BOOTS = ("kernel", "iso")
NETS = ("none", "user", "tap")
FIRMWARES = ("bios", "uefi")
# Debian's ovmf package: OVMF with its variable store in one image, for -bios.
OVMF = Path("/usr/share/ovmf/OVMF.fd")
FW_CFG_CMDLINE = "opt/manticore/cmdline"
DEBUG_EXIT = "isa-debug-exit,iobase=0xf4,iosize=0x04"
PROMPT = b">>> "
KVM_PROBE_SECONDS = 5.0


def repo_root() -> Path:
    """The repository root (the directory holding tasks.py)."""
    return Path(__file__).resolve().parent.parent


# -- configuration -----------------------------------------------------------

class PortForward(NamedTuple):
    host: int
    guest: int
    proto: str = "tcp"

    def hostfwd(self) -> str:
        # Bound to loopback only: a published port is for this machine's
        # clients, not for the network the host sits on.
        return f"hostfwd={self.proto}:127.0.0.1:{self.host}-:{self.guest}"

    def __str__(self) -> str:
        return f"{self.host}->{self.guest}/{self.proto}"


_PUBLISH = re.compile(r"^(\d+)(?::(\d+))?(?:/([A-Za-z]+))?$")


def extra_nic_netdev(spec: str, netdev_id: str) -> str:
    """The -netdev value of an extra NIC: "user" or "user:HOST[:GUEST][/PROTO],..." (user
    networking with forwards from 127.0.0.1, as `publish`)."""
    kind, _, forwards = spec.partition(":")
    if kind != "user":
        raise ValueError(f"nic {spec!r}: expected user or user:HOST[:GUEST][/PROTO],...")
    fwd = [parse_publish(f) for f in forwards.split(",") if f]
    return f"user,id={netdev_id}" + "".join("," + p.hostfwd() for p in fwd)


def parse_publish(spec: str) -> PortForward:
    """Parse HOST[:GUEST][/PROTO] (proto tcp|udp, default tcp; GUEST
    defaults to HOST).  Raises ValueError saying what is wrong."""
    m = _PUBLISH.match(spec.strip())
    if not m:
        raise ValueError(f"--publish {spec!r}: expected HOST[:GUEST][/PROTO], "
                         "e.g. 8080, 8080:80 or 5353:53/udp")
    host = int(m.group(1))
    guest = int(m.group(2)) if m.group(2) else host
    proto = (m.group(3) or "tcp").lower()
    for what, port in (("host", host), ("guest", guest)):
        if not 1 <= port <= 65535:
            raise ValueError(f"--publish {spec!r}: {what} port {port} is "
                             "outside 1..65535")
    if proto not in ("tcp", "udp"):
        raise ValueError(f"--publish {spec!r}: protocol {proto!r} is not "
                         "tcp or udp")
    return PortForward(host, guest, proto)


@dataclass
class Disk:
    """A virtio-blk disk: a raw image file (the guest's vda, vdb... in this order)."""
    path: Path
    readonly: bool = False          # -drive readonly=on: the guest sees VIRTIO_BLK_F_RO
    modern_only: bool = False       # disable-legacy=on (virtio 1.x only)
    vectors: int | None = None      # MSI-X vectors (0: none, the INTx fallback)

    def args(self, index: int, microvm: bool = False) -> list[str]:
        drive = (f"if=none,id=disk{index},format=raw,file={qemu_escape(os.fspath(self.path))}"
                 + (",readonly=on" if self.readonly else ""))
        if microvm:
            # No PCI: a virtio-mmio transport (version 2: -global virtio-mmio.force-legacy=false).
            return ["-drive", drive, "-device", f"virtio-blk-device,drive=disk{index}"]
        device = f"virtio-blk-pci,drive=disk{index}"
        if self.modern_only:
            device += ",disable-legacy=on"
        if self.vectors is not None:
            device += f",vectors={self.vectors}"
        return ["-drive", drive, "-device", device]


@dataclass
class VMConfig:
    boot: str = "kernel"            # kernel (-kernel ELF, PVH) | iso (-cdrom)
    machine: str = "q35"            # q35 | pc | microvm
    machine_options: str = ""       # QEMU's own, after the type: -M microvm,acpi=off
    firmware: str = "bios"          # bios (SeaBIOS) | uefi (OVMF; ISO boot only)
    cpus: int = 1
    memory: str = "128M"
    accel: str = "tcg"              # auto | kvm | tcg
    append: str = ""                # kernel command line
    app: str | None = None          # adds app=NAME through fw_cfg
    fw_cfg_cmdline: str | None = None   # explicit fw_cfg opt/manticore/cmdline
    publish: list[str] = field(default_factory=list)  # HOST[:GUEST][/PROTO]
    serial: str = "unix"            # stdio | pty | unix | unix:PATH
    debug_exit: bool = True         # -device isa-debug-exit
    gdb: bool = False               # -s -S
    extra_args: list[str] = field(default_factory=list)
    kernel: Path = field(
        default_factory=lambda: repo_root() / "build" / "kernel.elf")
    initrd: Path | None = None      # boot=kernel: -initrd (a Linux guest, e.g. linuxpeer.py)
    iso: Path = field(
        default_factory=lambda: repo_root() / "build" / "kernel.iso")
    net: str = "none"               # none | user | tap
    net_dump: Path | None = None    # pcap of net0's traffic (QEMU filter-dump)
    netns: str | None = None        # tap: run QEMU in this existing namespace (else VM
                                    # creates one, with the tap, and deletes it at close)
    tap: str = "mtap0"              # tap: the tap device's name inside the namespace
    tap_static: bool = True         # tap: add ip=/netmask=/gw= for the guest to the cmdline
    queues: int = 1                 # tap: queue pairs of net0 (multiqueue tap, mq=on,
                                    # vectors=2N+2); user networking has one queue only
    nics: list[str] = field(default_factory=list)   # more NICs (net1, ...): "user" or
                                    # "user:HOST[:GUEST][/PROTO],..." with forwards
    cpu: str | None = None          # CPU model; default: host (kvm), max (tcg)
    disks: list = field(default_factory=list)   # Disk or image paths: vda, vdb, ...
    qemu: str = QEMU                # the QEMU binary

    @property
    def ports(self) -> list[PortForward]:
        return [parse_publish(p) for p in self.publish]

    def image(self) -> Path:
        return Path(self.kernel if self.boot == "kernel" else self.iso)

    def machine_spec(self) -> str:
        """QEMU's -M value: the machine type, then its options (microvm,acpi=off)."""
        return ",".join(filter(None, (self.machine, self.machine_options)))

    def pc_without_acpi(self) -> bool:
        """pc with acpi=off: SeaBIOS's MP table is the only CPU list, and OVMF hangs."""
        return self.machine == "pc" and "acpi=off" in self.machine_options.split(",")

    def kernel_cmdline(self) -> str:
        """`append`, plus (for tap networking, unless it names ip= itself) the guest's static
        address on the namespace's link: ip=192.168.77.2 netmask=255.255.255.0 gw=..."""
        if self.net != "tap" or not self.tap_static or \
                any(w.startswith("ip=") for w in self.append.split()):
            return self.append
        from manticore_host.netns import TapAddressing
        return " ".join(w for w in (self.append, TapAddressing().guest_cmdline()) if w)

    def cmdline_override(self) -> str | None:
        """The string for fw_cfg opt/manticore/cmdline, or None.

        An explicit `fw_cfg_cmdline` wins; `app` adds `app=NAME` to it.
        Without one: ISO boot carries `append` (GRUB's command line cannot
        be changed from outside), and `app` makes an override that repeats
        `append` (the override replaces the boot command line)."""
        words = []
        append = self.kernel_cmdline()
        if self.fw_cfg_cmdline is not None:
            words.append(self.fw_cfg_cmdline)
        elif self.boot == "iso" or self.app:
            words.append(append)
        if self.app:
            words.append(f"app={self.app}")
        if self.fw_cfg_cmdline is None and not self.app and \
                (self.boot != "iso" or not append):
            return None
        return " ".join(w for w in words if w)

    def validate(self) -> None:
        """Raise ValueError with a message a user can act on."""
        if self.boot not in BOOTS:
            raise ValueError(f"boot {self.boot!r}: expected kernel or iso")
        if self.machine not in MACHINES:
            raise ValueError(f"machine {self.machine!r}: expected one of "
                             f"{', '.join(MACHINES)}")
        if not re.fullmatch(r"([\w.-]+=[\w.-]+(,[\w.-]+=[\w.-]+)*)?", self.machine_options):
            raise ValueError(f"machine options {self.machine_options!r}: expected "
                             "NAME=VALUE[,NAME=VALUE...], as QEMU's -M takes them")
        if self.accel not in ACCELS:
            raise ValueError(f"accel {self.accel!r}: expected one of "
                             f"{', '.join(ACCELS)}")
        if self.net not in NETS:
            raise ValueError(f"net {self.net!r}: expected one of "
                             f"{', '.join(NETS)}")
        if self.initrd is not None and self.boot != "kernel":
            raise ValueError("initrd goes with direct kernel boot (boot=kernel), "
                             "not with an ISO")
        if self.firmware not in FIRMWARES:
            raise ValueError(f"firmware {self.firmware!r}: expected bios or uefi")
        if self.firmware == "uefi" and self.machine == "microvm":
            raise ValueError("microvm has no UEFI firmware (nor a BIOS to boot a CD-ROM): "
                             "it boots only directly, boot=kernel with firmware bios; "
                             "UEFI needs machine q35 or pc")
        if self.firmware == "uefi" and self.boot != "iso":
            raise ValueError("firmware uefi boots the ISO through GRUB's EFI build: "
                             "use boot=iso (direct kernel boot has no firmware step)")
        if self.firmware == "uefi" and self.pc_without_acpi():
            # Debian's OVMF spins before its first output on pc without ACPI (q35 keeps its
            # tables under acpi=off): refuse rather than start a VM that never speaks.
            raise ValueError("OVMF does not start on pc with acpi=off (it hangs before "
                             "printing anything): use firmware bios there, whose MP table "
                             "the kernel reads instead of ACPI, or drop acpi=off")
        if self.firmware == "uefi" and not OVMF.is_file():
            raise ValueError(f"firmware uefi needs {OVMF} (Debian's ovmf package): "
                             "run `invoke deps`")
        if self.boot == "iso" and self.machine == "microvm":
            raise ValueError("microvm has no BIOS to boot a CD-ROM: ISO boot "
                             "needs machine q35 or pc (or use boot=kernel)")
        for d in self.disks:
            if not Path(d.path if isinstance(d, Disk) else d).is_file():
                raise ValueError(f"disk {d.path if isinstance(d, Disk) else d}: no such "
                                 "image file")
        if self.net == "tap" and self.publish:
            raise ValueError("publish forwards host ports with net user; with "
                             "net tap the host reaches the guest directly "
                             "from inside the namespace")
        if self.net_dump is not None and self.net == "none":
            raise ValueError("net_dump records the NIC's traffic: it needs "
                             "net user or tap, not none")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", self.tap):
            raise ValueError(f"tap {self.tap!r}: expected an interface name "
                             "(at most 15 letters, digits, _ . -)")
        if self.netns is not None and \
                not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.netns):
            raise ValueError(f"netns {self.netns!r}: expected a namespace "
                             "name (letters, digits, _ . -)")
        if not isinstance(self.queues, int) or not 1 <= self.queues <= 8:
            raise ValueError(f"queues {self.queues!r}: expected 1 to 8 queue pairs")
        if self.queues > 1 and self.net != "tap":
            raise ValueError("queues > 1 needs net tap: QEMU's user networking has one "
                             "queue only")
        for spec in self.nics:
            extra_nic_netdev(spec, "netX")       # raises ValueError for a bad spec
        if not isinstance(self.cpus, int) or self.cpus < 1:
            raise ValueError(f"cpus {self.cpus!r}: expected an integer >= 1")
        ram = memory_bytes(self.memory)     # raises ValueError for a bad size
        if self.boot == "kernel" and self.kernel is not None and Path(self.kernel).is_file():
            # QEMU's PVH loader copies the segments without checking them against -m, and a
            # guest whose own code lies beyond RAM cannot even say so: it just stops.
            end = elf_load_end(Path(self.kernel))
            if ram < end:
                raise ValueError(f"memory {self.memory}: {Path(self.kernel).name} is loaded "
                                 f"up to {end / 2**20:.1f} MiB, beyond the VM's RAM; give "
                                 "it more")
        if not (self.serial in ("stdio", "pty", "unix")
                or self.serial.startswith("unix:")
                and len(self.serial) > len("unix:")):
            raise ValueError(f"serial {self.serial!r}: expected stdio, pty, "
                             "unix or unix:PATH")
        self.ports  # parses every publish entry


def memory_bytes(memory: str) -> int:
    """QEMU's -m size in bytes (no suffix: MiB, as QEMU reads it)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTkmgt]?)", str(memory))
    if not m:
        raise ValueError(f"memory {memory!r}: expected a size such as 256M or 1G")
    shift = {"k": 10, "m": 20, "g": 30, "t": 40, "": 20}[m.group(2).lower()]
    return int(float(m.group(1)) * (1 << shift))


def elf_load_end(path: Path) -> int:
    """The highest physical address an ELF's loadable segments occupy (p_paddr + p_memsz);
    0 for a file that is not an ELF (a Linux bzImage, which QEMU loads by its own rules)."""
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return 0
        f.seek(0)
        return max((seg["p_paddr"] + seg["p_memsz"] for seg in ELFFile(f).iter_segments()
                    if seg["p_type"] == "PT_LOAD"), default=0)


def qemu_escape(value: str) -> str:
    """Escape a value for QEMU's option parser (key=value,key=value):
    a literal comma is written as two."""
    return str(value).replace(",", ",,")


def build_command(cfg: VMConfig, qmp_path: str | os.PathLike | None,
                  serial_path: str | os.PathLike | None, *,
                  accel: str | None = None, paused: bool = False) -> list[str]:
    """QEMU's argument list for `cfg`.

    qmp_path: unix socket for QMP (None: no QMP).  serial_path: the socket
    for serial "unix" (for "unix:PATH" the PATH in cfg wins).  accel: the
    resolved accelerator (default: resolve cfg.accel, probing for "auto").
    paused: add -S (VM.start does, and continues once it is connected)."""
    cfg.validate()
    if accel is None:
        accel = resolve_accel(cfg.accel)[0]
    if accel not in ("kvm", "tcg"):
        raise ValueError(f"resolved accel {accel!r}: expected kvm or tcg")
    cpu = cfg.cpu or ("host" if accel == "kvm" else "max")
    # Several CPUs under TCG: one host thread per vCPU (MTTCG), so cores really run at once.
    accel_arg = "tcg,thread=multi" if accel == "tcg" and cfg.cpus > 1 else accel
    smp = str(cfg.cpus)
    if cfg.cpus > 1 and cfg.pc_without_acpi():
        # Without ACPI the kernel finds the CPUs in SeaBIOS's MP table, which lists only the
        # first CPU of each package (its mptable.c); QEMU's default topology puts them all in
        # one package. One socket each lists them all.
        smp += f",sockets={cfg.cpus}"
    cmd = [cfg.qemu, "-M", cfg.machine_spec(), "-accel", accel_arg, "-cpu", cpu,
           "-smp", smp, "-m", str(cfg.memory),
           "-display", "none", "-no-reboot"]

    if cfg.boot == "kernel":
        cmd += ["-kernel", str(cfg.kernel)]
        if cfg.initrd is not None:
            cmd += ["-initrd", str(cfg.initrd)]
        append = cfg.kernel_cmdline()
        if append:
            cmd += ["-append", append]
    else:
        cmd += ["-cdrom", str(cfg.iso), "-boot", "d"]
        if cfg.firmware == "uefi":
            # OVMF as the system firmware; -bios keeps its variable store in RAM
            # (nothing persists between runs, which is what a test wants).
            cmd += ["-bios", str(OVMF)]
    override = cfg.cmdline_override()
    if override is not None:
        cmd += ["-fw_cfg",
                f"name={FW_CFG_CMDLINE},string={qemu_escape(override)}"]

    if cfg.serial == "stdio":
        cmd += ["-chardev", "stdio,id=ser0,mux=on,signal=off",
                "-serial", "chardev:ser0",
                "-mon", "chardev=ser0,mode=readline"]
    elif cfg.serial == "pty":
        cmd += ["-serial", "pty"]
    else:
        path = cfg.serial[len("unix:"):] if cfg.serial.startswith("unix:") \
            else serial_path
        if not path:
            raise ValueError("serial 'unix' needs a serial_path")
        cmd += ["-chardev", "socket,id=ser0,path="
                f"{qemu_escape(os.fspath(path))},server=on,wait=off",
                "-serial", "chardev:ser0"]

    if qmp_path is not None:
        qmp = os.fspath(qmp_path)
        if "," in qmp:
            raise ValueError(f"QMP socket path {qmp!r} contains a comma")
        cmd += ["-qmp", f"unix:{qmp},server=on,wait=off"]

    if cfg.debug_exit:
        cmd += ["-device", DEBUG_EXIT]

    # microvm has no PCI: its devices sit on virtio-mmio transports, version 2 (virtio 1.x)
    # only when QEMU is told so; it gets a virtio-rng too (os.urandom's source).
    microvm = cfg.machine == "microvm"
    nic = "virtio-net-device" if microvm else "virtio-net-pci"
    if microvm:
        cmd += ["-global", "virtio-mmio.force-legacy=false",
                "-device", "virtio-rng-device"]
    if cfg.net == "user":
        netdev = "user,id=net0" + "".join(
            "," + p.hostfwd() for p in cfg.ports)
        cmd += ["-netdev", netdev, "-device", f"{nic},netdev=net0"]
    elif cfg.net == "tap":
        # The tap exists only inside a network namespace (see netns.py);
        # QEMU is started in it, so nothing reaches the host's interfaces.
        if cfg.netns is None:
            raise ValueError("net tap runs QEMU inside a network namespace: "
                             "set netns (VM.start creates one)")
        if cfg.queues > 1:
            # Multiqueue tap: QEMU opens the (multi_queue) tap once per queue pair; the
            # device offers VIRTIO_NET_F_MQ, over PCI with one MSI-X vector per queue, plus
            # config and control (2N + 2); a virtio-mmio device has one interrupt line for
            # all its queues (virtio 1.2, 4.2.3.4) and no `vectors` property.
            vectors = "" if microvm else f",vectors={2 * cfg.queues + 2}"
            cmd += ["-netdev", f"tap,id=net0,ifname={cfg.tap},script=no,downscript=no,"
                    f"queues={cfg.queues}",
                    "-device", f"{nic},netdev=net0,mq=on{vectors}"]
        else:
            cmd += ["-netdev", f"tap,id=net0,ifname={cfg.tap},script=no,"
                    "downscript=no",
                    "-device", f"{nic},netdev=net0"]
    elif cfg.net == "none" and cfg.machine != "microvm":
        # Without this QEMU adds its default NIC (an e1000e on q35) behind the user's back.
        cmd += ["-nic", "none"]
    for i, spec in enumerate(cfg.nics, start=1):
        cmd += ["-netdev", extra_nic_netdev(spec, f"net{i}"),
                "-device", f"{nic},netdev=net{i}"]
    if cfg.net_dump is not None:
        cmd += ["-object", "filter-dump,id=dump0,netdev=net0,file="
                f"{qemu_escape(os.fspath(cfg.net_dump))}"]

    for i, d in enumerate(cfg.disks):
        cmd += (d if isinstance(d, Disk) else Disk(Path(d))).args(i, microvm)

    if cfg.gdb:
        cmd += ["-s", "-S"]
    elif paused:
        cmd += ["-S"]
    cmd += [str(a) for a in cfg.extra_args]
    if cfg.net == "tap":
        cmd = ["ip", "netns", "exec", cfg.netns] + cmd
    return cmd


# -- accelerator choice ------------------------------------------------------

_accel_cache: dict[str, tuple[str, str]] = {}


def _probe_image() -> tuple[Path, bytes] | None:
    kernel = repo_root() / "build" / "kernel.elf"
    if kernel.is_file():
        return kernel, PROMPT
    floor = repo_root() / "build" / "floor" / "floor.elf"
    if floor.is_file():
        return floor, b"*"
    return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def probe_kvm(image: Path, expect: bytes,
              seconds: float = KVM_PROBE_SECONDS) -> tuple[bool, str]:
    """Boot `image` under KVM; (True, how long) if `expect` shows up on the
    serial console within `seconds`, else (False, why not)."""
    cfg = VMConfig(boot="kernel", kernel=image, accel="kvm", memory="128M")
    t0 = time.monotonic()
    try:
        with VM(cfg) as vm:
            vm.start(timeout=seconds)
            vm.console.read_until(expect, timeout=seconds)
            return True, f"KVM probe boot reached {expect!r} in " \
                f"{time.monotonic() - t0:.2f} s"
    except VMStartError as e:
        why = re.sub(r"^\S*qemu-system-\S+: (\S+:\d+: )?", "", e.last_line())
        return False, f"KVM probe failed: {why}"
    except ConsoleClosed as e:
        return False, f"KVM probe: QEMU exited before {expect!r} " \
            f"({e.exit_detail or 'no output'})"
    except ConsoleTimeout:
        return False, f"KVM probe boot did not reach {expect!r} within " \
            f"{seconds:g} s (nested KVM?)"
    except (OSError, RuntimeError) as e:
        return False, f"KVM probe failed: {e}"


def resolve_accel(requested: str) -> tuple[str, str]:
    """("kvm" | "tcg", reason).  "auto" means KVM only if /dev/kvm is usable
    and a short probe boot under KVM reaches the prompt; the answer is
    cached for the process and in build/.accel-probe.json (keyed by the
    probed image, the host's boot id and QEMU)."""
    if requested == "tcg":
        return "tcg", "tcg requested"
    if requested == "kvm":
        return "kvm", "kvm requested (not probed)"
    if requested != "auto":
        raise ValueError(f"accel {requested!r}: expected auto, kvm or tcg")
    if "auto" in _accel_cache:
        return _accel_cache["auto"]
    result = _resolve_auto()
    _accel_cache["auto"] = result
    return result


def _resolve_auto() -> tuple[str, str]:
    if not os.path.exists("/dev/kvm"):
        return "tcg", "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm is not accessible to this user"
    found = _probe_image()
    if found is None:
        return "tcg", "KVM not probed: no build/kernel.elf to boot"
    image, expect = found
    st = image.stat()
    key = {"image": str(image), "mtime": st.st_mtime_ns, "size": st.st_size,
           "boot_id": _boot_id(), "qemu": shutil.which(QEMU) or ""}
    cache = repo_root() / "build" / ".accel-probe.json"
    try:
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["accel"], saved["reason"] + " (cached)"
    except (OSError, ValueError, KeyError):
        pass
    ok, why = probe_kvm(image, expect)
    result = ("kvm" if ok else "tcg", why)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "accel": result[0],
                                     "reason": result[1]}))
    except OSError:
        pass
    return result


# -- serial console ----------------------------------------------------------

class ConsoleTimeout(TimeoutError):
    """The expected output did not arrive; the message shows what was
    expected and the tail of the serial log."""

    def __init__(self, message: str, pattern=None, log_tail: str = ""):
        super().__init__(message)
        self.pattern = pattern
        self.log_tail = log_tail


class ConsoleClosed(ConsoleTimeout):
    """The serial line closed (QEMU exited) while output was expected."""

    def __init__(self, message: str, pattern=None, log_tail: str = "",
                 exit_detail: str = ""):
        super().__init__(message, pattern, log_tail)
        self.exit_detail = exit_detail


class ConsoleError(RuntimeError):
    """The guest answered, but not as the REPL protocol says."""


class _SocketTransport:
    def __init__(self, sock: socket.socket):
        self.sock = sock

    def read(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class _FdTransport:
    """A pty (one fd) or QEMU's stdio (two pipes).  QEMU's stdio chardev is
    muxed with the monitor, so a literal Ctrl-A is sent as Ctrl-A Ctrl-A."""

    def __init__(self, rfd: int, wfd: int, escape_ctrl_a: bool = False,
                 owns_fds: bool = True):
        self.rfd, self.wfd, self.escape = rfd, wfd, escape_ctrl_a
        self.owns_fds = owns_fds

    def read(self) -> bytes:
        try:
            return os.read(self.rfd, 65536)
        except OSError:                 # EIO on a pty whose peer is gone
            return b""

    def write(self, data: bytes) -> None:
        if self.escape:
            data = data.replace(b"\x01", b"\x01\x01")
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]

    def close(self) -> None:
        if not self.owns_fds:           # the VM closes QEMU's pipes
            return
        for fd in {self.rfd, self.wfd}:
            try:
                os.close(fd)
            except OSError:
                pass


def _as_regex(pattern) -> re.Pattern:
    if isinstance(pattern, re.Pattern):
        if isinstance(pattern.pattern, str):
            return re.compile(pattern.pattern.encode(),
                              pattern.flags & ~re.UNICODE)
        return pattern
    if isinstance(pattern, str):
        pattern = pattern.encode()
    return re.compile(re.escape(pattern))


def _describe(pattern) -> str:
    if isinstance(pattern, re.Pattern):
        return f"/{pattern.pattern}/"
    return repr(pattern)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


class Console:
    """The guest's serial console.  A background thread reads everything
    into `log` (complete even when nobody reads) and into the buffer that
    read_until consumes."""

    TAIL = 3000

    def __init__(self, transport, kernel: Path | None = None,
                 log_path: Path | None = None,
                 exit_detail: Callable[[], str] | None = None):
        self._transport = transport
        self._kernel = kernel
        self._cond = threading.Condition()
        # What each waiting read is waiting for (a test of the buffer): the reader wakes a
        # waiter only once its test passes. QEMU's 16550 writes every byte on its own, so
        # waking on every byte would run the waiter (and its search) once per byte, host CPU
        # taken from the VM: ~1 ms of a 640-byte boot on a 2-core host (invoke bench boot).
        self._waiting: list[Callable[[], bool]] = []
        self._buf = bytearray()
        self._log = bytearray()
        self._closed = False
        self._exit_detail = exit_detail or (lambda: "")
        self._log_file = open(log_path, "wb") if log_path else None
        self._thread = threading.Thread(target=self._reader, daemon=True,
                                        name="serial-reader")
        self._thread.start()

    def _reader(self) -> None:
        while True:
            data = self._transport.read()
            with self._cond:
                if not data:
                    self._closed = True
                    self._cond.notify_all()
                    break
                self._buf += data
                self._log += data
                if self._log_file:
                    self._log_file.write(data)
                    self._log_file.flush()
                if not self._waiting or any(ready() for ready in self._waiting):
                    self._cond.notify_all()

    # -- raw access --

    @property
    def log(self) -> bytes:
        with self._cond:
            return bytes(self._log)

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._transport.write(data)

    def _fail(self, what: str, timeout: float, pattern=None):
        tail = self.symbolized_log()[-self.TAIL:]
        if self._closed:
            detail = self._exit_detail()
            why = f" ({detail})" if detail else ""
            message = f"serial console closed{why} while waiting for {what}"
            cls, extra = ConsoleClosed, {"exit_detail": detail}
        else:
            message = f"timed out after {timeout:g} s waiting for {what}"
            cls, extra = ConsoleTimeout, {}
        message += (f"\n--- last {min(len(tail), self.TAIL)} characters of "
                    f"the serial log ---\n{tail}\n--- end of serial log ---")
        return cls(message, pattern, tail, **extra)

    def read_until(self, pattern, timeout: float) -> bytes:
        """Everything up to and including the first match of `pattern`
        (bytes, str or compiled regex), consumed from the buffer."""
        regex = _as_regex(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = regex.search(self._buf)
                if m:
                    data = bytes(self._buf[:m.end()])
                    del self._buf[:m.end()]
                    return data
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise self._fail(_describe(pattern), timeout, pattern)
                self._wait(lambda: regex.search(self._buf) is not None, remaining)

    def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        """Sleep (holding nothing) until ready() holds, the console closes or timeout
        passes; the caller holds self._cond and checks again."""
        self._waiting.append(ready)
        try:
            self._cond.wait(timeout)
        finally:
            self._waiting.remove(ready)

    def read_exact(self, n: int, timeout: float) -> bytes:
        """Exactly n bytes from the buffer."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._buf) < n:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise self._fail(f"{n} bytes", timeout)
                self._wait(lambda: len(self._buf) >= n, remaining)
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data

    def pending(self) -> int:
        """Bytes received and not yet consumed."""
        with self._cond:
            return len(self._buf)

    def drain(self) -> bytes:
        """Consume and return whatever has been received so far."""
        with self._cond:
            data = bytes(self._buf)
            self._buf.clear()
            return data

    # -- the REPL --

    def expect_prompt(self, timeout: float = 30) -> bytes:
        return self.read_until(PROMPT, timeout)

    def repl(self, line: str, timeout: float = 30) -> str:
        """Type one line at the friendly REPL; the output between the echo
        and the next prompt, with \\r\\n -> \\n, stripped.

        The REPL's echo of the line is awaited first, so a prompt still in
        flight from earlier input is consumed before it, never taken for the
        end of this line's output.  (A Linux tty with ONLCR, as the Linux peer's, turns the
        REPL's \\r\\n after the echo into \\r\\r\\n: both are taken.)"""
        self.write(line + "\r")
        self.read_until(re.compile(re.escape(line.encode("utf-8")) + rb"\r?\r\n"), timeout)
        data = self.read_until(PROMPT, timeout)[:-len(PROMPT)]
        return _text(data).strip()

    def _enter_raw(self, timeout: float) -> None:
        self.write(b"\r\x03")           # interrupt whatever runs
        time.sleep(0.05)
        self.drain()
        self.write(b"\r\x01")           # Ctrl-A: raw REPL
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", timeout)

    def _exit_raw(self, timeout: float) -> None:
        self.write(b"\x02")             # Ctrl-B: friendly REPL
        self.read_until(PROMPT, timeout)

    def _follow(self, timeout: float) -> tuple[str, str]:
        out = self.read_until(b"\x04", timeout)[:-1]
        err = self.read_until(b"\x04", timeout)[:-1]
        self.read_until(b">", timeout)  # the raw REPL's prompt
        return _text(out), _text(err)

    def _raw_send(self, code: bytes, timeout: float) -> None:
        for i in range(0, len(code), 256):
            self.write(code[i:i + 256])
        self.write(b"\x04")
        ok = self.read_exact(2, timeout)
        if ok != b"OK":
            raise ConsoleError(f"raw REPL did not accept the code: {ok!r}")

    def raw_exec(self, code: str, timeout: float = 60) -> tuple[str, str]:
        """Run `code` through the raw REPL (Ctrl-A ... Ctrl-D); returns
        (stdout, stderr) with \\r\\n -> \\n, then back to the friendly REPL."""
        self._enter_raw(timeout)
        self._raw_send(code.encode("utf-8"), timeout)
        result = self._follow(timeout)
        self._exit_raw(timeout)
        return result

    def raw_start(self, code: str, timeout: float = 60) -> None:
        """Start `code` in the raw REPL and return at once, for code that
        runs on (a server): read its output with read_until meanwhile, and
        collect the rest with raw_finish."""
        self._enter_raw(timeout)
        self._raw_send(code.encode("utf-8"), timeout)

    def raw_finish(self, timeout: float = 60,
                   interrupt: bool = False) -> tuple[str, str]:
        """Wait for the code of raw_start to end (Ctrl-C first when
        `interrupt`); its remaining (stdout, stderr), then back at the
        friendly REPL."""
        if interrupt:
            self.write(b"\x03")
        result = self._follow(timeout)
        self._exit_raw(timeout)
        return result

    def raw_paste_exec(self, code: str,
                       timeout: float = 60) -> tuple[str, str]:
        """Run `code` with the raw-paste protocol and its flow control (as
        MicroPython's tools/pyboard.py does; falls back to the plain raw
        REPL if the guest does not support it)."""
        data = code.encode("utf-8")
        self._enter_raw(timeout)
        self.write(b"\x05A\x01")
        answer = self.read_exact(2, timeout)
        if answer == b"R\x01":
            self._raw_paste_write(data, timeout)
        elif answer == b"R\x00":        # understood, not supported
            self._raw_send(data, timeout)
        else:
            raise ConsoleError(f"raw-paste request answered with {answer!r}")
        result = self._follow(timeout)
        self._exit_raw(timeout)
        return result

    def _raw_paste_write(self, data: bytes, timeout: float) -> None:
        window = int.from_bytes(self.read_exact(2, timeout), "little")
        if window == 0:
            raise ConsoleError("raw-paste window size 0")
        remain = window
        i = 0
        while i < len(data):
            while remain == 0 or self.pending():
                b = self.read_exact(1, timeout)
                if b == b"\x01":        # the guest freed another window
                    remain += window
                elif b == b"\x04":      # the guest ended the transfer early
                    self.write(b"\x04")
                    return
                else:
                    raise ConsoleError(f"unexpected {b!r} during raw paste")
            chunk = data[i:i + remain]
            self.write(chunk)
            remain -= len(chunk)
            i += len(chunk)
        self.write(b"\x04")             # end of data
        self.read_until(b"\x04", timeout)   # acknowledged

    def symbolized_log(self) -> str:
        """The log decoded, with panic addresses symbolized against the
        kernel ELF (when it and pyelftools are there)."""
        text = self.log.decode("utf-8", "replace").replace("\r\n", "\n")
        if self._kernel and Path(self._kernel).is_file():
            try:
                from manticore_host.symbolize import annotate_with
                return annotate_with(self._kernel, text)
            except Exception:           # never hide the log behind this
                pass
        return text

    def close(self) -> None:
        self._transport.close()
        self._thread.join(timeout=2)
        if self._log_file:
            self._log_file.close()
            self._log_file = None


# -- QMP ---------------------------------------------------------------------

class QMPClient:
    """A synchronous face on qemu.qmp's asyncio QMPClient, which runs in a
    private event loop on its own thread (so callers may be in any thread,
    with or without their own event loop)."""

    def __init__(self, path: str | os.PathLike, timeout: float = 10):
        from qemu.qmp import QMPClient as AsyncQMPClient
        logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        daemon=True, name="qmp")
        self._thread.start()
        self._client = AsyncQMPClient("manticore")
        self._seen: list[dict] = []
        try:
            self._run(self._client.connect(os.fspath(path)), timeout)
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro, timeout: float | None = None):
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout if timeout is None else timeout)
        except TimeoutError:
            future.cancel()
            raise

    def cmd(self, name: str, args: dict | None = None, **kwargs):
        """Execute a QMP command; its return value (a dict for most).
        Arguments with dashes go in `args`.  Raises qemu.qmp.ExecuteError
        when QEMU answers with an error."""
        arguments = {**(args or {}), **kwargs} or None
        return self._run(self._client.execute(name, arguments))

    def hmp(self, command_line: str) -> str:
        """A human monitor command through QMP, e.g. "info registers"."""
        return self.cmd("human-monitor-command",
                        {"command-line": command_line})

    def events(self) -> list[dict]:
        """All events received so far (and not returned before)."""
        async def pull():
            return [dict(e) for e in self._client.events.clear()]
        got = self._seen + self._run(pull())
        self._seen = []
        return got

    def wait_event(self, name: str, timeout: float = 10) -> dict:
        """The next event called `name` (earlier others are kept)."""
        for i, event in enumerate(self._seen):
            if event.get("event") == name:
                return self._seen.pop(i)

        async def wait():
            while True:
                event = dict(await self._client.events.get())
                if event.get("event") == name:
                    return event
                self._seen.append(event)
        return self._run(asyncio.wait_for(wait(), timeout), timeout + 1)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.disconnect(), 3)
        except Exception:
            pass
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=3)
        if not self._loop.is_running():
            self._loop.close()


# -- the VM ------------------------------------------------------------------

class VMStartError(RuntimeError):
    """QEMU did not come up; the message carries QEMU's own words."""

    def last_line(self) -> str:
        lines = [ln for ln in str(self).splitlines() if ln.strip()]
        return lines[-1] if lines else "unknown error"


def _exit_status(code: int | None) -> str:
    if code is None:
        return "QEMU still running"
    if code < 0:
        return f"QEMU killed by signal {-code}"
    return f"QEMU exited with status {code}"


def _die_with_parent() -> None:
    """In the child before exec: have the kernel send QEMU SIGTERM when the Python process
    that started it dies (PR_SET_PDEATHSIG, prctl(2)), so a test or a script killed by a
    timeout leaves no QEMU behind. The signal follows the *thread* that started QEMU, so
    start VMs from a thread that outlives them (every caller here uses the main thread).
    Linux only; elsewhere a no-op."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class VM:
    """One QEMU process; a context manager.  After start(): `console`
    (serial), `qmp` (QMPClient), `command`, `accel`, `accel_reason`, and
    for net tap `netns` (the NetNamespace QEMU runs in)."""

    def __init__(self, cfg: VMConfig, log_path: Path | None = None):
        self.cfg = cfg
        self.log_path = Path(log_path) if log_path else None
        self.console: Console | None = None
        self.qmp: QMPClient | None = None
        self.proc: subprocess.Popen | None = None
        self.command: list[str] = []
        self.accel, self.accel_reason = None, None
        self.pty: str | None = None
        self.started_at: float | None = None
        self._tmp: str | None = None
        self._stderr = None
        self.netns = None               # NetNamespace for net tap
        self._owns_netns = False

    # -- lifecycle --

    def start(self, timeout: float = 10) -> "VM":
        cfg = self.cfg
        cfg.validate()
        image = cfg.image()
        if not image.is_file():
            raise FileNotFoundError(
                f"{image} does not exist: run `invoke build"
                f"{' iso' if cfg.boot == 'iso' else ''}` first")
        self.accel, self.accel_reason = resolve_accel(cfg.accel)
        if cfg.net == "tap":
            self._setup_netns()
            cfg = dataclasses.replace(cfg, netns=self.netns.name)
        self._tmp = tempfile.mkdtemp(prefix="manticore-vm-")
        tmp = Path(self._tmp)
        qmp_path, serial_path = tmp / "qmp.sock", tmp / "serial.sock"
        try:
            self.command = build_command(cfg, qmp_path, serial_path,
                                         accel=self.accel, paused=True)
        except BaseException:
            self.close()
            raise
        self._stderr = open(tmp / "qemu.stderr", "w+b")
        stdio = cfg.serial == "stdio"
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE if stdio else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdio else subprocess.DEVNULL,
            stderr=self._stderr, start_new_session=True,
            preexec_fn=_die_with_parent)
        try:
            deadline = time.monotonic() + timeout
            self._wait_for_socket(qmp_path, deadline)
            self.qmp = self._connect_qmp(qmp_path, timeout, deadline)
            transport = self._serial_transport(serial_path, deadline)
            self.console = Console(transport, kernel=cfg.kernel,
                                   log_path=self.log_path,
                                   exit_detail=self._exit_detail)
            if not cfg.gdb:
                self._continue()
        except BaseException as e:
            error = self._start_error(e)
            self.close()
            if error is None:
                raise
            raise error from e
        return self

    def _continue(self) -> None:
        """Let the paused guest run.  A guest that is done at once (the floor image writes
        one byte and exits within some 30 ms on microvm) can make QEMU quit before QMP
        answers `cont`: when QEMU has exited, the guest did run, and that is a start."""
        try:
            self.qmp.cmd("cont")
        except Exception as e:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                raise e from None
            if self.proc.returncode < 0:        # killed, not a guest's exit
                raise

    def _setup_netns(self) -> None:
        from manticore_host.netns import NetNamespace
        if self.cfg.netns is not None:      # the caller's; it deletes it
            self.netns = NetNamespace(name=self.cfg.netns, tap=self.cfg.tap,
                                      multi_queue=self.cfg.queues > 1)
            return
        self.netns = NetNamespace(tap=self.cfg.tap, multi_queue=self.cfg.queues > 1).create()
        self._owns_netns = True

    def _serial_transport(self, serial_path: Path, deadline: float):
        cfg = self.cfg
        if cfg.serial == "stdio":
            return _FdTransport(self.proc.stdout.fileno(),
                                self.proc.stdin.fileno(), escape_ctrl_a=True,
                                owns_fds=False)
        if cfg.serial == "pty":
            info = self.qmp.cmd("query-chardev")
            for dev in info:
                if dev.get("label") == "serial0" and \
                        dev.get("filename", "").startswith("pty:"):
                    self.pty = dev["filename"][len("pty:"):]
                    break
            else:
                raise VMStartError(f"no pty in query-chardev: {info}")
            fd = os.open(self.pty, os.O_RDWR | os.O_NOCTTY)
            import tty
            tty.setraw(fd)
            return _FdTransport(fd, fd)
        path = Path(cfg.serial[len("unix:"):]) \
            if cfg.serial.startswith("unix:") else serial_path
        self._wait_for_socket(path, deadline)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(os.fspath(path))
        return _SocketTransport(sock)

    def _connect_qmp(self, path: Path, timeout: float, deadline: float) -> "QMPClient":
        # QEMU binds the socket (so the path exists) a moment before it listens on it; a
        # connection in between is refused. Retry that, and only that, until the deadline.
        while True:
            try:
                return QMPClient(path, timeout=max(1.0, timeout))
            except Exception as e:
                refused = isinstance(getattr(e, "exc", None), ConnectionRefusedError) or \
                    isinstance(e.__cause__, ConnectionRefusedError) or \
                    isinstance(e, ConnectionRefusedError)
                if not refused or time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.01)

    def _wait_for_socket(self, path: Path, deadline: float) -> None:
        while not path.exists():
            if self.proc.poll() is not None:
                raise VMStartError(f"{_exit_status(self.proc.returncode)} "
                                   f"at startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"QEMU did not create {path} in time")
            time.sleep(0.005)

    def _start_error(self, e: BaseException) -> VMStartError | None:
        if isinstance(e, KeyboardInterrupt):
            return None
        time.sleep(0.05)
        stderr = self.stderr_text().strip()
        return VMStartError(
            f"QEMU failed to start ({type(e).__name__}: {e}); "
            f"{_exit_status(self.proc.poll() if self.proc else None)}\n"
            f"command: {' '.join(self.command)}\n{stderr}")

    def stderr_text(self) -> str:
        """What QEMU wrote on stderr so far."""
        if self._tmp is None:
            return ""
        try:
            path = Path(self._tmp) / "qemu.stderr"
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def _exit_detail(self) -> str:
        if self.proc is None:
            return ""
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return ""
        detail = _exit_status(self.proc.returncode)
        stderr = self.stderr_text().strip()
        return f"{detail}: {stderr.splitlines()[-1]}" if stderr else detail

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def wait(self, timeout: float) -> int:
        """Wait for QEMU to exit; its exit status.  TimeoutError if not."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"QEMU still running after {timeout:g} s") \
                from None

    def kill(self) -> None:
        """Terminate QEMU (SIGTERM, then SIGKILL after 3 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        if self.qmp is not None:
            self.qmp.close()
        if self.console is not None:
            self.console.close()            # joins the reader (QEMU is gone)
        for pipe in (self.proc.stdin, self.proc.stdout) if self.proc else ():
            if pipe:
                try:
                    pipe.close()
                except OSError:
                    pass
        if self._stderr:
            self._stderr.close()
            self._stderr = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._owns_netns and self.netns is not None:
            self.netns.delete()             # with the tap and anything left in it
            self._owns_netns = False

    def __enter__(self) -> "VM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
