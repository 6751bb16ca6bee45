"""Tasks for building, running and testing manticore (run from the repo root).

    invoke deps         system packages, Python packages, MicroPython source
    invoke build        build/kernel.elf            (invoke build iso: + ISO)
    invoke iso          build/kernel.iso (GRUB, multiboot2)
    invoke repro        two clones, two builds: byte-identical ELF and ISO?
    invoke run          boot it in QEMU with the serial console here
    invoke gdb          attach gdb to `invoke run --debug`
    invoke test         build, then pytest tests/
    invoke bench boot   boot-time benchmark -> build/bench/boot.json
    invoke bench irq    interrupt round trip, timer precision -> build/bench/irq.json
    invoke bench echo   UDP echo rate and latency -> build/bench/echo.json
    invoke fuzz         libFuzzer on the kernel's parsers (tests/fuzz) -> build/fuzz/summary.md
    invoke clean        remove build/
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from invoke import Exit, task

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from manticore_host import fetch, image  # noqa: E402
from manticore_host.fetch import (FetchError, lwip_dir, mbedtls_dir,  # noqa: E402
                                  micropython_build_dir, micropython_dir)

APT_PACKAGES = ("qemu-system-x86", "grub-pc-bin", "grub-common", "xorriso",
                "grub-efi-amd64-bin", "ovmf",   # the ISO under UEFI

                "mtools", "gcc", "make", "gdb",
                "binutils",                     # objcopy: the ISO's ELF without DWARF
                "iproute2", "iputils-ping",     # --net tap, tests/net
                "cpio",                         # tests/host: the peer's initramfs, cross-checked
                "dosfstools",                   # disks: mkfs.fat, fsck.vfat
                "patch",                        # ports/manticore/patches on a copy of the tree
                "clang-19", "libclang-rt-19-dev")  # invoke fuzz: libFuzzer, ASan, UBSan
# requirements.txt name -> module that proves it is installed
PY_MODULES = {"invoke": "invoke", "pytest": "pytest", "qemu.qmp": "qemu.qmp",
              "pyelftools": "elftools", "mpremote": "mpremote",
              "pyserial": "serial", "pytest-timeout": "pytest_timeout",
              "littlefs-python": "littlefs", "cryptography": "cryptography",
              "webrepl": "webrepl"}


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _jobs() -> int:
    return os.cpu_count() or 1


# -- deps ---------------------------------------------------------------------

def _missing_apt() -> list[str]:
    missing = []
    for pkg in APT_PACKAGES:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                             capture_output=True, text=True)
        if out.returncode != 0 or "install ok installed" not in out.stdout:
            missing.append(pkg)
    return missing


def _module_present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@task
def deps(c):
    """Install what the build and tests need (idempotent; quiet when done)."""
    did = []
    if shutil.which("dpkg-query") is None:
        print("deps: not a Debian system; install QEMU (x86-64), GRUB (BIOS), "
              "xorriso and mtools yourself", file=sys.stderr)
    else:
        missing = _missing_apt()
        if missing:
            cmd = (f"apt-get update && apt-get install -y -q "
                   f"--no-install-recommends {' '.join(missing)}")
            if os.geteuid() != 0:
                raise Exit(f"deps: missing system packages: "
                           f"{' '.join(missing)}\n  run: sudo sh -c '{cmd}'",
                           code=1)
            print(f"deps: installing {' '.join(missing)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            c.run(cmd, env=env, in_stream=False)
            did.append("system packages")
    missing_py = [name for name, mod in PY_MODULES.items()
                  if not _module_present(mod)]
    if missing_py:
        print(f"deps: installing Python packages {' '.join(missing_py)}")
        requirements = shlex.quote(str(ROOT / "requirements.txt"))
        c.run(f"{shlex.quote(sys.executable)} -m pip install -q "
              f"-r {requirements}", in_stream=False)
        did.append("Python packages")
    fetched_before = fetch.is_fetched("micropython")
    lwip_before = fetch.is_fetched("lwip")
    mbedtls_before = fetch.is_fetched("mbedtls")
    try:
        micropython_dir()
        lwip_dir()
        mbedtls_dir()
        tree = micropython_build_dir()
    except FetchError as e:
        raise Exit(f"deps: {e}", code=1)
    if not fetched_before:
        did.append("MicroPython source")
    if not lwip_before:
        did.append("lwIP source")
    if not mbedtls_before:
        did.append("mbedTLS source")
    if did:
        print(f"deps: installed {', '.join(did)}; MicroPython at {tree}")
    else:
        print(f"deps: all present (MicroPython at {tree})")


# -- build --------------------------------------------------------------------

UBSAN_DIR = ROOT / "build" / "ubsan"


NOWX_DIR = ROOT / "build" / "nowx"


def _forget_other_tree(port_build: Path, top: Path) -> None:
    """Objects built from another MicroPython tree are thrown away. Each patch series has
    its own patched copy (fetch.py), whose files keep the pinned tree's old mtimes where no
    patch touched them and the patch time where one did: make compares mtimes, not paths'
    contents, so after a switch of series (a patch added, removed or edited, a branch
    checked out) objects compiled from the other copy would look up to date."""
    stamp = port_build / "micropython-top"
    if port_build.is_dir() and (not stamp.is_file() or stamp.read_text() != str(top)):
        shutil.rmtree(port_build)
    port_build.mkdir(parents=True, exist_ok=True)
    stamp.write_text(str(top))


def _build_kernel(c, quiet: bool = False, sanitize: bool = False, no_wx: bool = False) -> None:
    makefile = ROOT / "ports" / "manticore" / "Makefile"
    if not makefile.is_file():
        raise Exit(f"build: {_rel(makefile)} does not exist yet", code=1)
    try:
        top = micropython_build_dir()     # the pinned tree + ports/manticore/patches
        lwip = lwip_dir()
        mbedtls = mbedtls_dir()
    except FetchError as e:
        raise Exit(f"build: {e}\n  (or run `invoke deps`)", code=1)
    _forget_other_tree(UBSAN_DIR / "port" if sanitize else NOWX_DIR / "port" if no_wx
                       else ROOT / "build" / "port", top)
    cmd = (f"make -C {shlex.quote(str(ROOT / 'ports' / 'manticore'))} "
           f"MICROPY_TOP={shlex.quote(str(top))} "
           f"LWIP_DIR={shlex.quote(str(lwip))} "
           f"MBEDTLS_DIR={shlex.quote(str(mbedtls))} -j{_jobs()}")
    if sanitize:
        # Its own objects and ELF (build/ubsan/): switching never rebuilds the other one.
        cmd += (f" SANITIZE=1 BUILD={shlex.quote(str(UBSAN_DIR / 'port'))} "
                f"KERNEL_ELF={shlex.quote(str(UBSAN_DIR / 'kernel.elf'))}")
    if no_wx:
        # bench vm --compare-wx: the kernel without W^X in build/nowx/, never the shipped one.
        cmd += (f" WX=0 BUILD={shlex.quote(str(NOWX_DIR / 'port'))} "
                f"KERNEL_ELF={shlex.quote(str(NOWX_DIR / 'kernel.elf'))}")
    if quiet:
        cmd = "make -s --no-print-directory" + cmd[len("make"):]
    result = c.run(cmd, warn=True, in_stream=False, hide=quiet)
    if not result.ok:
        if quiet:
            print(result.stdout + result.stderr, file=sys.stderr)
        raise Exit(f"build: make failed (status {result.exited})",
                   code=result.exited or 1)
    elf = UBSAN_DIR / "kernel.elf" if sanitize else NOWX_DIR / "kernel.elf" if no_wx \
        else image.KERNEL
    if not elf.is_file():
        raise Exit(f"build: make succeeded but {_rel(elf)} is "
                   "missing", code=1)


def _build_iso(quiet: bool = False) -> None:
    try:
        image.make_iso(quiet=quiet)
    except image.BuildError as e:
        raise Exit(f"iso: {e}", code=1)


@task(help={"sanitize": "build/ubsan/kernel.elf instead: the kernel with UBSan, whose "
                        "runtime (arch/x86_64/ubsan.c) reports on COM1 and panics"})
def build(c, sanitize=False):
    """build/kernel.elf (`invoke build iso` also makes build/kernel.iso)."""
    _build_kernel(c, sanitize=sanitize)


@task(pre=[build])
def iso(c):
    """build/kernel.iso (GRUB, multiboot2); only when kernel.elf changed."""
    _build_iso()
    # Reproducible: the same commit gives these bytes in any clone
    # (tests/host/test_reproducible.py, `invoke repro`).
    for path in (image.KERNEL, image.ISO):
        print(f"sha256 {image.sha256(path)}  {_rel(path)}")


# -- run ----------------------------------------------------------------------

@task(iterable=["publish", "nic"], help={
    "app": "start app NAME (fw_cfg opt/manticore/cmdline app=NAME); a host file "
           "(./path/NAME.py) is put on the run's disk as /apps/NAME.py and run",
    "disk": "a disk image for vda (/ in the guest); created if missing (--disk-size, "
            "--disk-fs)",
    "disk-size": "size of a disk made by this run (default 64M)",
    "disk-fs": "lfs (default), fat or none (all zeros: the guest formats it) for a new disk",
    "boot": "iso (GRUB; the default on q35 and pc) or kernel (direct PVH boot; the default "
            "on microvm, which has no firmware to boot a CD)",
    "machine": "q35 (default), pc or microvm (direct boot only), then any QEMU machine "
               "options: microvm,acpi=off",
    "firmware": "bios (default, SeaBIOS) or uefi (OVMF; ISO boot)",
    "cpus": "number of CPUs (default 1)",
    "memory": "guest memory (default 256M)",
    "accel": "auto (default: KVM if a probe boot works, else TCG), kvm, tcg",
    "publish": "HOST[:GUEST][/PROTO] port forward; repeatable",
    "append": "kernel command line words",
    "serial": "stdio (default: this terminal), pty, unix:PATH",
    "net": "user, tap or none (default: user if --publish is given, else "
           "none); tap: a tap device in a network namespace made for this run "
           "(root), host 192.168.77.1, guest 192.168.77.2",
    "net-dump": "write the NIC's traffic to this pcap file (QEMU filter-dump)",
    "queues": "tap: queue pairs of the first NIC (multiqueue tap, mq=on, vectors=2N+2; "
              "user networking has one queue only)",
    "nic": "another NIC (eth1, eth2, ...): user or user:HOST[:GUEST][/PROTO],...; repeatable",
    "dry-run": "print the QEMU command line and exit",
    "debug": "start paused with a gdb stub on :1234 (see `invoke gdb`)",
})
def run(c, app=None, boot=None, machine="q35", firmware="bios", cpus=1,
        memory="256M",
        accel="auto", publish=None, append="", serial="stdio", net=None,
        net_dump=None, queues=1, nic=None, dry_run=False, debug=False, disk=None,
        disk_size="64M", disk_fs="lfs"):
    """Boot manticore in QEMU, serial console on this terminal
    (Ctrl-A X quits QEMU, Ctrl-A C toggles its monitor)."""
    from manticore_host.qemu import VMConfig, resolve_accel

    publish = list(publish or [])
    machine, _, machine_options = machine.partition(",")
    boot = boot or default_boot(machine, firmware)
    disks = []
    if disk or (app and (app.endswith(".py") or "/" in app)):
        app, path = _run_disk(app, disk, disk_size, disk_fs, dry_run)
        disks.append(path)
    cfg = VMConfig(boot=boot, machine=machine, machine_options=machine_options,
                   firmware=firmware,
                   cpus=int(cpus), memory=memory,
                   accel=accel, append=append, app=app, publish=publish,
                   serial=serial, gdb=debug,
                   net=net or ("user" if publish else "none"),
                   net_dump=Path(net_dump).resolve() if net_dump else None,
                   disks=disks, queues=int(queues), nics=list(nic or []))
    try:
        cfg.validate()
    except ValueError as e:
        raise Exit(f"run: {e}", code=2)

    if not dry_run:
        _build_kernel(c, quiet=True)
        if boot == "iso":
            _build_iso(quiet=True)
    accel_name, reason = resolve_accel(accel)
    netns = None
    if cfg.net == "tap":
        from manticore_host.netns import NetNamespace, NetnsError, available
        ok, why = available()
        if not ok and not dry_run:
            raise Exit(f"run: --net tap: {why}", code=2)
        netns = NetNamespace(multi_queue=cfg.queues > 1)
        cfg.netns = netns.name
        if not dry_run:
            try:
                netns.create()
            except NetnsError as e:
                raise Exit(f"run: --net tap: {e}", code=1)
    try:
        _run_configured(c, cfg, accel_name, reason, dry_run, debug, netns)
    finally:
        if netns is not None:
            netns.delete()


def default_boot(machine, firmware):
    """The boot path a machine has: microvm has no BIOS to boot a CD-ROM, only QEMU's PVH
    loader (unless UEFI was asked for, whose only path is the ISO: validate says why that
    fails on microvm); q35 and pc boot the ISO, as a user's VM would."""
    return "kernel" if machine == "microvm" and firmware != "uefi" else "iso"


