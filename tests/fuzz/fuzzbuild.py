"""Build the fuzz harnesses in tests/fuzz/ on the host from the kernel's unchanged C sources.

Two flavours of the same harness: `libfuzzer` (clang, -fsanitize=fuzzer,address,undefined) for
`invoke fuzz`, and `replay` (gcc or clang, ASan+UBSan, replay_main.c) with which the ordinary
test suite runs every seed and kept crash input once, without needing clang."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parents[1]

# harness -> the kernel sources it exercises
HARNESSES = {
    "acpi": ["arch/x86_64/acpi.c"],
    "boot_info": ["arch/x86_64/boot_info.c"],
    "virtio_net": ["drivers/virtio/virtio_net.c", "drivers/virtio/virtqueue.c"],
    "pci": ["drivers/pci/pci.c"],
    "lwip": ["lwIP core, IPv4, IPv6, Ethernet (the port's lwipopts.h) through the port's netif",
             "ports/manticore/netif_virtio.c", "drivers/virtio/virtio_net.c",
             "drivers/virtio/virtqueue.c"],
    "netif": ["ports/manticore/netif_virtio.c", "drivers/virtio/virtio_net.c",
              "drivers/virtio/virtqueue.c", "lwIP (the port's lwipopts.h)"],
}

# Harnesses built with lwIP (the port's options) besides their kernel sources.
WITH_LWIP = ("lwip", "netif")

# As ports/manticore/Makefile's LWIP_SRC_C.
LWIP_SOURCES = [f"core/{n}.c" for n in (
    "def", "dns", "inet_chksum", "init", "ip", "mem", "memp", "netif", "pbuf", "raw", "stats",
    "sys", "tcp", "tcp_in", "tcp_out", "timeouts", "udp")] + [
    f"core/ipv4/{n}.c" for n in ("acd", "autoip", "dhcp", "etharp", "icmp", "igmp",
                                 "ip4_addr", "ip4", "ip4_frag")] + [
    f"core/ipv6/{n}.c" for n in ("ethip6", "icmp6", "inet6", "ip6", "ip6_addr", "ip6_frag",
                                 "mld6", "nd6")] + ["netif/ethernet.c"]


def lwip_flags_and_sources() -> tuple[list[str], list[str]]:
    """lwIP from the build's fetched tree (manticore_host/fetch.py), with the port's options."""
    sys.path.insert(0, str(REPO))
    from manticore_host.fetch import lwip_dir, micropython_dir
    lwip, top = Path(lwip_dir()), Path(micropython_dir())
    flags = ["-I", str(REPO / "ports" / "manticore" / "lwip_inc"), "-I", str(top),
             "-I", str(lwip / "src" / "include"), "-Wno-address", "-Wno-unused-but-set-variable"]
    return flags, [str(lwip / "src" / s) for s in LWIP_SOURCES]

CFLAGS = ["-std=gnu11", "-O1", "-g", "-fno-omit-frame-pointer", "-Wall",
          "-fno-sanitize-recover=undefined", "-I", str(FUZZ / "shadow"), "-I", str(REPO)]


def clang() -> str | None:
    for name in ("clang-19", "clang"):
        if shutil.which(name):
            return name
    return None


def corpus_inputs(name: str) -> list[Path]:
    """The seeds and the kept crash/regression inputs of one harness."""
    files = []
    for sub in ("corpus", "regressions"):
        d = FUZZ / sub / name
        if d.is_dir():
            files += sorted(p for p in d.iterdir() if p.is_file())
    return files


def build(name: str, out_dir: Path, flavour: str = "replay") -> Path:
    """Compile harness `name`; returns the executable. Raises RuntimeError with the compiler's
    message when it fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = []
    sources = [str(FUZZ / f"fuzz_{name}.c")] + [str(REPO / s) for s in HARNESSES[name]
                                                 if s.endswith(".c")]
    if name in WITH_LWIP:
        extra, lwip_sources = lwip_flags_and_sources()
        sources += lwip_sources
    if flavour == "libfuzzer":
        cc = clang()
        if cc is None:
            raise RuntimeError("clang not found (run `invoke deps`)")
        flags = ["-fsanitize=fuzzer,address,undefined"]
    elif flavour == "coverage":
        # gcc's gcov instrumentation, no sanitizers: `invoke fuzz` replays the grown corpus
        # through it to count the kernel source lines the fuzzing reached.
        cc = "gcc"
        flags = ["--coverage", "-fprofile-update=single"]
        sources.append(str(FUZZ / "replay_main.c"))
    else:
        cc = "gcc" if shutil.which("gcc") else clang()
        flags = ["-fsanitize=address,undefined"]
        sources.append(str(FUZZ / "replay_main.c"))
    exe = out_dir / f"fuzz_{name}_{flavour}"
    cmd = [cc, *CFLAGS, *extra, *flags, *sources, "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{result.stderr}")
    return exe


# Rings and buffers are never freed by design (mm/mm.h); a fuzz failure is the first error.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:allocator_may_return_null=1",
                 "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
