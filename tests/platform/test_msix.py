"""MSI-X and virtio-rng: os.urandom is served by the device through its MSI-X vector, the
bytes look random (chi-square over 1 MiB, histogram made in the guest), and without the device
os.urandom still works (RDRAND/RDSEED or the TSC)."""

from __future__ import annotations

import pytest

from platformtools import chi_square, guest_json

pytestmark = pytest.mark.timeout(120)

RNG = ["-device", "virtio-rng-pci"]

STATE = """
import irq, pci, json
rng = pci.virtio_rng()
d = [x for x in pci.devices() if x.vendor_id == 0x1af4 and x.device_id in (0x1005, 0x1044)][0]
cap = [c[1] for c in d.capabilities if c[0] == 0x11][0]
print(json.dumps({'rng': rng, 'vectors': [list(v) for v in irq.vectors()],
                  'msix_control': d.read_config(cap + 2, 2),
                  'table': [[e[0], e[1], bool(e[2])] for e in d.msix()],
                  'apic_id': irq.info()['apic_id']}))
"""


def rng_interrupts(vm) -> int:
    return int(vm.repl("irq.counts()['virtio-rng']"))


def test_virtio_rng_uses_msix(shared_boot):
    vm = shared_boot(extra_args=RNG)
    got = guest_json(vm, STATE)
    rng = got["rng"]
    assert rng is not None, "expected pci.virtio_rng() to describe the driver with -device virtio-rng-pci, got None"
    assert rng["irq_mode"] == "msix", f"expected virtio-rng to use MSI-X, it uses {rng['irq_mode']!r}"
    control = got["msix_control"]
    assert control & 0x8000, f"expected MSI-X Enable (bit 15) set in the message control, got {control:#06x}"
    assert not control & 0x4000, f"expected the MSI-X Function Mask clear, got {control:#06x}"
    vector = rng["vector"]
    named = [v for v in got["vectors"] if v[0] == vector]
    assert named and named[0][1] == "virtio-rng", f"vector {vector:#x} should be named 'virtio-rng' in irq.vectors(): {got['vectors']}"
    # SDM vol. 3A 10.11.1/10.11.2: address 0xFEE00000 | apic_id << 12, data = vector (fixed, edge).
    entries = [e for e in got["table"] if e[1] & 0xff == vector and not e[2]]
    assert entries, f"expected an unmasked MSI-X table entry with vector {vector:#x}, got {got['table']}"
    address = entries[0][0]
    assert address == 0xfee00000 | got["apic_id"] << 12, (
        f"expected MSI-X message address {0xfee00000 | got['apic_id'] << 12:#x}, got {address:#x}")


def test_urandom_raises_msix_interrupts(shared_boot):
    vm = shared_boot(extra_args=RNG)
    vm.repl("import irq, os, pci")
    before, requests = rng_interrupts(vm), int(vm.repl("pci.virtio_rng()['requests']"))
    assert vm.repl("len(os.urandom(4096))") == "4096"
    after, requests_after = rng_interrupts(vm), int(vm.repl("pci.virtio_rng()['requests']"))
    assert after > before, f"expected the virtio-rng vector's count to grow with os.urandom(4096), it stayed {before}"
    assert requests_after > requests, f"expected virtio-rng requests to grow, {requests} -> {requests_after}"
    assert after - before <= 4 * (requests_after - requests) + 4, (
        f"{after - before} interrupts for {requests_after - requests} requests: an interrupt storm?")


HISTOGRAM = """
import os, json
h = [0] * 256
firsts = set()
for i in range({chunks}):
    chunk = os.urandom(4096)
    firsts.add(chunk[:8])
    for b in chunk:
        h[b] += 1
print(json.dumps({{'hist': h, 'distinct_firsts': len(firsts)}}))
"""


def check_random(hist: list[int], distinct: int, chunks: int, where: str) -> float:
    n = sum(hist)
    assert n == chunks * 4096, f"{where}: histogram counts {n} bytes, expected {chunks * 4096}"
    assert sum(1 for h in hist if h) == 256, f"{where}: some byte values never appeared: {hist}"
    assert distinct == chunks, f"{where}: only {distinct} distinct 8-byte chunk prefixes in {chunks} chunks"
    stat = chi_square(hist)
    # 255 degrees of freedom: mean 255, sd ~22.6; 150..400 is a sanity band (p ~ 1e-11 outside).
    assert 150 < stat < 400, f"{where}: chi-square {stat:.1f} (255 dof) is outside 150..400: not uniform"
    return stat


def test_one_mebibyte_of_urandom_is_uniform(shared_boot, summary):
    vm = shared_boot(extra_args=RNG)
    chunks = 256
    got = guest_json(vm, HISTOGRAM.format(chunks=chunks), timeout=90)
    stat = check_random(got["hist"], got["distinct_firsts"], chunks, "1 MiB from virtio-rng")
    summary(f"virtio-rng 1 MiB: chi-square {stat:.1f} (255 dof)")


@pytest.mark.parametrize("cpu", ["max", "qemu64"], ids=["rdrand", "no-rdrand"])
def test_urandom_without_virtio_rng(shared_boot, cpu):
    """-cpu max has RDRAND/RDSEED under TCG; qemu64 has neither (the TSC-stirred generator)."""
    vm = shared_boot() if cpu == "max" else shared_boot(cpu=cpu)
    assert vm.repl("import pci; print(pci.virtio_rng())") == "None", "expected no virtio-rng driver without the device"
    vm.repl("import os")
    a, b = vm.repl("os.urandom(32)"), vm.repl("os.urandom(32)")
    assert a != b, f"expected two os.urandom(32) calls to differ, got {a} twice"
    chunks = 16
    got = guest_json(vm, HISTOGRAM.format(chunks=chunks), timeout=60)
    check_random(got["hist"], got["distinct_firsts"], chunks, f"64 KiB from the CPU fallback (-cpu {cpu})")


