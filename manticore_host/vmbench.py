"""`invoke bench vm`: MicroPython's own perf_bench suite on this project's guest, on the
Linux + MicroPython peer guest, and on the unix port run directly on the host.

The method is MicroPython's own: tests/run-perfbench.py of the fetched tree is loaded as a
module, and its feature checks, its script (the test, benchrun.py, bm_run(N, M)), its
run_benchmark_on_target and its check against the .exp file or CPython serve every target;
only the loop around them is ours, to report medians (run_benchmarks prints means) and to
discard a warm-up run.  The two guests are driven exactly as run-perfbench.py drives a
board (`-p`): tools/pyboard.py's raw REPL protocol, one soft reset per run, the benchmark
timed inside the guest by benchrun.py with time.ticks_us.  Only the transport differs from
`-p -d DEVICE`: pyboard talks to the launcher's serial console (ConsoleSerial) instead of
a tty, so the VM is booted, and its readiness awaited, by the one QEMU launcher.  The host
reference is run-perfbench.py's own local target (the script on the unix binary's stdin).

Both guests run under the same QEMU options (machine, accel, memory); their figures are
compared benchmark by benchmark (time ratio, lower is better for this project) with the
geometric mean; the host column shows what emulation costs.  Warm-up: each benchmark runs
once before the `average` timed runs, and that run is discarded.
Results: a table on stdout and build/bench/vm.json.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from manticore_host import fetch
from manticore_host.bench import qemu_version, write_report
from manticore_host.qemu import PROMPT, VM, VMConfig, resolve_accel

# N ~ the target's speed in MHz, M ~ its heap in KiB (benchrun.py picks each benchmark's
# parameters from them).  TCG runs MicroPython at the speed of a board of a few hundred MHz.
PARAMS = {"full": (1000, 1000, 5), "quick": (100, 100, 1)}     # N, M, timed runs per benchmark
GUEST_MEMORY = "128M"
EXEC_TIMEOUT = 300.0        # one benchmark run, in the guest (pyboard's default is 10 s)
TARGETS = ("manticore", "linux", "host")


# -- MicroPython's tools, loaded from the fetched tree -------------------------------------

@contextlib.contextmanager
def _in_tests_dir(tree: Path):
    """run-perfbench.py finds benchrun.py, feature_check/ and ../tools relative to the
    working directory, as when it is run from tests/."""
    tests = tree / "tests"
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(tests)
    sys.path[:0] = [str(tests), str(tree / "tools")]
    try:
        yield tests
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path


def load_perfbench(tree: Path):
    """tests/run-perfbench.py as a module (its main() is not run)."""
    spec = importlib.util.spec_from_file_location(
        "run_perfbench", tree / "tests" / "run-perfbench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ConsoleSerial:
    """The three calls pyboard.py makes on a serial port, over the launcher's Console."""

    def __init__(self, console, timeout: float = EXEC_TIMEOUT):
        self.console = console
        self.timeout = timeout

    def read(self, size: int = 1) -> bytes:
        return self.console.read_exact(size, self.timeout)

    def write(self, data: bytes) -> int:
        self.console.write(bytes(data))
        return len(data)

    def inWaiting(self) -> int:         # pyserial's name, as pyboard.py calls it
        return self.console.pending()

    def close(self) -> None:
        pass


def guest_board(pyboard, console):
    """A pyboard.Pyboard on `console`; runs may be silent for EXEC_TIMEOUT (not 10 s)."""

    class GuestBoard(pyboard.Pyboard):
        def __init__(self, serial):     # no device to open: the VM is already up
            self.serial = serial
            self.in_raw_repl = False
            self.use_raw_paste = True

        def exec_raw(self, command, timeout=EXEC_TIMEOUT, data_consumer=None):
            return super().exec_raw(command, timeout, data_consumer)

    return GuestBoard(ConsoleSerial(console))


# -- running the suite on one target ---------------------------------------------------------

def bench_script(tests_dir: Path, test: str, n: int, m: int) -> bytes:
    """The script run-perfbench.py sends for one benchmark: the test, benchrun.py, bm_run."""
    return (b"import sys\nsys.path.remove('')\n\n" + (tests_dir / test).read_bytes()
            + (tests_dir / "perf_bench" / "benchrun.py").read_bytes()
            + b"bm_run(%u, %u)\n" % (n, m))