def _run_disk(app, disk, size, fs, dry_run):
    """The run's disk: --disk FILE (made when missing), else build/run-disk.img made afresh
    for an app given as a host file, which goes on it as /apps/NAME.py. Returns (app name,
    image path)."""
    from manticore_host import disk as diskmod
    path = Path(disk).resolve() if disk else ROOT / "build" / "run-disk.img"
    host_app = app if app and (app.endswith(".py") or "/" in app) else None
    if host_app and not Path(host_app).is_file():
        raise Exit(f"run: --app {host_app}: no such file", code=2)
    try:
        if not path.exists() or (host_app and not disk):
            path.parent.mkdir(parents=True, exist_ok=True)
            diskmod.make(path, size, fs if not host_app or fs != "none" else "lfs")
            print(f"run: made {_rel(path)} ({size}, {fs})", flush=True)
        if host_app:
            src = Path(host_app)
            if diskmod.detect(path) == "zero":
                diskmod.make(path, path.stat().st_size, "lfs")
            app = src.stem
            diskmod.put(path, [(src, f"/apps/{app}.py")])
            print(f"run: {host_app} -> /apps/{app}.py on {_rel(path)}", flush=True)
    except diskmod.DiskError as e:
        raise Exit(f"run: disk: {e}", code=2)
    return app, path


