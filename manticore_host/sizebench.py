"""`invoke bench size`: what the image weighs and the least memory it boots in, beside the
Linux + MicroPython peer.

This project: kernel.elf (as built, with debug info, and stripped), the ISO, the
text/rodata/data/bss split of kernel.elf read with pyelftools, the frozen Python (the
allocated sections of frozen_content.o, and the .mpy files that went into it), and the
smallest -m (MiB) with which the kernel reaches `>>> ` (bisection, direct boot on q35).
The peer: vmlinuz, the initramfs, the static unix-port binary (with its split) and its
smallest -m to the unix port's `>>> `.  Ratios are this project / the peer.
Results: a table on stdout and build/bench/size.json.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from manticore_host import image
from manticore_host.bench import (_first_line, qemu_version, smallest_memory,
                                  write_report)
from manticore_host.qemu import PROMPT, VMConfig, resolve_accel

PORT_BUILD = image.BUILD / "port"
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
# bisection ranges (MiB) and steps: full, quick
KERNEL_MEMORY = {"lo": 2, "hi": 64, "step": (1, 4)}
LINUX_MEMORY = {"lo": 16, "hi": 512, "step": (4, 32)}


def elf_split(path: Path) -> dict[str, int]:
    """Bytes of code (text), read-only data, data and bss, of the allocated sections; the
    rest (debug info, symbols) as `other`; and the file's size."""
    from elftools.elf.elffile import ELFFile
    split = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "other": 0}
    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            flags, size = section["sh_flags"], section["sh_size"]
            if not flags & SHF_ALLOC:
                split["other"] += size
            elif section["sh_type"] == "SHT_NOBITS":
                split["bss"] += size
            elif flags & SHF_EXECINSTR:
                split["text"] += size
            elif flags & SHF_WRITE:
                split["data"] += size
            else:
                split["rodata"] += size
    split["file"] = path.stat().st_size
    split["loaded"] = split["text"] + split["rodata"] + split["data"]
    return split


def stripped_size(path: Path) -> int | None:
    """The size of `path` after `strip --strip-all` (None without binutils)."""
    if shutil.which("strip") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        r = subprocess.run(["strip", "--strip-all", "-o", str(out), str(path)],
                           capture_output=True)
        return out.stat().st_size if r.returncode == 0 else None


def frozen_size(port_build: Path = PORT_BUILD) -> dict:
    """The frozen Python in the image: allocated bytes of frozen_content.o (bytecode, the
    constant tables and the frozen qstrs), and the count and size of the .mpy files."""
    obj = port_build / "frozen_content.o"
    if not obj.is_file():
        return {"error": f"{obj} missing"}
    split = elf_split(obj)
    mpys = sorted((port_build / "frozen_mpy").rglob("*.mpy"))
    return {"bytes": split["loaded"] + split["bss"], "modules": len(mpys),
            "mpy_bytes": sum(p.stat().st_size for p in mpys)}


def _bisect(make_config, expect, spec, quick, timeout, log) -> dict:
    step = spec["step"][1 if quick else 0]
    try:
        mib = smallest_memory(make_config, expect, lo=spec["lo"], hi=spec["hi"], step=step,
                              timeout=timeout, log=log)
    except Exception as e:              # report it; the sizes still stand
        return {"error": _first_line(e)}
    return {"mib": mib, "step": step, "range": [spec["lo"], spec["hi"]]}


