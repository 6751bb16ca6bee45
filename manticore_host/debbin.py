"""Fetch pinned Debian *binary* packages (.deb) and unpack them into the cache.

The Linux peer image (linuxpeer.py) is built from Debian's own kernel and busybox, so
that what it runs is what a user would install, not something rebuilt here.  Like
fetch.py (source packages) it uses a private apt configuration, never /etc/apt:

    <cache_root>/apt-bin/   sources (Types: deb, amd64, suite trixie, main, the URIs of
                            this machine's own Debian sources), lists, apt's cache
    <cache_root>/debs/      the downloaded .debs and one JSON record per package
    <cache_root>/debroot/   each .deb unpacked with `dpkg-deb -x`

with `Dir::State::status=/dev/null`, so that what the host has installed does not change
what apt picks.  Every package is pinned by name, version and the .deb's sha256.  Debian
drops old kernel ABIs from the suite at point releases, so when the pinned version cannot
be downloaded any more, `fetch_deb` falls back to the suite's current candidate (apt
itself checks it against the signed index), says so loudly, and records `pinned: False`
in the provenance it returns.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from manticore_host.fetch import (COMPONENT, KEYRING, SUITE, FetchError, cache_root,
                                  prepare_apt_state, sha256_of, system_debian_uris)

ARCH = "amd64"


@dataclass(frozen=True)
class DebPin:
    """One pinned binary package.  `fallback` names the package whose current candidate
    replaces this one when the pin is gone from the suite: the package itself (busybox),
    or a metapackage whose dependency it is (linux-image-amd64 -> linux-image-<abi>)."""

    name: str
    version: str
    sha256: str
    fallback: str | None = None     # metapackage to follow; None: the package itself
    follows: str = ""               # the prefix of its dependency to take ("linux-image-")


@dataclass
class Provenance:
    """What was actually used: the pin, or the suite's candidate when the pin was gone."""

    name: str
    version: str
    sha256: str
    pinned: bool
    deb: str = ""                   # the file name apt gave the .deb
    pin: str = ""                   # what was asked for: NAME=VERSION of the pin

    def to_json(self) -> dict:
        return asdict(self)


# -- the private apt configuration --------------------------------------------------------

def apt_dir() -> Path:
    return cache_root() / "apt-bin"


def deb_dir() -> Path:
    return cache_root() / "debs"


def root_dir() -> Path:
    return cache_root() / "debroot"


def private_sources(uris: list[str]) -> str:
    """The deb822 text of the private binary entry."""
    return (f"Types: deb\nURIs: {' '.join(uris)}\nSuites: {SUITE}\n"
            f"Components: {COMPONENT}\nArchitectures: {ARCH}\nSigned-By: {KEYRING}\n")


def apt_options(state: Path) -> list[str]:
    """apt-get/apt-cache options that make the configuration under `state` the only one:
    no host sources, preferences or dpkg status."""
    return [
        "-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={state / 'sources.list.d'}",
        "-o", f"Dir::Etc::Preferences={state / 'preferences'}",
        "-o", f"Dir::Etc::PreferencesParts={state / 'preferences.d'}",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", "Dir::State::status=/dev/null",
        "-o", f"Dir::Cache={state / 'cache'}",
        "-o", f"APT::Architecture={ARCH}",
        "-o", f"APT::Architectures={ARCH}",
        "-o", "APT::Sandbox::User=root",
        "-q",
    ]


def _prepare() -> Path:
    return prepare_apt_state(apt_dir(), "manticore-bin.sources",
                             private_sources(system_debian_uris()), "*_Packages*")


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)


