"""`invoke bench faults`: the fault campaign in its long form, and the reliability table.

Runs the campaign tests with large figures (100,000 malformed frames through tap while echod
serves, 1 MiB of random bytes at the REPL, random raw-REPL sequences), plus the stack
protector's and the fuzz regressions' tests, collects their figures (the tests write them to
$MANTICORE_FAULTS_OUT) and the last `invoke fuzz` summary (build/fuzz/summary.json), and writes
build/bench/faults.json. `invoke bench all` puts format_table's rows in summary.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TESTS = ("tests/net/test_fault_campaign.py", "tests/boot/test_repl_faults.py",
         "tests/net/test_qmp_faults.py", "tests/smp/test_app_faults.py",
         "tests/smp/test_smp.py::test_a_failing_app_on_one_cpu_leaves_the_others_serving",
         "tests/boot/test_boot_stack_protector.py", "tests/fuzz")

# --quick (and so `invoke bench all --quick`, which the test suite runs): the campaign's two
# figure-producing tests, small; the others already run in the suite itself.
TESTS_QUICK = ("tests/net/test_fault_campaign.py", "tests/boot/test_repl_faults.py")


def run_fault_bench(quick: bool = False, out: Path | None = None, log=print) -> dict:
    frames = 1000 if quick else 100_000
    repl_bytes = 16 * 1024 if quick else 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="manticore-faults-") as tmp:
        env = dict(os.environ, MANTICORE_FAULT_FRAMES=str(frames),
                   MANTICORE_REPL_FUZZ_BYTES=str(repl_bytes), MANTICORE_FAULTS_OUT=tmp)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *(TESTS_QUICK if quick else TESTS)]
        log(f"bench faults: {' '.join(cmd[3:])} ({frames} frames, {repl_bytes} REPL bytes)")
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        took = time.monotonic() - t0
        results = {p.stem: json.loads(p.read_text()) for p in Path(tmp).glob("*.json")}
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    fuzz_path = ROOT / "build" / "fuzz" / "summary.json"
    report = {"quick": quick, "frames_requested": frames, "repl_bytes_requested": repl_bytes,
              "tests_passed": proc.returncode == 0, "pytest": tail[0],
              "seconds": round(took, 1), "results": results,
              "fuzz": json.loads(fuzz_path.read_text()) if fuzz_path.is_file() else None}
    if proc.returncode != 0:
        log(proc.stdout[-4000:])
    log(format_table(report))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    if proc.returncode != 0:
        raise RuntimeError(f"fault campaign failed: {tail[0]}")
    return report


def format_table(report: dict) -> str:
    r = report["results"]
    rows = [("fault", "figure", "outcome")]
    f = r.get("frames")
    if f:
        rows.append(("malformed frames via tap (9 kinds) while echod serves",
                     f"{f['frames']:,} frames in {f['seconds']} s",
                     f"0 crashes; echo during {f['echo_during']}, after 20/20; driver saw "
                     f"{f['seen_by_driver']:,}, tap dropped {f['dropped_by_tap']}, too big for "
                     f"QEMU {f.get('too_big_for_qemu', 0)}; mem_free {f['mem_free'][0]} -> "
                     f"{f['mem_free'][1]}; rx free {f['rx_free_in_ring'][0]} -> "
                     f"{f['rx_free_in_ring'][1]}"))
    for key, what in (("repl_bytes", "random bytes typed at the REPL"),
                      ("repl_raw", "random raw-REPL / raw-paste sequences")):
        if key in r:
            rows.append((what, f"{r[key]['bytes']:,} bytes in {r[key]['seconds']} s",
                         f"REPL answered after {r[key]['recovery_attempts']} recovery attempt(s)"))
    ok = report["tests_passed"]
    for what, outcome in () if report.get("quick") else (
            ("link cut for 2 s mid 256 KiB TCP echo (QMP set_link)",
             "the transfer comes through exact; echod serves new TCP/UDP after"),
            ("machine reset requested through QMP", "QEMU exits with status 0 (-no-reboot)"),
            ("app exhausting the heap / recursing without bound",
             "MemoryError / RuntimeError, app fails on its CPU, others serve"),
            ("app swallowing KeyboardInterrupt in an except: loop",
             "takes its own CPU only; echod 100/100, REPL answers"),
            ("smashed stack canary (kdebug.crash('canary'))",
             "panic naming the function, QEMU status 3")):
        rows.append((what, "1", outcome if ok else "see the test log"))
    for h in report.get("fuzz") or []:
        lines_cov = ", ".join(f"{Path(k).name} {v[0]}/{v[1]}"
                              for k, v in sorted((h.get("lines") or {}).items()))
        rows.append((f"fuzz {h['harness']} ({', '.join(h['sources'])})",
                     f"{h['executions']:,} executions, {h['edges']}/{h['edges_total']} edges"
                     + (f", lines {lines_cov}" if lines_cov else ""),
                     f"findings: {', '.join(h['findings']) or 'none'}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.append(f"(campaign tests {'passed' if report['tests_passed'] else 'FAILED'}: "
                 f"{report['pytest']})")
    return "\n".join(lines)
