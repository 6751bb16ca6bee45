"""PCI enumeration against QEMU's own view: `pci.devices()` in the guest must list exactly what
QMP `query-pci` lists (same bus/slot/function, ids, class, BAR addresses and sizes), on q35
(ECAM) and pc (0xCF8), with bridges, multifunction devices and modern-only virtio."""

from __future__ import annotations

import re

import pytest

from platformtools import bdf, guest_json, query_pci_functions

pytestmark = pytest.mark.timeout(120)

DEV = "-device"
# Each configuration: machine, extra QEMU arguments, the functions that must be present
# (vendor, device) beyond the machine's own -- so a QMP/guest agreement on an empty list
# cannot pass.
CONFIGS = {
    # Transitional virtio (0x1000 net, 0x1005 rng) and an e1000 on the root bus; ivshmem's
    # 1 GiB 64-bit BAR does not fit the 32-bit window, so the firmware puts it above 4 GiB
    # (the host memory is never touched).
    "q35-virtio": ("q35", [DEV, "virtio-net-pci", DEV, "virtio-rng-pci", DEV, "e1000",
                           "-object", "memory-backend-ram,id=shm,size=1G",
                           DEV, "ivshmem-plain,memdev=shm"],
                   {(0x1af4, 0x1000), (0x1af4, 0x1005), (0x8086, 0x100e), (0x1af4, 0x1110)}),
    # Modern-only virtio (0x1041 net, 0x1044 rng); a device behind a PCIe root port, and an
    # e1000 two bridges deep (root port -> PCIe-to-PCI bridge).
    "q35-rootport-modern": ("q35", [
        DEV, "pcie-root-port,id=rp1,chassis=1,slot=1",
        DEV, "virtio-net-pci,bus=rp1,disable-legacy=on",
        DEV, "pcie-root-port,id=rp2,chassis=2,slot=2",
        DEV, "pcie-pci-bridge,id=pb1,bus=rp2",
        DEV, "e1000,bus=pb1,addr=1",
        DEV, "virtio-rng-pci,disable-legacy=on"],
        {(0x1af4, 0x1041), (0x1af4, 0x1044), (0x8086, 0x100e), (0x1b36, 0x000c),
         (0x1b36, 0x000e)}),
    # The same three on pc; the e1000 and virtio-net share slot 6 as functions 0 and 1.
    "pc-virtio-multifunction": ("pc", [
        DEV, "e1000,addr=6.0,multifunction=on", DEV, "virtio-net-pci,addr=6.1",
        DEV, "virtio-rng-pci"],
        {(0x1af4, 0x1000), (0x1af4, 0x1005), (0x8086, 0x100e)}),
    # A PCI-to-PCI bridge with two devices behind it; modern-only virtio on a PCI bus.
    "pc-bridge-modern": ("pc", [
        DEV, "pci-bridge,id=br1,chassis_nr=1",
        DEV, "e1000,bus=br1,addr=2",
        DEV, "virtio-rng-pci,bus=br1,addr=3,disable-legacy=on",
        DEV, "virtio-net-pci,disable-legacy=on"],
        {(0x1af4, 0x1041), (0x1af4, 0x1044), (0x8086, 0x100e), (0x1b36, 0x0001)}),
}
IDS = list(CONFIGS)

