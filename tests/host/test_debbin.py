"""Pinned Debian binary packages (manticore_host/debbin.py) without the network: the private
apt configuration, the sha256 check, the fallback when a pin left the suite (and that it is
recorded as unpinned), and that a second fetch asks apt nothing."""

import hashlib
import subprocess

import pytest

from manticore_host import debbin
from manticore_host.fetch import FetchError

pytestmark = pytest.mark.timeout(30)

OLD = b"the pinned kernel package"
NEW = b"the suite's current kernel package"
PIN = debbin.DebPin("linux-image-6.1.0-1-amd64", "6.1.1-1", hashlib.sha256(OLD).hexdigest(),
                    fallback="linux-image-amd64", follows="linux-image-")


class FakeApt:
    """Stands in for debbin._Apt: `available` maps (name, version) -> .deb bytes."""

    available: dict = {}
    instances = 0

    def __init__(self):
        FakeApt.instances += 1
        self.specs = []

    def download(self, spec, dest):
        self.specs.append(spec)
        name, version = spec.split("=", 1)
        data = self.available.get((name, version))
        if data is None:
            return subprocess.CompletedProcess([], 100, f"E: Version '{version}' for "
                                               f"'{name}' was not found")
        (dest / f"{name}_{version.replace(':', '%3a')}_amd64.deb").write_bytes(data)
        return subprocess.CompletedProcess([], 0, "")

    def candidate(self, name):
        if name == "linux-image-amd64":
            return {"Package": name, "Version": "6.1.2-1",
                    "Depends": "linux-image-6.1.0-2-amd64 (= 6.1.2-1)"}
        return {"Package": name, "Version": "6.1.2-1"}


@pytest.fixture
def fake_apt(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(debbin, "_Apt", FakeApt)
    FakeApt.instances = 0
    FakeApt.available = {}
    return FakeApt


def test_private_sources_are_binary_amd64_trixie():
    text = debbin.private_sources(["http://mirror.example/debian"])
    assert "Types: deb\n" in text and "Architectures: amd64\n" in text
    assert "Suites: trixie\n" in text and "Components: main\n" in text
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in text


def test_apt_options_ignore_the_hosts_state(tmp_path):
    opts = " ".join(debbin.apt_options(tmp_path))
    assert "Dir::State::status=/dev/null" in opts
    assert f"Dir::Etc::SourceParts={tmp_path}/sources.list.d" in opts
    assert f"Dir::Etc::PreferencesParts={tmp_path}/preferences.d" in opts


def test_parse_control_and_depends():
    fields = debbin.parse_control("Package: linux-image-amd64\nVersion: 6.12.117-1\n"
                                  "Depends: linux-image-6.12.117+deb13-amd64 (= 6.12.117-1)\n"
                                  "Description: Linux\n more text\n\nPackage: other\n")
    assert fields["Version"] == "6.12.117-1"
    assert fields["Description"] == "Linux\nmore text"
    assert debbin.depends_on(fields, "linux-image-") == "linux-image-6.12.117+deb13-amd64"
    with pytest.raises(FetchError):
        debbin.depends_on({"Depends": "libc6"}, "linux-image-")


def test_pinned_download_then_cached(fake_apt):
    fake_apt.available = {(PIN.name, PIN.version): OLD}
    prov = debbin.fetch_deb(PIN)
    assert (prov.name, prov.version, prov.pinned) == (PIN.name, PIN.version, True)
    assert prov.sha256 == PIN.sha256 and (debbin.deb_dir() / prov.deb).read_bytes() == OLD
    assert fake_apt.instances == 1
    again = debbin.fetch_deb(PIN)
    assert again == prov and fake_apt.instances == 1, "a cached pin must not run apt"


def test_wrong_sha256_is_refused(fake_apt):
    fake_apt.available = {(PIN.name, PIN.version): b"something else"}
    with pytest.raises(FetchError, match="sha256"):
        debbin.fetch_deb(PIN)
    assert not list(debbin.deb_dir().glob("*.deb"))


def test_pin_gone_falls_back_to_the_metapackages_dependency(fake_apt):
    fake_apt.available = {("linux-image-6.1.0-2-amd64", "6.1.2-1"): NEW}
    warnings = []
    prov = debbin.fetch_deb(PIN, key="kernel", warn=warnings.append)
    assert (prov.name, prov.version, prov.pinned) == ("linux-image-6.1.0-2-amd64", "6.1.2-1",
                                                      False)
    assert prov.sha256 == hashlib.sha256(NEW).hexdigest()
    assert len(warnings) == 1 and "NOT the pin" in warnings[0] and PIN.version in warnings[0]
    # the fallback is cached too, and the warning repeated
    again = debbin.fetch_deb(PIN, key="kernel", warn=warnings.append)
    assert again == prov and fake_apt.instances == 1 and len(warnings) == 2


def test_pin_gone_without_metapackage_takes_the_candidate(fake_apt):
    pin = debbin.DebPin("busybox-static", "1:1.0-1", hashlib.sha256(b"x").hexdigest())
    fake_apt.available = {("busybox-static", "6.1.2-1"): b"newer busybox"}
    prov = debbin.fetch_deb(pin, warn=lambda m: None)
    assert (prov.name, prov.version, prov.pinned) == ("busybox-static", "6.1.2-1", False)


def test_nothing_downloadable_is_an_error(fake_apt):
    with pytest.raises(FetchError, match="failed"):
        debbin.fetch_deb(PIN, warn=lambda m: None)


def test_a_new_pin_is_tried_again_after_a_fallback(fake_apt):
    fake_apt.available = {("linux-image-6.1.0-2-amd64", "6.1.2-1"): NEW}
    debbin.fetch_deb(PIN, key="kernel", warn=lambda m: None)
    newer = debbin.DebPin("linux-image-6.1.0-2-amd64", "6.1.2-1", hashlib.sha256(NEW).hexdigest(),
                          fallback="linux-image-amd64", follows="linux-image-")
    prov = debbin.fetch_deb(newer, key="kernel")
    assert prov.pinned and prov.version == "6.1.2-1" and fake_apt.instances == 2
