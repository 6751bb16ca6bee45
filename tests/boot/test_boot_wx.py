"""Page protections (issue 14, Intel SDM Vol. 3A 4.6): kernel text read-only, rodata
read-only and no-execute, the heap no-execute, and the native emitters still working through
their executable areas (W^X: never writable and executable at one address)."""

import re
import subprocess

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


def image_sections(elf=None) -> tuple[tuple[int, int], tuple[int, int]]:
    """The kernel image's text and read-only data pages, each [start, end), from one `nm` of
    `elf` (default build/kernel.elf)."""
    from manticore_host import image
    elf = elf or image.KERNEL
    out = subprocess.run(["nm", str(elf)], capture_output=True, text=True, check=True)
    address = {parts[2]: int(parts[0], 16)
               for parts in (line.split() for line in out.stdout.splitlines()) if len(parts) == 3}
    names = ("__kernel_start", "__text_pages_end", "__rodata_pages_end")
    missing = [name for name in names if name not in address]
    assert not missing, f"{missing} not in {elf}"
    start, text_end, rodata_end = (address[name] for name in names)
    return (start, text_end), (text_end, rodata_end)


def tlb_pages(vm, cpu: int = 0) -> tuple[str, list[tuple[str, int, str, bool, bool]]]:
    """CPU `cpu`'s pages as QEMU walks its tables (`info tlb`): the table's text, and for
    each page its address as printed, as a number, its flags, executable, writable."""
    table = vm.qmp.cmd("human-monitor-command", {"command-line": "info tlb", "cpu-index": cpu})
    pages = []
    for virt, _phys, flags in (line.split() for line in table.splitlines() if ":" in line):
        pages.append((virt, int(virt.rstrip(":"), 16), flags, flags[0] != "X", flags[-1] == "W"))
    return table, pages


def image_protection_errors(pages, sections) -> list[str]:
    """What is wrong with the kernel image's `pages` (tlb_pages), given its `sections`
    (image_sections): every page of the text executable and read-only, every page of the
    read-only data read-only and no-execute, whether it is a 4 KiB page or a 2 MiB one (a
    chunk the text or the read-only data fills is one 2 MiB page, which paging_init once took
    for one of boot.S's and made plain RAM)."""
    text, rodata = sections
    errors = []
    for virt, va, flags, executable, writable in pages:
        if text[0] <= va < text[1] and (not executable or writable):
            errors.append(f"text page {virt} {flags}")
        if rodata[0] <= va < rodata[1] and (executable or writable):
            errors.append(f"read-only data page {virt} {flags}")
    return errors


NATIVE_ALIAS_BASE = 0x500000000000  # ports/manticore/nativecode.c: one 2 MiB area per CPU


@pytest.mark.parametrize("cpus", [1, 2])
def test_no_page_is_writable_and_executable(boot, cpus):
    """Every CPU's page tables as QEMU walks them (`info tlb`, after native code has run):
    no page both writable and executable, and code only in the kernel's text and the native
    emitters' aliases. The APs' start page below 1 MiB is plain RAM once they are up."""
    vm = boot(cpus=cpus, memory="256M")
    out, err = vm.console.raw_exec(NATIVE, timeout=30)
    assert err == "" and out.strip() == "41 42", f"expected 41 42, got {out!r} {err!r}"
    sections = image_sections()
    text = sections[0]
    aliases = (NATIVE_ALIAS_BASE, NATIVE_ALIAS_BASE + cpus * 2 * 1024 * 1024)
    for cpu in range(cpus):
        table, pages = tlb_pages(vm, cpu)
        assert len(pages) > 1000, f"CPU {cpu}: expected the whole identity map, got:\n{table[:500]}"
        writable_code, stray_code = [], []
        for virt, va, _flags, executable, writable in pages:
            if executable and writable:
                writable_code.append(virt)
            if executable and not text[0] <= va < text[1] and not aliases[0] <= va < aliases[1]:
                stray_code.append(virt)
        assert not writable_code, f"CPU {cpu}: writable and executable: {writable_code[:8]}"
        assert not stray_code, f"CPU {cpu}: executable outside the text and aliases: {stray_code[:8]}"
        # Writable kernel text among them ("text page ... W").
        errors = image_protection_errors(pages, sections)
        assert not errors, f"CPU {cpu}: {errors[:8]}"
