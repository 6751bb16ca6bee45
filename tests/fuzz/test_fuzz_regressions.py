"""Replay every fuzz seed and every kept crash input (tests/fuzz/corpus, tests/fuzz/regressions)
through its harness, built on the host from the kernel's unchanged C sources with ASan and
UBSan (gcc, no libFuzzer needed). A crash, sanitizer report, failed invariant or hang found by
`invoke fuzz` and fixed stays fixed. Runs in a few seconds."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import fuzzbuild

pytestmark = pytest.mark.timeout(180)


@pytest.mark.skipif(shutil.which("gcc") is None and fuzzbuild.clang() is None,
                    reason="needs gcc or clang")
@pytest.mark.parametrize("name", sorted(fuzzbuild.HARNESSES))
def test_replay_corpus(name, tmp_path):
    inputs = fuzzbuild.corpus_inputs(name)
    assert inputs, f"no seed corpus for {name}: run tests/fuzz/make_seeds.py"
    exe = fuzzbuild.build(name, tmp_path, "replay")
    env = dict(os.environ, **fuzzbuild.SANITIZER_ENV)
    # Each input alone, so a hang names its input (the harnesses finish one in milliseconds).
    for path in inputs:
        try:
            result = subprocess.run([str(exe), str(path)], capture_output=True, text=True,
                                    timeout=20, env=env)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name}: {path.name} hangs")
        assert result.returncode == 0, f"{name}: {path.name}\n{result.stdout}{result.stderr}"
        assert "runtime error" not in result.stderr, f"{name}: {path.name}\n{result.stderr}"
