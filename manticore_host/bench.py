"""Benchmarks: `invoke bench boot` and `invoke bench irq`.

bench boot: how long from QEMU launch to the `>>> ` prompt.  Three boot paths
(direct PVH boot on q35 and microvm, GRUB ISO on q35), each timed over N runs
after a discarded warm-up for the kernel, for the floor image (tools/floor/,
which prints one byte and exits: the cost of QEMU, firmware and loader alone)
and for the Linux + MicroPython peer (linuxpeer.py: Debian's kernel, busybox
and the unix port, direct boot to the unix port's `>>> `), all with the same
QEMU options.  Ratios to the floor and to Linux.  Results go to
build/bench/boot.json.  (Sizes and the smallest -m: sizebench.py.)

bench irq: interrupt round trip and timer precision, measured inside the guest
with time.ticks_us (one VM, q35, -device virtio-rng-pci).  Round trip: a
virtio-rng request (os.urandom(16)) -> device -> MSI-X -> completion seen by
Python, against two baselines measured in the same run: a no-op Python call and
micropython.schedule() -> callback (the soft-IRQ path without hardware).  Timer:
time.sleep_ms(T) for T = 1, 10, 100 ms (the timer armed for T, then the delay
until Python runs again), against a busy-wait on ticks_us for the same T.
Median and p99 of each; results go to build/bench/irq.json.
"""

from __future__ import annotations

import json
import dataclasses
import platform
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from manticore_host import image
from manticore_host.qemu import PROMPT, VM, VMConfig, resolve_accel

SCENARIOS = (("direct q35", "kernel", "q35"),
             ("direct microvm", "kernel", "microvm"),
             ("microvm+nic", "kernel", "microvm"),
             ("iso q35", "iso", "q35"),
             ("iso q35 uefi", "iso", "q35"))
# What a scenario changes in the VMConfig beside boot and machine (the floor gets the same).
SCENARIO_EXTRAS = {"microvm+nic": {"net": "user"}, "iso q35 uefi": {"firmware": "uefi"}}
# Goals of issue 15, as ratios to the floor image booted the same way (medians).
GOALS = {"direct q35": 1.3, "direct microvm": 1.5}
BOOTTRACE = re.compile(rb"boottrace: (\S+) \+(\d+) @(\d+)")
# The peer boots with -kernel/-initrd (it has no ISO), on q35 only: on microvm under TCG,
# Linux 6.12 fails to calibrate its TSC against the PIT now and then (microvm has no HPET
# or PM timer to fall back on) and then hangs before init, in about one boot out of four.
LINUX_SCENARIOS = ("direct q35",)
FLOOR_BYTE = b"*"


@dataclass
class Target:
    """One image to time: `config(boot, machine)` gives its VMConfig (None: that path does
    not exist for it), `expect` the bytes that end the boot."""
    name: str
    config: Callable[[str, str], VMConfig | None]
    expect: bytes
    scenarios: tuple[str, ...] = tuple(label for label, _, _ in SCENARIOS)


def time_boot(cfg: VMConfig, expect: bytes, timeout: float) -> float:
    """Seconds from QEMU's launch to `expect` on the serial console."""
    with VM(cfg) as vm:
        vm.start(timeout=timeout)
        vm.console.read_until(expect, timeout)
        return time.monotonic() - vm.started_at


def _boottrace_boot(cfg: VMConfig, timeout: float, extra_args: tuple = ()) -> bytes:
    """The console up to the prompt of one boot with boottrace=1 (and `extra_args`)."""
    cfg = dataclasses.replace(cfg, append=(cfg.append + " boottrace=1").strip(),
                              extra_args=[*cfg.extra_args, *extra_args])
    with VM(cfg) as vm:
        vm.start(timeout=timeout)
        return vm.console.read_until(PROMPT, timeout)


def boot_timeline(cfg: VMConfig, timeout: float) -> list[dict]:
    """One boot with boottrace=1: [{"phase", "us", "at_us"}, ...] (empty if none printed)."""
    return [{"phase": p.decode(), "us": int(d), "at_us": int(a)}
            for p, d, a in BOOTTRACE.findall(_boottrace_boot(cfg, timeout))]


# boottrace.c's stubs: a lone `ret` every 16 bytes from `boottrace_stubs`, one per mark.
BOOTTRACE_STUB_STRIDE = 16
BOOTTRACE_STUBS = 32
IN_ASM_LINE = re.compile(rb"^(IN:|0x([0-9a-f]+):)")