def _run_configured(c, cfg, accel_name, reason, dry_run, debug, netns):
    from manticore_host.qemu import build_command
    from manticore_host.symbolize import SymbolizingStream
    boot, memory, serial = cfg.boot, cfg.memory, cfg.serial
    tmp = Path(tempfile.mkdtemp(prefix="manticore-run-"))
    qmp = tmp / "qmp.sock"
    cmd = build_command(cfg, qmp, tmp / "serial.sock", accel=accel_name)

    ports = ", ".join(str(p) for p in cfg.ports) or "none"
    if cfg.ports and cfg.net == "none":
        ports += " (not forwarded: --net none)"
    path = "GRUB multiboot2" if boot == "iso" else "direct PVH"
    cpus = f"{cfg.cpus} cpu{'s' if cfg.cpus > 1 else ''}"
    print(f"run: {_rel(cfg.image())} ({path}) on {cfg.machine_spec()}, {accel_name} "
          f"({reason}), {memory}, {cpus}, ports {ports}", flush=True)
    if netns is not None:
        a = netns.addressing
        print(f"run: tap {netns.tap} in network namespace {netns.name} "
              f"(host {a.host_cidr}, guest {a.guest_ip}); from another "
              f"terminal: ip netns exec {netns.name} ping {a.guest_ip}",
              flush=True)
    if cfg.net_dump is not None:
        print(f"run: NIC traffic -> {cfg.net_dump} (pcap)", flush=True)
    if dry_run:
        print(shlex.join(cmd))
        shutil.rmtree(tmp, ignore_errors=True)
        return
    if debug:
        print("run: paused for gdb on :1234; in another terminal: "
              "invoke gdb   (or: gdb build/kernel.elf -ex 'target remote "
              ":1234')", flush=True)
    if serial == "stdio":
        print("run: Ctrl-A X quits, Ctrl-A C switches to the QEMU monitor; "
              f"QMP on {qmp}", flush=True)
    elif serial.startswith("unix:"):
        print(f"run: serial on unix socket {serial[5:]}; QMP on {qmp}",
              flush=True)

    try:
        code = _run_qemu(cmd, serial, qmp, SymbolizingStream(
            sys.stdout.buffer, image.KERNEL))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if code != 0:
        raise Exit(code=code)


