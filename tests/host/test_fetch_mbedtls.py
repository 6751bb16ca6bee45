"""The mbedTLS pin (manticore_host.fetch): Debian trixie's source package, its .orig tarball
checked against the sha256 the .dsc lists, the MBEDTLS_DIR override, the cache."""

import pytest

from manticore_host import fetch


def test_pin_is_the_trixie_package():
    pin = fetch.PINNED["mbedtls"]
    assert pin.version == "3.6.6-0.1~deb13u1"
    assert pin.orig == "mbedtls_3.6.6.orig.tar.bz2" and pin.unpacked == "mbedtls-3.6.6"
    assert len(pin.sha256) == 64 and int(pin.sha256, 16) >= 0
    assert pin.env == "MBEDTLS_DIR" and pin.probe == "library/ssl_tls.c"


def test_override_must_be_an_mbedtls_tree(tmp_path, monkeypatch):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "ssl_tls.c").write_text("")
    monkeypatch.setenv("MBEDTLS_DIR", str(tmp_path))
    assert fetch.mbedtls_dir() == tmp_path.resolve()
    monkeypatch.setenv("MBEDTLS_DIR", str(tmp_path / "nope"))
    with pytest.raises(fetch.FetchError, match="MBEDTLS_DIR"):
        fetch.mbedtls_dir()


def test_cached_tree_is_used_and_a_wrong_stamp_is_not(tmp_path, monkeypatch):
    monkeypatch.delenv("MBEDTLS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tree = fetch.tree_path("mbedtls")
    assert tree == tmp_path / "manticore" / "mbedtls-3.6.6"
    tree.mkdir(parents=True)
    (tree / fetch.STAMP).write_text("0" * 64 + "\n")
    assert not fetch.is_fetched("mbedtls"), "a tree from another tarball must be fetched anew"
    (tree / fetch.STAMP).write_text(fetch.PINNED["mbedtls"].sha256 + "\n")
    monkeypatch.setattr(fetch, "_download", lambda *a: pytest.fail("downloaded"))
    assert fetch.mbedtls_dir() == tree
