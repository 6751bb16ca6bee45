"""A VM with less RAM than the kernel needs says so and ends QEMU with status 3, never a
silent stop. Below the image's end (its .bss: the stack and the boot page tables) boot.S
finds no RAM behind its last dword and prints the image's end before it ever pages; with
the image in RAM but too little left, mm_init's panic names what did not fit. QEMU is run
directly for the first case: the launcher refuses such a -m itself (test_launcher.py)."""

import subprocess

import pytest

from manticore_host import image
from manticore_host.qemu import DEBUG_EXIT

pytestmark = pytest.mark.timeout(90)

NO_RAM = "manticore: the VM's RAM ends below the kernel image's end at 0x"


@pytest.mark.parametrize("machine", ["q35", "microvm"])
def test_ram_below_the_image_end_is_reported(machine):
    cmd = ["qemu-system-x86_64", "-M", machine, "-accel", "tcg", "-cpu", "max", "-m", "4M",
           "-display", "none", "-no-reboot", "-nodefaults", "-kernel", str(image.KERNEL),
           "-serial", "stdio", "-device", DEBUG_EXIT]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    out = proc.stdout.decode("utf-8", "replace")
    assert NO_RAM in out and "give it more memory (QEMU -m); cannot boot" in out, \
        f"expected the early RAM message on {machine}, status {proc.returncode}:\n{out}\n" \
        + proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 3, f"expected QEMU status 3 (isa-debug-exit), got " \
        f"{proc.returncode}:\n{out}"


def test_too_little_ram_after_the_image_is_a_panic(boot):
    vm = boot(memory="5M", wait_prompt=False)
    status = vm.wait(timeout=60)
    log = vm.console.log.decode("utf-8", "replace")
    assert "MANTICORE PANIC: memory:" in log, f"expected mm_init's panic:\n{log}"
    assert status == 3, f"expected QEMU status 3 after the panic, got {status}:\n{log}"
