"""boottrace=1: the boot-phase timeline from the TSC, in order, every phase named once, the
times increasing and the whole inside the time the host saw to the prompt."""

import re

import pytest

pytestmark = pytest.mark.timeout(90)

PHASES = ["entry", "paging", "acpi", "tsc", "apic+timer", "memory", "pci", "virtio", "lwip",
          "cpus+heap", "mp_init"]


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
    summary(f"boottrace {machine}: " + ", ".join(f"{p} {int(d) / 1000:.1f}" for p, d, _ in rows)
            + " ms")


def test_no_boottrace_by_default(boot):
    vm = boot(machine="microvm")
    assert "boottrace:" not in vm.banner, vm.banner
