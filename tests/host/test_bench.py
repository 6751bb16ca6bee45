"""Boot benchmark bookkeeping (no QEMU): memory bisection and the table."""

from pathlib import Path

from manticore_host import bench


def test_smallest_memory_bisects(monkeypatch):
    tried = []

    def fake(elf, mib, accel, timeout):
        tried.append(mib)
        return mib >= 11
    monkeypatch.setattr(bench, "reaches_prompt", fake)
    assert bench.smallest_memory(Path("k"), "tcg", log=lambda *a: None) == 11
    assert len(tried) <= 9
    tried.clear()
    assert bench.smallest_memory(Path("k"), "tcg", step=4, log=lambda *a: None) in range(11, 15)


def test_smallest_memory_edges(monkeypatch):
    monkeypatch.setattr(bench, "reaches_prompt", lambda e, m, a, t: False)
    assert bench.smallest_memory(Path("k"), "tcg", log=lambda *a: None) is None
    monkeypatch.setattr(bench, "reaches_prompt", lambda e, m, a, t: True)
    assert bench.smallest_memory(Path("k"), "tcg", log=lambda *a: None) == 2


def test_summarize_and_table():
    s = bench.summarize([0.5, 0.3, 0.4])
    assert s["median"] == 0.4 and abs(s["spread"] - 0.2) < 1e-9
    report = {
        "results": {"kernel": {"direct q35": s, "iso q35": {"error": "boom"}},
                    "floor": {"direct q35": bench.summarize([0.1])}},
        "ratio_to_floor": {"direct q35": 4.0}, "kernel_elf_bytes": 2048,
        "floor_elf_bytes": 424, "min_memory_mib": 6, "min_memory_step_mib": 1,
        "accel": "tcg", "accel_reason": "tcg requested"}
    table = bench.format_table(report)
    assert "400 ms" in table and "4.0x" in table and "error: boom" in table
    assert "6 MiB" in table and "2048 bytes" in table
