"""Host-side checks of the multi_net runner (manticore_host/multinet.py): which tests each
order runs and how its report is read.  The run itself is tests/net/test_multinet.py."""

from manticore_host import multinet


def test_expected_failures_name_real_tests_and_orders():
    tree = multinet.micropython_dir(quiet=True)
    tests = multinet.suite_files(tree)
    assert len(tests) > 20 and "multi_net/tcp_data.py" in tests
    for (test, order), reason in multinet.EXPECTED_FAILURES.items():
        assert test in tests, test
        assert order in multinet.ORDERS, order
        assert len(reason) > 40, reason
    for order in multinet.ORDERS:
        planned = multinet.planned(tree, order)
        assert all((t, order) not in multinet.EXPECTED_FAILURES for t in planned)
        assert len(planned) == len(tests) - sum(o == order for _, o in multinet.EXPECTED_FAILURES)


def test_failure_blocks():
    out = ("multi_net/a.py on micropython|0: pass\n"
           "multi_net/b.py on micropython|0: FAIL\n### TEST ###\nx\n### TRUTH ###\ny\n"
           "multi_net/b.py on 0|micropython: pass\n"
           "2 tests performed\n")
    got = multinet.blocks(out, "multi_net/b.py")
    assert len(got) == 2 and "### TRUTH ###\ny" in got[0] and got[1].startswith(
        "multi_net/b.py on 0|micropython: pass")
    assert [r.groups() for r in map(multinet.RESULT.match, out.splitlines()) if r] == [
        ("multi_net/a.py", "micropython|0", "pass"), ("multi_net/b.py", "micropython|0", "FAIL"),
        ("multi_net/b.py", "0|micropython", "pass")]