def run_suite(tree: Path, target, n: int, m: int, average: int, label: str, log,
              tests: list[str] | None = None, truth: dict | None = None) -> tuple[dict, float]:
    """Every benchmark on `target` (a pyboard or a command list) with run-perfbench.py's own
    functions (feature checks, run_benchmark_on_target, the check against the .exp file or
    CPython): one warm-up run, discarded, then `average` timed runs.  `truth` caches the
    expected results across targets.  Returns ({name: result}, seconds)."""
    truth = {} if truth is None else truth
    results = {}
    t0 = time.monotonic()
    with _in_tests_dir(tree) as tests_dir:
        perf = load_perfbench(tree)
        if tests is None:
            tests = sorted(f"perf_bench/{f}" for f in os.listdir("perf_bench")
                           if f.endswith(".py") and f != "benchrun.py")
        skip_complex = perf.run_feature_test(target, "complex") != "complex"
        skip_native = perf.run_feature_test(target, "native_check") != "native"
        for test in tests:
            name = Path(test).stem
            if skip_complex and "bm_fft" in test or skip_native and "viper_" in test:
                results[name] = {"error": "SKIP (feature missing)"}
                log(f"  {label:9} {name:24} skipped: feature missing")
                continue
            script = bench_script(tests_dir, test, n, m)
            times, error, out = [], None, None
            for i in range(average + 1):
                t, _norm, result = perf.run_benchmark_on_target(target, script)
                if t < 0:
                    error = result
                    break
                if out is None:
                    out = result
                elif result != out:
                    error = "FAIL self: a run gave a different result"
                    break
                if i > 0:                   # run 0 is the warm-up
                    times.append(t)
            if error is None and out != "None":
                if test not in truth:
                    exp = tests_dir / (test + ".exp")
                    truth[test] = exp.read_text().strip() if exp.is_file() else \
                        perf.run_benchmark_on_target(perf.PYTHON_TRUTH, script)[2]
                if out != truth[test]:
                    error = "FAIL truth: the result differs from CPython's / the .exp file"
            if error is not None:
                results[name] = {"error": str(error)[:200]}
                log(f"  {label:9} {name:24} {str(error)[:70]}")
                continue
            results[name] = {"median_us": statistics.median(times), "min_us": min(times),
                             "max_us": max(times), "spread_us": max(times) - min(times),
                             "runs": times}
            log(f"  {label:9} {name:24} {statistics.median(times) / 1000:9.1f} ms"
                f"  (spread {(max(times) - min(times)) / 1000:.1f})")
    return results, time.monotonic() - t0


def _pyboard_module(tree: Path):
    with _in_tests_dir(tree):
        import pyboard                  # noqa: E402  (tools/ of the fetched tree)
        return pyboard


def run_on_vm(tree: Path, cfg: VMConfig, ready: bytes, label: str, n: int, m: int,
              average: int, log, tests=None, truth=None) -> tuple[dict, float]:
    pyboard = _pyboard_module(tree)
    with VM(cfg) as vm:
        vm.start(timeout=60)
        vm.console.read_until(ready, 120)
        board = guest_board(pyboard, vm.console)
        board.enter_raw_repl()
        return run_suite(tree, board, n, m, average, label, log, tests, truth)


def geomean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def compare(results: dict[str, dict]) -> dict:
    """Per benchmark, the time ratios manticore/linux and each guest/host; geometric means
    over the benchmarks every side finished."""
    names = sorted(set().union(*(r for r in results.values() if isinstance(r, dict)
                                 and "error" not in r)))
    rows, pairs = [], {"manticore/linux": [], "manticore/host": [], "linux/host": []}
    for name in names:
        row = {"bench": name}
        for target in TARGETS:
            r = results.get(target, {}).get(name) if "error" not in results.get(target, {}) \
                else None
            row[target] = r.get("median_us") if r and "median_us" in r else None
            if r and "error" in r:
                row[f"{target}_error"] = r["error"]
        for pair in pairs:
            a, b = pair.split("/")
            if row[a] and row[b]:
                row[pair] = row[a] / row[b]
                pairs[pair].append(row[pair])
        rows.append(row)
    return {"rows": rows,
            "geomean": {pair: geomean(v) for pair, v in pairs.items()},
            "compared": {pair: len(v) for pair, v in pairs.items()}}