def _run_qemu(cmd: list[str], serial: str, qmp: Path, stream) -> int:
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # QEMU gets Ctrl-C
    try:
        if serial != "stdio":
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    restore_signals=True)
            if serial == "pty":
                _print_pty(qmp, proc)
            return proc.wait()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        fd = proc.stdout.fileno()
        while True:
            data = os.read(fd, 4096)
            if not data:
                break
            stream.feed(data)
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, old)


def _print_pty(qmp: Path, proc) -> None:
    import time
    from manticore_host.qemu import QMPClient
    deadline = time.monotonic() + 10
    while not qmp.exists() and proc.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None or not qmp.exists():
        return
    client = QMPClient(qmp)
    try:
        for dev in client.cmd("query-chardev"):
            if dev.get("filename", "").startswith("pty:"):
                pty = dev["filename"][4:]
                print(f"run: serial on {pty} (e.g. mpremote connect {pty}, "
                      f"or screen {pty}); Ctrl-C here stops QEMU", flush=True)
    finally:
        client.close()


@task
def gdb(c):
    """Attach gdb (with build/kernel.elf's symbols) to `invoke run --debug`."""
    if not image.KERNEL.is_file():
        raise Exit("gdb: build/kernel.elf missing: run `invoke build`", code=1)
    # The debug info names sources by the prefixes the Makefile maps them to
    # (reproducible builds); point gdb back at the real trees.
    subst = [("/manticore", ROOT), ("/micropython", micropython_dir()),
             ("/lwip", lwip_dir())]
    paths = " ".join(f"-ex {shlex.quote(f'set substitute-path {a} {b}')}"
                     for a, b in subst)
    c.run(f"gdb {shlex.quote(str(image.KERNEL))} {paths} "
          "-ex 'target remote :1234'", pty=True)


