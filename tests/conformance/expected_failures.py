"""The one list of MicroPython upstream tests that cannot pass on this port, with the reason.

Each entry is excluded from its run of tests/run-tests.py (``-e``); nothing else is excluded.
Tests that run-tests.py skips by itself because a feature is absent (its own feature checks,
or a test printing SKIP) are counted and printed by the conformance test, not listed here.

Keys are paths relative to the MicroPython tree's tests/ directory.
"""

# Excluded from every run (bytecode and native).
EXPECTED_FAILURES = {
    "extmod/machine1.py":
        "imports unittest, which the Debian +ds source drops with lib/micropython-lib; "
        "run-tests.py aborts the whole run on a missing unittest",
    "extmod/ssl_noleak.py":
        "imports unittest (as extmod/machine1.py), which the +ds source drops; the port's own "
        "tests/net/test_tls.py checks that dropped TLS connections give their heap back",
    "float/math_constants.py":
        "lib/libm_dbl's exp(1.0) is 1 ulp above math.e (2.718281828459046 vs ...045), so the "
        "test's `math.e == exp(1.0)` prints False (known libm difference, see PORTING-NOTES)",
    "extmod/select_poll_custom.py":
        "a pure-Python pollable that turns readable without any event: select.poll() with no "
        "timeout halts the tickless core until the next interrupt, and none comes (stm32 and "
        "rp2 pass because their 1 ms tick wakes them); sockets and stdin, which are "
        "interrupt driven, wake poll as they should",
    "stress/recursive_iternext.py":
        "expects 5000 nested iterators to hit the recursion limit; the port's C stack limit "
        "(256 KiB stack, 240 KiB limit; unix uses 80 KB) is deep enough that they complete and "
        "print nothing. Not a crash: 20000 nested iterators raise RuntimeError as they should",
}

# Excluded only from the --via-mpy --emit native runs, in addition to the above.
NATIVE_EXPECTED_FAILURES = {
}


def excluded(native: bool) -> dict[str, str]:
    """path -> reason for one run of run-tests.py."""
    out = dict(EXPECTED_FAILURES)
    if native:
        out.update(NATIVE_EXPECTED_FAILURES)
    return out
