"""`invoke bench echo --quick` end to end: the generator against the host-local echo server and
against echod and rawecho, each over user networking and over tap; the table and
build/bench/echo.json."""

import json
import subprocess
import sys

import pytest

from vmtools import REPO

pytestmark = pytest.mark.timeout(240)

CASES = ("64B x1", "64B x32", "1400B x1", "1400B x32")
GUESTS = ("echod/user", "echod/tap", "rawecho/user", "rawecho/tap")
PATHS = ("host-local",) + GUESTS


def test_bench_echo_quick(namespaces_ok, tmp_path, summary):
    out = tmp_path / "echo.json"
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from manticore_host.echobench import run_echo_bench\n"
            "run_echo_bench(quick=True, accel='tcg', seconds=0.5, out=__import__('pathlib').Path(%r))\n"
            % (str(REPO), str(out)))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=200, cwd=REPO)
    assert run.returncode == 0, f"expected the quick echo bench to succeed, got {run.returncode}:\n" \
                                f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    report = json.loads(out.read_text())
    res = report["results"]
    assert set(res) == set(PATHS), f"expected paths {PATHS}, got {sorted(res)}"
    assert report["apps"] == ["echod", "rawecho"], report["apps"]
    for path in PATHS:
        assert "error" not in res[path], f"expected {path} to run, got {res[path]['error']}"
        assert tuple(res[path]) == CASES, f"expected cases {CASES} for {path}, got {tuple(res[path])}"
        for case, r in res[path].items():
            assert r["corrupt"] == 0, f"{path} {case}: {r['corrupt']} replies differ from the request"
            assert r["received"] > 0 and r["p50_us"] is not None and r["p99_us"] >= r["p50_us"], \
                f"expected {path} {case} to be answered with latencies, got {r}"
    for case in CASES:
        local = res["host-local"][case]["rate"]
        assert local > 2000, f"expected the generator to reach > 2000/s against the host-local " \
                             f"echo ({case}), got {local:.0f}/s: the generator itself is too slow"
    table = run.stdout
    for word in PATHS + ("p50 us", "p99 us", "bench echo: wrote"):
        assert word in table, f"expected {word!r} in the printed table, got:\n{table}"
    summary("net: bench echo --quick: " + "; ".join(
        f"{p} {c} {res[p][c]['rate']:.0f}/s p50 {res[p][c]['p50_us']:.0f} us"
        for p in PATHS for c in ("64B x1", "1400B x32")))
