"""Boot to the prompt on every supported boot path and machine; the banner tells the truth."""

import re

import pytest

pytestmark = pytest.mark.timeout(90)

HEAP_RE = re.compile(r"heap (\d+) KiB")
RAM_RE = re.compile(r"RAM (\d+) MiB")


def heap_kib(booted) -> int:
    m = HEAP_RE.search(booted.banner)
    assert m, f"expected the banner to report the heap as 'heap <N> KiB'; banner was:\n{booted.banner}"
    return int(m.group(1))


@pytest.mark.parametrize(
    "machine,boot_path",
    [("q35", "kernel"), ("pc", "kernel"), ("microvm", "kernel"), ("q35", "iso"), ("pc", "iso")],
)
def test_boots_to_prompt(boot, machine, boot_path, summary):
    booted = boot(machine=machine, boot=boot_path)
    summary(f"boot {machine}/{boot_path}: prompt after {booted.boot_seconds:.2f} s ({booted.vm.accel}: {booted.vm.accel_reason})")
    banner = booted.banner
    assert "MicroPython v1.25.0" in banner, f"expected 'MicroPython v1.25.0' in the banner, got:\n{banner}"
    assert "manticore" in banner, f"expected 'manticore' in the banner, got:\n{banner}"
    heap_kib(booted)
    want = "multiboot2" if boot_path == "iso" else "pvh"
    assert re.search(rf"\bboot {want}\b", banner), (
        f"expected the banner to say 'boot {want}' for {boot_path} boot, got:\n{banner}")
    # The prompt works, not just prints.
    assert booted.repl("6*7") == "42"


def test_heap_uses_the_ram_given(boot):
    small = boot(memory="16M")
    small_heap = heap_kib(small)
    assert small.repl("1+1") == "2", "the 16M VM should have a working REPL"
    small.kill()

    big = boot(memory="256M")
    big_heap = heap_kib(big)
    assert small_heap < big_heap, (
        f"expected a bigger heap with -m 256M than with -m 16M; got {big_heap} KiB vs {small_heap} KiB")
    # "The GC heap gets most of free RAM": at least half of 256 MiB.
    assert big_heap >= 128 * 1024, f"expected a heap of at least 128 MiB with -m 256M, got {big_heap} KiB"
    assert small_heap >= 4 * 1024, f"expected a heap of at least 4 MiB with -m 16M, got {small_heap} KiB"
    m = RAM_RE.search(big.banner)
    if m:
        ram = int(m.group(1))
        assert 224 <= ram <= 256, f"expected the banner's RAM to be close to 256 MiB with -m 256M, got {ram} MiB"
    # The heap is really usable: allocate most of what the banner promises.
    n = big_heap * 1024 // 2
    out = big.repl(f"b = bytearray({n}); len(b)", timeout=60)
    assert out == str(n), f"expected a {n}-byte bytearray (half the reported heap), got:\n{out}"