def run_vm_bench(quick: bool = False, accel: str = "auto", machine: str = "q35",
                 memory: str = GUEST_MEMORY, targets: tuple[str, ...] = TARGETS,
                 tests: list[str] | None = None, out: Path | None = None,
                 log=print) -> dict:
    accel_name, reason = resolve_accel(accel)
    n, m, average = PARAMS["quick" if quick else "full"]
    log(f"bench vm: perf_bench N={n} M={m}, {average} timed run(s) after a warm-up, "
        f"{machine} -m {memory}, accel {accel_name} ({reason})")
    tree = fetch.micropython_dir(quiet=True)
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    notes: dict[str, str] = {}
    truth: dict[str, str] = {}          # expected results, shared by the targets

    def attempt(target, fn):
        try:
            results[target], seconds[target] = fn()
        except Exception as e:          # report it and go on with the other targets
            first = (str(e).splitlines() or [type(e).__name__])[0]
            log(f"  {target:9} error: {first}")
            results[target] = {"error": first}

    if "manticore" in targets:
        cfg = VMConfig(boot="kernel", machine=machine, memory=memory, accel=accel_name)
        attempt("manticore", lambda: run_on_vm(tree, cfg, PROMPT, "manticore", n, m,
                                               average, log, tests, truth))
    if "linux" in targets:
        def linux():
            from manticore_host import linuxpeer
            image = linuxpeer.ensure_image(log=log)
            notes["linux"] = (f"Linux {image.kernel_version}, busybox, MicroPython unix port "
                              f"(static, the unix port's default heap)")
            cfg = linuxpeer.peer_config(image, mode="raw", machine=machine,
                                        memory=memory, accel=accel_name)
            return run_on_vm(tree, cfg, linuxpeer.READY["raw"], "linux", n, m, average,
                             log, tests, truth)
        attempt("linux", linux)
    if "host" in targets:
        def host():
            from manticore_host import linuxpeer
            exe = linuxpeer.host_micropython(log=log)
            notes["host"] = f"{exe} on {platform.machine()} {platform.node()}"
            return run_suite(tree, [str(exe), "-X", "emit=bytecode"], n, m, average,
                             "host", log, tests, truth)
        attempt("host", host)

    report = {"accel": accel_name, "accel_reason": reason, "quick": quick,
              "machine": machine, "memory": memory, "N": n, "M": m, "average": average,
              "warmup_runs": 1, "qemu": qemu_version(), "host": platform.node(),
              "micropython": str(tree.name), "targets": list(targets), "notes": notes,
              "seconds": seconds, "results": results, **compare(results)}
    return write_report("vm", report, format_table(report), out, log)


def _t(x: float | None) -> str:
    return "-" if x is None else f"{x / 1000:.1f}"


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_table(report: dict) -> str:
    lines = [f"perf_bench N={report['N']} M={report['M']}: median of {report['average']} "
             "timed run(s) in ms (lower is better), and time ratios",
             f"{'benchmark':24} {'manticore':>10} {'linux':>10} {'host':>10}  "
             f"{'manticore/linux':>15} {'manticore/host':>14} {'linux/host':>10}"]
    for row in report["rows"]:
        lines.append(f"{row['bench']:24} {_t(row['manticore']):>10} {_t(row['linux']):>10} "
                     f"{_t(row['host']):>10}  {_r(row.get('manticore/linux')):>15} "
                     f"{_r(row.get('manticore/host')):>14} {_r(row.get('linux/host')):>10}")
    g = report["geomean"]
    lines.append(f"{'geometric mean':24} {'':>10} {'':>10} {'':>10}  "
                 f"{_r(g['manticore/linux']):>15} {_r(g['manticore/host']):>14} "
                 f"{_r(g['linux/host']):>10}")
    for target in report["targets"]:
        r = report["results"].get(target, {})
        if "error" in r:
            lines.append(f"{target}: error: {r['error']}")
        else:
            bad = {k: v["error"] for k, v in r.items() if "error" in v}
            if bad:
                lines.append(f"{target}: not timed: " + ", ".join(
                    f"{k} ({v[:40]})" for k, v in sorted(bad.items())))
    lines.append(f"accel {report['accel']} ({report['accel_reason']}); {report['machine']} "
                 f"-m {report['memory']}; one warm-up run per benchmark discarded")
    return "\n".join(lines)


# -- `invoke bench vm --compare-wx`: what the W^X page protections cost -------------------

WX_TARGETS = ("wx-on", "wx-off")


