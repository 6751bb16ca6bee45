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
