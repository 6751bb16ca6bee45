"""Serial input through the I/O APIC: the COM1 receive interrupt is routed by the I/O APIC
(QEMU's own view of its redirection table agrees), and bulk or fast input loses nothing."""

from __future__ import annotations

import hashlib
import random
import re

import pytest

from platformtools import guest_json

pytestmark = pytest.mark.timeout(90)


def com1_count(vm) -> int:
    return int(vm.repl("import irq; irq.counts().get('com1', -1)"))


def test_com1_routed_through_ioapic(repl_vm):
    got = guest_json(repl_vm, "import irq, json\nprint(json.dumps([irq.info()['routing'], "
                              "[list(v) for v in irq.vectors() if v[1] == 'com1']]))")
    routing, vectors = got
    assert routing == "ioapic", f"expected legacy IRQs routed by the I/O APIC, irq.info() says {routing!r}"
    assert len(vectors) == 1, f"expected one vector named 'com1' in irq.vectors(), got {vectors}"
    vector = vectors[0][0]
    pic = repl_vm.qmp.hmp("info pic")
    # QEMU: "  pin 4  0x0000000000000032 dest=0 vec=50  active-hi edge         fixed  physical"
    m = re.search(r"^\s*pin 4\s+0x[0-9a-f]+ dest=\d+ vec=(\d+)\s+(.*)$", pic, re.M)
    assert m, f"no I/O APIC pin 4 (COM1) in QEMU's 'info pic':\n{pic}"
    assert int(m.group(1)) == vector, f"I/O APIC pin 4 delivers vector {m.group(1)}, irq says com1 is {vector}"
    assert "masked" not in m.group(2), f"I/O APIC pin 4 (COM1) is masked: {m.group(0).strip()}"
    imr = re.findall(r"^pic[01]: .*imr=([0-9a-f]+)", pic, re.M)
    assert imr and all(int(x, 16) == 0xff for x in imr), f"expected both 8259s fully masked, got imr={imr}"


def test_input_raises_com1_interrupts(repl_vm):
    before = com1_count(repl_vm)
    for i in range(5):
        assert repl_vm.repl(f"{i}+{i}") == str(2 * i)
    after = com1_count(repl_vm)
    assert after - before >= 5, f"expected COM1 receive interrupts for 5 typed lines, the count went {before} -> {after}"


def test_raw_paste_10k_checksum(repl_vm):
    """A 10 KiB script through raw-paste; the guest's sha256 of its payload equals ours."""
    rng = random.Random(3)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-*/=()[]{}<>.,:;!?#$%&@^_|~"
    lines = ["".join(rng.choice(alphabet) for _ in range(100)) for _ in range(105)]
    payload = "\n".join(lines)
    code = ("import hashlib, binascii\n"
            f"s = '''{payload}'''\n"
            "print(len(s), binascii.hexlify(hashlib.sha256(s.encode()).digest()).decode())\n")
    assert len(code) >= 10 * 1024
    out, err = repl_vm.console.raw_paste_exec(code, timeout=60)
    assert err == "", f"expected the 10 KiB raw-paste script to run, got:\n{err}"
    want = f"{len(payload)} {hashlib.sha256(payload.encode()).hexdigest()}"
    assert out.strip() == want, f"expected {want!r} (length, sha256), got {out.strip()!r}: input was lost or changed"


def test_fast_friendly_repl_input(repl_vm):
    """300 lines typed at once at the friendly REPL, without waiting for echoes or prompts."""
    repl_vm.repl("acc = 0")
    values = [random.Random(7).randrange(10**6) + i for i in range(300)]
    burst = "".join(f"acc += {v}\r" for v in values)
    repl_vm.console.write(burst)
    repl_vm.sync(timeout=60)
    got = repl_vm.repl("acc")
    assert got == str(sum(values)), (
        f"expected acc == {sum(values)} after {len(values)} lines ({len(burst)} bytes) typed at once, "
        f"got {got!r}: some input was lost")


def test_typing_during_sleep_neither_cuts_it_short_nor_is_lost(repl_vm):
    """Receive interrupts wake the halted CPU during time.sleep_ms; the sleep must go on to its
    deadline, and what was typed meanwhile must run afterwards."""
    con = repl_vm.console
    line = "import time; t = time.ticks_ms(); time.sleep_ms(1000); slept = time.ticks_diff(time.ticks_ms(), t)"
    con.write(line + "\r")
    con.read_until(line.encode() + b"\r\n", timeout=10)
    typed = "typed = 0\r" + "".join(f"typed += {i}\r" for i in range(40))
    con.write(typed)             # while the guest sleeps
    repl_vm.sync(timeout=30)
    slept = int(repl_vm.repl("slept"))
    assert 1000 <= slept < 1100, f"expected time.sleep_ms(1000) to last 1000 ms while input arrived, it lasted {slept} ms"
    got = repl_vm.repl("typed")
    assert got == str(sum(range(40))), f"expected the 41 lines typed during the sleep to run (typed == {sum(range(40))}), got {got!r}"
