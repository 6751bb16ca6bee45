"""Benchmark reports without QEMU: perf_bench ratios and geometric means, the ELF size split,
and the Markdown summary that `invoke bench all` writes."""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest

from manticore_host import benchall, sizebench, vmbench


def _timed(ms):
    return {"median_us": ms * 1000.0, "min_us": ms * 1000.0, "max_us": ms * 1000.0,
            "spread_us": 0.0, "runs": [ms * 1000.0]}


def test_vm_compare_ratios_and_geomean():
    results = {"manticore": {"a": _timed(10), "b": _timed(40), "c": {"error": "CRASH"}},
               "linux": {"a": _timed(20), "b": _timed(20), "c": _timed(5)},
               "host": {"a": _timed(1), "b": _timed(2), "c": _timed(1)}}
    cmp = vmbench.compare(results)
    rows = {r["bench"]: r for r in cmp["rows"]}
    assert rows["a"]["manticore/linux"] == 0.5 and rows["b"]["manticore/linux"] == 2.0
    assert "manticore/linux" not in rows["c"] and rows["c"]["manticore_error"] == "CRASH"
    assert math.isclose(cmp["geomean"]["manticore/linux"], 1.0)      # sqrt(0.5 * 2)
    assert cmp["compared"] == {"manticore/linux": 2, "manticore/host": 2, "linux/host": 3}
    report = {"N": 1000, "M": 1000, "average": 5, "targets": list(vmbench.TARGETS),
              "results": results, "accel": "tcg", "accel_reason": "tcg requested",
              "machine": "q35", "memory": "128M", **cmp}
    table = vmbench.format_table(report)
    assert "geometric mean" in table and "1.00" in table
    assert "manticore: not timed: c (CRASH)" in table


def test_vm_compare_with_a_target_that_failed():
    cmp = vmbench.compare({"manticore": {"a": _timed(10)}, "linux": {"error": "no image"},
                           "host": {"a": _timed(1)}})
    assert cmp["geomean"]["manticore/linux"] is None
    assert math.isclose(cmp["geomean"]["manticore/host"], 10.0)


def test_wx_comparison_table():
    report = {"N": 1000, "M": 1000, "average": 5, "accel": "tcg", "accel_reason": "no kvm",
              "machine": "q35", "memory": "128M", "compared": 2,
              "rows": [{"bench": "bm_a", "wx-on": 2200.0, "wx-off": 2000.0, "on/off": 1.1},
                       {"bench": "bm_b", "wx-on": 1000.0, "wx-off": 1000.0, "on/off": 1.0},
                       {"bench": "bm_c", "wx-on": None, "wx-off": 900.0}],
              "geomean": {"on/off": vmbench.geomean([1.1, 1.0]), "on/off min": 1.0}}
    table = vmbench.format_wx_table(report)
    assert "bm_a" in table and "1.10" in table and "bm_c" in table
    assert f"{math.sqrt(1.1):.2f}" in table.splitlines()[-2] and "(2 benchmarks)" in table
    rows, ratios = vmbench.wx_rows({"wx-on": {"a": _timed(30), "b": {"error": "x"}},
                                    "wx-off": {"a": _timed(20)}})
    assert [r["bench"] for r in rows] == ["a", "b"] and ratios["on/off"] == [1.5]


def test_fuzz_lines_put_lwip_last():
    from manticore_host.fuzz import format_lines
    assert format_lines({"lwIP": [5, 10], "ports/manticore/netif_virtio.c": [1, 2],
                         "drivers/virtio/virtqueue.c": [3, 4]}) == \
        "virtqueue.c 3/4, netif_virtio.c 1/2, lwIP 5/10"
    assert format_lines({}) == "-"


