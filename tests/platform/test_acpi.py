"""ACPI: the CPU count from the MADT, the tables found (PVH and multiboot2 RSDP, q35, pc,
microvm), power-off and reset through the FADT, a boot without ACPI tables, and malformed
tables added with QEMU's -acpitable."""

from __future__ import annotations

import re
import struct

import pytest

from platformtools import guest_json, qmp_return, query_pci_functions

pytestmark = pytest.mark.timeout(90)


# --------------------------------------------------------------------------- CPUs


@pytest.mark.parametrize("machine,cpus", [("q35", 1), ("q35", 2), ("q35", 4), ("pc", 4)])
def test_cpu_count_matches_smp(shared_boot, machine, cpus):
    vm = shared_boot(machine, **({"cpus": cpus} if cpus > 1 else {}))  # -smp 1 is the default
    qemu_cpus = qmp_return(vm.qmp.cmd("query-cpus-fast"))
    assert len(qemu_cpus) == cpus, f"QEMU itself reports {len(qemu_cpus)} CPUs for -smp {cpus}"
    got = guest_json(vm, "import os, acpi, json\nprint(json.dumps([os.cpu_count(), acpi.cpus()]))")
    count, apic_ids = got
    assert count == cpus, f"expected os.cpu_count() == {cpus} with -smp {cpus}, got {count}"
    assert len(apic_ids) == cpus, f"expected {cpus} entries in acpi.cpus() with -smp {cpus}, got {apic_ids}"
    # With -smp N (one thread per core) QEMU numbers the local APICs 0..N-1.
    assert sorted(apic_ids) == list(range(cpus)), f"expected APIC ids 0..{cpus - 1}, got {apic_ids}"
    boot_line = [ln for ln in vm.banner.splitlines() if ln.startswith("acpi:")]
    assert any(f"{cpus} CPU" in ln for ln in boot_line), (
        f"expected the boot log's acpi line to say '{cpus} CPU', got {boot_line}")


# --------------------------------------------------------------------------- tables

TABLES = """
import acpi, pci, json
print(json.dumps({'tables': [list(t) for t in acpi.tables()], 'ecam': [list(e) for e in acpi.ecam()],
                  'ioapics': [list(i) for i in acpi.ioapics()], 'access': pci.access()}))
"""


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_tables_found(shared_boot, machine):
    vm = shared_boot(machine=machine)
    got = guest_json(vm, TABLES)
    signatures = [t[0] for t in got["tables"]]
    for sig in ("FACP", "APIC"):
        assert sig in signatures, f"expected {sig} in acpi.tables() on {machine}, got {signatures}"
    assert signatures[0] in ("RSDT", "XSDT"), f"expected the root table first, got {signatures}"
    for sig, address, length, revision, oem in got["tables"]:
        assert length >= 36, f"{sig}: length {length} is shorter than the ACPI table header (36)"
        assert 0 < address < 1 << 32, f"{sig}: address {address:#x} outside the low 4 GiB"
        assert len(sig) == 4, f"signature {sig!r} is not four characters"
    if machine == "q35":
        assert "MCFG" in signatures, f"expected MCFG on q35, got {signatures}"
        assert got["ecam"], "expected acpi.ecam() to list the MCFG's ECAM segment on q35"
        base, segment, start, end = got["ecam"][0]
        assert (base, segment, start) == (0xb0000000, 0, 0), (
            f"expected ECAM at 0xb0000000, segment 0, from bus 0 (QEMU q35), got "
            f"({base:#x}, {segment}, {start})")
        assert got["access"] == "ecam", f"expected pci.access() == 'ecam', got {got['access']!r}"
    else:
        assert "MCFG" not in signatures, f"expected no MCFG on pc (i440fx), got {signatures}"
        assert got["ecam"] == [], f"expected acpi.ecam() empty on pc, got {got['ecam']}"
        assert got["access"] == "legacy", f"expected pci.access() == 'legacy', got {got['access']!r}"
    assert [io[1] for io in got["ioapics"]] == [0xfec00000], (
        f"expected one I/O APIC at 0xfec00000, got {got['ioapics']}")


def test_rsdp_from_multiboot2_on_iso_boot(shared_boot):
    """GRUB hands the RSDP over in a multiboot2 ACPI tag (the direct boot tests use PVH)."""
    vm = shared_boot(boot="iso", cpus=2)
    assert "boot multiboot2" in vm.banner, f"expected an ISO boot through multiboot2, banner:\n{vm.banner}"
    got = guest_json(vm, "import acpi, os, json\nprint(json.dumps([acpi.info()['rsdp'], "
                         "[t[0] for t in acpi.tables()], os.cpu_count()]))")
    rsdp, signatures, cpus = got
    assert rsdp, "expected acpi.info()['rsdp'] to be the RSDP's address on ISO boot, got 0"
    assert {"FACP", "APIC", "MCFG"} <= set(signatures), f"expected FACP, APIC and MCFG on q35 ISO boot, got {signatures}"
    assert cpus == 2, f"expected os.cpu_count() == 2 with -smp 2 on ISO boot, got {cpus}"


