"""The kernel command line reaches Python, and QEMU's fw_cfg opt/manticore/cmdline replaces it."""

import pytest

pytestmark = pytest.mark.timeout(90)


def cmdline(vm) -> str:
    out = vm.repl("import machine; print(repr(machine.cmdline()))")
    assert out.startswith("'") and out.endswith("'"), f"expected machine.cmdline() to return a str, got:\n{out}"
    return out[1:-1]


@pytest.mark.parametrize("machine", ["q35", "microvm"])
def test_append_visible_from_python(boot, machine):
    vm = boot(machine=machine, append="foo=bar quiet=0")
    got = cmdline(vm)
    assert got == "foo=bar quiet=0", f"expected machine.cmdline() == 'foo=bar quiet=0' with -append, got {got!r}"


def test_no_append_gives_empty_cmdline(boot):
    vm = boot()
    got = cmdline(vm)
    assert got == "", f"expected an empty command line without -append, got {got!r}"


def test_fw_cfg_overrides_append(boot):
    vm = boot(append="foo=bar", fw_cfg_cmdline="baz=qux x=1")
    got = cmdline(vm)
    assert got == "baz=qux x=1", (
        f"expected fw_cfg opt/manticore/cmdline ('baz=qux x=1') to replace -append 'foo=bar', got {got!r}")


def test_fw_cfg_overrides_grub_cmdline_on_iso(boot):
    plain = boot(boot="iso")
    builtin = cmdline(plain)
    plain.kill()
    vm = boot(boot="iso", fw_cfg_cmdline="foo=bar")
    got = cmdline(vm)
    assert got == "foo=bar", (
        f"expected fw_cfg opt/manticore/cmdline 'foo=bar' to replace GRUB's {builtin!r} on ISO boot, got {got!r}")


def test_unknown_app_lists_apps_and_powers_off(boot):
    vm = boot(fw_cfg_cmdline="app=no_such_app", wait_prompt=False)
    status = vm.wait(timeout=30)
    log = vm.console.log.decode("utf-8", "replace")
    assert "kernel: unknown app 'no_such_app'; the frozen apps are: " in log, (
        f"expected the kernel to name the unknown app and list the frozen ones, got:\n{log}")
    assert status == 255, f"expected QEMU status (127<<1)|1 = 255 for an unknown app, got {status}"