def split_translation(log: bytes, phases: list[str], stubs: int,
                      kernel_code: list[tuple[int, int]]) -> list[dict]:
    """The guest instructions QEMU translated in each boot phase, from the `-d in_asm` log of
    a boot with boottrace=1: [{"phase", "instructions"}, ...], the firmware's first.

    `kernel_code` is the image's executable [start, end) ranges: code outside them before
    the kernel's first instruction is the firmware's (and the loader's). Under boottrace=1
    mark n calls stub n (at `stubs` + 16 n), which is translated exactly then, so a block
    starting at a stub says that mark just happened: what follows belongs to the next phase.
    The marks before the command line is parsed call no stub, so the first row joins the
    phases up to the first stub ("loader+entry+paging")."""
    counts: dict[int, int] = {}     # key: the last mark reached (-1: none yet)
    firmware = 0
    in_kernel = False
    first_mark = None
    reached = -1
    block_start = False
    for line in log.splitlines():
        m = IN_ASM_LINE.match(line)
        if not m:
            continue
        if m.group(1) == b"IN:":
            block_start = True
            continue
        addr = int(m.group(2), 16)
        offset = addr - stubs
        in_kernel = in_kernel or any(lo <= addr < hi for lo, hi in kernel_code)
        if block_start and 0 <= offset < BOOTTRACE_STUB_STRIDE * BOOTTRACE_STUBS \
                and offset % BOOTTRACE_STUB_STRIDE == 0:
            reached = max(reached, offset // BOOTTRACE_STUB_STRIDE)
            first_mark = reached if first_mark is None else first_mark
        elif not in_kernel:
            firmware += 1
        else:
            counts[reached] = counts.get(reached, 0) + 1
        block_start = False
    first = first_mark if first_mark is not None else len(phases) - 1
    rows = [{"phase": "firmware", "instructions": firmware},
            {"phase": "+".join(phases[:first + 1]) or "boot", "instructions": counts.get(-1, 0)}]
    rows += [{"phase": phases[mark + 1], "instructions": counts.get(mark, 0)}
             for mark in range(first, len(phases) - 1)]
    # After the last mark the report printed (and after any later one): up to the prompt.
    rows.append({"phase": "to the prompt", "instructions": sum(
        n for mark, n in counts.items() if mark >= max(first, len(phases) - 1))})
    return rows


def boot_translation(cfg: VMConfig, timeout: float) -> list[dict]:
    """One boot with boottrace=1 under TCG with `-d in_asm`: split_translation's rows (of a
    boottrace=1 boot, which parses one command-line word more than a plain one). Only for a
    direct boot: the ELF says where the kernel's code and the stubs are."""
    from elftools.elf.elffile import ELFFile
    with open(cfg.kernel, "rb") as f:
        elf = ELFFile(f)
        kernel_code = [(seg["p_vaddr"], seg["p_vaddr"] + seg["p_memsz"])
                       for seg in elf.iter_segments()
                       if seg["p_type"] == "PT_LOAD" and seg["p_flags"] & 1]   # PF_X
        symtab = elf.get_section_by_name(".symtab")
        found = symtab.get_symbol_by_name("boottrace_stubs") if symtab else None
    if not found:
        raise RuntimeError(f"{cfg.kernel} has no boottrace_stubs symbol")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "in_asm.log"
        text = _boottrace_boot(cfg, timeout, ("-d", "in_asm", "-D", str(log_path)))
        phases = [p.decode() for p, _, _ in BOOTTRACE.findall(text)]
        return split_translation(log_path.read_bytes(), phases, found[0]["st_value"],
                                 kernel_code)


def summarize(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples),
            "max": max(samples), "spread": max(samples) - min(samples),
            "samples": samples}


def reaches(make_config: Callable[[int], VMConfig], expect: bytes, mib: int,
            timeout: float) -> bool:
    try:
        time_boot(make_config(mib), expect, timeout)
        return True
    except Exception:
        return False


def smallest_memory(make_config: Callable[[int], VMConfig], expect: bytes,
                    lo: int = 2, hi: int = 64, step: int = 1, timeout: float = 15,
                    log=print) -> int | None:
    """Smallest -m in MiB (within `step`) in [lo, hi] with which the VM that
    make_config(mib) describes shows `expect`, by bisection (assumes more memory never
    hurts); None if hi does not."""
    if not reaches(make_config, expect, hi, timeout):
        return None
    if reaches(make_config, expect, lo, timeout):
        return lo
    while hi - lo > step:               # lo fails, hi works
        mid = (lo + hi) // 2
        ok = reaches(make_config, expect, mid, timeout)
        log(f"  -m {mid}M: {'reached' if ok else 'not reached'}")
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi


def qemu_version() -> str:
    try:
        out = subprocess.run(["qemu-system-x86_64", "--version"],
                             capture_output=True, text=True).stdout
        return out.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def _image_target(name: str, elf: Path, iso: Path, expect: bytes, accel: str,
                  memory: str) -> Target:
    def config(boot, machine):
        if boot == "iso" and not iso.is_file():
            return None
        return VMConfig(boot=boot, machine=machine, kernel=elf, iso=iso,
                        memory=memory, accel=accel)
    return Target(name, config, expect)


def linux_target(accel: str, memory: str, log) -> Target:
    """The Linux + MicroPython peer (built once, cached), to its unix-port `>>> `."""
    from manticore_host import linuxpeer
    image = linuxpeer.ensure_image(log=log)

    def config(boot, machine):
        return linuxpeer.peer_config(image, mode="repl", machine=machine, memory=memory,
                                     accel=accel)
    return Target("linux", config, linuxpeer.READY["repl"], LINUX_SCENARIOS)


def run_boot_bench(runs: int = 5, quick: bool = False, accel: str = "auto",
                   memory: str = "128M", out: Path | None = None, linux: bool = True,
                   log=print, scenarios: list[str] | None = None) -> dict:
    """Boot times of this project's kernel, the floor image and (linux=True) the Linux +
    MicroPython peer; one discarded warm-up boot per case (it brings the images into the
    page cache), then `runs` timed boots, the targets' boots alternating. `scenarios`: the
    labels of SCENARIOS to time (default all)."""
    accel_name, reason = resolve_accel(accel)
    log(f"bench boot: {runs} run(s) per case after a warm-up, -m {memory}, "
        f"accel {accel_name} ({reason})")
    timeout = 120.0 if accel_name == "tcg" else 30.0
    floor_iso = image.make_floor_iso()
    targets = [_image_target("floor", image.FLOOR, floor_iso, FLOOR_BYTE, accel_name,
                             memory)]
    notes = {}
    have_kernel = image.KERNEL.is_file()
    if have_kernel:
        targets.insert(0, _image_target("kernel", image.KERNEL, image.ISO, PROMPT,
                                        accel_name, memory))
    else:
        notes["kernel"] = f"{image.KERNEL} missing: not timed"
    if linux:
        try:
            targets.append(linux_target(accel_name, memory, log))
        except Exception as e:          # no peer image: report it, time the rest
            notes["linux"] = f"peer image unavailable: {_first_line(e)}"
            log(f"bench boot: {notes['linux']}")

    results: dict[str, dict[str, dict]] = {t.name: {} for t in targets}
    timelines: dict[str, list[dict]] = {}
    translated: dict[str, list[dict]] = {}
    wanted = [s for s in SCENARIOS if scenarios is None or s[0] in scenarios]
    for label, boot, machine in wanted:
        # The targets' boots alternate (kernel, floor, kernel, floor, ...), so a host whose
        # load changes during the run (a shared machine) slows both sides of a ratio alike.
        cases = []
        for target in targets:
            if label not in target.scenarios:
                continue
            cfg = target.config(boot, machine)
            if cfg is None:
                results[target.name][label] = {"error": f"no {boot} image"}
                continue
            cfg = dataclasses.replace(cfg, **SCENARIO_EXTRAS.get(label, {}))
            try:
                time_boot(cfg, target.expect, timeout)          # warm-up, discarded
                cases.append((target, cfg, []))
            except Exception as e:      # report and go on with the rest
                results[target.name][label] = {"error": _first_line(e)}
        for _ in range(runs):
            for target, cfg, samples in list(cases):
                try:
                    samples.append(time_boot(cfg, target.expect, timeout))
                except Exception as e:
                    results[target.name][label] = {"error": _first_line(e)}
                    cases.remove((target, cfg, samples))
        for target, cfg, samples in cases:
            results[target.name][label] = summarize(samples)
        for target in targets:
            if label in results[target.name]:
                log(f"  {target.name:6} {label:15} {_cell(results[target.name][label])}")
        kernel_case = [cfg for target, cfg, _ in cases if target.name == "kernel"]
        if kernel_case:
            try:
                timelines[label] = boot_timeline(kernel_case[0], timeout)
            except Exception as e:
                timelines[label] = [{"error": _first_line(e)}]
            # Translated instructions: exact where times are noisy; TCG only (under KVM
            # nothing is translated), direct boots only (the ELF locates the stubs).
            if accel_name == "tcg" and boot == "kernel":
                try:
                    translated[label] = boot_translation(kernel_case[0], timeout)
                except Exception as e:
                    translated[label] = [{"error": _first_line(e)}]

    report = {
        "accel": accel_name, "accel_reason": reason, "runs": runs, "warmup_runs": 1,
        "quick": quick, "memory": memory, "qemu": qemu_version(),
        "host": platform.node(), "notes": notes, "results": results,
        "ratio_to_floor": _ratios(results, "kernel", "floor"),
        "ratio_to_linux": _ratios(results, "kernel", "linux"),
        "linux_ratio_to_floor": _ratios(results, "linux", "floor"),
        "timelines": timelines,
        "translated": translated,
    }
    ratios = report["ratio_to_floor"]
    report["goals"] = {label: {"goal": goal, "ratio": ratios.get(label),
                               "met": ratios.get(label) is not None
                               and ratios[label] <= goal}
                       for label, goal in GOALS.items()}
    return write_report("boot", report, format_table(report), out, log)


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def _ratios(results: dict, a: str, b: str) -> dict[str, float]:
    """median(a) / median(b) for every boot path both have."""
    out = {}
    for label, _, _ in SCENARIOS:
        x = results.get(a, {}).get(label, {})
        y = results.get(b, {}).get(label, {})
        if "median" in x and "median" in y and y["median"] > 0:
            out[label] = x["median"] / y["median"]
    return out