# One record per function, in the guest: everything the comparisons need, in one round trip.
GUEST_DUMP = """
import pci, json
def bar(b):
    if isinstance(b, tuple):
        return list(b)
    return [b.index, b.address, b.size, b.kind, b.prefetchable]
out = []
for d in pci.devices():
    out.append({
        'bus': d.bus, 'slot': d.device, 'function': d.function,
        'vendor': d.vendor_id, 'device': d.device_id, 'class_code': d.class_code,
        'revision': d.revision, 'header_type': d.header_type,
        'subsystem_vendor': d.subsystem_vendor_id, 'subsystem': d.subsystem_id,
        'irq_pin': d.irq_pin,
        'bars': [bar(b) for b in d.bars],
        'caps': [list(c) for c in d.capabilities],
        'repr': repr(d),
        'cfg': [d.read_config(0, 4), d.read_config(0, 2), d.read_config(2, 2),
                d.read_config(0, 1), d.read_config(1, 1), d.read_config(8, 4),
                d.read_config(0x0e, 1), d.read_config(0x2c, 4)],
        'virtio_cfg_types': [d.read_config(c[1] + 3, 1) for c in d.capabilities if c[0] == 9]
                            if d.vendor_id == 0x1af4 and 0x1000 <= d.device_id <= 0x107f else [],
        'msix_control': [d.read_config(c[1] + 2, 2) for c in d.capabilities if c[0] == 0x11],
    })
print(json.dumps({'access': pci.access(), 'devices': out}))
"""

_cache: dict[str, tuple] = {}


@pytest.fixture
def pci_view(request, shared_boot):
    """(vm, guest view, QMP view) for the test's configuration; the two views are taken once
    per module and configuration (the VM is shared and nothing here changes the bus)."""
    name = request.param
    machine, extra, _ = CONFIGS[name]
    vm = shared_boot(machine=machine, extra_args=extra)
    if name not in _cache:
        guest = guest_json(vm, GUEST_DUMP)
        _cache[name] = (guest, query_pci_functions(vm))
    guest, qmp = _cache[name]
    return vm, guest, qmp


def is_virtio(f: dict) -> bool:
    """virtio 1.2, 4.1.2: vendor 0x1af4, device 0x1000..0x107f (ivshmem is 0x1af4:0x1110)."""
    return f["vendor"] == 0x1af4 and 0x1000 <= f["device"] <= 0x107f


def by_bdf(functions) -> dict[str, dict]:
    return {bdf(f["bus"], f["slot"], f["function"]): f for f in functions}


def set_diff_message(what: str, guest: set, qmp: set) -> str:
    only_guest = sorted(guest - qmp)
    only_qmp = sorted(qmp - guest)
    lines = [f"{what}: the guest's pci.devices() and QMP query-pci differ"]
    lines += [f"  only in the guest:  {x}" for x in only_guest]
    lines += [f"  only in query-pci:  {x}" for x in only_qmp]
    return "\n".join(lines)


def qmp_bar(region: dict) -> tuple:
    if region["type"] == "io":
        kind = "io"
    elif region["bar"] == 6:
        kind = "rom"
    else:
        kind = "mem64" if region.get("mem_type_64") else "mem32"
    return (region["bar"], region["address"], region["size"], kind)