def test_microvm_hardware_reduced_acpi(shared_boot):
    """microvm: XSDT, a hardware-reduced FADT (no PM1 registers), two I/O APICs, no PCI."""
    vm = shared_boot(machine="microvm", cpus=2)
    got = guest_json(vm, "import acpi, os, pci, json\ni = acpi.info()\nprint(json.dumps(["
                         "[t[0] for t in acpi.tables()], os.cpu_count(), i['hardware_reduced'], "
                         "i['sleep_control'], len(acpi.ioapics()), len(pci.devices())]))")
    signatures, cpus, reduced, sleep_control, ioapics, functions = got
    assert signatures[:1] == ["XSDT"] and {"FACP", "APIC"} <= set(signatures), (
        f"expected an XSDT with FACP and APIC on microvm, got {signatures}")
    assert cpus == 2, f"expected os.cpu_count() == 2 with -smp 2 on microvm, got {cpus}"
    assert reduced is True, "expected acpi.info()['hardware_reduced'] on microvm (FADT flag HW_REDUCED_ACPI)"
    assert sleep_control, "expected the FADT's sleep control register on microvm (for power-off)"
    qemu_ioapics = len(re.findall(r"^ioapic\d*: ver=", vm.qmp.hmp("info pic"), re.M))
    assert ioapics == qemu_ioapics, f"QEMU's 'info pic' shows {qemu_ioapics} I/O APICs, acpi.ioapics() has {ioapics}"
    assert functions == 0, f"expected no PCI functions on microvm, got {functions}"


# --------------------------------------------------------------------------- power


def shutdown_reason(vm, timeout=5):
    try:
        return vm.qmp.wait_event("SHUTDOWN", timeout=timeout).get("data", {}).get("reason")
    except Exception as e:  # the event may be lost when QEMU exits first
        return f"(no SHUTDOWN event: {type(e).__name__})"


@pytest.mark.parametrize("machine", ["q35", "pc", "microvm"])
def test_poweroff_without_debug_exit(boot, machine):
    """PM1a control (q35, pc) or the hardware-reduced sleep control register (microvm)."""
    vm = boot(machine=machine, debug_exit=False)
    vm.console.write("import machine; machine.poweroff()\r")
    reason = shutdown_reason(vm)
    status = vm.wait(timeout=30)
    assert status == 0, (f"expected QEMU to exit with status 0 after machine.poweroff() on {machine} "
                         f"without isa-debug-exit, got {status}")
    assert reason in ("guest-shutdown", None) or reason.startswith("(no"), (
        f"expected an ACPI (guest-shutdown) power-off, QMP says {reason!r}")


@pytest.mark.parametrize("machine", ["q35", "pc", "microvm"])
def test_reset_ends_qemu_with_no_reboot(boot, machine):
    # The launcher passes -no-reboot, so a guest reset ends QEMU; QMP tells it was a reset.
    vm = boot(machine=machine, debug_exit=False)
    vm.console.write("import machine; machine.reset()\r")
    reason = shutdown_reason(vm, timeout=15)
    status = vm.wait(timeout=30)
    assert reason == "guest-reset", f"expected QMP SHUTDOWN reason 'guest-reset' after machine.reset(), got {reason!r}"
    assert status == 0, f"expected QEMU to exit with status 0 (-no-reboot) after machine.reset(), got {status}"


# --------------------------------------------------------------------------- no ACPI