@task(help={"keep": "keep the two clones (in a temporary directory)"})
def repro(c, keep=False):
    """Build HEAD in two clones at different paths; the ELF and ISO must be
    byte-identical (about twice a full build)."""
    from manticore_host import repro as rp
    workdir = Path(tempfile.mkdtemp(prefix="manticore-repro-"))
    try:
        results = rp.check_full(workdir)
    except rp.ReproError as e:
        raise Exit(f"repro: {e}", code=1)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    bad = False
    for name, (a, b) in results.items():
        same = a == b
        bad |= not same
        print(f"repro: {name} {'identical' if same else 'DIFFERS'} "
              f"{a}" + ("" if same else f" vs {b}"))
    if bad:
        raise Exit("repro: the builds differ", code=1)


# -- test, bench, clean -------------------------------------------------------

@task(help={"args": "extra pytest arguments, e.g. --args='-x -v'",
            "k": "only tests matching this pytest -k expression",
            "no-build": "do not build kernel.elf and kernel.iso first"})
def test(c, args="", k=None, no_build=False):
    """Build kernel.elf and kernel.iso, then run pytest on tests/
    (more pytest arguments after `--`: invoke test -- -x tests/host)."""
    if not no_build:
        _build_kernel(c, quiet=True)
        _build_iso(quiet=True)
        _build_kernel(c, quiet=True, sanitize=True)     # tests/boot/test_boot_ubsan.py
    cmd = [sys.executable, "-m", "pytest"]
    extra = shlex.split(args) + shlex.split(c.remainder or "")
    if k:
        extra += ["-k", k]
    if not any(os.path.exists(ROOT / a.split("::")[0]) for a in extra
               if not a.startswith("-")):
        cmd.append("tests")             # no path given: the whole suite
    cmd += extra
    print(f"test: {shlex.join(cmd)}", flush=True)
    code = subprocess.run(cmd, cwd=ROOT).returncode
    if code == 5:
        raise Exit("test: pytest collected no tests; that counts as a failure",
                   code=5)
    if code != 0:
        raise Exit(code=code)


