"""`invoke bench irq --quick` end to end: one VM, the guest measures, the host writes the table
and build/bench/irq.json (here: a temporary file).  Checks that the figures are sane."""

from __future__ import annotations

import json
import os

import pytest

from vmtools import REPO

ACCEL = os.environ.get("MANTICORE_ACCEL", "tcg")

pytestmark = pytest.mark.timeout(180)


def test_bench_irq_quick(tmp_path, summary):
    if not (REPO / "build" / "kernel.elf").exists():
        pytest.fail("build/kernel.elf does not exist: build the image first (invoke build)", pytrace=False)
    from manticore_host import bench
    out = tmp_path / "irq.json"
    logged: list[str] = []
    report = bench.run_irq_bench(quick=True, accel=ACCEL, out=out, log=logged.append)
    table = "\n".join(logged)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report)), "irq.json differs from the returned report"

    cases = {r["case"]: r for r in report["round_trip"] + report["timer"]}
    n_round, n1, n10, n100 = bench.IRQ_SAMPLES["quick"]
    for name in ("no-op Python call", "schedule() -> callback", "virtio-rng 16 B (MSI-X)"):
        assert name in cases, f"expected a {name!r} row, got {sorted(cases)}\n{table}"
        assert name in table, f"expected {name!r} in the printed table:\n{table}"
    for r in cases.values():
        assert r["n"] > 0 and r["min"] <= r["median"] <= r["p99"] <= r["max"], f"insane row {r}"
    rng = cases["virtio-rng 16 B (MSI-X)"]
    assert rng["n"] == n_round, f"expected {n_round} virtio-rng samples, got {rng['n']}"
    assert rng["median"] > cases["no-op Python call"]["median"], (
        f"a device round trip ({rng['median']:.2f} us) cannot beat a no-op call "
        f"({cases['no-op Python call']['median']:.2f} us)\n{table}")
    assert rng["median"] < 10_000, f"virtio-rng round trip median {rng['median']:.0f} us: over 10 ms\n{table}"
    assert rng["ratio"] > 1, f"expected the device round trip to cost more than the baseline:\n{table}"
    per = report["rng_irqs_per_request"]
    assert per is not None and 0.9 <= per <= 2.0, f"expected ~1 MSI-X interrupt per virtio-rng request, got {per}"

    for period, n in zip(bench.TIMER_PERIODS_MS, (n1, n10, n100)):
        sleep = cases[f"sleep_ms({period})"]
        want = period * 1000
        assert sleep["n"] == n, f"expected {n} sleep_ms({period}) samples, got {sleep['n']}"
        assert sleep["min"] >= want, f"sleep_ms({period}) returned early: shortest {sleep['min']} us\n{table}"
        assert sleep["median"] <= want * 1.5 + 2000, f"sleep_ms({period}) median {sleep['median']} us is far past {want}\n{table}"
        assert sleep["timer_irqs_per_sleep"] is not None and 0.5 <= sleep["timer_irqs_per_sleep"] <= 5, (
            f"expected about one timer interrupt per sleep_ms({period}), got {sleep['timer_irqs_per_sleep']}")
    assert report["timer_mode"] in ("tsc-deadline", "one-shot"), report["timer_mode"]
    summary("bench irq --quick:\n" + table)