AFTER_NO_ACPI = """
import acpi, os, pci, time, irq, json
t = time.ticks_us(); time.sleep_ms(50); dt = time.ticks_diff(time.ticks_us(), t)
print(json.dumps({'tables': [t[0] for t in acpi.tables()], 'cpus': os.cpu_count(),
                  'pci': len(pci.devices()), 'slept_us': dt, 'mode': irq.timer_mode()}))
"""


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_boot_with_acpi_off(boot, machine):
    """QEMU builds no ACPI tables (-machine acpi=off); the kernel says so and falls back."""
    try:
        vm = boot(machine=machine, extra_args=["-machine", "acpi=off"])
    except Exception as e:
        if "acpi" in str(e).lower() and "QEMU failed to start" in str(e):
            pytest.skip(f"this QEMU does not take acpi=off on {machine}: {str(e).splitlines()[-1]}")
        raise
    got = guest_json(vm, AFTER_NO_ACPI)
    acpi_lines = [ln for ln in vm.banner.splitlines() if ln.startswith("acpi:")]
    assert acpi_lines, f"expected an 'acpi: ...' boot line, got banner:\n{vm.banner}"
    if not got["tables"]:
        # No tables at all (pc: SeaBIOS makes none): one clear message and the fallback.
        assert any("rsdp" in ln.lower() or "no acpi" in ln.lower() or "not found" in ln.lower()
                   for ln in acpi_lines), f"expected a boot line saying no ACPI tables were found, got {acpi_lines}"
    assert got["cpus"] == 1, f"expected os.cpu_count() == 1 without ACPI, got {got['cpus']}"
    assert got["pci"] >= 3, f"expected PCI enumeration to work without ACPI, got {got['pci']} functions"
    assert 50_000 <= got["slept_us"] < 200_000, f"expected time.sleep_ms(50) to work, it took {got['slept_us']} us"
    assert vm.repl("1+1") == "2"


# --------------------------------------------------------------------------- the MP table
#
# Without ACPI the firmware may still describe the CPUs in an MP table (Intel MultiProcessor
# Specification 1.4): qboot builds one under microvm,acpi=off (the shape of a Firecracker
# guest) and SeaBIOS one under pc,acpi=off. SeaBIOS lists one CPU per package, so there the
# launcher gives each CPU a socket of its own.

AFTER_MP = """
import acpi, os, json, kernel
print(json.dumps({'cpus': os.cpu_count(), 'apic_ids': acpi.cpus(), 'ioapics': acpi.ioapics(),
                  'overrides': acpi.overrides(), 'mp_table': acpi.info()['mp_table'],
                  'repl_cpu': kernel.sys.cpu()}))
"""


@pytest.mark.parametrize("machine", ["microvm", "pc"])
def test_cpus_from_the_mp_table_without_acpi(boot, machine):
    vm = boot(machine=machine, machine_options="acpi=off", cpus=2, memory="256M",
              fw_cfg_cmdline="replcpu=1")
    got = guest_json(vm, AFTER_MP)
    lines = [ln for ln in vm.banner.splitlines() if ln.startswith(("acpi:", "smp:"))]
    assert any(re.search(r"acpi: no RSDP; 2 CPUs and 1 I/O APIC from the MP table at 0x[0-9a-f]+ "
                         r"\(MPS 1\.[14]\)", ln) for ln in lines), (
        f"expected the boot line to say the CPUs came from the MP table, got {lines}")
    assert any("smp: 2 of 2 CPUs online" in ln for ln in lines), (
        f"expected both CPUs started from the MP table's list, got {lines}")
    assert got["cpus"] == 2 and sorted(got["apic_ids"]) == [0, 1], (
        f"expected 2 CPUs with APIC ids 0 and 1 from the MP table, got {got}")
    assert got["mp_table"], f"expected acpi.info()['mp_table'] to hold the table's address, got {got}"
    assert len(got["ioapics"]) == 1 and got["ioapics"][0][1] == 0xfec00000, (
        f"expected the MP table's one I/O APIC at 0xfec00000, got {got['ioapics']}")
    # Every PC's MP table routes ISA IRQ 0 (the PIT) to pin 2: the MADT's override, here.
    assert [0, 2, 0] in got["overrides"], f"expected ISA IRQ 0 on GSI 2, got {got['overrides']}"
    # The REPL on CPU 1 answers through the console interrupt the I/O APIC sends there.
    assert got["repl_cpu"] == 1, f"expected the REPL on CPU 1 (replcpu=1), got {got}"
    assert vm.repl("6 * 7") == "42"


# --------------------------------------------------------------------------- malformed tables
#
# QEMU's -acpitable adds a table (it writes the header and a correct checksum around our
# payload): an MCFG on pc (which has none of its own, so the kernel must parse ours) and a
# second MADT.  The kernel must boot, say what it ignored, and keep working.

def mcfg_payload(*entries) -> bytes:
    """ACPI 6.5 / PCI Firmware 3.2 MCFG: 8 reserved bytes, then 16-byte allocations."""
    body = bytes(8)
    for base, segment, start, end in entries:
        body += struct.pack("<QHBBI", base, segment, start, end, 0)
    return body


