"""A CPU exception gives a panic report on COM1, a symbolized backtrace and a non-zero exit."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(90)

BT_RE = re.compile(r"^\s+#(\d+) (0x[0-9a-f]{16})\s*$", re.M)
ADDR = r"0x[0-9a-f]{16}"


def panic_report(log: str) -> str:
    start = log.find("*** MANTICORE PANIC")
    assert start >= 0, f"expected a '*** MANTICORE PANIC' report on the serial console, got:\n{log[-3000:]}"
    end = log.find("*** end of panic", start)
    assert end >= 0, f"expected the report to end with '*** end of panic', got:\n{log[start:]}"
    return log[start:log.find("\n", end) + 1 or None]


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_unmapped_read_panics_with_report(boot, machine):
    vm = boot(machine=machine)
    vm.console.write("import machine; machine.mem32[0x8000000000]\r")
    status = vm.wait(timeout=30)
    raw = vm.console.log.decode("utf-8", "replace").replace("\r\n", "\n")
    report = panic_report(raw)

    assert re.search(r"\*\*\* MANTICORE PANIC: Page fault \(#PF, vector 14\) \*\*\*", report), report
    assert "CR2    0x0000008000000000" in report, f"expected 'CR2    0x0000008000000000' in:\n{report}"
    assert re.search(rf"^error code: {ADDR} \(read, not-present, supervisor\)", report, re.M), report
    assert re.search(rf"^RIP    {ADDR}  RSP {ADDR}  RFLAGS {ADDR}", report, re.M), report
    for reg in ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "R8 ", "R9 ", "R10", "R11",
                "R12", "R13", "R14", "R15"):
        assert re.search(rf"\b{reg} ?{ADDR}", report), f"expected register {reg.strip()} in:\n{report}"
    frames = BT_RE.findall(report)
    assert len(frames) >= 2, f"expected a backtrace of at least 2 frames, got:\n{report}"
    assert [int(n) for n, _ in frames] == list(range(len(frames))), f"frames not numbered #0.. in:\n{report}"
    rip = re.search(rf"^RIP    ({ADDR})", report, re.M).group(1)
    assert frames[0][1] == rip, f"expected frame #0 to be the faulting RIP {rip}, got {frames[0][1]}"

    # QEMU ends through isa-debug-exit: out 0xf4, 1 -> status 3.
    assert status == 3, f"expected QEMU to exit with status 3 after the panic, got {status}"

    # The host side symbolizes the addresses: the frames name functions of kernel.elf.
    symbolized = vm.console.symbolized_log()
    sym_frames = [line for line in symbolized.splitlines() if re.match(rf"\s+#\d+ {ADDR}\s+\S", line)]
    assert sym_frames, f"expected symbolized backtrace lines ('#N 0x... func+0x..'), got:\n{symbolized[-3000:]}"
    names = [re.match(rf"\s+#\d+ {ADDR}\s+([A-Za-z_][\w.]*)\+0x[0-9a-f]+", line) for line in sym_frames]
    assert any(names), "expected a frame symbolized as 'function+0xOFF', got:\n" + "\n".join(sym_frames)
    # The same through the symbolizer's API, frame by frame, against build/kernel.elf.
    from manticore_host.symbolize import Symbolizer
    sym = Symbolizer(REPO / "build" / "kernel.elf")
    described = [f"#{n} {addr} {sym.describe(int(addr, 16)) or '?'}" for n, addr in frames]
    assert re.match(r"\w+\+0x[0-9a-f]+", sym.describe(int(rip, 16)) or ""), (
        "expected the faulting RIP to symbolize as function+0xOFF:\n" + "\n".join(described))
    # The faulting access is somewhere in MicroPython's machine.mem32 code path.
    text = "\n".join(described)
    assert re.search(r"machine_mem|mem_subscr|mp_obj_subscr|mp_execute_bytecode", text), (
        f"expected the backtrace to pass through machine.mem32's subscript code, got:\n{text}")


# kdebug.crash(kind) -> the exception the report must name. "stack" overflows the C stack into
# the guard page below it; the fault happens on the dead stack, so the CPU escalates to a
# double fault, which runs on its own IST stack and can still report.
CRASHES = {
    "stack": r"Double fault \(#DF, vector 8\)",
    "null": r"Page fault \(#PF, vector 14\)",
    "ud": r"Invalid opcode \(#UD, vector 6\)",
    "div": r"Divide error \(#DE, vector 0\)",
    "gp": r"General protection \(#GP, vector 13\)",
    "panic": r"kdebug\.crash\('panic'\) called from Python",
}


@pytest.mark.parametrize("kind", sorted(CRASHES))
def test_every_crash_kind_reports_and_exits_nonzero(boot, kind):
    vm = boot(memory="64M")
    vm.console.write(f"import kdebug; kdebug.crash({kind!r})\r")
    status = vm.wait(timeout=30)
    raw = vm.console.log.decode("utf-8", "replace").replace("\r\n", "\n")
    report = panic_report(raw)
    assert re.search(rf"\*\*\* MANTICORE PANIC: {CRASHES[kind]} \*\*\*", report), (
        f"expected a panic naming {CRASHES[kind]!r}, got:\n{report}")
    assert BT_RE.findall(report), f"expected a backtrace in:\n{report}"
    if kind == "null":
        assert "CR2    0x0000000000000000" in report, f"expected CR2 = 0 for a null write:\n{report}"
    assert status == 3, f"expected QEMU to exit with status 3 after the panic, got {status}"
