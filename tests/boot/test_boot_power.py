"""QMP sees the VM running; power-off from Python ends QEMU with status 0."""

import pytest

pytestmark = pytest.mark.timeout(90)


def qmp_return(reply):
    """The payload of a QMP reply, whether or not the client unwrapped 'return'."""
    if isinstance(reply, dict) and "return" in reply:
        return reply["return"]
    return reply


def test_qmp_status_running_at_prompt(repl_vm):
    status = qmp_return(repl_vm.qmp.cmd("query-status"))
    assert status.get("status") == "running" and status.get("running") is True, (
        f"expected QMP query-status to say running at the prompt, got {status}")


@pytest.mark.parametrize("machine", ["q35", "pc"])
@pytest.mark.parametrize("debug_exit", [True, False], ids=["debug-exit", "no-debug-exit"])
def test_machine_poweroff_exits_zero(boot, machine, debug_exit):
    vm = boot(machine=machine, debug_exit=debug_exit)
    vm.console.write("import machine; machine.poweroff()\r")
    status = vm.wait(timeout=30)
    assert status == 0, f"expected QEMU to exit with status 0 after machine.poweroff() on {machine}, got {status}"


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_sys_exit_at_repl_powers_off(boot, machine):
    vm = boot(machine=machine)
    vm.console.write("import sys; sys.exit()\r")
    status = vm.wait(timeout=30)
    assert status == 0, f"expected QEMU to exit with status 0 after sys.exit() at the REPL on {machine}, got {status}"


def test_iso_poweroff_exits_zero(boot):
    vm = boot(boot="iso")
    vm.console.write("import machine; machine.poweroff()\r")
    status = vm.wait(timeout=30)
    assert status == 0, f"expected QEMU to exit with status 0 after machine.poweroff() (ISO boot), got {status}"


@pytest.mark.timeout(120)
def test_guest_that_exits_at_once_still_counts_as_started():
    """The floor image writes one byte and exits within some 30 ms on microvm, which can
    make QEMU quit before QMP has answered the launcher's `cont`; the boot benchmark times
    exactly that.  Twenty starts in a row must all succeed and show the byte."""
    from manticore_host import image
    from manticore_host.qemu import VM, VMConfig
    floor = image.make_floor()
    for attempt in range(20):
        with VM(VMConfig(boot="kernel", machine="microvm", kernel=floor)) as vm:
            vm.start(timeout=30)
            vm.console.read_until(b"*", 10)
            assert vm.wait(10) is not None, f"start {attempt}: QEMU did not exit after the byte"