MADT_HEADER = struct.pack("<II", 0xfee00000, 1)     # local APIC address, PCAT_COMPAT
MALFORMED = {
    # An MCFG with no allocation at all: nothing to use, legacy 0xCF8 stays.
    "pc-mcfg-empty": ("pc", "MCFG", mcfg_payload()),
    # An allocation cut short (10 of 16 bytes): must not be read past the table's end.
    "pc-mcfg-truncated": ("pc", "MCFG", mcfg_payload((0xe0000000, 0, 0, 0))[:18]),
    # A second MADT whose first entry has length 0 (a parser that trusts it loops forever)
    # and one whose entry claims 200 bytes in a 16-byte table.
    "q35-madt-zero-length-entry": ("q35", "APIC", MADT_HEADER + bytes([0, 0, 0, 0, 1, 0, 0, 0])),
    "q35-madt-overlong-entry": ("q35", "APIC", MADT_HEADER + bytes([0, 200, 0, 0, 1, 0, 0, 0])),
    "pc-unknown-empty-table": ("pc", "ZZZZ", b""),
}

AFTER_MALFORMED = """
import acpi, os, pci, json
print(json.dumps({'tables': [t[0] for t in acpi.tables()], 'cpus': os.cpu_count(),
                  'access': pci.access(),
                  'functions': ['%02x:%02x.%x %04x:%04x' % (d.bus, d.device, d.function, d.vendor_id,
                                d.device_id) for d in pci.devices()]}))
"""


def qmp_functions(vm) -> list[str]:
    return sorted(f"{f['bus']:02x}:{f['slot']:02x}.{f['function']:x} {f['vendor']:04x}:{f['device']:04x}"
                  for f in query_pci_functions(vm))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_table_is_survived(boot, tmp_path, case):
    machine, signature, payload = MALFORMED[case]
    blob = tmp_path / f"{case}.bin"
    blob.write_bytes(payload)
    vm = boot(machine=machine, extra_args=["-acpitable", f"sig={signature},data={blob}"])
    got = guest_json(vm, AFTER_MALFORMED)
    assert signature in got["tables"], f"expected the added {signature} table in acpi.tables(), got {got['tables']}"
    assert got["cpus"] == 1, f"expected os.cpu_count() == 1 (from the genuine MADT), got {got['cpus']}"
    want = qmp_functions(vm)
    assert sorted(got["functions"]) == want, (
        f"expected PCI enumeration to be unaffected\n  query-pci: {want}\n  guest:     {sorted(got['functions'])}")
    if signature == "MCFG":
        assert got["access"] == "legacy", f"expected 0xCF8 access with an unusable MCFG on pc, got {got['access']!r}"


def test_mcfg_pointing_at_nothing_falls_back(boot, tmp_path):
    """pc with an MCFG whose ECAM window decodes nothing (valid checksum, base 0xE0000000):
    reads there return 0, which is no device (PCI 3.0 6.2.1: 0xFFFF is 'absent'; Linux also
    rejects 0x0000).  The kernel must not list phantom 0000:0000 functions, and should notice
    that ECAM disagrees with 0xCF8 and fall back to it."""
    blob = tmp_path / "mcfg-nothing.bin"
    blob.write_bytes(mcfg_payload((0xe0000000, 0, 0, 0)))
    vm = boot(machine="pc", extra_args=["-acpitable", f"sig=MCFG,data={blob}"])
    got = guest_json(vm, AFTER_MALFORMED)
    phantom = [f for f in got["functions"] if f.endswith(" 0000:0000") or f.endswith(" ffff:ffff")]
    assert not phantom, (f"expected no functions with vendor id 0x0000/0xffff, the guest lists {len(phantom)}: "
                         f"{phantom[:4]}...")
    want = qmp_functions(vm)
    assert sorted(got["functions"]) == want, (
        f"expected the kernel to fall back to 0xCF8 when the MCFG's ECAM window is empty\n"
        f"  query-pci: {want}\n  guest ({got['access']}): {sorted(got['functions'])}")


def test_truncated_mcfg_is_reported(boot, tmp_path):
    """A malformed table gives a clear boot message (issue 3): an MCFG whose length leaves a
    partial 16-byte allocation (PCI Firmware 3.2, 4.1.2) should be named on an 'acpi:' line."""
    blob = tmp_path / "mcfg-truncated.bin"
    blob.write_bytes(mcfg_payload((0xe0000000, 0, 0, 0))[:18])
    vm = boot(machine="pc", extra_args=["-acpitable", f"sig=MCFG,data={blob}"])
    lines = [ln for ln in vm.banner.splitlines() if ln.startswith("acpi:")]
    assert any("MCFG" in ln for ln in lines), f"expected an 'acpi: ... MCFG ...' boot line for a truncated MCFG, got {lines}"
