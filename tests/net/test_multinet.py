"""MicroPython's own network tests (tests/multi_net of the fetched tree, run by its
tests/run-multitests.py) with one instance on the host (the unix port built from the same
tree, with the same mbedTLS) and one on the image (its serial console, as run-multitests'
`pyb:` instance), over a tap in the test's own network namespace; both orders, so the
image is the server in one run and the client in the other.  Every test runs, TLS ones
included; the few that cannot pass in one order are in manticore_host/multinet.py's
EXPECTED_FAILURES with the reason, and left out of that order only."""

from __future__ import annotations

import pytest

from manticore_host import multinet
from vmtools import file_tail

RUN_TIMEOUT = 150           # both run-multitests.py runs; the test's own deadline is above it


@pytest.mark.timeout(RUN_TIMEOUT + 300)     # + building the host's unix port on first use
def test_multi_net(tmp_path, summary, namespaces_ok):
    try:
        run = multinet.run(tmp_path, timeout=RUN_TIMEOUT)
    except Exception as e:          # the build, the namespace, the boot or the NIC
        pytest.fail(f"multi_net could not start: {e!r}\n--- serial log tail:\n"
                    f"{file_tail(tmp_path / 'serial.log', 3000)}", pytrace=False)
    results = run["results"]
    by = {o: [f"{r.test} ({r.order})" for r in results if r.outcome == o]
          for o in ("pass", "FAIL", "skip")}
    line = (f"multi_net: {len(by['pass'])} passed, {len(by['FAIL'])} failed, "
            f"{len(by['skip'])} skipped by run-multitests.py, "
            f"{len(multinet.EXPECTED_FAILURES)} excluded (multinet.EXPECTED_FAILURES), "
            f"{run['seconds']:.0f} s")
    summary(line)
    print(line)
    if by["skip"]:
        summary("  skipped: " + " ".join(by["skip"]))
    tail = (f"\n--- run-multitests.py output (tail):\n{run['output'][-6000:]}"
            f"\n--- serial log tail:\n{file_tail(run['serial_log'], 3000)}")
    assert run["status"] is not None, f"run-multitests.py did not finish in {RUN_TIMEOUT} s{tail}"
    if by["FAIL"]:
        failed = sorted({r.test for r in results if r.outcome == "FAIL"})
        reports = "\n".join(b for t in failed for b in multinet.blocks(run["output"], t))
        pytest.fail(f"multi_net tests failed: {' '.join(by['FAIL'])}\n{reports[:20000]}"
                    f"\n--- serial log tail:\n{file_tail(run['serial_log'], 3000)}", pytrace=False)
    assert not by["skip"], f"multi_net tests skipped themselves (none should): {by['skip']}{tail}"
    tree = multinet.micropython_dir(quiet=True)
    expected = sum(len(multinet.planned(tree, order)) for order in multinet.ORDERS)
    assert len(by["pass"]) == expected and run["status"] == 0, (
        f"expected {expected} passes (every planned test in both orders) and status 0, got "
        f"{len(by['pass'])} and {run['status']}{tail}")