BENCHMARKS = ("boot", "vm", "echo", "size", "irq", "smp", "storage", "tls", "faults", "all")


@task(positional=["name"], help={
    "name": "which benchmark: boot, vm, echo, size, irq, smp, storage, tls, faults, or all (writes "
            "build/bench/summary.md)",
    "runs": "boot: timed boots per case (default 10, the goals' medians; --quick: 1)",
    "quick": "1 run each, short cases, coarse bisection: proves the benchmarks work",
    "seconds": "echo: seconds per case (default 5; --quick: 1)",
    "net": "echo: user, tap or both (default both)",
    "app": "echo: echod, rawecho or both (default both)",
    "linux": "compare with the Linux + MicroPython peer (default; --no-linux: skip it)",
    "accel": "auto (default), kvm or tcg",
    "out": "directory for the JSON and summary.md (default build/bench)",
    "no-build": "measure the images as they are (no build first)",
    "case": "boot: only these boot paths, comma-separated (e.g. 'direct microvm')",
    "compare-wx": "vm: this image with and without its W^X page protections (make WX=0, "
                  "build/nowx/) side by side -> build/bench/vm-wx.json"})
def bench(c, name, runs=None, quick=False, seconds=None, net="both", accel="auto",
          no_build=False, app="both", linux=True, out=None, case=None, compare_wx=False):
    """Benchmarks against the peers, each printing a table and writing build/bench/NAME.json:
    boot (QEMU launch -> `>>> `, this project vs the floor image and Linux + MicroPython),
    vm (MicroPython's perf_bench: this guest, the Linux guest, the unix port on the host),
    echo (UDP echo rate and latency: echod, rawecho, and echod on the Linux guest),
    size (image sizes and the smallest -m), irq (interrupt round trip, timer precision),
    smp (isolation between cores, channel round trips, boot with -smp 1/2/4),
    storage (littlefs2/FAT/raw virtio-blk MiB/s and ops/s; Linux's raw, ext4 and vfat),
    tls (the guest as a TLS server: handshakes/s, bulk MiB/s against plain TCP and Linux);
    faults (the fault campaign's long form: 100,000 malformed frames, 1 MiB at the REPL);
    all runs every one and writes build/bench/summary.md."""
    if name not in BENCHMARKS:
        raise Exit(f"bench: unknown benchmark {name!r} "
                   f"(have: {', '.join(BENCHMARKS)})", code=2)
    if net not in ("user", "tap", "both"):
        raise Exit(f"bench: --net {net!r}: expected user, tap or both", code=2)
    if app not in ("echod", "rawecho", "both"):
        raise Exit(f"bench: --app {app!r}: expected echod, rawecho or both", code=2)
    if compare_wx and name != "vm":
        raise Exit("bench: --compare-wx goes with `bench vm`", code=2)
    if not no_build:
        _build_kernel(c, quiet=True)
        if compare_wx:
            _build_kernel(c, quiet=True, no_wx=True)
        if name in ("boot", "echo", "size", "all"):
            _build_iso(quiet=True)
    if compare_wx:
        from manticore_host.vmbench import run_wx_compare
        out_dir = Path(out).resolve() if out else None
        try:
            run_wx_compare(image.KERNEL, NOWX_DIR / "kernel.elf", quick=quick, accel=accel,
                           out=out_dir / "vm-wx.json" if out_dir else None)
        except (RuntimeError, OSError, ValueError) as e:
            raise Exit(f"bench vm --compare-wx: {e}", code=1)
        return
    try:
        _run_bench(name, runs=runs, quick=quick, seconds=seconds, net=net, accel=accel,
                   app=app, linux=linux, out_dir=Path(out).resolve() if out else None,
                   cases=[x.strip() for x in case.split(",")] if case else None)
    except (RuntimeError, OSError, ValueError) as e:
        raise Exit(f"bench {name}: {e}", code=1)


