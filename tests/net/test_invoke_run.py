"""The README's main job as a user types it: `invoke run --app echod --publish PORT/udp`,
on each boot path a user's VM has: the ISO under SeaBIOS (the default), the ISO under OVMF
(`--firmware uefi`) and microvm (no --boot: microvm has no firmware to boot a CD, so the
launcher boots it directly), with and without its ACPI tables (`--machine microvm,acpi=off`).
echod answers UDP and TCP through the published ports, and Ctrl-A X on the console ends the
run with status 0."""

import socket

import pytest

from manticore_host.echobench import free_port
from nettools import ECHO_PORT, InvokeRun, tcp_echo, udp_echo, wait_echo

pytestmark = pytest.mark.timeout(240)

PATHS = {
    "iso-bios": ((), "build/kernel.iso (GRUB multiboot2) on q35", "boot multiboot2 (bios)"),
    "iso-uefi": (("--firmware", "uefi"), "build/kernel.iso (GRUB multiboot2) on q35",
                 "boot multiboot2 (uefi)"),
    "microvm": (("--machine", "microvm"), "build/kernel.elf (direct PVH) on microvm",
                "boot pvh"),
    # No ACPI tables: the devices come from QEMU's virtio_mmio.device= command-line words.
    "microvm-acpi-off": (("--machine", "microvm,acpi=off"),
                         "build/kernel.elf (direct PVH) on microvm,acpi=off", "(cmdline)"),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_invoke_run_echod(path, summary):
    extra, run_line, boot_line = PATHS[path]
    port = free_port()
    with InvokeRun(*extra, "--app", "echod", "--publish", f"{port}:{ECHO_PORT}/udp",
                   "--publish", f"{port}:{ECHO_PORT}/tcp", "--accel", "tcg") as run:
        run.wait_for(b"listening on %d/tcp" % ECHO_PORT, timeout=180)
        assert run_line in run.text() and boot_line in run.text(), run.text()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", port))
            wait_echo(s)
            payload = bytes(range(256)) * 6
            lost = [size for size in (0, 1, 64, 512, 1472) * 4
                    if udp_echo(s, payload[:size], timeout=2.0) != payload[:size]]
            assert not lost, f"expected every UDP echo, lost sizes {lost}:\n{run.text()}"
        data = bytes(range(256)) * 256
        assert tcp_echo(port, data) == data, f"expected a 64 KiB TCP echo:\n{run.text()}"
        status = run.quit()
        assert status == 0, f"expected Ctrl-A X to end the run with status 0, got {status}:\n" \
            + run.text()
    summary(f"invoke run --app echod ({path}): 20 UDP and a 64 KiB TCP echo, status 0")
