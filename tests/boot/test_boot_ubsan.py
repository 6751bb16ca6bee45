"""Smoke test of the UBSan kernel (`invoke build --sanitize` -> build/ubsan/kernel.elf; `invoke
test` builds it): it boots to the REPL with no UBSan report and runs a few statements (also on
microvm without a PIT or ACPI, and pc without ACPI), and a
deliberate signed overflow (kdebug.crash('ubsan')) is reported on COM1 by the port's own
runtime (arch/x86_64/ubsan.c) and panics with QEMU's panic exit status. The full boot,
platform, kernel and net suites against this kernel are a manual run (see README)."""

import re

import pytest

from test_boot_wx import image_protection_errors, image_sections, tlb_pages
from vmtools import REPO

pytestmark = pytest.mark.timeout(150)

UBSAN_ELF = REPO / "build" / "ubsan" / "kernel.elf"


def ubsan_kernel():
    if not UBSAN_ELF.is_file():
        pytest.fail(f"{UBSAN_ELF} does not exist: run `invoke build --sanitize`", pytrace=False)
    return UBSAN_ELF


def test_ubsan_kernel_boots_clean_and_runs_python(boot):
    vm = boot(kernel=ubsan_kernel(), timeout=120)
    assert vm.repl("sum(i * i for i in range(100))").strip().endswith("328350")
    assert vm.repl("d = {str(i): i for i in range(200)}; len(d), d['150']").strip().endswith(
        "(200, 150)")
    assert vm.repl("import gc; gc.collect(); gc.mem_free() > 0").strip().endswith("True")
    assert vm.repl("b = bytearray(range(256)); bytes(b[250:])").strip().endswith(
        r"b'\xfa\xfb\xfc\xfd\xfe\xff'")
    assert vm.repl("2 ** 100 // 3 ** 20").strip().endswith(str(2 ** 100 // 3 ** 20))
    assert "UBSan:" not in vm.log_text(), vm.log_text()[-3000:]
    # The UBSan image's layout differs from the plain one's (its text filled [2, 4) MiB once,
    # which paging_init then made no-execute): its pages get their protections too.
    errors = image_protection_errors(tlb_pages(vm)[1], image_sections(UBSAN_ELF))
    assert not errors, errors[:8]


@pytest.mark.parametrize("machine,options,cpus", [
    ("microvm", "", 1),
    ("microvm", "pit=off", 1),          # a DSDT without the PIT: AML fields at odd offsets
    ("microvm", "acpi=off", 2),         # virtio-mmio from the command line, CPUs from the MP table
    ("pc", "acpi=off", 1),              # SeaBIOS's MP table in the F-segment
])
def test_ubsan_kernel_boots_clean_without_the_usual_firmware(boot, machine, options, cpus):
    """The firmware-table parsers and the clock fallbacks under UBSan (a misaligned AML read
    in the microvm DSDT scan went unseen until a DSDT without the PIT shifted it)."""
    vm = boot(kernel=ubsan_kernel(), machine=machine, machine_options=options, cpus=cpus,
              timeout=120)
    assert vm.repl("import os; os.cpu_count()").strip().endswith(str(cpus))
    assert "UBSan:" not in vm.log_text(), vm.log_text()[-3000:]


def test_ubsan_reports_and_panics(boot):
    vm = boot(kernel=ubsan_kernel(), timeout=120)
    vm.console.write("import kdebug; kdebug.crash('ubsan')\r")
    status = vm.wait(timeout=30)
    log = vm.console.log.decode("utf-8", "replace")
    assert re.search(r"UBSan: integer overflow in \+ \(type 'int', operands 0x7fffffff, 0x1\)",
                     log), log[-3000:]
    assert re.search(r"\*\*\* MANTICORE PANIC: undefined behaviour \(UBSan\): integer overflow "
                     r"in \+ at \S*modkdebug\.c:\d+:\d+ \*\*\*", log), log[-3000:]
    assert status == 3, f"expected QEMU's panic exit status 3, got {status}"
