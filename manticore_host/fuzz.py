"""`invoke fuzz`: run each libFuzzer harness of tests/fuzz/ for a bounded time and report
executions, coverage and crashes per harness (build/fuzz/summary.json and summary.md).

The harnesses are built from the kernel's unchanged C sources with clang's libFuzzer, ASan
and UBSan (tests/fuzz/fuzzbuild.py). Each run starts from the kept seeds and regression inputs
(tests/fuzz/corpus/NAME, tests/fuzz/regressions/NAME) and grows a working corpus in
build/fuzz/NAME/corpus; an input that crashes, trips a sanitizer or hangs is written to
build/fuzz/NAME/ as crash-*, leak-* or timeout-*: fix the bug, then keep the input in
tests/fuzz/regressions/NAME/ so the ordinary test suite replays it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

import fuzzbuild  # noqa: E402

OUT = ROOT / "build" / "fuzz"

DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)")
PROGRESS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)")
COUNTERS = re.compile(r"\((\d+) inline 8-bit counters\)")


def parse_log(text: str) -> dict:
    """Executions and coverage from a libFuzzer log: the DONE line, else the last progress."""
    found = DONE.findall(text) or PROGRESS.findall(text)
    counters = COUNTERS.search(text)
    result = {"executions": 0, "edges": 0, "features": 0, "corpus": 0,
              "edges_total": int(counters.group(1)) if counters else 0}
    if found:
        runs, cov, ft, corp = map(int, found[-1])
        result.update(executions=runs, edges=cov, features=ft, corpus=corp)
    return result


GCOV_FILE = re.compile(r"File '([^']+)'\nLines executed:([\d.]+)% of (\d+)")


def line_coverage(name: str, work: Path, inputs: list[Path]) -> dict:
    """Kernel source lines the inputs reach: the harness rebuilt with gcc's gcov
    instrumentation (fuzzbuild's `coverage` flavour), every input replayed once, gcov's count
    per file. Returns {file: [lines executed, lines]} for the harness's kernel sources (path
    relative to the repository) and lwIP as one total ("lwIP"); {} if that cannot be done."""
    cov = work / "coverage"
    if cov.is_dir():
        for old in cov.glob("*.gcda"):
            old.unlink()
    try:
        exe = fuzzbuild.build(name, cov, "coverage")
        for i in range(0, len(inputs), 200):
            subprocess.run([str(exe), *map(str, inputs[i:i + 200])], capture_output=True,
                           timeout=600, cwd=cov)
        gcdas = sorted(str(p.name) for p in cov.glob("*.gcda"))
        out = subprocess.run(["gcov", "-n", *gcdas], capture_output=True, text=True,
                             timeout=300, cwd=cov).stdout
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        return {}
    lines: dict[str, list[int]] = {}
    kernel = {str(fuzzbuild.REPO / s) for s in fuzzbuild.HARNESSES[name] if s.endswith(".c")}
    for path, percent, total in GCOV_FILE.findall(out):
        total = int(total)
        done = round(float(percent) * total / 100)
        if path in kernel:
            key = str(Path(path).relative_to(fuzzbuild.REPO))
        elif "/lwip-" in path and path.endswith(".c"):
            key = "lwIP"
        else:
            continue
        got = lines.setdefault(key, [0, 0])
        got[0] += done
        got[1] += total
    return lines


def format_lines(lines: dict) -> str:
    # The harness's own kernel sources first, lwIP (a library it also exercises) last.
    order = sorted(lines.items(), key=lambda kv: (kv[0] == "lwIP", kv[0]))
    return ", ".join(f"{Path(k).name} {v[0]}/{v[1]}" for k, v in order) or "-"


def run_one(name: str, seconds: int, out_dir: Path) -> dict:
    work = out_dir / name
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    exe = fuzzbuild.build(name, work, "libfuzzer")
    seeds = [str(fuzzbuild.FUZZ / sub / name) for sub in ("corpus", "regressions")
             if (fuzzbuild.FUZZ / sub / name).is_dir()]
    before = {p.name for p in work.iterdir() if p.is_file()}
    cmd = [str(exe), f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
           "-print_final_stats=1", f"-artifact_prefix={work}/", str(corpus), *seeds]
    env = dict(os.environ, **fuzzbuild.SANITIZER_ENV)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=seconds * 2 + 120)
    elapsed = time.monotonic() - start
    (work / "fuzz.log").write_text(proc.stderr)
    findings = sorted(p.name for p in work.iterdir() if p.is_file()
                      and p.name not in before
                      and p.name.startswith(("crash-", "leak-", "timeout-", "oom-")))
    result = parse_log(proc.stderr)
    inputs = [p for p in corpus.iterdir() if p.is_file()]
    inputs += [p for p in fuzzbuild.corpus_inputs(name)]
    result.update(harness=name, seconds=round(elapsed, 1), findings=findings,
                  lines=line_coverage(name, work, inputs),
                  sources=fuzzbuild.HARNESSES[name], status=proc.returncode,
                  execs_per_second=round(result["executions"] / elapsed) if elapsed else 0)
    return result


def run_fuzz(seconds: int = 60, names: list[str] | None = None, out_dir: Path = OUT) -> list[dict]:
    names = names or sorted(fuzzbuild.HARNESSES)
    unknown = [n for n in names if n not in fuzzbuild.HARNESSES]
    if unknown:
        raise ValueError(f"unknown harness {', '.join(unknown)} "
                         f"(have: {', '.join(sorted(fuzzbuild.HARNESSES))})")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        print(f"fuzz: {name} for {seconds} s", flush=True)
        r = run_one(name, seconds, out_dir)
        results.append(r)
        print(f"fuzz: {name}: {r['executions']} executions, {r['edges']}/{r['edges_total']} "
              f"edges, lines {format_lines(r['lines'])}, {len(r['findings'])} findings",
              flush=True)
    # The table keeps the last figures of harnesses not run this time (--harness NAME).
    summary_path = out_dir / "summary.json"
    kept = []
    if summary_path.is_file():
        try:
            kept = [r for r in json.loads(summary_path.read_text())
                    if r.get("harness") not in names and r.get("harness") in fuzzbuild.HARNESSES]
        except (ValueError, AttributeError):
            kept = []
    ran = results
    results = sorted(kept + ran, key=lambda r: r["harness"])
    summary_path.write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| harness | sources | seconds | executions | exec/s | edges covered "
             "| lines covered (gcov) | findings |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for r in results:
        share = f" ({100 * r['edges'] / r['edges_total']:.0f}%)" if r["edges_total"] else ""
        lines.append(f"| {r['harness']} | {', '.join(r['sources'])} | {r['seconds']} | "
                     f"{r['executions']} | {r['execs_per_second']} | "
                     f"{r['edges']}/{r['edges_total']}{share} | "
                     f"{format_lines(r.get('lines', {}))} | "
                     f"{', '.join(r['findings']) or 'none'} |")
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return ran
