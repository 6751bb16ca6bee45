"""The syscall layer on the real image, driven from the REPL (which acts as the 'repl' app), and
the interrupt -> soft IRQ -> waiting task path through the console device."""

import re
import time

import pytest

from kerneltools import cpu_share, qemu_pid, start_apps, wait_for

pytestmark = pytest.mark.timeout(120)

CMDLINE = "repl=1 ip=10.0.2.15 alloc_limit=8192"


@pytest.fixture
def kvm(shared_boot):
    return shared_boot(fw_cfg_cmdline=CMDLINE)


def test_get_config(kvm):
    assert kvm.repl("kernel.sys.get_config('ip')") == "'10.0.2.15'"
    assert kvm.repl("kernel.sys.get_config('repl')") == "'1'"
    assert kvm.repl("kernel.sys.get_config('cpus')") == "1"
    memory = int(kvm.repl("kernel.sys.get_config('memory')"))
    assert 100 << 20 < memory <= 128 << 20, f"expected about 128 MiB of RAM, got {memory}"
    assert int(kvm.repl("kernel.sys.get_config('heap_free')")) > 1 << 20
    assert kvm.repl("kernel.sys.get_config('nope', 'dflt')") == "'dflt'"
    assert kvm.repl("kernel.sys.get_config('cmdline')") == repr(CMDLINE)


def test_alloc_limit_free_and_reuse(kvm):
    kvm.repl("sc = kernel.sys; a = sc.alloc(4000); b = sc.alloc(4000)")
    assert kvm.repl("len(a), len(b), bytes(a[:4]), type(a).__name__") == "(4000, 4000, b'\\x00\\x00\\x00\\x00', 'memoryview')"
    out = kvm.repl("sc.alloc(1000)")
    assert "OSError" in out and "exceed its DMA limit of 8192" in out, out
    kvm.repl("import _kernel; addr = _kernel.address(a); a[0] = 0x5a; sc.free(a)")
    assert kvm.repl("c = sc.alloc(100); _kernel.address(c) == addr, c[0]") == "(True, 0)", (
        "expected a freed buffer's memory to be reused, zeroed")
    kvm.repl("sc.free(b); sc.free(c)")


def test_timer_events_and_wait_timeout(kvm):
    kvm.repl("import asyncio; sc = kernel.sys; t = sc.timer(30); sc.subscribe(t, sc.EVENT_TIMER)")
    assert kvm.repl("ev = asyncio.run(sc.wait()); ev == [(t, sc.EVENT_TIMER)]") == "True"
    kvm.repl("sc.release(t)")
    kvm.repl("sc.getevents()")
    out = kvm.repl("import time; t0 = time.ticks_ms(); r = asyncio.run(sc.wait(0.2)); "
                   "r, 150 <= time.ticks_diff(time.ticks_ms(), t0) < 1000")
    assert out == "([], True)", f"expected wait(0.2) with no event source to time out empty after 0.2 s, got {out}"


def test_acquire_unknown_device(kvm):
    out = kvm.repl("kernel.sys.acquire('nosuch0')")
    assert re.search(r"OSError: \[Errno 19\] ENODEV: no device 'nosuch0' \(devices: .*console", out), out


def test_soft_reset_restarts_the_apps(boot):
    vm = boot(fw_cfg_cmdline="app=ticker repl=1 tick_ms=100")
    wait_for(vm, r"ticker: tick 3")
    vm.console.write(b"\x04")  # Ctrl-D at the prompt: soft reset, the kernel starts again
    wait_for(vm, r"MPY: soft reboot")
    wait_for(vm, r"kernel: started ticker \(REPL beside them\)")
    wait_for(vm, r"ticker: tick 2\r?\n")
    assert vm.repl("len(kernel.ps_rows())") == "1", "expected one ticker after the soft reset, not two"


def test_console_input_wakes_the_waiting_app(boot, summary):
    vm = start_apps(boot, "app=keys")
    wait_for(vm, r"keys: ready")
    latencies = []
    for chunk in (b"ab", b"xyz"):
        vm.console.write(chunk)
        line = wait_for(vm, r"keys: got .*\(woke (\d+) us after the post\)\r?\n").decode()
        assert repr(chunk) in line, f"expected the app to get {chunk!r}, got {line!r}"
        latencies.append(int(re.search(r"woke (\d+) us", line).group(1)))
    vm.console.write(b"q")
    status = vm.wait(timeout=30)
    assert status == 0, f"expected keys to end with 0 after 'q', got {status}"
    summary(f"console interrupt -> soft IRQ post -> wait() wake-up: {latencies} us")
    # Under TCG a millisecond is generous; the figure is for the record.
    assert max(latencies) < 20000, f"expected the soft-IRQ post to wake the task promptly, got {latencies} us"


@pytest.mark.parametrize("cmdline", ["app=ticker tick_ms=60000", "app=keys",
                                     "app=ticker tick_ms=60000 repl=1"])
def test_idle_kernel_with_a_waiting_app_under_2_percent(boot, summary, cmdline):
    vm = start_apps(boot, cmdline)
    wait_for(vm, r"kernel: started")
    time.sleep(1.0)
    pid = qemu_pid(vm)
    share = cpu_share(pid, 5.0)
    summary(f"idle kernel, {cmdline}: QEMU used {share * 100:.2f}% of a core over 5 s")
    assert vm.returncode is None, "the VM exited while it should idle"
    assert share < 0.02, f"expected an idle kernel ({cmdline}) under 2% of a host core, got {share * 100:.2f}%"
