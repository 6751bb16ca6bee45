"""boottrace=1: the boot-phase timeline from the TSC, C and Python phases, in order, every
phase named once, the times increasing and the whole inside the time the host saw to the
prompt; printed once, before the prompt."""

import re

import pytest

pytestmark = pytest.mark.timeout(90)

# The C boot (arch_start64, kernel_main), then the Python boot (frozen/_boot.py, kernel/boot.py)
# of a boot to the REPL without apps.
PHASES = ["loader", "entry", "paging", "acpi", "tsc", "apic+timer", "memory", "pci", "virtio",
          "lwip", "calibration", "cpus+heap", "mp_init",
          "_boot.py", "import:kernel", "import:kernel.boot", "config", "devices", "mount",
          "boot.py", "apps"]


@pytest.mark.parametrize("machine", ["microvm", "q35"])
def test_boottrace_timeline(boot, machine, summary):
    vm = boot(machine=machine, append="boottrace=1")
    rows = re.findall(r"boottrace: (\S+) \+(\d+) @(\d+)", vm.banner)
    assert [r[0] for r in rows] == PHASES, f"expected the phases {PHASES}, banner:\n{vm.banner}"
    at = [int(r[2]) for r in rows]
    assert at == sorted(at) and at[0] > 0, f"expected increasing times, got {at}"
    assert sum(int(r[1]) for r in rows) == pytest.approx(at[-1], abs=len(rows)), rows
    # Loose: the guest's clock and the host's wall clock agree within reason (TCG, loaded host).
    assert at[-1] / 1e6 < vm.boot_seconds + 1.0, (at[-1], vm.boot_seconds)
    assert vm.banner.count("boottrace: loader ") == 1, vm.banner
    summary(f"boottrace {machine}: " + ", ".join(f"{p} {int(d) / 1000:.1f}" for p, d, _ in rows)
            + " ms")


def test_no_boottrace_by_default(boot):
    vm = boot(machine="microvm")
    assert "boottrace:" not in vm.banner, vm.banner


def test_boottrace_with_an_app(boot):
    """With app= the timeline has a net phase (net.start) and still comes out once."""
    vm = boot(machine="microvm", append="boottrace=1 app=ticker repl=1")
    rows = re.findall(r"boottrace: (\S+) \+(\d+) @(\d+)", vm.banner)
    names = [r[0] for r in rows]
    assert names[:len(PHASES) - 1] == PHASES[:-1] and names[-2:] == ["net", "apps"], vm.banner


def test_translated_instructions_split_by_phase(vm_config, summary):
    """Under boottrace=1 every mark calls a stub of its own, translated exactly at the mark:
    `-d in_asm` then splits the guest instructions QEMU translated by phase (`invoke bench
    boot` reports them). Every phase from the command line's parsing on gets its own count,
    the Python phases each a real share, and the firmware's code is told apart."""
    from manticore_host import bench
    rows = bench.boot_translation(vm_config("microvm", "kernel", "128M", ""), timeout=60)
    names = [r["phase"] for r in rows]
    assert names == ["firmware", "loader+entry+paging", *PHASES[3:], "to the prompt"], rows
    counts = {r["phase"]: r["instructions"] for r in rows}
    assert all(n > 0 for n in counts.values()), rows
    for phase in ("_boot.py", "import:kernel", "import:kernel.boot", "config", "mount"):
        assert counts[phase] >= 200, f"expected the interpreter's first use in {phase}: {rows}"
    total = sum(counts.values())
    assert 5000 < total < 60000, f"expected a boot's worth of translated instructions: {rows}"
    summary(f"translated guest instructions, microvm: total {total:,}, firmware "
            f"{counts['firmware']:,}, Python phases "
            f"{sum(counts[p] for p in PHASES[13:]):,}")
