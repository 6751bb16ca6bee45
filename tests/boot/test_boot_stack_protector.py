"""The stack protector (-fstack-protector-strong, arch/x86_64/stack_protector.c): the guard is
seeded at boot from RDSEED/RDRAND (else the TSC) and says so on the boot line, and a smashed
guard is a panic whose symbolized backtrace names the function, with QEMU's panic status."""

import re

import pytest

pytestmark = pytest.mark.timeout(120)

ADDR = r"0x[0-9a-f]{16}"


def test_guard_source_on_boot_line(boot):
    vm = boot()
    log = vm.log_text()
    m = re.search(r"stack protector: -fstack-protector-strong, guard from (\w+)", log)
    assert m, f"expected the stack protector's boot line, got:\n{log[-3000:]}"
    # -cpu max (TCG) and host (KVM) both have RDSEED.
    assert m.group(1) in ("RDSEED", "RDRAND"), f"guard from {m.group(1)}:\n{log[-3000:]}"


def test_guard_falls_back_to_tsc_without_rdrand(boot):
    # qemu64 has neither RDRAND nor RDSEED: the TSC, reported as such.
    vm = boot(cpu="qemu64")
    assert re.search(r"guard from TSC\b", vm.log_text()), vm.log_text()[-3000:]
    assert vm.repl("1 + 1").strip().endswith("2")


def test_smashed_canary_panics_naming_the_function(boot):
    vm = boot(memory="64M")
    vm.console.write("import kdebug; kdebug.crash('canary')\r")
    status = vm.wait(timeout=30)
    raw = vm.console.log.decode("utf-8", "replace").replace("\r\n", "\n")
    start = raw.find("*** MANTICORE PANIC")
    assert start >= 0, f"expected a panic report, got:\n{raw[-3000:]}"
    report = raw[start:]
    assert re.search(r"\*\*\* MANTICORE PANIC: stack smashing detected: the guard of the "
                     rf"function at {ADDR} \(backtrace #1\) was overwritten \*\*\*", report), report
    assert status == 3, f"expected QEMU's panic exit status 3, got {status}"
    symbolized = vm.console.symbolized_log()
    frame1 = re.search(rf"^\s+#1 {ADDR}\s+(\S+)", symbolized, re.M)
    # (GCC may clone it: kdebug_smash_canary.constprop.0)
    assert frame1 and re.match(r"kdebug_smash_canary(\.\w+)*\+", frame1.group(1)), (
        f"expected backtrace #1 symbolized as kdebug_smash_canary, got:\n{symbolized[-3000:]}")