def write_report(name: str, report: dict, table: str, out: Path | None, log) -> dict:
    """Write one benchmark's JSON (build/bench/NAME.json unless `out`), print its table."""
    out = out or image.BUILD / "bench" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(table)
    log(f"bench {name}: wrote {out}")
    return report


def _cell(r: dict | None) -> str:
    if not r:
        return "-"
    if "error" in r:
        return f"error: {r['error'][:60]}"
    return f"{r['median'] * 1000:.0f} ms (spread {r['spread'] * 1000:.0f})"


def _x(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio else "-"


def format_table(report: dict) -> str:
    res = report["results"]
    lines = [f"{'boot path':15} {'kernel':>22} {'floor':>22} {'linux+micropython':>22} "
             f"{'kernel/floor':>12} {'kernel/linux':>12}"]
    for label, _, _ in SCENARIOS:
        lines.append(
            f"{label:15} {_cell(res.get('kernel', {}).get(label)):>22} "
            f"{_cell(res.get('floor', {}).get(label)):>22} "
            f"{_cell(res.get('linux', {}).get(label)):>22} "
            f"{_x(report['ratio_to_floor'].get(label)):>12} "
            f"{_x(report['ratio_to_linux'].get(label)):>12}")
    lines.append(f"median of {report['runs']} boot(s) after {report['warmup_runs']} "
                 f"discarded, QEMU launch to `>>> ` (floor: to its one byte); -m "
                 f"{report['memory']}")
    for label, g in report.get("goals", {}).items():
        lines.append(f"goal {label}: <= {g['goal']}x the floor, got "
                     f"{_x(g['ratio'])}: {'met' if g['met'] else 'NOT met'}")
    for label, rows in report.get("timelines", {}).items():
        if rows and "error" not in rows[0]:
            lines.append(f"boottrace {label} (ms): " + ", ".join(
                f"{r['phase']} {r['us'] / 1000:.1f}" for r in rows))
    for label, rows in report.get("translated", {}).items():
        if rows and "error" not in rows[0]:
            lines.append(f"translated guest instructions {label}: " + ", ".join(
                f"{r['phase']} {r['instructions']:,}" for r in rows)
                + f"; total {sum(r['instructions'] for r in rows):,}")
    for what, note in report.get("notes", {}).items():
        lines.append(f"{what}: {note}")
    lines.append(f"accel: {report['accel']} ({report['accel_reason']})")
    return "\n".join(lines)


# -- bench irq ---------------------------------------------------------------

IRQ_DEVICE_ARGS = ["-device", "virtio-rng-pci"]
TIMER_PERIODS_MS = (1, 10, 100)
# samples per case: round trips, then sleeps of 1, 10, 100 ms
IRQ_SAMPLES = {"full": (1000, 200, 100, 20), "quick": (100, 20, 10, 3)}

# Runs in the guest's raw REPL; prints one JSON line.  Keep it lean: every
# bytecode between two reads of the clock is part of what is measured.  Round
# trips are timed in TSC cycles (ticks_cpu), sleeps with ticks_us.
IRQ_GUEST_CODE = """
import time, os, json, irq, pci, micropython
tu = time.ticks_us
tc = time.ticks_cpu
td = time.ticks_diff
N, NT = {n}, {nt}
res = {{}}
s = []
for i in range(N):
    a = tc(); b = tc(); s.append(td(b, a))
res['ticks_cpu'] = s
def noop():
    pass
s = []
for i in range(N):
    a = tc(); noop(); b = tc(); s.append(td(b, a))
res['call'] = s
got = [None]
def cb(_):
    got[0] = tc()
s = []
for i in range(N):
    got[0] = None
    a = tc()
    micropython.schedule(cb, 0)
    while got[0] is None:
        pass
    s.append(td(got[0], a))
res['schedule'] = s
res['rng_present'] = pci.virtio_rng() is not None
s = []
c0 = irq.counts().get('virtio-rng', 0)
for i in range(N if res['rng_present'] else 0):
    a = tc(); os.urandom(16); b = tc(); s.append(td(b, a))
res['rng'] = s
res['rng_irqs'] = irq.counts().get('virtio-rng', 0) - c0
res['sleep'] = {{}}
res['spin'] = {{}}
res['timer_irqs'] = {{}}
for T, n in NT:
    s = []
    t0 = irq.info()['timer_count']
    for i in range(n):
        a = tu(); time.sleep_ms(T); b = tu(); s.append(td(b, a))
    res['timer_irqs'][str(T)] = irq.info()['timer_count'] - t0
    res['sleep'][str(T)] = s
    s = []
    for i in range(max(3, n // 4)):
        a = tu()
        while td(tu(), a) < T * 1000:
            pass
        s.append(td(tu(), a))
    res['spin'][str(T)] = s
info = irq.info()
res['timer_mode'] = info['timer_mode']
res['tsc_hz'] = info['tsc_hz']
res['tsc_source'] = info['tsc_source']
print(json.dumps(res))
"""


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile (0..100), linear between closest ranks."""
    xs = sorted(samples)
    if not xs:
        raise ValueError("no samples")
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize_us(samples: list[float]) -> dict:
    """median / p99 / min / max of microsecond samples (no raw list)."""
    return {"n": len(samples), "median": statistics.median(samples),
            "p99": percentile(samples, 99), "min": min(samples),
            "max": max(samples)}


def irq_guest_code(quick: bool) -> str:
    n, *per_period = IRQ_SAMPLES["quick" if quick else "full"]
    nt = list(zip(TIMER_PERIODS_MS, per_period))
    return IRQ_GUEST_CODE.format(n=n, nt=nt)


def irq_report(raw: dict) -> dict:
    """Turn the guest's raw samples into rows with baselines and ratios."""
    def row(name, samples, baseline=None, requested_us=None):
        r = {"case": name, **summarize_us(samples)}
        if requested_us is not None:
            r["requested_us"] = requested_us
            r["overshoot_median"] = r["median"] - requested_us
            r["overshoot_p99"] = r["p99"] - requested_us
        if baseline is not None:
            r["baseline"] = baseline
        return r

    hz = raw.get("tsc_hz") or 0
    if hz <= 0:
        raise ValueError(f"the guest reported tsc_hz {raw.get('tsc_hz')!r}")

    def cycles_to_us(samples):
        return [c * 1e6 / hz for c in samples]

    round_trip = [row("ticks_cpu() back to back",
                      cycles_to_us(raw["ticks_cpu"])),
                  row("no-op Python call", cycles_to_us(raw["call"])),
                  row("schedule() -> callback",
                      cycles_to_us(raw["schedule"]),
                      baseline="no-op Python call")]
    if raw.get("rng"):
        round_trip.append(row("virtio-rng 16 B (MSI-X)",
                              cycles_to_us(raw["rng"]),
                              baseline="no-op Python call"))
    timer = []
    for period in TIMER_PERIODS_MS:
        key = str(period)
        spin = row(f"busy-wait {period} ms", raw["spin"][key],
                   requested_us=period * 1000)
        sleep = row(f"sleep_ms({period})", raw["sleep"][key],
                    baseline=spin["case"], requested_us=period * 1000)
        n = len(raw["sleep"][key])
        sleep["timer_irqs_per_sleep"] = raw["timer_irqs"][key] / n if n else None
        timer += [spin, sleep]

    by_name = {r["case"]: r for r in round_trip + timer}
    for r in round_trip + timer:
        base = by_name.get(r.get("baseline"))
        if base is None:
            continue
        if "requested_us" in r:     # timer: compare overshoots past T
            b = max(base["overshoot_median"], 1.0)
            r["ratio"] = r["overshoot_median"] / b
        elif base["median"] > 0:
            r["ratio"] = r["median"] / base["median"]
    rng_irqs = raw.get("rng_irqs", 0)
    return {"round_trip": round_trip, "timer": timer,
            "rng_irqs_per_request":
                rng_irqs / len(raw["rng"]) if raw.get("rng") else None,
            "timer_mode": raw.get("timer_mode"), "tsc_hz": raw.get("tsc_hz"),
            "tsc_source": raw.get("tsc_source")}


def run_irq_bench(quick: bool = False, accel: str = "auto",
                  machine: str = "q35", out: Path | None = None,
                  log=print) -> dict:
    accel_name, reason = resolve_accel(accel)
    mode = "quick" if quick else "full"
    log(f"bench irq: {mode} run on {machine}, accel {accel_name} ({reason})")
    cfg = VMConfig(boot="kernel", machine=machine, accel=accel_name,
                   extra_args=list(IRQ_DEVICE_ARGS))
    timeout = 300.0 if accel_name == "tcg" else 120.0
    with VM(cfg) as vm:
        vm.start(timeout=60)
        vm.console.read_until(PROMPT, 60)
        out_text, err = vm.console.raw_exec(irq_guest_code(quick),
                                            timeout=timeout)
    if err:
        raise RuntimeError(f"bench irq: the guest program failed:\n{err}")
    lines = [ln for ln in out_text.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError("bench irq: the guest program printed nothing")
    raw = json.loads(lines[-1])
    report = {"accel": accel_name, "accel_reason": reason, "quick": quick,
              "machine": machine, "devices": IRQ_DEVICE_ARGS,
              "qemu": qemu_version(), "host": platform.node(),
              "unit": "us", **irq_report(raw)}
    if not raw.get("rng_present"):
        report["note"] = "no virtio-rng driver in the guest: no MSI-X round trip"
    return write_report("irq", report, format_irq_table(report), out, log)


def _us(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def format_irq_table(report: dict) -> str:
    lines = ["interrupt round trip (us, in the guest)",
             f"  {'case':28} {'n':>5} {'median':>9} {'p99':>9}   "
             f"{'vs baseline':>24}"]
    for r in report["round_trip"]:
        ratio = f"{r['ratio']:.1f}x {r['baseline']}" if "ratio" in r else "-"
        lines.append(f"  {r['case']:28} {r['n']:>5} {_us(r['median']):>9} "
                     f"{_us(r['p99']):>9}   {ratio:>24}")
    per = report.get("rng_irqs_per_request")
    if per is not None:
        lines.append(f"  virtio-rng interrupts per request: {per:.2f}")
    lines += ["timer precision (us, requested vs actual)",
              f"  {'case':28} {'n':>5} {'median':>9} {'p99':>9} "
              f"{'over med':>9} {'over p99':>9}   {'overshoot vs spin':>18}"]
    for r in report["timer"]:
        ratio = f"{r['ratio']:.1f}x" if "ratio" in r else "-"
        lines.append(f"  {r['case']:28} {r['n']:>5} {_us(r['median']):>9} "
                     f"{_us(r['p99']):>9} {_us(r['overshoot_median']):>9} "
                     f"{_us(r['overshoot_p99']):>9}   {ratio:>18}")
    lines.append(f"timer mode {report.get('timer_mode')}, TSC "
                 f"{(report.get('tsc_hz') or 0) / 1e6:.0f} MHz "
                 f"({report.get('tsc_source')}); accel {report['accel']} "
                 f"({report['accel_reason']})"
                 + (f"; {report['note']}" if report.get("note") else ""))
    return "\n".join(lines)
