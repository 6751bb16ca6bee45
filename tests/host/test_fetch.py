"""The Debian source fetcher's parsing of apt sources (no network)."""

import pytest

from manticore_host import fetch

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no
"""

ONE_LINE = """\
# comment
deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main contrib
deb http://one.example/debian-security bookworm-security main
deb-src http://src.example/debian bookworm main
"""


def test_parse_deb822():
    stanzas = fetch.parse_deb822(DEB822)
    assert len(stanzas) == 3
    assert stanzas[0]["URIs"] == "http://mirror.example/debian"
    assert stanzas[0]["Suites"] == "bookworm bookworm-updates"
    assert stanzas[2]["Enabled"] == "no"


def test_uris_for_release_skip_security_and_disabled():
    uris = fetch.debian_uris(fetch.parse_deb822(DEB822), "bookworm")
    assert uris == ["http://mirror.example/debian"]


def test_one_line_sources():
    entries = fetch.parse_one_line_sources(ONE_LINE)
    assert [e["URIs"] for e in entries] == [
        "http://one.example/debian", "http://one.example/debian-security",
        "http://src.example/debian"]
    assert fetch.debian_uris(entries, "bookworm") == [
        "http://one.example/debian", "http://src.example/debian"]


def test_no_match():
    assert fetch.debian_uris(fetch.parse_deb822(DEB822), "trixie") == []


def test_os_codename():
    assert fetch.os_codename('NAME="Debian"\nVERSION_CODENAME=bookworm\n') == "bookworm"
    assert fetch.os_codename('NAME="x"\n') is None


def test_private_sources_text():
    text = fetch.private_sources(["http://mirror.example/debian"])
    stanza = fetch.parse_deb822(text)[0]
    assert stanza == {"Types": "deb-src", "URIs": "http://mirror.example/debian",
                      "Suites": "trixie", "Components": "main",
                      "Signed-By": "/usr/share/keyrings/debian-archive-keyring.gpg"}


def test_system_sources(tmp_path, monkeypatch):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list").write_text(ONE_LINE)
    monkeypatch.setattr(fetch, "os_codename", lambda: "bookworm")
    assert fetch.system_debian_uris(tmp_path) == [
        "http://mirror.example/debian", "http://one.example/debian",
        "http://src.example/debian"]
    monkeypatch.setattr(fetch, "os_codename", lambda: "sid")
    with pytest.raises(fetch.FetchError, match="no apt source for Debian release 'sid'"):
        fetch.system_debian_uris(tmp_path)


def test_pins_are_complete():
    for name, pin in fetch.PINNED.items():
        assert len(pin.sha256) == 64 and pin.orig.startswith(name + "_")
        assert pin.version.startswith(pin.orig.split("_")[1].split(".orig")[0])


def test_env_override(tmp_path, monkeypatch):
    (tmp_path / "py").mkdir()
    (tmp_path / "py" / "mkenv.mk").write_text("")
    monkeypatch.setenv("MICROPY_DIR", str(tmp_path))
    assert fetch.micropython_dir() == tmp_path.resolve()
    monkeypatch.setenv("MICROPY_DIR", str(tmp_path / "nope"))
    with pytest.raises(fetch.FetchError, match="MICROPY_DIR"):
        fetch.micropython_dir()


def test_cached_tree_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("LWIP_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tree = fetch.tree_path("lwip")
    assert tree == tmp_path / "manticore" / "lwip-2.2.1+dfsg1"
    tree.mkdir(parents=True)
    (tree / fetch.STAMP).write_text(fetch.PINNED["lwip"].sha256 + "\n")
    monkeypatch.setattr(fetch, "_download", lambda *a: pytest.fail("downloaded"))
    assert fetch.lwip_dir() == tree


def test_unpack_is_atomic_and_flattens(tmp_path):
    import tarfile
    src = tmp_path / "src" / "pkg-1.0"
    src.mkdir(parents=True)
    (src / "file.txt").write_text("hi")
    tarball = tmp_path / "pkg.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        tar.add(src, arcname="pkg-1.0")
    dest = tmp_path / "cache" / "pkg-1.0+ds"
    dest.parent.mkdir()
    fetch._unpack(tarball, dest)
    assert (dest / "file.txt").read_text() == "hi"
    assert (dest / fetch.STAMP).read_text().strip() == fetch.sha256_of(tarball)
    assert [p.name for p in dest.parent.iterdir()] == ["pkg-1.0+ds"]
