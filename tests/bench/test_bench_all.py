"""`invoke bench all --quick` end to end, as a user runs it: every benchmark (boot, size, vm,
echo, irq) against the real images under QEMU, this project beside the Linux + MicroPython
peer and the unix port on the host, then summary.md.  Benchmarks are not timed tests: these
checks only prove that each one still works and produces a sane, non-empty table."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from vmtools import REPO

# The first run on a fresh machine also builds the Linux peer (a 100 MB download and a
# static MicroPython build); after that the quick run takes about two minutes.
pytestmark = pytest.mark.timeout(1500)
BENCHES = ("boot", "size", "vm", "echo", "irq", "storage", "tls")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "invoke", "bench", "all", "--quick", "--accel", "tcg",
           "--no-build", "--out", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1400)
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"`{' '.join(cmd[2:])}` exited with {run.returncode}:\n" \
                                f"{log[-6000:]}"
    reports = {}
    for name in BENCHES:
        path = out / f"{name}.json"
        assert path.is_file(), f"expected {path} after bench all:\n{log[-3000:]}"
        reports[name] = json.loads(path.read_text())
    summary_md = (out / "summary.md").read_text()
    return reports, summary_md, log


def _tap_ok() -> bool:
    from manticore_host.netns import available
    return available()[0]


def test_boot_times_every_image(quick_run, summary):
    boot = quick_run[0]["boot"]
    res = boot["results"]
    paths_all = ("direct q35", "direct microvm", "microvm+nic", "iso q35", "iso q35 uefi")
    for target, paths in (("kernel", paths_all), ("floor", paths_all),
                          ("linux", ("direct q35",))):
        for path in paths:
            r = res.get(target, {}).get(path, {})
            assert "error" not in r, f"boot {target} {path}: {r.get('error')}"
            assert 0 < r["median"] < 120 and len(r["samples"]) == 1, f"boot {target} {path}: {r}"
    assert set(boot["ratio_to_linux"]) == {"direct q35"}
    assert set(boot["ratio_to_floor"]) == {"direct q35", "direct microvm", "microvm+nic",
                                           "iso q35", "iso q35 uefi"}
    assert set(boot["goals"]) == {"direct q35", "direct microvm"}
    phases = [r.get("phase") for r in boot["timelines"]["direct microvm"]]
    assert phases[0] == "loader" and "mp_init" in phases and phases[-1] == "apps", \
        boot["timelines"]
    if boot["accel"] == "tcg":      # translated instructions per phase: direct boots, TCG
        assert set(boot["translated"]) == {"direct q35", "direct microvm", "microvm+nic"}, \
            boot["translated"]
        rows = boot["translated"]["direct microvm"]
        assert "error" not in rows[0] and rows[0]["phase"] == "firmware" \
            and "mp_init" in [r["phase"] for r in rows], rows
    summary(f"bench all --quick: boot direct q35 kernel "
            f"{res['kernel']['direct q35']['median'] * 1000:.0f} ms, linux "
            f"{res['linux']['direct q35']['median'] * 1000:.0f} ms, ratio "
            f"{boot['ratio_to_linux']['direct q35']:.2f}")


def test_tls_reports_handshakes_and_bulk_against_plain_tcp(quick_run, summary):
    tls = quick_run[0]["tls"]
    assert tls["handshakes_per_s"] > 0 and tls["tls_mib_s"] > 0 and tls["tcp_mib_s"] > 0, tls
    ratio = tls["ratios"]["TLS bulk / plain TCP bulk"]
    assert 0 < ratio < 3, f"TLS cannot be much faster than the plain TCP it runs on: {tls}"
    lx = tls["linux_peer"]
    assert "error" not in lx, f"tls on the Linux peer: {lx['error']}"
    assert lx["handshakes_per_s"] > 0 and lx["tls_mib_s"] > 0 and lx["tcp_mib_s"] > 0, lx
    for what in ("handshakes/s", "TLS bulk MiB/s", "plain TCP bulk MiB/s"):
        v = tls["ratios"][f"{what}, this project / Linux+MicroPython"]
        assert math.isfinite(v) and v > 0, tls["ratios"]
    summary(f"bench all --quick: tls {tls['handshakes_per_s']:.1f} handshakes/s, "
            f"{tls['tls_mib_s']:.1f} MiB/s vs TCP {tls['tcp_mib_s']:.1f} MiB/s; Linux peer "
            f"{lx['handshakes_per_s']:.1f}/s, {lx['tls_mib_s']:.1f} MiB/s")


def test_storage_compares_the_linux_peer(quick_run, summary):
    st = quick_run[0]["storage"]
    res = st["results"]
    for kind in ("raw", "lfs", "fat", "linux_raw", "ext4", "vfat"):
        for key in ("write", "read") + (() if "raw" in kind else
                                        ("create", "small_read", "delete")):
            v = res.get(kind, {}).get(key)
            assert v is not None and v > 0, f"storage {kind} {key}: {v} ({st.get('linux')})"
    assert set(st["linux_ratios"]) == {"raw", "littlefs2/ext4", "FAT/vfat"}, st["linux_ratios"]
    summary(f"bench all --quick: storage write MiB/s raw {res['raw']['write']:.1f} / Linux "
            f"{res['linux_raw']['write']:.1f}, FAT {res['fat']['write']:.1f} / vfat "
            f"{res['vfat']['write']:.1f}, littlefs2 {res['lfs']['write']:.1f} / ext4 "
            f"{res['ext4']['write']:.1f}")


def test_size_reports_both_images(quick_run):
    size = quick_run[0]["size"]
    elf = size["kernel"]["elf"]
    assert elf["text"] > 100_000 and elf["rodata"] > 0 and elf["bss"] > 0, elf
    assert size["kernel"]["elf_stripped"] < elf["file"]
    assert size["kernel"]["frozen"]["modules"] > 5 and size["kernel"]["frozen"]["bytes"] > 0
    assert 2 <= size["kernel"]["min_memory"]["mib"] <= 64, size["kernel"]["min_memory"]
    lx = size["linux"]
    assert lx["vmlinuz"] > 1_000_000 and lx["initrd"] > 100_000, lx
    assert lx["micropython"]["text"] > 100_000, lx["micropython"]
    assert lx["min_memory"].get("mib"), lx["min_memory"]
    assert set(size["ratios"]) == {"boot files (stripped kernel.elf / vmlinuz+initrd)",
                                   "smallest -m"}, size["ratios"]


def test_vm_runs_perf_bench_on_three_targets(quick_run, summary):
    vm = quick_run[0]["vm"]
    for target in ("manticore", "linux", "host"):
        res = vm["results"][target]
        assert "error" not in res, f"vm {target}: {res.get('error')}"
        timed = [name for name, r in res.items() if "median_us" in r]
        assert len(timed) >= 20, f"vm {target}: only {len(timed)} benchmarks timed: {res}"
        assert all(r["median_us"] > 0 for name, r in res.items() if name in timed)
    for pair in ("manticore/linux", "manticore/host", "linux/host"):
        g = vm["geomean"][pair]
        assert g is not None and math.isfinite(g) and g > 0, f"vm geomean {pair}: {g}"
        assert vm["compared"][pair] >= 20, vm["compared"]
    # Emulation cannot be faster than the host it runs on.
    assert vm["geomean"]["manticore/host"] > 1 and vm["geomean"]["linux/host"] > 1
    summary(f"bench all --quick: vm geomean manticore/linux {vm['geomean']['manticore/linux']:.2f}, "
            f"manticore/host {vm['geomean']['manticore/host']:.2f}")


def test_echo_measures_every_app_and_the_ceiling(quick_run):
    echo = quick_run[0]["echo"]
    res = echo["results"]
    nets = ("user", "tap") if _tap_ok() else ("user",)
    paths = ["host-local"] + [f"{app}/{net}" for app in ("echod", "rawecho", "linux-echod")
                              for net in nets]
    for path in paths:
        assert "error" not in res.get(path, {"error": "missing"}), \
            f"echo {path}: {res.get(path, {}).get('error', 'missing')}"
        for case, r in res[path].items():
            assert r["corrupt"] == 0, f"echo {path} {case}: {r['corrupt']} corrupt replies"
            assert r["received"] > 0 and r["p99_us"] >= r["p50_us"], f"echo {path} {case}: {r}"
    for case, r in res["host-local"].items():
        assert r["rate"] > 2000, f"the generator reached only {r['rate']:.0f}/s host-local"
    for net in nets:
        assert f"echod/{net} vs linux-echod/{net}" in echo["ratios"], echo["ratios"]


def test_irq_report_is_sane(quick_run):
    irq = quick_run[0]["irq"]
    cases = {r["case"]: r for r in irq["round_trip"] + irq["timer"]}
    for name in ("no-op Python call", "virtio-rng 16 B (MSI-X)", "sleep_ms(10)"):
        r = cases[name]
        assert r["n"] > 0 and r["min"] <= r["median"] <= r["p99"] <= r["max"], r
    assert cases["sleep_ms(10)"]["min"] >= 10_000, "sleep_ms(10) returned early"


def test_summary_names_machine_and_every_ratio(quick_run):
    reports, md, log = quick_run
    for word in ("# Benchmark summary", "## Machine", "QEMU emulator version", "| accel | tcg",
                 "## Ratios", "this project / Linux+MicroPython (direct q35)",
                 "this project / Linux guest (geometric mean of",
                 "replies/s, echod/user vs linux-echod/user, 64B x1",
                 "smallest -m, this project / Linux+MicroPython", "## Size",
                 "write MiB/s, FAT/vfat, this project / Linux+MicroPython",
                 "handshakes/s, this project / Linux+MicroPython", "## Storage",
                 "## VM: MicroPython's perf_bench", "## UDP echo"):
        assert word in md, f"expected {word!r} in summary.md:\n{md}"
    if not _tap_ok():
        assert "no tap networking" in md
    assert not re.search(r"bench \w+ failed", md), f"a benchmark failed:\n{md}"
    assert "bench all:" in log and "wrote" in log
