"""build/kernel.iso under both firmwares: SeaBIOS (legacy BIOS, GRUB i386-pc) and OVMF
(UEFI, GRUB x86_64-efi). Each boots to the REPL, says which firmware booted it, finds the
ACPI tables through the RSDP that GRUB passed in a multiboot2 tag, has the memory the VM
was given, and powers off with status 0."""

import json

import pytest

pytestmark = pytest.mark.timeout(150)


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_iso_boots_and_powers_off(boot, firmware, summary):
    vm = boot(boot="iso", firmware=firmware, memory="256M", timeout=120)
    summary(f"iso/{firmware}: prompt after {vm.boot_seconds:.2f} s")
    assert f"boot multiboot2 ({firmware})" in vm.banner, (
        f"expected the boot line to say 'boot multiboot2 ({firmware})', banner:\n{vm.banner}")
    # GRUB's EFI build has no text mode to set for a multiboot2 kernel; grub.cfg's
    # gfxpayload=keep keeps the firmware's, instead of an "error:" on every UEFI boot.
    assert "error:" not in vm.console.log.decode("utf-8", "replace"), (
        f"expected no error from the firmware or GRUB, console:\n{vm.console.log[:3000]!r}")
    got = json.loads(vm.repl(
        "import acpi, json, kernel; print(json.dumps([acpi.info()['rsdp'], "
        "[t[0] for t in acpi.tables()]]))"))
    rsdp, signatures = got
    assert rsdp, f"expected the RSDP from GRUB's multiboot2 ACPI tag under {firmware}, got 0"
    assert {"FACP", "APIC", "MCFG"} <= set(signatures), (
        f"expected FACP, APIC and MCFG on q35 under {firmware}, got {signatures}")
    ram = [w for w in vm.banner.split(",") if "RAM" in w]
    assert ram and 200 <= int(ram[0].split()[1]) <= 256, (
        f"expected 200..256 MiB of RAM from the {firmware} memory map, banner:\n{vm.banner}")
    assert "memory map entry" not in vm.banner, (
        f"a good {firmware} memory map should have nothing skipped, banner:\n{vm.banner}")
    vm.console.write("import machine; machine.poweroff()\r")
    status = vm.wait(timeout=30)
    assert status == 0, f"expected status 0 after machine.poweroff() under {firmware}, got {status}"
