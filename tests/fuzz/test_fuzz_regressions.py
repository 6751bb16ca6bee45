"""Replay every fuzz seed and every kept crash input (tests/fuzz/corpus, tests/fuzz/regressions)
through its harness, built on the host from the kernel's unchanged C sources with ASan and
UBSan (gcc, no libFuzzer needed). A crash, sanitizer report, failed invariant or hang found by
`invoke fuzz` and fixed stays fixed. Runs in a few seconds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

import fuzzbuild

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def replay_build(tmp_path_factory):
    """Each harness's replay build, compiled once for the module's tests."""
    built = {}

    def get(name):
        if name not in built:
            built[name] = fuzzbuild.build(name, tmp_path_factory.mktemp(name), "replay")
        return built[name]
    return get


@pytest.mark.skipif(shutil.which("gcc") is None and fuzzbuild.clang() is None,
                    reason="needs gcc or clang")
@pytest.mark.parametrize("name", sorted(fuzzbuild.HARNESSES))
def test_replay_corpus(name, replay_build):
    inputs = fuzzbuild.corpus_inputs(name)
    assert inputs, f"no seed corpus for {name}: run tests/fuzz/make_seeds.py"
    exe = replay_build(name)
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


@pytest.mark.skipif(shutil.which("gcc") is None and fuzzbuild.clang() is None,
                    reason="needs gcc or clang")
@pytest.mark.parametrize("name", ["lwip", "netif"])
def test_frames_reach_lwip_through_the_port_netif(name, replay_build):
    # The seeds go the image's way (virtio-net ring, the port's glue, netif->input) and come
    # back as frames the device transmits: the harness fuzzes a live path, not a dead end.
    # netif's burst_hold seed holds more frames than the zero-copy limit: some are copied.
    exe = replay_build(name)
    env = dict(os.environ, NETIF_SIM_REPORT="1", **fuzzbuild.SANITIZER_ENV)
    result = subprocess.run([str(exe), *map(str, fuzzbuild.corpus_inputs(name))],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = dict(re.findall(r"(\w+) (\d+)", result.stdout.split("netif_sim:")[-1]))
    assert int(report["zero_copy"]) > 0 and int(report["tx_frames_out"]) > 0, result.stdout
    if name == "netif":
        assert int(report["copied"]) > 0 and int(report["tx_waits"]) > 0, result.stdout
