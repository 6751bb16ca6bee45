"""Fetch pinned upstream sources from Debian source packages.

One mechanism for every third-party tree the build needs: a private apt
configuration whose deb-src entry reuses the URIs of this machine's own Debian
sources (suite ``trixie``), ``apt-get source --download-only``, a sha256 check
of the upstream ("orig") tarball, and an unpack into the user cache:

    $XDG_CACHE_HOME/manticore/<package>-<upstream version>/  (or ~/.cache)

Nothing in /etc/apt is touched.  ``MICROPY_DIR`` / ``LWIP_DIR`` point at an
existing tree instead (for machines without apt), and ``MBEDTLS_DIR``.

A change to an upstream tree is a patch file in ports/manticore/patches/
(``NNNN-what.patch``, applied in name order, ``patch -p1`` from the tree's
root).  The cached tree is never modified: ``patched_dir`` copies it to a
sibling directory named after a hash of the series
(``<package>-<version>-p<hash>/``), applies every patch there with no fuzz,
refuses one that does not apply cleanly, and records what was applied in
``.manticore-patches`` inside that tree.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUITE = "trixie"
COMPONENT = "main"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True)
class Pin:
    """One pinned Debian source package."""

    version: str      # Debian version, for `apt-get source NAME=VERSION`
    orig: str         # upstream tarball file name
    sha256: str       # of the upstream tarball
    unpacked: str     # directory name under the cache
    env: str          # environment variable that overrides the fetch
    probe: str        # a file that every good tree has (relative path)


PINNED = {
    "micropython": Pin(
        version="1.25.0+ds-1",
        orig="micropython_1.25.0+ds.orig.tar.xz",
        sha256="7b25be99a502f070b2de81dafc08da7051d992325d6e67daa9045a918fffdbea",
        unpacked="micropython-1.25.0+ds",
        env="MICROPY_DIR",
        probe="py/mkenv.mk",
    ),
    "lwip": Pin(
        version="2.2.1+dfsg1-1+deb13u1",
        orig="lwip_2.2.1+dfsg1.orig.tar.xz",
        sha256="83729c274c499d3348e9fbbe043a3113f3fa8953e7efddc7c21c7fcbb1f2b7b1",
        unpacked="lwip-2.2.1+dfsg1",
        env="LWIP_DIR",
        probe="src/core/tcp.c",
    ),
}

# mbedTLS for the ssl, hashlib (sha1, md5) and cryptolib modules (issue 13). Its
# `.orig` tarball's sha256 is the one the package's .dsc lists (Checksums-Sha256).
PINNED["mbedtls"] = Pin(
    version="3.6.6-0.1~deb13u1",
    orig="mbedtls_3.6.6.orig.tar.bz2",
    sha256="8fb65fae8dcae5840f793c0a334860a411f884cc537ea290ce1c52bb64ca007a",
    unpacked="mbedtls-3.6.6",
    env="MBEDTLS_DIR",
    probe="library/ssl_tls.c",
)

STAMP = ".manticore-source"
PATCH_STAMP = ".manticore-patches"
# The patch series of each package: every *.patch in the directory, in name order.
PATCH_DIRS = {
    "micropython": Path(__file__).resolve().parent.parent / "ports" / "manticore" / "patches",
}


class FetchError(RuntimeError):
    """A source tree could not be had; the message says what to do."""


# -- locations --------------------------------------------------------------

def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "manticore"


def tree_path(name: str) -> Path:
    """Where the unpacked tree of package `name` lives (fetched or not)."""
    return cache_root() / PINNED[name].unpacked


# -- the machine's Debian sources --------------------------------------------

def os_codename(os_release: str | None = None) -> str | None:
    """VERSION_CODENAME from /etc/os-release (or the given text)."""
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text()
        except OSError:
            return None
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME":
            return value.strip().strip('"') or None
    return None


def parse_deb822(text: str) -> list[dict[str, str]]:
    """Stanzas of a deb822 file (.sources) as dicts; comments dropped,
    continuation lines joined with a newline."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if raw[0] in " \t" and key is not None:
            current[key] += "\n" + raw.strip()
            continue
        key, _, value = raw.partition(":")
        key = key.strip()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_one_line_sources(text: str) -> list[dict[str, str]]:
    """sources.list one-line entries, in the deb822 shape."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)   # drop [option=value ...]
        words = line.split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        entries.append({"Types": words[0], "URIs": words[1],
                        "Suites": words[2], "Components": " ".join(words[3:])})
    return entries


def debian_uris(entries: list[dict[str, str]], release: str) -> list[str]:
    """URIs of the entries whose Suites include `release` itself (not
    `release`-security or -updates), in order, without duplicates."""
    uris: list[str] = []
    for entry in entries:
        if entry.get("Enabled", "yes").lower() == "no":
            continue
        if release not in entry.get("Suites", "").split():
            continue
        for uri in entry.get("URIs", "").split():
            if uri not in uris:
                uris.append(uri)
    return uris


def system_debian_uris(etc_apt: Path = Path("/etc/apt")) -> list[str]:
    """The archive URIs this machine's own apt configuration uses."""
    release = os_codename()
    if release is None:
        raise FetchError("cannot tell the Debian release: /etc/os-release "
                         "has no VERSION_CODENAME")
    entries: list[dict[str, str]] = []
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        entries += parse_deb822(path.read_text())
    for path in [etc_apt / "sources.list",
                 *sorted((etc_apt / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            entries += parse_one_line_sources(path.read_text())
    uris = debian_uris(entries, release)
    if not uris:
        raise FetchError(
            f"no apt source for Debian release {release!r} found in "
            f"{etc_apt}/sources.list or {etc_apt}/sources.list.d/*.sources")
    return uris


def private_sources(uris: list[str]) -> str:
    """The deb822 text of the private deb-src entry."""
    return (f"Types: deb-src\nURIs: {' '.join(uris)}\nSuites: {SUITE}\n"
            f"Components: {COMPONENT}\nSigned-By: {KEYRING}\n")


# -- fetching -----------------------------------------------------------------

def _apt_options(apt_dir: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={apt_dir / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={apt_dir / 'sources.list.d'}",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "APT::Sandbox::User=root",
        "-q",
    ]


def prepare_apt_state(apt_dir: Path, sources_name: str, sources_text: str,
                      index_glob: str) -> Path:
    """A private apt state directory holding one deb822 source, `sources_name`, and empty
    host-independent sources.list and preferences.  When the source text changed, the
    downloaded indexes matching `index_glob` are dropped so that apt fetches them anew."""
    for sub in ("sources.list.d", "preferences.d", "lists/partial",
                "cache/archives/partial"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text("")
    (apt_dir / "preferences").write_text("")
    sources = apt_dir / "sources.list.d" / sources_name
    if not sources.is_file() or sources.read_text() != sources_text:
        sources.write_text(sources_text)
        for old in (apt_dir / "lists").glob(index_glob):
            old.unlink()
    return apt_dir


def _prepare_apt_dir() -> Path:
    return prepare_apt_state(cache_root() / "apt", "manticore.sources",
                             private_sources(system_debian_uris()), "*_Sources*")


def _run_apt(args: list[str],
             cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str, pin: Pin, workdir: Path) -> Path:
    """apt-get source --download-only into workdir; the orig tarball."""
    if shutil.which("apt-get") is None:
        raise FetchError(
            f"apt-get not found, so the Debian source package {name} "
            f"{pin.version} cannot be fetched; unpack upstream "
            f"{pin.unpacked} somewhere and set {pin.env}=/path/to/it")
    if not KEYRING.is_file():
        raise FetchError(f"{KEYRING} is missing: apt-get install "
                         "debian-archive-keyring")
    apt_dir = _prepare_apt_dir()
    opts = _apt_options(apt_dir)
    source = ["apt-get", *opts, "source", "--download-only",
              f"{name}={pin.version}"]
    have_lists = any((apt_dir / "lists").glob(f"*{SUITE}*Sources*"))
    result = _run_apt(source, cwd=workdir) if have_lists else None
    if result is None or result.returncode != 0:
        update = _run_apt(["apt-get", *opts, "update"])
        if update.returncode != 0:
            raise FetchError(
                f"apt-get update (private configuration in {apt_dir}) "
                f"failed:\n{update.stdout.strip()}\n"
                "Check network access to the Debian archive, or set "
                f"{pin.env} to an unpacked {pin.unpacked} tree.")
        result = _run_apt(source, cwd=workdir)
    if result.returncode != 0:
        raise FetchError(
            f"apt-get source {name}={pin.version} failed (suite {SUITE}):\n"
            f"{result.stdout.strip()}\n"
            f"Set {pin.env} to an unpacked {pin.unpacked} tree instead.")
    orig = workdir / pin.orig
    if not orig.is_file():
        raise FetchError(f"apt-get source {name}={pin.version} did not "
                         f"produce {pin.orig}")
    return orig


def _unpack(tarball: Path, dest: Path) -> None:
    """Unpack a tarball with one top-level directory so that `dest` is that
    directory; atomic (rename) so a half-unpacked tree is never seen."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
    try:
        with tarfile.open(tarball) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, filter="data")
            else:                                   # Python < 3.11.4
                tar.extractall(staging)
        tops = list(staging.iterdir())
        root = tops[0] if len(tops) == 1 and tops[0].is_dir() else staging
        (root / STAMP).write_text(sha256_of(tarball) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        root.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def is_fetched(name: str) -> bool:
    """True if `name` is there without fetching (override or cache)."""
    pin = PINNED[name]
    if os.environ.get(pin.env):
        return True
    stamp = tree_path(name) / STAMP
    return stamp.is_file() and stamp.read_text().strip() == pin.sha256


def fetch(name: str, quiet: bool = False) -> Path:
    """The unpacked tree of pinned package `name`, fetching it if needed.
    Honours the package's environment override (MICROPY_DIR, LWIP_DIR)."""
    pin = PINNED[name]
    override = os.environ.get(pin.env)
    if override:
        tree = Path(override).expanduser().resolve()
        if not (tree / pin.probe).is_file():
            raise FetchError(f"{pin.env}={override} is not a {name} tree "
                             f"({pin.probe} missing)")
        return tree
    dest = tree_path(name)
    if is_fetched(name):
        return dest
    if not quiet:
        print(f"fetch: Debian source package {name} {pin.version} "
              f"-> {dest}", file=sys.stderr)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-",
                                     dir=dest.parent) as tmp:
        orig = _download(name, pin, Path(tmp))
        digest = sha256_of(orig)
        if digest != pin.sha256:
            raise FetchError(f"{pin.orig}: sha256 {digest}, expected "
                             f"{pin.sha256}; refusing to unpack")
        _unpack(orig, dest)
    return dest


def micropython_dir(quiet: bool = False) -> Path:
    """The MicroPython 1.25.0 tree (MICROPY_DIR, or fetched into the cache)."""
    return fetch("micropython", quiet=quiet)


def lwip_dir(quiet: bool = False) -> Path:
    """The lwIP 2.2.1 tree (LWIP_DIR, or fetched into the cache)."""
    return fetch("lwip", quiet=quiet)


# -- patches -----------------------------------------------------------------

def patch_series(name: str, patch_dir: Path | None = None) -> list[Path]:
    """The patches for package `name`, in the order they apply."""
    directory = patch_dir if patch_dir is not None else PATCH_DIRS.get(name)
    if directory is None or not directory.is_dir():
        return []
    return sorted(directory.glob("*.patch"))


def series_record(patches: list[Path]) -> str:
    """What `.manticore-patches` holds: one `sha256  name` line per patch."""
    return "".join(f"{sha256_of(p)}  {p.name}\n" for p in patches)


def series_digest(source: Path, patches: list[Path]) -> str:
    """A short hash naming the patched tree: the source tree and the series."""
    digest = hashlib.sha256(str(source).encode() + b"\0")
    digest.update(series_record(patches).encode())
    return digest.hexdigest()[:12]


def _patch(tree: Path, patch: Path, dry_run: bool) -> subprocess.CompletedProcess:
    # --fuzz=0: a hunk applies exactly where its context says or not at all.
    args = ["patch", "-p1", "--batch", "--forward", "--fuzz=0",
            "--no-backup-if-mismatch", "--reject-file=-", "-d", str(tree),
            "-i", str(patch)]
    if dry_run:
        args.append("--dry-run")
    return subprocess.run(args, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)


def apply_patches(tree: Path, patches: list[Path]) -> None:
    """Apply `patches` in order to `tree` (in place: give it a copy).  Each one
    is first tried with --dry-run, so a patch that does not apply cleanly
    changes nothing and raises FetchError naming it."""
    if patches and shutil.which("patch") is None:
        raise FetchError("the `patch` program is missing: apt-get install patch")
    for patch in patches:
        trial = _patch(tree, patch, dry_run=True)
        if trial.returncode != 0:
            raise FetchError(
                f"patch {patch.name} does not apply cleanly to {tree.name}:\n"
                f"{trial.stdout.strip()}\n"
                f"Fix or regenerate {patch} against the pinned tree.")
        done = _patch(tree, patch, dry_run=False)
        if done.returncode != 0:
            raise FetchError(f"patch {patch.name} failed on {tree.name}:\n"
                             f"{done.stdout.strip()}")


def patched_tree(source: Path, patches: list[Path], dest_root: Path | None = None,
                 quiet: bool = False) -> Path:
    """`source` with `patches` applied, in a separate directory beside the
    cache (never `source` itself); made once per series, atomically."""
    if not patches:
        return source
    root = dest_root if dest_root is not None else cache_root()
    dest = root / f"{source.name}-p{series_digest(source, patches)}"
    record = series_record(patches)
    stamp = dest / PATCH_STAMP
    if stamp.is_file() and stamp.read_text() == record:
        return dest
    if not quiet:
        print(f"fetch: applying {len(patches)} patch(es) to a copy of "
              f"{source.name} -> {dest}", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".patch-", dir=root))
    try:
        work = staging / dest.name
        shutil.copytree(source, work, symlinks=True)
        apply_patches(work, patches)
        (work / PATCH_STAMP).write_text(record)
        if dest.exists():
            shutil.rmtree(dest)
        try:
            work.rename(dest)
        except OSError:
            # Another build made the same tree meanwhile: same series, same result.
            if not (stamp.is_file() and stamp.read_text() == record):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def patched_dir(name: str, quiet: bool = False) -> Path:
    """The tree of package `name` (fetched or from its override) with its patch
    series from ports/manticore/patches/ applied; what the build uses."""
    return patched_tree(fetch(name, quiet=quiet), patch_series(name), quiet=quiet)


def micropython_build_dir(quiet: bool = False) -> Path:
    """The patched MicroPython tree that `invoke build` compiles."""
    return patched_dir("micropython", quiet=quiet)
def mbedtls_dir(quiet: bool = False) -> Path:
    """The mbedTLS 3.6.6 tree (MBEDTLS_DIR, or fetched into the cache)."""
    return fetch("mbedtls", quiet=quiet)


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or ["micropython"]
    try:
        for name in names:
            if name not in PINNED:
                print(f"unknown package {name!r}; pinned: "
                      f"{', '.join(PINNED)}", file=sys.stderr)
                return 2
            print(patched_dir(name))
    except FetchError as e:
        print(f"fetch: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
