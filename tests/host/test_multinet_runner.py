"""Host-side checks of the multi_net runner (manticore_host/multinet.py): what it builds and
which tests each order runs.  The run itself is tests/net/test_multinet.py."""

from pathlib import Path

from manticore_host import multinet


def test_mbedtls_objects_stay_in_build(tmp_path):
    tree = tmp_path / "cache" / "micropython-1.25.0+ds"
    mbedtls = tmp_path / "cache" / "mbedtls-3.6.6"
    build = tmp_path / "build" / "unix"
    cmd = multinet.make_command(tree, mbedtls, build)
    args = dict(a.split("=", 1) for a in cmd if "=" in a)
    assert args["MBEDTLS_DIR"] == "../mbedtls-3.6.6"
    # extmod.mk puts mbedTLS's objects at $(BUILD)/$(MBEDTLS_DIR)/library/.
    objdir = (Path(args["BUILD"]) / args["MBEDTLS_DIR"]).resolve()
    assert objdir.is_relative_to(build.resolve()), objdir
    assert args["MBEDTLS_CONFIG_FILE"] == f'\\"{multinet.MBEDTLS_CONFIG}\\"'
    assert "MICROPY_SSL_MBEDTLS=1" in cmd and "MICROPY_PY_SSL=1" in cmd


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