MASK_PROBE = """
import pci, irq, os, time, json
d = [x for x in pci.devices() if x.vendor_id == 0x1af4 and x.device_id in (0x1005, 0x1044)][0]
vector = pci.virtio_rng()['vector']
entry = [i for i, e in enumerate(d.msix()) if e[1] & 0xff == vector][0]
c0 = irq.counts()['virtio-rng']
d.msix_mask(entry)
masked = d.msix()[entry][2]
t = time.ticks_ms()
data = os.urandom(16)
took = time.ticks_diff(time.ticks_ms(), t)
c1 = irq.counts()['virtio-rng']
pending = d.msix()[entry][3]
d.msix_mask(entry, False)
c2 = irq.counts()['virtio-rng']
after = d.msix()[entry]
print(json.dumps({'entry': entry, 'masked': masked, 'len': len(data), 'took_ms': took,
                  'c': [c0, c1, c2], 'pending': pending, 'after': [after[2], after[3]],
                  'again': len(os.urandom(64)), 'c3': irq.counts()['virtio-rng']}))
"""


def test_msix_mask_holds_and_unmask_delivers(boot):
    """PCI 3.0 6.8.2.9: a masked entry holds its message as a pending bit; clearing the mask
    delivers it.  (The driver must still complete the request, by its timeout.)"""
    vm = boot(extra_args=RNG)
    got = guest_json(vm, MASK_PROBE, timeout=60)
    c0, c1, c2 = got["c"]
    assert got["masked"] is True, f"expected msix_mask({got['entry']}) to set the entry's mask bit, msix() says {got['masked']}"
    assert got["len"] == 16, f"expected os.urandom(16) to complete even with its vector masked, got {got['len']} bytes"
    assert c1 == c0, f"expected no virtio-rng interrupt while its MSI-X entry is masked, the count went {c0} -> {c1}"
    assert got["pending"] is True, "expected the MSI-X pending bit set for the masked entry after the device completed"
    assert c2 == c1 + 1, f"expected unmasking to deliver the pending message (one interrupt), the count went {c1} -> {c2}"
    assert got["after"] == [False, False], f"expected the entry unmasked and not pending afterwards, got (masked, pending) = {got['after']}"
    assert got["again"] == 64 and got["c3"] > c2, f"expected os.urandom to use interrupts again after unmasking: {got}"


def test_no_spurious_or_unhandled_interrupts(shared_boot):
    vm = shared_boot(extra_args=RNG)
    got = guest_json(vm, "import irq, os, json\nfor i in range(64):\n    os.urandom(512)\n"
                         "i = irq.info()\nprint(json.dumps([i['spurious'], i['unhandled']]))")
    assert got == [0, 0], f"expected no spurious (0xFF) and no unhandled vectors after 64 virtio-rng requests, got (spurious, unhandled) = {got}"


FALLBACKS = {
    # No MSI-X table (vectors=0) and virtio-pci has no MSI: INTx through the I/O APIC.
    "q35-intx": ("q35", ["-device", "virtio-rng-pci,vectors=0"], "intx"),
    "pc-intx": ("pc", ["-device", "virtio-rng-pci,vectors=0"], "intx"),
    # Modern-only, behind a PCI-to-PCI bridge: MSI-X still.
    "pc-bridge-msix": ("pc", ["-device", "pci-bridge,id=br1,chassis_nr=1",
                              "-device", "virtio-rng-pci,bus=br1,addr=3,disable-legacy=on"], "msix"),
}

ROUND_TRIPS = """
import pci, irq, os, time, json
r0 = pci.virtio_rng()
c0 = irq.counts().get('virtio-rng', 0)
t = time.ticks_ms()
sizes = [len(os.urandom(256)) for i in range(20)]
took = time.ticks_diff(time.ticks_ms(), t)
r1 = pci.virtio_rng()
print(json.dumps({'mode': r1['irq_mode'], 'sizes': sizes, 'took_ms': took,
                  'irqs': irq.counts().get('virtio-rng', 0) - c0,
                  'requests': r1['requests'] - r0['requests'], 'unhandled': irq.info()['unhandled']}))
"""


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_interrupt_fallbacks(boot, case):
    """MSI-X falls back to INTx via the I/O APIC when the device has no MSI-X table; either
    way each request completes by interrupt (not by the driver's safety timeout) and a
    level-triggered INTx is acknowledged (no storm)."""
    machine, extra, mode = FALLBACKS[case]
    vm = boot(machine=machine, extra_args=extra)
    got = guest_json(vm, ROUND_TRIPS)
    assert got["mode"] == mode, f"expected virtio-rng in {mode!r} mode, pci.virtio_rng() says {got['mode']!r}"
    assert got["sizes"] == [256] * 20, f"expected 20 x 256 bytes from os.urandom, got {got['sizes']}"
    assert got["requests"] >= 20, f"expected at least 20 virtio-rng requests, got {got['requests']}"
    assert got["requests"] <= got["irqs"] <= 2 * got["requests"] + 2, (
        f"expected about one interrupt per request, got {got['irqs']} interrupts for {got['requests']} requests")
    assert got["took_ms"] < 1000, (f"20 requests took {got['took_ms']} ms: completions are not "
                                   "arriving by interrupt (the driver waited for its timeout?)")
    assert got["unhandled"] == 0, f"expected no unhandled interrupts, got {got['unhandled']}"
