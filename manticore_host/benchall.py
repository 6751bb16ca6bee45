"""`invoke bench all`: every benchmark in one run, then build/bench/summary.md.

The summary names the machine (CPU, cores, memory, host kernel, distribution), the QEMU
version and the accelerator (with why it was chosen), says which prerequisites were
missing (KVM, root for tap networking, the Linux peer image) and what that left out, lists
every ratio the benchmarks computed, and repeats each benchmark's own table.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from pathlib import Path

from manticore_host import image
from manticore_host.bench import _first_line, qemu_version
from manticore_host.qemu import resolve_accel

ORDER = ("boot", "size", "vm", "echo", "irq", "smp", "storage", "tls", "faults")


def machine_info() -> dict:
    def first(path, key):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip() if ":" in line else \
                        line.split("=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return None
    mem_kib = first("/proc/meminfo", "MemTotal")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=image.ROOT,
                                capture_output=True, text=True).stdout.strip() or None
    except OSError:
        commit = None
    return {"cpu": first("/proc/cpuinfo", "model name"), "cores": os.cpu_count(),
            "memory": f"{int(mem_kib.split()[0]) / 1024 / 1024:.1f} GiB" if mem_kib else None,
            "host_kernel": platform.release(),
            "distribution": first("/etc/os-release", "PRETTY_NAME"),
            "qemu": qemu_version(), "python": platform.python_version(),
            "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def prerequisites(accel: str, linux: bool = True) -> dict[str, str]:
    """What is missing on this machine (or was left out), and what that leaves out."""
    missing = {}
    if not linux:
        missing["linux"] = "the Linux + MicroPython peer was left out (--no-linux): " \
                           "no ratios to Linux"
    kvm_ok, kvm_why = resolve_accel("auto")
    if kvm_ok != "kvm":
        missing["kvm"] = f"no KVM ({kvm_why}): everything runs under TCG, " \
                         "so absolute figures are emulation's, and only ratios carry over"
    try:
        from manticore_host.netns import available
        ok, why = available()
        if not ok:
            missing["tap"] = f"no tap networking ({why}): the echo benchmark's tap paths " \
                             "are skipped"
    except Exception as e:
        missing["tap"] = f"no tap networking ({_first_line(e)})"
    return missing


def run_all(quick: bool = False, accel: str = "auto", out_dir: Path | None = None,
            linux: bool = True, log=print) -> dict:
    """Run every benchmark of ORDER; write out_dir/summary.md (build/bench/).
    linux=False leaves the Linux + MicroPython peer out (and says so)."""
    from manticore_host.bench import run_boot_bench, run_irq_bench
    from manticore_host.echobench import run_echo_bench
    from manticore_host.faultbench import run_fault_bench
    from manticore_host.sizebench import run_size_bench
    from manticore_host.smpbench import run_smp_bench
    from manticore_host.storagebench import run_storage_bench
    from manticore_host.tlsbench import run_tls_bench
    from manticore_host.vmbench import TARGETS, run_vm_bench

    out_dir = out_dir or image.BUILD / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    accel_name, reason = resolve_accel(accel)
    runners = {
        "boot": lambda: run_boot_bench(runs=1 if quick else 5, quick=quick, linux=linux,
                                       accel=accel_name, out=out_dir / "boot.json", log=log),
        "size": lambda: run_size_bench(quick=quick, accel=accel_name, linux=linux,
                                       out=out_dir / "size.json", log=log),
        "vm": lambda: run_vm_bench(quick=quick, accel=accel_name, out=out_dir / "vm.json",
                                   targets=TARGETS if linux else ("manticore", "host"),
                                   log=log),
        "echo": lambda: run_echo_bench(quick=quick, accel=accel_name, linux=linux,
                                       out=out_dir / "echo.json", log=log),
        "irq": lambda: run_irq_bench(quick=quick, accel=accel_name,
                                     out=out_dir / "irq.json", log=log),
        "smp": lambda: run_smp_bench(quick=quick, accel=accel_name,
                                     out=out_dir / "smp.json", log=log),
        "storage": lambda: run_storage_bench(quick=quick, accel=accel_name, linux=linux,
                                             out=out_dir / "storage.json", log=log),
        "tls": lambda: run_tls_bench(quick=quick, accel=accel_name, linux=linux,
                                     out=out_dir / "tls.json", log=log),
        "faults": lambda: run_fault_bench(quick=quick, out=out_dir / "faults.json", log=log),
    }
    reports, seconds, failed = {}, {}, {}
    t_all = time.monotonic()
    for name in ORDER:
        log(f"== bench {name} ==")
        t0 = time.monotonic()
        try:
            reports[name] = runners[name]()
        except Exception as e:          # one broken benchmark must not hide the others
            failed[name] = _first_line(e)
            log(f"bench {name}: failed: {failed[name]}")
        seconds[name] = time.monotonic() - t0
    summary = {"machine": machine_info(), "accel": accel_name, "accel_reason": reason,
               "quick": quick, "missing": prerequisites(accel_name, linux), "seconds": seconds,
               "total_seconds": time.monotonic() - t_all, "failed": failed}
    text = render_summary(summary, reports)
    path = out_dir / "summary.md"
    path.write_text(text)
    log(f"bench all: {summary['total_seconds']:.0f} s; wrote {path}")
    return {"summary": summary, "reports": reports, "path": str(path)}


# -- the Markdown ------------------------------------------------------------------------------

def _ms(r: dict | None) -> str:
    if not r:
        return "–"
    if "error" in r:
        return f"error: {r['error'][:50]}"
    return f"{r['median'] * 1000:.0f} ms (±{r['spread'] * 500:.0f})"


def _x(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}×"


def ratio_rows(reports: dict) -> list[tuple[str, str, str]]:
    """(benchmark, what is compared, ratio) for every ratio in the reports."""
    rows = []
    boot = reports.get("boot")
    if boot:
        for key, what in (("ratio_to_linux", "boot time, this project / Linux+MicroPython"),
                          ("ratio_to_floor", "boot time, this project / floor image"),
                          ("linux_ratio_to_floor", "boot time, Linux+MicroPython / floor")):
            for path, v in boot.get(key, {}).items():
                rows.append(("boot", f"{what} ({path})", _x(v)))
        for path, g in boot.get("goals", {}).items():
            rows.append(("boot", f"goal: {path} <= {g['goal']}x the floor",
                         f"{_x(g['ratio'])} {'met' if g['met'] else 'NOT met'}"))
    size = reports.get("size")
    if size:
        for what, v in size.get("ratios", {}).items():
            rows.append(("size", f"{what}, this project / Linux+MicroPython", _x(v, 3)))
    vm = reports.get("vm")
    if vm:
        names = {"manticore/linux": "perf_bench time, this project / Linux guest",
                 "manticore/host": "perf_bench time, this project / unix port on the host",
                 "linux/host": "perf_bench time, Linux guest / unix port on the host"}
        for pair, v in vm.get("geomean", {}).items():
            n = vm.get("compared", {}).get(pair, 0)
            if n:
                rows.append(("vm", f"{names[pair]} (geometric mean of {n})", _x(v)))
    echo = reports.get("echo")
    if echo:
        for pair, cases in echo.get("ratios", {}).items():
            for case, v in cases.items():
                rows.append(("echo", f"replies/s, {pair}, {case}", _x(v)))
        local = echo["results"].get("host-local", {})
        for path, cases in echo["results"].items():
            if path == "host-local" or "error" in cases:
                continue
            worst = max((r["rate"] / local[c]["rate"] for c, r in cases.items()
                         if c in local and local[c]["rate"] > 0), default=None)
            if worst is not None:
                rows.append(("echo", f"{path}: best case / the generator's own ceiling",
                             f"{worst * 100:.1f} %"))
    smp = reports.get("smp")
    if smp:
        for what, v in smp.get("ratios", {}).items():
            rows.append(("smp", what, _x(v)))
    storage = reports.get("storage")
    if storage:
        names = {"lfs": "littlefs2", "fat": "FAT"}
        for key, v in storage.get("ratios", {}).items():
            kind, metric = key.split("_")[:2]
            rows.append(("storage", f"{metric} MiB/s, {names.get(kind, kind)} / raw block "
                         "device", _x(v)))
        for pair, metrics in storage.get("linux_ratios", {}).items():
            what = "raw block device" if pair == "raw" else pair
            for metric, v in metrics.items():
                unit = "MiB/s" if metric in ("write", "read") else "ops/s"
                rows.append(("storage", f"{metric.replace('_', ' ')} {unit}, {what}, "
                             "this project / Linux+MicroPython", _x(v)))
        if not storage.get("linux_ratios") and storage.get("linux"):
            rows.append(("storage", "Linux+MicroPython peer", storage["linux"]))
    tls = reports.get("tls")
    if tls:
        for what, v in tls.get("ratios", {}).items():
            rows.append(("tls", what, _x(v)))
    irq = reports.get("irq")
    if irq:
        for r in irq.get("round_trip", []):
            if "ratio" in r:
                rows.append(("irq", f"time, {r['case']} / {r['baseline']}", _x(r["ratio"], 1)))
        for r in irq.get("timer", []):
            if "ratio" in r:        # overshoots past the requested time, not the times
                rows.append(("irq", f"lateness past {r['requested_us'] / 1000:g} ms, "
                             f"{r['case']} / {r['baseline']}", _x(r["ratio"], 1)))
    return rows


def render_summary(summary: dict, reports: dict) -> str:
    m = summary["machine"]
    lines = ["# Benchmark summary", "",
             f"{'Quick run (1 run each): figures show that the benchmarks work, not what they measure.' if summary['quick'] else 'Full run.'}",
             "", "## Machine", "",
             "| | |", "|---|---|",
             f"| CPU | {m['cpu']} ({m['cores']} cores) |",
             f"| memory | {m['memory']} |",
             f"| host | {m['distribution']}, Linux {m['host_kernel']}, Python {m['python']} |",
             f"| QEMU | {m['qemu']} |",
             f"| accel | {summary['accel']} ({summary['accel_reason']}) |",
             f"| commit | {m['commit']} |",
             f"| date | {m['date']} |",
             "| time taken | " + ", ".join(f"{k} {v:.0f} s" for k, v in
                                             summary["seconds"].items())
             + f"; total {summary['total_seconds']:.0f} s |", ""]
    if summary["missing"] or summary["failed"]:
        lines += ["## Missing prerequisites and failures", ""]
        lines += [f"- {what}: {why}" for what, why in summary["missing"].items()]
        lines += [f"- bench {name} failed: {why}" for name, why in summary["failed"].items()]
        for name, report in reports.items():
            for what, note in (report.get("notes") or {}).items():
                if "unavailable" in note or "missing" in note:
                    lines.append(f"- bench {name}, {what}: {note}")
        lines.append("")
    lines += ["## Ratios", "",
              "Every ratio is measured within this run, on this machine, with the same QEMU "
              "options on both sides. Time ratios below 1 and rate ratios above 1 favour "
              "this project.", "",
              "| bench | compared | ratio |", "|---|---|---|"]
    lines += [f"| {b} | {what} | {v} |" for b, what, v in ratio_rows(reports)]
    lines.append("")
    boot = reports.get("boot")
    if boot:
        lines += ["## Boot: QEMU launch to `>>> `", "",
                  "| path | this project | floor | Linux+MicroPython |", "|---|---|---|---|"]
        for path in ("direct q35", "direct microvm", "iso q35"):
            res = boot["results"]
            lines.append(f"| {path} | {_ms(res.get('kernel', {}).get(path))} | "
                         f"{_ms(res.get('floor', {}).get(path))} | "
                         f"{_ms(res.get('linux', {}).get(path))} |")
        lines += ["", f"Median of {boot['runs']} after {boot['warmup_runs']} discarded; "
                  "± is half the spread (max − min).", ""]
    from manticore_host.bench import format_irq_table
    from manticore_host.echobench import format_table as echo_table
    from manticore_host.faultbench import format_table as fault_table
    from manticore_host.sizebench import format_table as size_table
    from manticore_host.smpbench import format_table as smp_table
    from manticore_host.storagebench import format_storage_table
    from manticore_host.tlsbench import format_table as tls_table
    from manticore_host.vmbench import format_table as vm_table
    for name, title, fmt in (("size", "Size", size_table),
                             ("vm", "VM: MicroPython's perf_bench", vm_table),
                             ("echo", "UDP echo", echo_table),
                             ("irq", "Interrupts and timers (this project only)",
                              format_irq_table),
                             ("smp", "Cores: isolation, channels, AP bring-up",
                              smp_table),
                             ("storage", "Storage: virtio-blk, littlefs2 and FAT",
                              format_storage_table),
                             ("tls", "TLS: the guest as a server", tls_table),
                             ("faults", "Reliability: the fault campaign and the fuzzers",
                              fault_table)):
        if name in reports:
            lines += [f"## {title}", "", "```", fmt(reports[name]), "```", ""]
    return "\n".join(lines)
