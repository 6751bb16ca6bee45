"""Fixtures for the Linux peer image (manticore_host/linuxpeer.py), the baseline of the
benchmarks: MicroPython's unix port on Debian's kernel, in the same QEMU as manticore.

  peer_build  session: the image, built (or taken from build/peer/) once; its image()
              FAILS the calling test with the reason when the build did not work.
  peer_vm     factory: peer_vm(mode="repl", app=None, wait=True, **VMConfig keywords) ->
              a started launcher VM booting the peer, after its ready marker unless
              wait=False; killed after the test, its serial log attached on failure.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from manticore_host import linuxpeer
from manticore_host.qemu import VM
from peertools import ACCEL

_PEER_VMS = pytest.StashKey[list]()


class PeerBuild:
    def __init__(self):
        self._image: linuxpeer.PeerImage | None = None
        self.error: str | None = None
        self.seconds = 0.0

    def image(self) -> linuxpeer.PeerImage:
        if self.error is not None:
            pytest.fail(f"the Linux peer image could not be built:\n{self.error}",
                        pytrace=False)
        return self._image


@pytest.fixture(scope="session")
def peer_build() -> PeerBuild:
    build = PeerBuild()
    t0 = time.monotonic()
    try:
        build._image = linuxpeer.ensure_image(log=lambda m: print(m, flush=True))
    except Exception as e:              # reported by every test that needs the image
        build.error = f"{type(e).__name__}: {e}"
    build.seconds = time.monotonic() - t0
    return build


@pytest.fixture
def peer_vm(request, tmp_path, peer_build):
    counter = iter(range(1, 100))
    with ExitStack() as stack:

        def start(mode="repl", app=None, *, wait=True, timeout=90, **kw):
            image = peer_build.image()
            kw.setdefault("accel", ACCEL)
            cfg = linuxpeer.peer_config(image, mode, app, **kw)
            n = next(counter)
            vm = VM(cfg, log_path=tmp_path / f"peer{n}.log")
            stack.push(vm)
            request.node.stash.setdefault(_PEER_VMS, []).append(
                (f"peer vm{n} mode={mode}" + (f" app={app}" if app else ""), vm))
            vm.start()
            if wait:
                vm.ready_seconds = None
                vm.console.read_until(linuxpeer.ready_marker(mode, app), timeout)
                vm.ready_seconds = time.monotonic() - vm.started_at
            return vm

        yield start


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed:
        for label, vm in item.stash.get(_PEER_VMS, []):
            state = "running" if vm.returncode is None else f"exited with status {vm.returncode}"
            log = vm.console.log.decode("utf-8", "replace") if vm.console else "(no console)"
            rep.sections.append((f"serial log of {label} (QEMU {state})", log[-20000:]))
    return rep