def test_console_serial_speaks_pyboard():
    class FakeConsole:
        def __init__(self):
            self.buf, self.sent = bytearray(b"OKhello\x04\x04>"), []

        def read_exact(self, n, timeout):
            data, self.buf[:n] = bytes(self.buf[:n]), b""
            return data

        def pending(self):
            return len(self.buf)

        def write(self, data):
            self.sent.append(data)

    serial = vmbench.ConsoleSerial(FakeConsole())
    assert serial.read(2) == b"OK" and serial.inWaiting() == 8
    assert serial.write(b"x") == 1 and serial.console.sent == [b"x"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build an ELF")
def test_elf_split(tmp_path):
    src = tmp_path / "t.c"
    src.write_text("int table[1000] = {1};\nchar zeros[5000];\n"
                   "const char text[3000] = \"x\";\nint main(void) { return table[0]; }\n")
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-O1", "-g", "-o", str(exe), str(src)], check=True)
    split = sizebench.elf_split(exe)
    assert split["data"] >= 4000 and split["bss"] >= 5000 and split["rodata"] >= 3000
    assert split["text"] > 0 and split["other"] > 0          # debug info
    assert split["loaded"] == split["text"] + split["rodata"] + split["data"]
    assert split["file"] == exe.stat().st_size
    stripped = sizebench.stripped_size(exe)
    assert stripped is None or stripped < split["file"]


def test_size_ratios_and_table():
    report = {"kernel": {"elf": {"file": 4_000_000, "text": 400_000, "rodata": 100_000,
                                 "data": 200, "bss": 2_000_000, "other": 3_000_000,
                                 "loaded": 500_200},
                         "elf_stripped": 500_000, "iso": 7_000_000,
                         "frozen": {"bytes": 30_000, "modules": 27, "mpy_bytes": 25_000},
                         "min_memory": {"mib": 3, "step": 1, "range": [2, 64]}},
              "linux": {"vmlinuz": 10_000_000, "initrd": 2_500_000, "boot_files": 12_500_000,
                        "micropython": {"file": 1_500_000, "text": 900_000, "rodata": 200_000,
                                        "data": 10_000, "bss": 50_000, "other": 0,
                                        "loaded": 1_110_000},
                        "kernel_version": "6.12", "min_memory": {"mib": 60, "step": 4,
                                                                 "range": [16, 512]}},
              "notes": {}, "accel": "tcg", "accel_reason": "tcg requested"}
    report["ratios"] = sizebench.size_ratios(report)
    assert report["ratios"]["smallest -m"] == 0.05
    assert report["ratios"]["boot files (stripped kernel.elf / vmlinuz+initrd)"] == 0.04
    table = sizebench.format_table(report)
    for word in ("kernel.elf", "stripped", "frozen Python", "27 modules", "3 MiB (step 1)",
                 "vmlinuz", "initramfs", "60 MiB (step 4)", "ratio smallest -m: 0.050"):
        assert word in table, f"expected {word!r} in:\n{table}"


def test_summary_lists_machine_missing_prerequisites_and_every_ratio():
    boot = {"results": {"kernel": {"direct q35": {"median": 0.15, "spread": 0.02}},
                        "linux": {"direct q35": {"median": 3.0, "spread": 0.2}}},
            "ratio_to_floor": {"direct q35": 1.6}, "ratio_to_linux": {"direct q35": 0.05},
            "linux_ratio_to_floor": {"direct q35": 32.0}, "runs": 5, "warmup_runs": 1}
    vm = {"geomean": {"manticore/linux": 0.9, "manticore/host": 10.0, "linux/host": 11.0},
          "compared": {"manticore/linux": 24, "manticore/host": 24, "linux/host": 24},
          "rows": [], "results": {}, "targets": [], "N": 1000, "M": 1000, "average": 5,
          "accel": "tcg", "accel_reason": "x", "machine": "q35", "memory": "128M"}
    summary = {"machine": benchall.machine_info(), "accel": "tcg",
               "accel_reason": "KVM probe failed", "quick": True,
               "missing": {"tap": "no tap networking (not root)"},
               "seconds": {"boot": 10.0, "vm": 20.0}, "total_seconds": 30.0,
               "failed": {"echo": "boom"}}
    text = benchall.render_summary(summary, {"boot": boot, "vm": vm})
    for word in ("# Benchmark summary", "## Machine", "QEMU", "KVM probe failed",
                 "no tap networking", "bench echo failed: boom", "## Ratios",
                 "0.05×", "0.90×", "geometric mean of 24", "Quick run",
                 "| direct q35 | 150 ms (±10) |"):
        assert word in text, f"expected {word!r} in the summary:\n{text}"


def _storage_samples(scale):
    files = {"write": 4.0 * scale, "read": 8.0 * scale, "create": 100.0 * scale,
             "small_read": 1000.0 * scale, "delete": 200.0 * scale}
    return files, {"write": 40.0 * scale, "read": 80.0 * scale}


def test_storage_report_compares_each_filesystem_with_its_linux_peer():
    from manticore_host import storagebench
    ours, raw = _storage_samples(1.0)
    theirs, lraw = _storage_samples(2.0)
    report = storagebench.storage_report({
        "raw": [raw], "lfs": [ours], "fat": [ours],
        "linux_raw": [lraw], "ext4": [theirs], "vfat": [theirs]})
    assert report["ratios"]["lfs_write_vs_raw"] == pytest.approx(0.1)
    lx = report["linux_ratios"]
    assert set(lx) == {"raw", "littlefs2/ext4", "FAT/vfat"}
    assert lx["raw"] == {"write": pytest.approx(0.5), "read": pytest.approx(0.5)}
    assert lx["FAT/vfat"]["create"] == pytest.approx(0.5) and len(lx["FAT/vfat"]) == 5
    table = storagebench.format_storage_table(report)
    assert "Linux + MicroPython peer" in table and "lfs/ext4" in table
    rows = benchall.ratio_rows({"storage": report})
    assert ("storage", "create ops/s, FAT/vfat, this project / Linux+MicroPython",
            "0.50×") in rows
    # Without the peer: its reason in the table and in the summary's ratios.
    alone = storagebench.storage_report({"raw": [raw], "lfs": [ours], "fat": [ours]})
    alone["linux"] = "left out (--no-linux)"
    assert alone["linux_ratios"] == {}
    assert "left out (--no-linux)" in storagebench.format_storage_table(alone)
    assert ("storage", "Linux+MicroPython peer", "left out (--no-linux)") in \
        benchall.ratio_rows({"storage": alone})


def test_tls_table_with_and_without_the_linux_peer():
    from manticore_host import tlsbench
    report = {"accel": "tcg", "cipher": "ECDHE-ECDSA-AES256-GCM-SHA384",
              "handshakes_per_s": 2.0, "tls_mib_s": 3.0, "tcp_mib_s": 12.0,
              "ratios": {"TLS bulk / plain TCP bulk": 0.25},
              "linux_peer": {"cipher": "ECDHE-ECDSA-AES256-GCM-SHA384",
                             "handshakes_per_s": 4.0, "tls_mib_s": 1.5, "tcp_mib_s": 6.0}}
    table = tlsbench.format_table(report)
    assert "Linux+MPy" in table and "0.50x" in table and "2.00x" in table
    report["linux_peer"] = {"error": "the Linux peer's TLS server did not start"}
    assert "did not start" in tlsbench.format_table(report)


def test_split_translation_by_boottrace_stub():
    """bench.split_translation: firmware first, then the phases between the stubs' blocks
    (a block that starts at stub n: mark n happened), the marks before the first stub joined."""
    from manticore_host import bench
    stubs = 0x168630
    log = b"\n".join([
        b"----------------", b"IN: ",
        b"0x000fff00:  ea 5b e0 00 f0   ljmpw $0xf000:$0xe05b",     # firmware, 2 instructions
        b"0x000fff05:  90               nop",
        b"IN: arch_start64",
        b"0x00100000:  fa               cli",                        # kernel: up to the first stub
        b"0x00100001:  90               nop",
        b"0x00100002:  90               nop",
        b"IN: boottrace_stubs",
        b"0x00168650:  c3               retq",                       # stub 2: "paging" ended
        b"IN: acpi_init",
        b"0x00100010:  90               nop",
        b"IN: ",
        b"0x00008000:  90               nop",                        # below 1 MiB, after entry
        b"IN: ",
        b"0x00168660:  c3               retq",                       # stub 3: "acpi" ended
        b"IN: kernel_main",
        b"0x00100020:  90               nop",
        b"0x00168640:  90               nop",                        # a stub's address, mid-block
        b"IN: ",
        b"0x00168670:  c3               retq",                       # stub 4: the last mark
        b"IN: ",
        b"0x00100030:  90               nop",
    ])
    phases = ["loader", "entry", "paging", "acpi", "tsc"]
    rows = bench.split_translation(log, phases, stubs, [(0x100000, 0x200000)])
    assert rows == [{"phase": "firmware", "instructions": 2},
                    {"phase": "loader+entry+paging", "instructions": 3},
                    {"phase": "acpi", "instructions": 2},
                    {"phase": "tsc", "instructions": 2},
                    {"phase": "to the prompt", "instructions": 1}]
