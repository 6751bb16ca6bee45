"""Page protections (issue 14, Intel SDM Vol. 3A 4.6): kernel text read-only, rodata
read-only and no-execute, the heap no-execute, and the native emitters still working through
their executable areas (W^X: never writable and executable at one address)."""

import re

import pytest

from test_boot_panic import panic_report

pytestmark = pytest.mark.timeout(90)

NATIVE = """
import micropython
@micropython.native
def f(x):
    return x * 2 + 1
@micropython.viper
def g(x: int) -> int:
    return x * 3
print(f(20), g(14))
"""


def _panic_of(vm, line: str) -> str:
    vm.console.write(line + "\r")
    status = vm.wait(timeout=30)
    report = panic_report(vm.console.log.decode("utf-8", "replace").replace("\r\n", "\n"))
    assert status == 3, f"expected the panic exit status 3, got {status}:\n{report}"
    return report


def test_a_write_to_kernel_text_is_a_page_fault_naming_the_address(vm):
    vm.repl("import machine")
    text = 0x100100  # inside .text (the image is linked at 1 MiB)
    report = _panic_of(vm, f"machine.mem8[{text:#x}] = 0x90")
    assert "Page fault (#PF, vector 14)" in report, report
    assert re.search(r"error code: 0x[0-9a-f]+ \(write, protection-violation, supervisor\)", report), report
    assert f"CR2    {text:#018x}" in report, report


def test_a_write_to_rodata_faults(vm):
    report = _panic_of(vm, "import kdebug; kdebug.crash('rodata')")
    assert re.search(r"\(write, protection-violation, supervisor\)", report), report


def test_code_in_the_heap_does_not_run(vm):
    report = _panic_of(vm, "import kdebug; kdebug.crash('exec')")
    assert re.search(r"\(read, protection-violation, supervisor, instruction-fetch\)", report), report


@pytest.mark.parametrize("cpus", [1, 2])
def test_native_and_viper_code_still_run(boot, cpus):
    # With 2 CPUs the REPL is CPU 1's (replcpu=1): its own executable area.
    kw = {"fw_cfg_cmdline": "replcpu=1"} if cpus > 1 else {}
    vm = boot(cpus=cpus, memory="256M", **kw)
    if cpus > 1:
        assert vm.repl("import kernel; kernel.sys.cpu()") == "1"
    out, err = vm.console.raw_exec(NATIVE, timeout=30)
    assert err == "" and out.strip() == "41 42", f"expected 41 42, got {out!r} {err!r}"
    # Made again after a soft reset (the executable area starts over with the interpreter).
    vm.console.write(b"\x04")
    vm.console.read_until(re.compile(rb"soft reboot"), timeout=20)
    vm.sync(timeout=20)
    out, err = vm.console.raw_exec(NATIVE, timeout=30)
    assert err == "" and out.strip() == "41 42", f"after a soft reset: {out!r} {err!r}"


@pytest.mark.parametrize("cpus", [1, 2])
def test_an_ist_stack_overflow_hits_its_guard_page(boot, cpus):
    kw = {"fw_cfg_cmdline": "replcpu=1"} if cpus > 1 else {}
    vm = boot(cpus=cpus, memory="256M", **kw)
    report = _panic_of(vm, "import kdebug; kdebug.crash('ist')")
    assert "Double fault (#DF, vector 8)" in report, report
    assert f"cpu: {cpus - 1} of {cpus}" in report, report
