"""Benchmark bookkeeping (no QEMU): memory bisection, ratios and the tables."""

from pathlib import Path

from manticore_host import bench


def test_smallest_memory_bisects(monkeypatch):
    tried = []

    def fake(make_config, expect, mib, timeout):
        tried.append(mib)
        return mib >= 11
    monkeypatch.setattr(bench, "reaches", fake)
    assert bench.smallest_memory(None, b">>> ", log=lambda *a: None) == 11
    assert len(tried) <= 9
    tried.clear()
    assert bench.smallest_memory(None, b">>> ", step=4, log=lambda *a: None) in range(11, 15)
    tried.clear()
    assert bench.smallest_memory(None, b">>> ", lo=16, hi=512, step=4,
                                 log=lambda *a: None) == 16


def test_smallest_memory_edges(monkeypatch):
    monkeypatch.setattr(bench, "reaches", lambda c, e, m, t: False)
    assert bench.smallest_memory(None, b">>> ", log=lambda *a: None) is None
    monkeypatch.setattr(bench, "reaches", lambda c, e, m, t: True)
    assert bench.smallest_memory(None, b">>> ", log=lambda *a: None) == 2


def test_summarize_and_table():
    s = bench.summarize([0.5, 0.3, 0.4])
    assert s["median"] == 0.4 and abs(s["spread"] - 0.2) < 1e-9
    results = {"kernel": {"direct q35": s, "iso q35": {"error": "boom"}},
               "floor": {"direct q35": bench.summarize([0.1])},
               "linux": {"direct q35": bench.summarize([2.0, 2.2])}}
    report = {
        "results": results, "runs": 3, "warmup_runs": 1, "memory": "128M",
        "ratio_to_floor": bench._ratios(results, "kernel", "floor"),
        "ratio_to_linux": bench._ratios(results, "kernel", "linux"),
        "notes": {"linux": "peer image unavailable: test"},
        "accel": "tcg", "accel_reason": "tcg requested"}
    assert report["ratio_to_floor"] == {"direct q35": 4.0}
    assert abs(report["ratio_to_linux"]["direct q35"] - 0.4 / 2.1) < 1e-9
    table = bench.format_table(report)
    assert "400 ms" in table and "4.00x" in table and "0.19x" in table
    assert "error: boom" in table and "2100 ms" in table
    assert "peer image unavailable" in table


# --------------------------------------------------------------------------- bench irq (no QEMU)


def _raw_irq(rng=True):
    hz = 1_000_000_000                      # 1 GHz: 1000 cycles = 1 us
    return {"tsc_hz": hz, "tsc_source": "hpet", "timer_mode": "one-shot",
            "ticks_cpu": [100] * 10, "call": [1000, 1000, 2000], "schedule": [3000] * 5,
            "rng_present": rng, "rng": [20_000, 30_000, 25_000] if rng else [],
            "rng_irqs": 3 if rng else 0,
            "sleep": {"1": [1050, 1100], "10": [10100] * 3, "100": [100200]},
            "spin": {"1": [1002] * 3, "10": [10002] * 3, "100": [100004] * 3},
            "timer_irqs": {"1": 2, "10": 3, "100": 1}}


def test_percentile():
    assert bench.percentile([1, 2, 3, 4, 5], 50) == 3
    assert bench.percentile([1, 2, 3, 4, 5], 100) == 5
    assert abs(bench.percentile(list(range(101)), 99) - 99) < 1e-9
    assert bench.percentile([7], 99) == 7


def test_irq_report_rows_and_ratios():
    report = bench.irq_report(_raw_irq())
    rows = {r["case"]: r for r in report["round_trip"] + report["timer"]}
    assert rows["no-op Python call"]["median"] == 1.0          # cycles -> us
    assert rows["virtio-rng 16 B (MSI-X)"]["median"] == 25.0
    assert rows["virtio-rng 16 B (MSI-X)"]["ratio"] == 25.0
    assert rows["schedule() -> callback"]["ratio"] == 3.0
    assert rows["sleep_ms(1)"]["overshoot_median"] == 75.0
    assert rows["sleep_ms(10)"]["ratio"] == 50.0               # 100 us over vs 2 us over
    assert rows["sleep_ms(1)"]["timer_irqs_per_sleep"] == 1.0
    assert report["rng_irqs_per_request"] == 1.0
    table = bench.format_irq_table({**report, "accel": "tcg", "accel_reason": "tcg requested"})
    for name in rows:
        assert name in table
    assert "25.0x no-op Python call" in table and "one-shot" in table


def test_irq_report_without_rng():
    report = bench.irq_report(_raw_irq(rng=False))
    assert all("virtio" not in r["case"] for r in report["round_trip"])
    assert report["rng_irqs_per_request"] is None


def test_invoke_lists_bench_irq():
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "invoke", "--help", "bench"], cwd=root,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "irq" in out.stdout, f"expected `invoke --help bench` to mention irq:\n{out.stdout}"
