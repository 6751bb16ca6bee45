"""Fault campaign at the console: random bytes typed at the REPL (every control character
included: Ctrl-A raw REPL, Ctrl-B, Ctrl-C, Ctrl-D soft reset, Ctrl-E paste mode) and random
raw-REPL / raw-paste sequences; afterwards the REPL still answers. Bounded here (64 KiB,
MANTICORE_REPL_FUZZ_BYTES overrides); `invoke bench faults` types 1 MiB."""

from __future__ import annotations

import os
import random
import time

import pytest

from faultframes import record_result

REPL_BYTES = int(os.environ.get("MANTICORE_REPL_FUZZ_BYTES", str(64 * 1024)))

pytestmark = pytest.mark.timeout(120 + REPL_BYTES // 4096)


def recover(vm, attempts: int = 6) -> int:
    """Interrupt, leave raw/paste mode, and get an answer at the friendly REPL; returns the
    attempts it took. Fails if the REPL never answers."""
    for attempt in range(1, attempts + 1):
        vm.console.write(b"\x03\x03\x02\x03\r")
        time.sleep(0.5)
        vm.console.drain()
        try:
            out = vm.console.repl("6 * 7", timeout=15)
        except Exception:       # noqa: BLE001 - any console failure: try again
            if vm.returncode is not None:
                pytest.fail(f"QEMU exited (status {vm.returncode}) after the random input")
            continue
        if out.endswith("42"):
            return attempt
    pytest.fail("the REPL does not answer after the random input")


def type_random(vm, total: int, seed: int, shape: str) -> None:
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        if shape == "raw":
            # Enter the raw REPL, maybe ask for raw-paste (Ctrl-E 'A' Ctrl-A), random code,
            # end it (or not) with Ctrl-D, and maybe leave.
            chunk = b"\x03\x01" + (b"\x05A\x01" if rng.random() < 0.5 else b"")
            chunk += rng.randbytes(rng.randrange(1, 600))
            chunk += rng.choice([b"\x04", b"\x04\x02", b"", b"\x03\x04"])
        else:
            chunk = rng.randbytes(min(4096, total - sent))
        vm.console.write(chunk)
        sent += len(chunk)
        vm.console.drain()          # keep the host side's buffer small


def test_random_bytes_at_the_repl(boot, summary):
    vm = boot()
    t0 = time.monotonic()
    type_random(vm, REPL_BYTES, seed=14, shape="bytes")
    attempts = recover(vm)
    took = time.monotonic() - t0
    summary(f"faults: {REPL_BYTES} random bytes at the REPL in {took:.1f} s, "
            f"answered after {attempts} recovery attempt(s)")
    record_result("repl_bytes", {"bytes": REPL_BYTES, "seconds": round(took, 1),
                                 "recovery_attempts": attempts})
    assert vm.console.repl("sum(range(10))").endswith("45")


def test_random_raw_repl_sequences(boot, summary):
    vm = boot()
    t0 = time.monotonic()
    type_random(vm, REPL_BYTES // 4, seed=15, shape="raw")
    attempts = recover(vm)
    took = time.monotonic() - t0
    summary(f"faults: {REPL_BYTES // 4} bytes of random raw-REPL/raw-paste sequences in "
            f"{took:.1f} s, answered after {attempts} recovery attempt(s)")
    record_result("repl_raw", {"bytes": REPL_BYTES // 4, "seconds": round(took, 1),
                               "recovery_attempts": attempts})
    assert vm.console.raw_exec("print(1 + 2)")[0].strip() == "3"
