"""Reproducible images, in bounded time: the Makefile's flags compile one file of each
source tree (repository, lwIP, MicroPython) to identical objects in two clones at different
paths (debug info included), and one kernel.elf gives identical ISOs from two staging paths a
second apart. The whole claim, two clones and two full builds, is `invoke repro`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from manticore_host import image, repro

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(180)


def _committed() -> bool:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True)
    return out.returncode == 0


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_objects_identical_from_two_clones(tmp_path):
    if not _committed():
        pytest.fail("not a git checkout: cannot clone HEAD")
    diffs = repro.check_objects(tmp_path)
    assert not diffs, diffs
    # The paths really were mapped: neither clone's directory is in the objects.
    for obj in (tmp_path / "obj-a").iterdir():
        data = obj.read_bytes()
        assert str(tmp_path).encode() not in data, obj.name
        assert b"/.cache/" not in data, obj.name


def test_iso_identical_from_two_stagings(tmp_path):
    elf = image.KERNEL if image.KERNEL.is_file() else image.make_floor()
    a, b = repro.check_iso(elf, tmp_path)
    assert a == b, f"ISOs differ: {a} vs {b}"
