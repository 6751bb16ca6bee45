"""`invoke bench boot`: how long from QEMU launch to the `>>> ` prompt.

Three boot paths (direct PVH boot on q35 and microvm, GRUB ISO on q35), each
timed over N runs for the kernel and for the floor image (tools/floor/, which
prints one byte and exits: the cost of QEMU, firmware and loader alone).
Also: kernel.elf's size and the smallest -m (MiB) that still reaches the
prompt.  Results go to build/bench/boot.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from manticore_host import image
from manticore_host.qemu import PROMPT, VM, VMConfig, resolve_accel

SCENARIOS = (("direct q35", "kernel", "q35"),
             ("direct microvm", "kernel", "microvm"),
             ("iso q35", "iso", "q35"))
FLOOR_BYTE = b"*"


@dataclass
class Target:
    name: str
    elf: Path
    iso: Path
    expect: bytes


def time_boot(cfg: VMConfig, expect: bytes, timeout: float) -> float:
    """Seconds from QEMU's launch to `expect` on the serial console."""
    with VM(cfg) as vm:
        vm.start(timeout=timeout)
        vm.console.read_until(expect, timeout)
        return time.monotonic() - vm.started_at


def summarize(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples),
            "max": max(samples), "spread": max(samples) - min(samples),
            "samples": samples}


def reaches_prompt(elf: Path, mib: int, accel: str, timeout: float) -> bool:
    cfg = VMConfig(boot="kernel", kernel=elf, machine="q35",
                   memory=f"{mib}M", accel=accel)
    try:
        time_boot(cfg, PROMPT, timeout)
        return True
    except Exception:
        return False


def smallest_memory(elf: Path, accel: str, lo: int = 2, hi: int = 64,
                    step: int = 1, timeout: float = 15,
                    log=print) -> int | None:
    """Smallest -m in MiB (within `step`) in [lo, hi] reaching the prompt,
    by bisection (assumes more memory never hurts); None if hi does not."""
    if not reaches_prompt(elf, hi, accel, timeout):
        return None
    if reaches_prompt(elf, lo, accel, timeout):
        return lo
    while hi - lo > step:               # lo fails, hi works
        mid = (lo + hi) // 2
        ok = reaches_prompt(elf, mid, accel, timeout)
        log(f"  -m {mid}M: {'prompt' if ok else 'no prompt'}")
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi


def qemu_version() -> str:
    try:
        out = subprocess.run(["qemu-system-x86_64", "--version"],
                             capture_output=True, text=True).stdout
        return out.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def run_boot_bench(runs: int = 5, quick: bool = False, accel: str = "auto",
                   memory: str = "128M", out: Path | None = None,
                   log=print) -> dict:
    accel_name, reason = resolve_accel(accel)
    log(f"bench boot: {runs} run(s) per case, accel {accel_name} ({reason})")
    timeout = 60.0 if accel_name == "tcg" else 20.0
    floor_iso = image.make_floor_iso()
    targets = [Target("floor", image.FLOOR, floor_iso, FLOOR_BYTE)]
    have_kernel = image.KERNEL.is_file()
    if have_kernel:
        targets.insert(0, Target("kernel", image.KERNEL, image.ISO, PROMPT))
    else:
        log(f"bench boot: {image.KERNEL} missing, timing the floor image only")

    results: dict[str, dict[str, dict]] = {}
    for target in targets:
        results[target.name] = {}
        for label, boot, machine in SCENARIOS:
            if boot == "iso" and not target.iso.is_file():
                results[target.name][label] = {
                    "error": f"{target.iso} missing"}
                continue
            cfg = VMConfig(boot=boot, machine=machine, kernel=target.elf,
                           iso=target.iso, memory=memory, accel=accel_name)
            try:
                samples = [time_boot(cfg, target.expect, timeout)
                           for _ in range(runs)]
                results[target.name][label] = summarize(samples)
            except Exception as e:      # report and go on with the rest
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                results[target.name][label] = {"error": first}
            log(f"  {target.name:6} {label:15} "
                f"{_cell(results[target.name][label])}")

    ratios = {}
    if have_kernel:
        for label, _, _ in SCENARIOS:
            k = results["kernel"].get(label, {})
            f = results["floor"].get(label, {})
            if "median" in k and "median" in f and f["median"] > 0:
                ratios[label] = k["median"] / f["median"]

    min_mib = None
    if have_kernel:
        log("bench boot: bisecting the smallest -m that reaches the prompt")
        min_mib = smallest_memory(image.KERNEL, accel_name,
                                  step=4 if quick else 1, timeout=timeout / 2,
                                  log=log)

    report = {
        "accel": accel_name, "accel_reason": reason, "runs": runs,
        "quick": quick, "memory": memory, "qemu": qemu_version(),
        "host": platform.node(),
        "kernel_elf_bytes":
            image.KERNEL.stat().st_size if have_kernel else None,
        "floor_elf_bytes": image.FLOOR.stat().st_size,
        "results": results, "ratio_to_floor": ratios,
        "min_memory_mib": min_mib,
        "min_memory_step_mib": 4 if quick else 1,
    }
    out = out or image.BUILD / "bench" / "boot.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(format_table(report))
    log(f"bench boot: wrote {out}")
    return report


def _cell(r: dict | None) -> str:
    if not r:
        return "-"
    if "error" in r:
        return f"error: {r['error'][:60]}"
    return f"{r['median'] * 1000:7.0f} ms (spread {r['spread'] * 1000:.0f})"


def format_table(report: dict) -> str:
    res = report["results"]
    lines = [f"{'boot path':16} {'kernel (median)':>28} "
             f"{'floor (median)':>28} {'ratio':>7}"]
    for label, _, _ in SCENARIOS:
        ratio = report["ratio_to_floor"].get(label)
        kernel = _cell(res.get("kernel", {}).get(label))
        lines.append(f"{label:16} {kernel:>28} "
                     f"{_cell(res['floor'].get(label)):>28} "
                     f"{f'{ratio:.1f}x' if ratio else '-':>7}")
    size = report["kernel_elf_bytes"]
    kernel = f"{size} bytes ({size / 1024:.0f} KiB)" if size else "missing"
    lines.append(f"kernel.elf: {kernel}; "
                 f"floor.elf: {report['floor_elf_bytes']} bytes")
    mib = report["min_memory_mib"]
    lines.append("smallest -m reaching the prompt: "
                 + (f"{mib} MiB (step {report['min_memory_step_mib']})"
                    if mib else "not measured" if size is None
                    else "none up to 64 MiB"))
    lines.append(f"accel: {report['accel']} ({report['accel_reason']})")
    return "\n".join(lines)