class _Apt:
    """apt-get/apt-cache on the private configuration; `update` runs at most once, and
    only when the lists are missing or a lookup failed (so a cached build never does)."""

    def __init__(self):
        if shutil.which("apt-get") is None:
            raise FetchError("apt-get not found: the Linux peer image is built from Debian "
                             "binary packages and needs apt")
        if not KEYRING.is_file():
            raise FetchError(f"{KEYRING} is missing: apt-get install debian-archive-keyring")
        self.state = _prepare()
        self.opts = apt_options(self.state)
        self.updated = False

    def have_lists(self) -> bool:
        return any((self.state / "lists").glob(f"*{SUITE}*Packages*"))

    def update(self) -> None:
        if self.updated:
            return
        result = _run(["apt-get", *self.opts, "update"])
        if result.returncode != 0:
            raise FetchError(f"apt-get update (private configuration in {self.state}) "
                             f"failed:\n{result.stdout.strip()}\n"
                             "Check network access to the Debian archive.")
        self.updated = True

    def _retrying(self, args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        result = _run(args, cwd) if self.have_lists() else None
        if (result is None or result.returncode != 0) and not self.updated:
            self.update()
            result = _run(args, cwd)
        return result

    def download(self, spec: str, dest: Path) -> subprocess.CompletedProcess:
        return self._retrying(["apt-get", *self.opts, "download", spec], cwd=dest)

    def candidate(self, name: str) -> dict[str, str]:
        """The candidate's control fields (Version, Depends, ...)."""
        result = self._retrying(["apt-cache", *self.opts, "show", "--no-all-versions",
                                 name])
        if result.returncode != 0 or not result.stdout.strip():
            raise FetchError(f"apt-cache show {name} (suite {SUITE}) failed:\n"
                             f"{result.stdout.strip()}")
        return parse_control(result.stdout)


def parse_control(text: str) -> dict[str, str]:
    """The first stanza of Debian control text as a dict (continuations joined)."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def depends_on(fields: dict[str, str], prefix: str) -> str:
    """The first package in Depends whose name starts with `prefix` (the kernel image a
    linux-image-amd64 metapackage points at)."""
    for alternative in fields.get("Depends", "").split(","):
        name = alternative.split("|")[0].split("(")[0].strip()
        if name.startswith(prefix):
            return name
    raise FetchError(f"{fields.get('Package', '?')} {fields.get('Version', '?')} does not "
                     f"depend on a {prefix}* package (Depends: {fields.get('Depends')})")


# -- fetching --------------------------------------------------------------------------------

def _record_path(name: str) -> Path:
    return deb_dir() / f"{name}.json"


def _load_record(name: str) -> Provenance | None:
    try:
        data = json.loads(_record_path(name).read_text())
        prov = Provenance(**data)
    except (OSError, ValueError, TypeError):
        return None
    return prov if (deb_dir() / prov.deb).is_file() else None


def _download_one(apt: _Apt, spec: str):
    """`apt-get download spec` into a fresh directory under debs/: (the .deb or None,
    apt's result, the directory)."""
    deb_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=deb_dir()))
    result = apt.download(spec, tmp)
    debs = sorted(tmp.glob("*.deb"))
    return (debs[0] if result.returncode == 0 and len(debs) == 1 else None), result, tmp


def _keep(deb: Path, tmp: Path, prov: Provenance, key: str, pin: DebPin) -> Provenance:
    final = deb_dir() / deb.name
    deb.replace(final)
    shutil.rmtree(tmp, ignore_errors=True)
    prov.deb = final.name
    prov.pin = f"{pin.name}={pin.version}"
    _record_path(key).write_text(json.dumps(prov.to_json(), indent=1) + "\n")
    return prov


def fetch_deb(pin: DebPin, key: str | None = None,
              warn: Callable[[str], None] | None = None) -> Provenance:
    """The .deb for `pin` in debs/ (downloaded unless already there) and its provenance.

    `key` names the record (default: the pin's name); a record from an earlier fallback
    is reused, with the warning repeated, so a second build downloads nothing."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    key = key or pin.name
    have = _load_record(key)
    if have is not None and have.pinned and (have.name, have.version, have.sha256) == \
            (pin.name, pin.version, pin.sha256):
        return have
    if have is not None and not have.pinned and have.pin == f"{pin.name}={pin.version}":
        warn(f"warning: {pin.name} {pin.version} is not in Debian {SUITE} any more; using "
             f"the cached fallback {have.name} {have.version} (sha256 {have.sha256})")
        return have

    apt = _Apt()
    deb, result, tmp = _download_one(apt, f"{pin.name}={pin.version}")
    if deb is not None:
        digest = sha256_of(deb)
        if digest != pin.sha256:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FetchError(f"{deb.name}: sha256 {digest}, expected {pin.sha256}; the "
                             f"archive's {pin.name} {pin.version} is not the pinned one; "
                             "refusing to use it")
        return _keep(deb, tmp, Provenance(pin.name, pin.version, digest, True), key, pin)
    shutil.rmtree(tmp, ignore_errors=True)
    first_error = result.stdout.strip()

    # The pin is gone: the suite's current candidate, verified by apt against the index.
    if pin.fallback:
        name = depends_on(apt.candidate(pin.fallback), pin.follows)
    else:
        name = pin.name
    version = apt.candidate(name).get("Version", "")
    deb, result, tmp = _download_one(apt, f"{name}={version}")
    if deb is None:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(f"apt-get download {pin.name}={pin.version} failed:\n{first_error}\n"
                         f"and the fallback {name}={version} too:\n{result.stdout.strip()}")
    digest = sha256_of(deb)
    warn(f"warning: {pin.name} {pin.version} could not be downloaded from Debian {SUITE} "
         f"({(first_error.splitlines() or ['?'])[-1]}); using the suite's current {name} "
         f"{version} instead (sha256 {digest}, verified by apt against the signed index, "
         "NOT the pin)")
    return _keep(deb, tmp, Provenance(name, version, digest, False), key, pin)


def unpack(prov: Provenance) -> Path:
    """The .deb unpacked with `dpkg-deb -x` under debroot/ (once; atomic rename)."""
    safe = re.sub(r"[^A-Za-z0-9.+_-]", "_", f"{prov.name}_{prov.version}")
    dest = root_dir() / safe
    stamp = dest / ".manticore-deb"
    if stamp.is_file() and stamp.read_text().strip() == prov.sha256:
        return dest
    root_dir().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root_dir()))
    try:
        result = _run(["dpkg-deb", "-x", str(deb_dir() / prov.deb), str(staging)])
        if result.returncode != 0:
            raise FetchError(f"dpkg-deb -x {prov.deb} failed:\n{result.stdout.strip()}")
        (staging / ".manticore-deb").write_text(prov.sha256 + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
