"""Helpers for the platform tests: run guest code that answers in JSON, read QEMU's CPU time,
flatten QMP's query-pci, a chi-square statistic."""

from __future__ import annotations

import json
import os
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def qmp_return(reply):
    """The payload of a QMP reply, whether or not the client unwrapped 'return'."""
    if isinstance(reply, dict) and "return" in reply:
        return reply["return"]
    return reply


def guest_json(vm, code: str, timeout: float = 60):
    """Run `code` in the guest's raw REPL; it must print one JSON document as its last line.
    A traceback or unparsable output fails with the code and what came back."""
    out, err = vm.console.raw_exec(code, timeout=timeout)
    assert err == "", f"guest code raised:\n{err}\n--- code ---\n{code}"
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines, f"guest code printed nothing\n--- code ---\n{code}"
    try:
        return json.loads(lines[-1])
    except ValueError as e:
        raise AssertionError(f"guest output is not JSON ({e}): {out!r}\n--- code ---\n{code}")


def qemu_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the comm field: state is fields[0], utime is field 14 of stat(5), i.e. fields[11].
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_share(pid: int, seconds: float) -> float:
    """QEMU's CPU time over `seconds` of wall time, as a fraction of one core."""
    c0, t0 = qemu_cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (qemu_cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def qemu_pid(vm) -> int:
    """The QEMU process id of a booted VM (the launcher's VM.proc)."""
    proc = getattr(vm.vm if hasattr(vm, "vm") else vm, "proc", None)
    assert proc is not None, "the launcher's VM has no .proc (QEMU process)"
    return proc.pid


def query_pci_functions(vm) -> list[dict]:
    """Every function QMP's query-pci lists, bridges followed, as flat dicts:
    bus, slot, function, vendor, device, class (16-bit class/subclass), subsystem ids (None
    for bridges), irq_pin, irq, regions, and for bridges the secondary/subordinate bus
    numbers."""
    found = []

    def walk(devices):
        for dev in devices:
            ids = dev["id"]
            entry = {
                "bus": dev["bus"], "slot": dev["slot"], "function": dev["function"],
                "vendor": ids["vendor"], "device": ids["device"],
                "class": dev["class_info"]["class"],
                "subsystem_vendor": ids.get("subsystem-vendor"),
                "subsystem": ids.get("subsystem"),
                "irq_pin": dev.get("irq_pin"),
                "irq": dev.get("irq"),      # the Interrupt Line register, when a pin is used
                "regions": dev.get("regions", []),
                "qdev_id": dev.get("qdev_id", ""),
            }
            bridge = dev.get("pci_bridge")
            if bridge:
                entry["secondary"] = bridge["bus"]["secondary"]
                entry["subordinate"] = bridge["bus"]["subordinate"]
            found.append(entry)
            if bridge:
                walk(bridge.get("devices", []))

    for bus in qmp_return(vm.qmp.cmd("query-pci")):
        walk(bus["devices"])
    return found


def bdf(bus: int, slot: int, function: int) -> str:
    return f"{bus:02x}:{slot:02x}.{function:x}"


def chi_square(histogram: list[int]) -> float:
    """Pearson's statistic of a histogram against the uniform distribution."""
    n = sum(histogram)
    expected = n / len(histogram)
    return sum((h - expected) ** 2 / expected for h in histogram)