# --------------------------------------------------------------------------- the device list


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_functions_match_query_pci(pci_view):
    vm, guest, qmp = pci_view
    want = {(bdf(f["bus"], f["slot"], f["function"]), f"{f['vendor']:04x}:{f['device']:04x}",
             f"class {f['class']:04x}") for f in qmp}
    got = {(bdf(f["bus"], f["slot"], f["function"]), f"{f['vendor']:04x}:{f['device']:04x}",
            f"class {f['class_code'] >> 8:04x}") for f in guest["devices"]}
    assert got == want, set_diff_message("functions (BDF, ids, class/subclass)", got, want)
    assert len(guest["devices"]) == len(got), (
        f"expected each function once, got duplicates: "
        f"{sorted(d['repr'] for d in guest['devices'])}")


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_extra_devices_are_present(pci_view, request):
    vm, guest, qmp = pci_view
    wanted = CONFIGS[request.node.callspec.params["pci_view"]][2]
    present = {(f["vendor"], f["device"]) for f in guest["devices"]}
    missing = {f"{v:04x}:{d:04x}" for v, d in wanted - present}
    assert not missing, (f"expected the guest to find the -device functions {sorted(missing)}, "
                         f"got {sorted(d['repr'] for d in guest['devices'])}")


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_subsystem_ids_and_irq_pin_match(pci_view):
    vm, guest, qmp = pci_view
    want, got = set(), set()
    guest_by = by_bdf(guest["devices"])
    for name, f in by_bdf(qmp).items():
        if f["subsystem_vendor"] is not None:   # query-pci has none for bridges
            want.add((name, f["subsystem_vendor"], f["subsystem"]))
            g = guest_by.get(name)
            if g:
                got.add((name, g["subsystem_vendor"], g["subsystem"]))
    assert got == want, set_diff_message("subsystem (vendor, id)", got, want)
    want = {(n, f["irq_pin"]) for n, f in by_bdf(qmp).items() if n in guest_by}
    got = {(n, g["irq_pin"]) for n, g in guest_by.items()}
    assert got == want, set_diff_message("interrupt pin", got, want)


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_bars_match_query_pci(pci_view):
    """Index, address (-1 while not decoding), size and kind of every BAR and expansion ROM."""
    vm, guest, qmp = pci_view
    want = {(bdf(f["bus"], f["slot"], f["function"]),) + qmp_bar(r)
            for f in qmp for r in f["regions"]}
    got = {(bdf(f["bus"], f["slot"], f["function"]), b[0], b[1], b[2], b[3])
           for f in guest["devices"] for b in f["bars"]}
    assert got == want, set_diff_message("BARs (BDF, index, address, size, kind)", got, want)
    assert any(b[4] == "mem64" for b in got), "expected at least one 64-bit BAR (virtio's BAR 4)"
    assert any(b[4] == "io" for b in got), "expected at least one I/O BAR"


@pytest.mark.parametrize("pci_view", ["q35-virtio"], indirect=True)
def test_bar_above_4g(pci_view):
    vm, guest, qmp = pci_view
    high = [(f["repr"], b) for f in guest["devices"] for b in f["bars"] if b[1] >= 1 << 32]
    want = [(bdf(f["bus"], f["slot"], f["function"]), r["bar"], r["address"], r["size"])
            for f in qmp for r in f["regions"] if r["address"] >= 1 << 32]
    assert want, "test setup: expected QEMU to place ivshmem's 1 GiB BAR above 4 GiB"
    assert len(high) == len(want), f"expected the BARs above 4 GiB {want}, the guest has {high}"


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_prefetchable_flags_match(pci_view):
    vm, guest, qmp = pci_view
    want = {(bdf(f["bus"], f["slot"], f["function"]), r["bar"], bool(r.get("prefetch")))
            for f in qmp for r in f["regions"] if r["type"] == "memory" and r["bar"] != 6}
    got = {(bdf(f["bus"], f["slot"], f["function"]), b[0], bool(b[4]))
           for f in guest["devices"] for b in f["bars"] if b[3] in ("mem32", "mem64")}
    assert got == want, set_diff_message("memory BAR prefetchable flags", got, want)


# --------------------------------------------------------------------------- repr, config space