def _run_bench(name, runs, quick, seconds, net, accel, app, linux, out_dir, cases=None):
    out = out_dir / f"{name}.json" if out_dir else None
    if name == "all":
        from manticore_host.benchall import run_all
        run_all(quick=quick, accel=accel, linux=linux, out_dir=out_dir)
    elif name == "storage":
        from manticore_host.storagebench import run_storage_bench
        run_storage_bench(quick=quick, accel=accel, runs=int(runs) if runs else None, out=out,
                          linux=linux)
    elif name == "tls":
        from manticore_host.tlsbench import run_tls_bench
        run_tls_bench(quick=quick, accel=accel, out=out, linux=linux)
    elif name == "faults":
        from manticore_host.faultbench import run_fault_bench
        run_fault_bench(quick=quick, out=out or image.BUILD / "bench" / "faults.json")
    elif name == "smp":
        from manticore_host.smpbench import run_smp_bench
        run_smp_bench(quick=quick, accel=accel, out=out, runs=int(runs) if runs else None)
    elif name == "irq":
        from manticore_host.bench import run_irq_bench
        run_irq_bench(quick=quick, accel=accel, out=out)
    elif name == "vm":
        from manticore_host.vmbench import TARGETS, run_vm_bench
        run_vm_bench(quick=quick, accel=accel, out=out,
                     targets=TARGETS if linux else tuple(t for t in TARGETS if t != "linux"))
    elif name == "size":
        from manticore_host.sizebench import run_size_bench
        run_size_bench(quick=quick, accel=accel, linux=linux, out=out)
    elif name == "echo":
        from manticore_host.echobench import run_echo_bench
        nets = ("user", "tap") if net == "both" else (net,)
        apps = ("echod", "rawecho") if app == "both" else (app,)
        run_echo_bench(quick=quick, accel=accel, nets=nets, apps=apps, linux=linux,
                       seconds=float(seconds) if seconds else None, out=out)
    else:
        from manticore_host.bench import run_boot_bench
        run_boot_bench(runs=int(runs) if runs else (1 if quick else 10),
                       quick=quick, accel=accel, linux=linux, out=out, scenarios=cases)


@task(positional=["action", "image"], iterable=["file"], help={
    "action": "make (a new image), ls (list files), get (extract into --out), put (add files)",
    "image": "the image file",
    "size": "make: size (default 64M)",
    "fs": "make: lfs (default), fat or none (zeros: the guest formats it at first boot)",
    "file": "make/put: HOST[:GUEST] (repeatable; GUEST defaults to /NAME)",
    "out": "get: directory to extract into (default: IMAGE without its suffix)"})
def disk(c, action, image, size="64M", fs="lfs", file=None, out=None):
    """Disk images for the guest's vda/vdb: littlefs2 (littlefs-python) or FAT (mtools)."""
    from manticore_host import disk as diskmod
    args = {"make": ["make", image, "--size", size, "--fs", fs],
            "ls": ["ls", image], "put": ["put", image],
            "get": ["get", image, out or str(Path(image).with_suffix(""))]}.get(action)
    if args is None:
        raise Exit(f"disk: unknown action {action!r} (make, ls, get, put)", code=2)
    if action in ("make", "put"):
        args += list(file or [])
    code = diskmod.main(args)
    if code:
        raise Exit(code=code)
@task(help={"seconds": "time per harness (default 60)",
            "harness": "one harness (acpi, boot_info, pci, virtio_net); default all"})
def fuzz(c, seconds=60, harness=None):
    """Fuzz the kernel's parsers of outside input with libFuzzer (tests/fuzz), bounded in time;
    prints executions, coverage and findings per harness -> build/fuzz/summary.md."""
    from manticore_host.fuzz import run_fuzz
    try:
        results = run_fuzz(int(seconds), [harness] if harness else None)
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as e:
        raise Exit(f"fuzz: {e}", code=1)
    found = [f"{r['harness']}: build/fuzz/{r['harness']}/{f}" for r in results
             for f in r["findings"]]
    if found:
        raise Exit("fuzz: findings (fix, then keep each in tests/fuzz/regressions/NAME/):\n  "
                   + "\n  ".join(found), code=1)


@task
def clean(c):
    """Remove build/."""
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    print("clean: removed build/")
