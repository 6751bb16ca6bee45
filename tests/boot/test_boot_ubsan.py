"""Smoke test of the UBSan kernel (`invoke build --sanitize` -> build/ubsan/kernel.elf; `invoke
test` builds it): it boots to the REPL with no UBSan report and runs a few statements, and a
deliberate signed overflow (kdebug.crash('ubsan')) is reported on COM1 by the port's own
runtime (arch/x86_64/ubsan.c) and panics with QEMU's panic exit status. The full boot,
platform, kernel and net suites against this kernel are a manual run (see README)."""

import re

import pytest

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