REPR = re.compile(r"^([0-9a-f]{2}):([0-9a-f]{2})\.([0-7]) ([0-9a-f]{4}):([0-9a-f]{4})(?: |$)")


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_repr_starts_like_lspci_n(pci_view):
    vm, guest, qmp = pci_view
    for f in guest["devices"]:
        m = REPR.match(f["repr"])
        want = f"{bdf(f['bus'], f['slot'], f['function'])} {f['vendor']:04x}:{f['device']:04x}"
        assert m, f"expected repr to start like `lspci -n` ({want!r}), got {f['repr']!r}"
        assert f["repr"].startswith(want), f"expected repr to start with {want!r}, got {f['repr']!r}"


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_config_space_reads(pci_view):
    vm, guest, qmp = pci_view
    for f in guest["devices"]:
        dword, vendor16, device16, vendor_lo, vendor_hi, class_dword, header, subsys = f["cfg"]
        name = f["repr"]
        assert vendor16 == f["vendor"], f"{name}: read_config(0, 2) = {vendor16:#x}, expected the vendor id {f['vendor']:#x}"
        assert device16 == f["device"], f"{name}: read_config(2, 2) = {device16:#x}, expected the device id {f['device']:#x}"
        assert dword == f["device"] << 16 | f["vendor"], f"{name}: read_config(0, 4) = {dword:#010x}"
        assert vendor_lo | vendor_hi << 8 == f["vendor"], f"{name}: byte reads of the vendor id give {vendor_lo:#x}, {vendor_hi:#x}"
        assert class_dword >> 8 == f["class_code"], f"{name}: config dword 8 = {class_dword:#x}, class_code attribute {f['class_code']:#08x}"
        assert class_dword & 0xff == f["revision"], f"{name}: revision {f['revision']} but config byte 8 = {class_dword & 0xff}"
        assert header & 0x7f == f["header_type"] & 0x7f, f"{name}: header type {f['header_type']:#x}, config byte 0x0e = {header:#x}"
        if header & 0x7f == 0:
            assert subsys == f["subsystem"] << 16 | f["subsystem_vendor"], f"{name}: subsystem dword {subsys:#x}"


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_access_method(pci_view, request):
    vm, guest, qmp = pci_view
    machine = CONFIGS[request.node.callspec.params["pci_view"]][0]
    want = "ecam" if machine == "q35" else "legacy"
    assert guest["access"] == want, f"expected pci.access() == {want!r} on {machine}, got {guest['access']!r}"


# --------------------------------------------------------------------------- capabilities


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_virtio_capabilities(pci_view):
    """virtio-pci functions carry MSI-X and the virtio vendor capabilities (virtio 1.2, 4.1.4:
    common 1, notify 2, ISR 3, device 4 (net only), PCI config access 5)."""
    vm, guest, qmp = pci_view
    virtio = [f for f in guest["devices"] if is_virtio(f)]
    assert len(virtio) >= 2, f"expected the virtio-net and virtio-rng functions, got {[f['repr'] for f in virtio]}"
    for f in virtio:
        ids = [c[0] for c in f["caps"]]
        assert 0x11 in ids, f"{f['repr']}: expected an MSI-X capability (id 0x11), got {f['caps']}"
        names = {c[0]: c[2] for c in f["caps"]}
        assert "msi" in names[0x11].lower(), f"{f['repr']}: MSI-X capability named {names[0x11]!r}"
        types = set(f["virtio_cfg_types"])
        want = {1, 2, 3, 5} | ({4} if f["class_code"] >> 16 == 0x02 else set())
        assert want <= types, (f"{f['repr']}: virtio vendor capabilities have cfg_type {sorted(types)}, "
                               f"expected at least {sorted(want)}")
        table_size = (f["msix_control"][0] & 0x7ff) + 1
        assert table_size >= 2, f"{f['repr']}: MSI-X table size {table_size}"


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_capability_list_is_well_formed(pci_view, request):
    vm, guest, qmp = pci_view
    machine = CONFIGS[request.node.callspec.params["pci_view"]][0]
    for f in guest["devices"]:
        offsets = [c[1] for c in f["caps"]]
        assert all(0x40 <= o <= 0xfc and o % 4 == 0 for o in offsets), (
            f"{f['repr']}: capability offsets must be dword aligned in 0x40..0xfc, got {f['caps']}")
        assert len(set(offsets)) == len(offsets), f"{f['repr']}: a capability listed twice: {f['caps']}"
    if machine == "q35":
        ports = [f for f in guest["devices"] if (f["vendor"], f["device"]) == (0x1b36, 0x000c)]
        for f in ports:
            assert 0x10 in [c[0] for c in f["caps"]], f"{f['repr']}: a PCIe root port without the PCI Express capability: {f['caps']}"
        behind = [f for f in guest["devices"] if f["bus"] > 0 and is_virtio(f)]
        for f in behind:
            assert 0x10 in [c[0] for c in f["caps"]], f"{f['repr']}: virtio behind a root port is PCIe, expected capability 0x10: {f['caps']}"


