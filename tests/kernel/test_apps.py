"""The app model on the real image: apps run as tasks, a failing app leaves the others running,
devices are exclusive and come back when their holder ends, exit codes become QEMU's status."""

import re

import pytest

from kerneltools import run_to_exit, wait_for

pytestmark = pytest.mark.timeout(120)


def test_crash_leaves_the_other_app_running(boot):
    status, log = run_to_exit(boot, "app=ticker,crasher tick_ms=100 ticks=8 crash_ms=250")
    failed = log.find("kernel: app 'crasher' failed on CPU 0:")
    assert failed >= 0, f"expected the kernel to report \"app 'crasher' failed on CPU 0:\", got:\n{log}"
    trace = log[failed:]
    assert "Traceback (most recent call last):" in trace and 'File "apps/crasher.py"' in trace, (
        f"expected a traceback through apps/crasher.py after the failure line, got:\n{trace}")
    assert "RuntimeError: crasher: deliberate failure after 250 ms" in trace, trace
    ticks_after = re.findall(r"^ticker: tick (\d+)$", trace, re.M)
    assert ticks_after and ticks_after[-1] == "8", (
        f"expected the ticker to keep ticking up to tick 8 after the crash, got ticks {ticks_after}:\n{log}")
    assert "kernel: app 'ticker' exited with code 0" in log, log
    assert status == 0, f"expected status 0 (the last app, ticker, ended with 0), got {status}:\n{log}"


def test_acquire_busy_then_released_at_exit(boot):
    status, log = run_to_exit(boot, "app=holder,contender hold=console hold_ms=400")
    assert "holder: holding console" in log, log
    assert re.search(r"contender: EBUSY: device 'console' is busy: held by app 'holder'", log), (
        f"expected the second acquire to fail with EBUSY naming the holder, got:\n{log}")
    done, got = log.find("kernel: app 'holder' exited with code 0"), log.find("contender: acquired console")
    assert 0 <= done < got, f"expected contender to get the console only after holder ended, got:\n{log}"
    assert status == 0, f"expected status 0, got {status}:\n{log}"


def test_acquire_released_when_the_holder_fails(boot):
    status, log = run_to_exit(boot, "app=holder,contender hold=console hold_ms=300 hold_fail=1")
    assert "kernel: app 'holder' failed on CPU 0:" in log and "ValueError: holder: failing" in log, log
    assert "contender: acquired console" in log, (
        f"expected the console to come back when its holder failed, got:\n{log}")
    assert status == 0, f"expected status 0 (contender ended last, with 0), got {status}:\n{log}"


@pytest.mark.parametrize("code,status", [(0, 0), (5, 11), (3, 7)])
def test_exit_code_is_qemu_status(boot, code, status):
    got, log = run_to_exit(boot, f"app=exiter code={code}")
    assert f"kernel: app 'exiter' exited with code {code}" in log, log
    assert "still here" not in log, f"exit() returned:\n{log}"
    assert got == status, (
        f"expected exit({code}) to end QEMU with status {status} "
        f"({'ACPI power-off' if code == 0 else f'isa-debug-exit ({code}<<1)|1'}), got {got}:\n{log}")


def test_exit_code_without_debug_exit_powers_off(boot):
    got, log = run_to_exit(boot, "app=exiter code=5", debug_exit=False)
    assert "no isa-debug-exit device" in log, log
    assert got == 0, f"expected ACPI power-off (status 0) without isa-debug-exit, got {got}:\n{log}"


def test_failed_last_app_exits_with_1(boot):
    got, log = run_to_exit(boot, "app=crasher crash_ms=10")
    assert "kernel: app 'crasher' failed (exit code 1)" in log, log
    assert got == 3, f"expected status (1<<1)|1 = 3 after the only app failed, got {got}:\n{log}"


def test_unknown_app_lists_apps_and_exits_nonzero(boot):
    got, log = run_to_exit(boot, "app=ticker,no_such_app")
    m = re.search(r"kernel: unknown app 'no_such_app'; the frozen apps are: (.*)", log)
    assert m, f"expected the kernel to name the unknown app and list the frozen ones, got:\n{log}"
    listed = [name.strip() for name in m.group(1).split(",")]
    for app in ("crasher", "exiter", "ticker"):
        assert app in listed, f"expected {app!r} in the list of frozen apps, got {listed}"
    assert "ticker: tick" not in log, f"expected no app to start when one name is unknown:\n{log}"
    assert got == 255, f"expected status (127<<1)|1 = 255, got {got}:\n{log}"


def test_repl_beside_apps_and_ps(boot):
    vm = boot(fw_cfg_cmdline="app=ticker,crasher repl=1 tick_ms=100 crash_ms=200")
    wait_for(vm, r"kernel: app 'crasher' failed \(exit code 1\)")
    # The REPL answers while the ticker goes on.
    first = int(vm.repl("kernel.ps_rows()[0][2]"))
    assert vm.repl("6*7") == "42"
    wait_for(vm, r"ticker: tick \d+")
    out = vm.repl("kernel.ps()")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
    assert out.splitlines()[0].split() == ["APP", "CPU", "STATE", "WAKEUPS", "CPU_US", "EVENTS",
                                           "EXIT"], out
    assert set(rows) == {"ticker", "crasher"}, f"expected rows for ticker and crasher, got:\n{out}"
    ticker, crasher = rows["ticker"], rows["crasher"]
    assert ticker[1] == "0" and crasher[1] == "0", f"expected both apps on CPU 0:\n{out}"
    assert ticker[2] in ("waiting", "runnable"), f"expected the ticker waiting, got:\n{out}"
    assert int(ticker[3]) > first >= 2, f"expected the ticker's wake-ups to grow while the REPL waits:\n{out}"
    assert int(ticker[4]) > 0, f"expected CPU time for the ticker:\n{out}"
    assert crasher[2] == "failed" and crasher[6] == "1", f"expected crasher failed with exit 1:\n{out}"
    # The REPL holds the console: acquiring it from the REPL is EBUSY with a clear message.
    out = vm.repl("kernel.sys.acquire('console')")
    assert "OSError: (16, \"device 'console' is busy: held by the REPL\")" in out, out