def run_size_bench(quick: bool = False, accel: str = "auto", linux: bool = True,
                   out: Path | None = None, log=print) -> dict:
    accel_name, reason = resolve_accel(accel)
    log(f"bench size: accel {accel_name} ({reason})")
    timeout = 90.0 if accel_name == "tcg" else 20.0
    report = {"accel": accel_name, "accel_reason": reason, "quick": quick,
              "qemu": qemu_version(), "host": platform.node(), "notes": {}}

    if image.KERNEL.is_file():
        kernel = {"elf": elf_split(image.KERNEL), "elf_stripped": stripped_size(image.KERNEL),
                  "iso": image.ISO.stat().st_size if image.ISO.is_file() else None,
                  "frozen": frozen_size()}
        log("bench size: bisecting the smallest -m for the kernel")
        kernel["min_memory"] = _bisect(
            lambda mib: VMConfig(boot="kernel", kernel=image.KERNEL, machine="q35",
                                 memory=f"{mib}M", accel=accel_name),
            PROMPT, KERNEL_MEMORY, quick, timeout / 3, log)
        report["kernel"] = kernel
    else:
        report["notes"]["kernel"] = f"{image.KERNEL} missing"

    if linux:
        try:
            from manticore_host import linuxpeer
            peer = linuxpeer.ensure_image(log=log)
        except Exception as e:          # no peer image: say so, keep the kernel's figures
            report["notes"]["linux"] = f"peer image unavailable: {_first_line(e)}"
            log(f"bench size: {report['notes']['linux']}")
        else:
            lx = {"vmlinuz": peer.vmlinuz.stat().st_size,
                  "initrd": peer.initrd.stat().st_size,
                  "micropython": elf_split(peer.micropython),
                  "kernel_version": peer.kernel_version}
            lx["boot_files"] = lx["vmlinuz"] + lx["initrd"]
            log("bench size: bisecting the smallest -m for the Linux peer")
            lx["min_memory"] = _bisect(
                lambda mib: linuxpeer.peer_config(peer, mode="repl", machine="q35",
                                                  memory=f"{mib}M", accel=accel_name),
                linuxpeer.READY["repl"], LINUX_MEMORY, quick, timeout, log)
            report["linux"] = lx

    report["ratios"] = size_ratios(report)
    return write_report("size", report, format_table(report), out, log)


def size_ratios(report: dict) -> dict[str, float]:
    """This project / the peer: what is loaded to boot, and the least memory."""
    k, lx = report.get("kernel"), report.get("linux")
    if not k or not lx:
        return {}
    ratios = {}
    boot_bytes = k.get("elf_stripped") or k["elf"]["file"]
    if lx.get("boot_files"):
        ratios["boot files (stripped kernel.elf / vmlinuz+initrd)"] = \
            boot_bytes / lx["boot_files"]
    km, lm = k["min_memory"].get("mib"), lx["min_memory"].get("mib")
    if km and lm:
        ratios["smallest -m"] = km / lm
    return ratios


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.0f} KiB"


def _mem(m: dict) -> str:
    if "error" in m:
        return f"error: {m['error'][:50]}"
    if m.get("mib") is None:
        return f"none up to {m['range'][1]} MiB"
    return f"{m['mib']} MiB (step {m['step']})"


def format_table(report: dict) -> str:
    lines = []
    k = report.get("kernel")
    if k:
        e = k["elf"]
        fz = k["frozen"]
        lines += [
            "this project",
            f"  kernel.elf            {_kib(e['file']):>12}  (stripped {_kib(k['elf_stripped'])})",
            f"  text / rodata / data  {_kib(e['text']):>12} / {_kib(e['rodata'])} / "
            f"{_kib(e['data'])}",
            f"  bss                   {_kib(e['bss']):>12}  (stacks, page tables, buffers)",
            f"  kernel.iso            {_kib(k['iso']):>12}",
            "  frozen Python         " + (f"{_kib(fz['bytes']):>12}  ({fz['modules']} modules, "
                                          f".mpy {_kib(fz['mpy_bytes'])})"
                                          if "error" not in fz else fz["error"]),
            f"  smallest -m           {_mem(k['min_memory']):>12}"]
    lx = report.get("linux")
    if lx:
        m = lx["micropython"]
        lines += [
            f"linux + micropython ({lx['kernel_version']})",
            f"  vmlinuz               {_kib(lx['vmlinuz']):>12}",
            f"  initramfs (gzip)      {_kib(lx['initrd']):>12}",
            f"  micropython (static)  {_kib(m['file']):>12}  (text {_kib(m['text'])}, "
            f"rodata {_kib(m['rodata'])}, data {_kib(m['data'])}, bss {_kib(m['bss'])})",
            f"  smallest -m           {_mem(lx['min_memory']):>12}"]
    for what, ratio in report["ratios"].items():
        lines.append(f"ratio {what}: {ratio:.3f}")
    for what, note in report["notes"].items():
        lines.append(f"{what}: {note}")
    lines.append(f"accel {report['accel']} ({report['accel_reason']})")
    return "\n".join(lines)
