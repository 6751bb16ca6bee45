"""Power loss: QEMU is killed (SIGKILL) at a random moment while the guest writes and syncs
files in a loop. Every boot must mount the disk without formatting it, every file the guest
said it had synced before the kill must be there and whole, the count of intact files only
grows, and the one file being written at the cut is either whole or still empty (littlefs
commits a new file's name at open and its contents atomically at close: never a torn file).

The suite runs MANTICORE_POWERLOSS_RUNS kills (default 5); the issue's full form is 20:
MANTICORE_POWERLOSS_RUNS=20 pytest tests/storage/test_powerloss.py."""

from __future__ import annotations

import os
import random
import re
import time

import pytest

from storagetools import fs_lines, guest, log_text, sigkill

RUNS = int(os.environ.get("MANTICORE_POWERLOSS_RUNS", "5"))

pytestmark = pytest.mark.timeout(60 + 25 * RUNS)

CHECK = """
import os
def content(i):
    return (b'%06d:' % i) * (300 + 37 * (i % 50))
intact = []
for n in sorted(n for n in os.listdir('/') if n.startswith('f')):
    i = int(n[1:])
    with open('/' + n, 'rb') as f:
        data = f.read()
    if data == content(i):
        intact.append(i)
    else:
        print('unfinished', i, len(data))
print('check', len(intact), max(intact or [-1]))
"""

WRITE = """
i = %d
while True:
    with open('/f%%06d' %% i, 'wb') as f:
        f.write(content(i))
    os.sync()
    print('synced', i)
    i += 1
"""


def test_random_power_cuts_lose_nothing_synced(boot, tmp_path):
    img = tmp_path / "pl.img"
    with open(img, "wb") as f:
        f.truncate(64 << 20)  # sparse; 20 cuts write a few thousand files
    rng = random.Random(int(os.environ.get("MANTICORE_POWERLOSS_SEED", time.time())))
    last_intact, synced_before = 0, -1
    for run in range(RUNS + 1):
        vm = boot(disks=[img])
        lines = fs_lines(vm)
        assert any(line.startswith("fs: / is vda (lfs2") for line in lines), \
            f"boot {run} after a power cut did not mount the disk: {lines}"
        if run > 0:
            assert not any("formatted" in line for line in lines), lines
        out = guest(vm, CHECK)
        m = re.search(r"check (\d+) (-?\d+)", out)
        intact, highest = int(m[1]), int(m[2])
        for i, size in re.findall(r"unfinished (\d+) (\d+)", out):
            assert int(i) > synced_before and int(size) == 0, (
                f"boot {run}: f{int(i):06d} is torn ({size} bytes; synced before the cut: "
                f"up to f{synced_before:06d})\n{log_text(vm)[-2000:]}")
        assert intact >= last_intact, f"boot {run}: intact files fell from {last_intact} to {intact}"
        assert highest >= synced_before and intact == highest + 1, (
            f"boot {run}: the guest had synced f{synced_before:06d} before the cut; "
            f"now {intact} intact, highest f{highest:06d}")
        last_intact = intact
        if run == RUNS:
            break
        vm.console.raw_start(WRITE % (highest + 1))
        vm.console.read_until(re.compile(rb"synced \d+"), timeout=30)
        time.sleep(rng.uniform(0.0, 1.5))
        sigkill(vm)
        said = re.findall(r"synced (\d+)", log_text(vm))
        synced_before = int(said[-1]) if said else highest
    assert last_intact > RUNS, f"expected files to accumulate over {RUNS} cuts, got {last_intact}"