def run_wx_compare(kernel_on: Path, kernel_off: Path, quick: bool = False, accel: str = "auto",
                   machine: str = "q35", memory: str = GUEST_MEMORY,
                   tests: list[str] | None = None, out: Path | None = None,
                   log=print) -> dict:
    """perf_bench on this project's image with its W^X protections (kernel_on, the normal
    build) and without them (kernel_off, `make WX=0`), in one run: both VMs booted side by
    side, every benchmark run on both in turn, the order alternating from one benchmark to
    the next (ABBA) so that a drift of the host's load falls on both. The figure is the time
    ratio on/off per benchmark and its geometric mean (above 1: W^X costs that much)."""
    accel_name, reason = resolve_accel(accel)
    n, m, average = PARAMS["quick" if quick else "full"]
    log(f"bench vm --compare-wx: perf_bench N={n} M={m}, {average} timed run(s) after a "
        f"warm-up, {machine} -m {memory}, accel {accel_name} ({reason})")
    tree = fetch.micropython_dir(quiet=True)
    pyboard = _pyboard_module(tree)
    if tests is None:
        tests = sorted(f"perf_bench/{f}" for f in os.listdir(tree / "tests" / "perf_bench")
                       if f.endswith(".py") and f != "benchrun.py")
    results: dict[str, dict] = {t: {} for t in WX_TARGETS}
    truth: dict[str, str] = {}
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        boards = {}
        for label, kernel in zip(WX_TARGETS, (kernel_on, kernel_off)):
            vm = stack.enter_context(VM(VMConfig(boot="kernel", machine=machine, memory=memory,
                                                 accel=accel_name, kernel=Path(kernel))))
            vm.start(timeout=60)
            vm.console.read_until(PROMPT, 120)
            boards[label] = guest_board(pyboard, vm.console)
            boards[label].enter_raw_repl()
        for i, test in enumerate(tests):
            order = WX_TARGETS if i % 2 == 0 else WX_TARGETS[::-1]
            for label in order:
                got, _ = run_suite(tree, boards[label], n, m, average, label, log, [test], truth)
                results[label].update(got)
    rows, ratios = wx_rows(results)
    report = {"accel": accel_name, "accel_reason": reason, "quick": quick, "machine": machine,
              "memory": memory, "N": n, "M": m, "average": average, "warmup_runs": 1,
              "qemu": qemu_version(), "host": platform.node(),
              "load_average": os.getloadavg(), "micropython": str(tree.name),
              "kernels": {"wx-on": str(kernel_on), "wx-off": str(kernel_off)},
              "seconds": time.monotonic() - t0, "results": results, "rows": rows,
              "geomean": {k: geomean(v) for k, v in ratios.items()},
              "compared": len(ratios["on/off"])}
    return write_report("vm-wx", report, format_wx_table(report), out, log)


def wx_rows(results: dict) -> tuple[list[dict], dict[str, list[float]]]:
    """Per benchmark the medians and the ratios on/off of the medians and of the fastest
    runs (on a loaded host the fastest run is the one least disturbed)."""
    rows, ratios = [], {"on/off": [], "on/off min": []}
    for name in sorted(results["wx-on"]):
        on, off = results["wx-on"][name], results["wx-off"].get(name, {})
        row = {"bench": name, "wx-on": on.get("median_us"), "wx-off": off.get("median_us")}
        for key, field in (("on/off", "median_us"), ("on/off min", "min_us")):
            if on.get(field) and off.get(field):
                row[key] = on[field] / off[field]
                ratios[key].append(row[key])
        rows.append(row)
    return rows, ratios


def format_wx_table(report: dict) -> str:
    lines = [f"perf_bench N={report['N']} M={report['M']}: median of {report['average']} timed "
             "run(s) in ms, W^X protections on and off (make WX=0), and the ratio on/off",
             f"{'benchmark':24} {'W^X on':>10} {'W^X off':>10} {'on/off':>8} {'(fastest)':>10}"]
    for row in report["rows"]:
        lines.append(f"{row['bench']:24} {_t(row['wx-on']):>10} {_t(row['wx-off']):>10} "
                     f"{_r(row.get('on/off')):>8} {_r(row.get('on/off min')):>10}")
    g = report["geomean"]
    lines.append(f"{'geometric mean':24} {'':>10} {'':>10} {_r(g['on/off']):>8} "
                 f"{_r(g.get('on/off min')):>10}  ({report['compared']} benchmarks)")
    lines.append(f"accel {report['accel']} ({report['accel_reason']}); {report['machine']} "
                 f"-m {report['memory']}; both VMs up at once, benchmarks alternated ABBA; "
                 "one warm-up run per benchmark discarded"
                 + (f"; host load average {report['load_average'][0]:.1f}"
                    if report.get("load_average") else ""))
    return "\n".join(lines)