# --------------------------------------------------------------------------- the boot log


@pytest.mark.parametrize("pci_view", IDS, indirect=True)
def test_boot_log_has_one_line_per_function(pci_view):
    vm, guest, qmp = pci_view
    lines = re.findall(r"^pci: ([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) ([0-9a-f]{4}:[0-9a-f]{4})",
                       vm.banner, re.M)
    want = sorted((bdf(f["bus"], f["slot"], f["function"]), f"{f['vendor']:04x}:{f['device']:04x}")
                  for f in qmp)
    assert sorted(lines) == want, (
        f"expected one 'pci: BB:DD.F VVVV:DDDD' boot line per function\n  expected {want}\n"
        f"  got      {sorted(lines)}")


# --------------------------------------------------------------------------- config writes


def test_config_write_seen_by_qemu(shared_boot):
    """write_config reaches the device: QEMU's query-pci reports the Interrupt Line register
    (0x3c, a scratch byte for software, PCI 3.0 6.2.4) as the function's 'irq'."""
    machine, extra, _ = CONFIGS["q35-virtio"]
    vm = shared_boot(machine=machine, extra_args=extra)
    vm.repl("import pci; d = pci.find(0x8086, 0x100e)[0]")
    old = int(vm.repl("d.read_config(0x3c, 1)"))
    try:
        for value, width in ((0x5a, 1), (0x0100 | 0x33, 2)):  # 2 bytes: line 0x33, pin 1 (read-only)
            vm.repl(f"d.write_config(0x3c, {value}, {width})")
            line = int(vm.repl("d.read_config(0x3c, 1)"))
            irq = [f["irq"] for f in query_pci_functions(vm) if (f["vendor"], f["device"]) == (0x8086, 0x100e)][0]
            assert line == value & 0xff, f"wrote {value & 0xff:#x} to the Interrupt Line register, read back {line:#x}"
            assert irq == value & 0xff, f"wrote {value & 0xff:#x} to the Interrupt Line register, QEMU says irq {irq}"
        pin = int(vm.repl("d.read_config(0x3d, 1)"))
        assert pin == 1, f"the Interrupt Pin register is read-only (INTA = 1), it reads {pin} after a 16-bit write"
    finally:
        vm.repl(f"d.write_config(0x3c, {old}, 1)")



def test_more_functions_than_the_table_holds(boot):
    """72 extra functions (9 multifunction slots x 8): the kernel either lists them all or keeps
    what fits and says on a 'pci:' boot line how many it left out -- never a crash."""
    extra = []
    for slot in range(8, 17):
        for fn in range(8):
            extra += ["-device", f"e1000,romfile=,addr={slot}.{fn}" + (",multifunction=on" if fn == 0 else "")]
    vm = boot(machine="q35", extra_args=extra)
    want = {(bdf(f["bus"], f["slot"], f["function"]), f["vendor"], f["device"]) for f in query_pci_functions(vm)}
    got = guest_json(vm, "import pci, json\nprint(json.dumps([['%02x:%02x.%x' % (d.bus, d.device, d.function), "
                         "d.vendor_id, d.device_id] for d in pci.devices()]))")
    got = {tuple(g) for g in got}
    assert got <= want, f"the guest lists functions QEMU does not have: {sorted(got - want)[:5]}"
    missing = len(want) - len(got)
    if missing:
        lines = [ln for ln in vm.banner.splitlines() if ln.startswith("pci:") and str(missing) in ln]
        assert lines, (f"the guest left out {missing} of {len(want)} functions without a 'pci:' boot line "
                       f"saying so")
    assert vm.repl("1+1") == "2"
