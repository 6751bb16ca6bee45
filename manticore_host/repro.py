"""Reproducible images: the same commit built in two clones at different
paths gives byte-identical build/kernel.elf (debug info included) and
build/kernel.iso.

`check_full` is the whole claim (two clones, two full builds, ~2x a build;
`invoke repro`).  `check_objects` and `check_iso` are the bounded forms the
test suite runs: a few objects from each source tree compiled with the
Makefile's own flags in both clones, and one ELF put into two ISOs at
different times from different staging paths."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from manticore_host import image
from manticore_host.fetch import lwip_dir, mbedtls_dir, micropython_build_dir

ROOT = image.ROOT

# One object from each tree whose path the Makefile maps (-ffile-prefix-map):
# the repository (relative to ports/manticore), lwIP and MicroPython.
PROBE_SOURCES = ("../../arch/x86_64/boot_info.c", "{lwip}/src/core/udp.c",
                 "{top}/lib/libm_dbl/sqrt.c")


class ReproError(RuntimeError):
    pass


def clone(dest: Path, rev: str = "HEAD") -> Path:
    """A clone of this repository's `rev` at dest (shares its objects)."""
    run(["git", "clone", "-q", "--shared", "--no-checkout", str(ROOT),
         str(dest)])
    run(["git", "-C", str(dest), "checkout", "-q", "--detach",
         _rev_parse(rev)])
    return dest


def _rev_parse(rev: str) -> str:
    return run(["git", "-C", str(ROOT), "rev-parse", rev]).strip()


def run(cmd: list[str], cwd: Path | None = None, env=None,
        timeout: float = 1800) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise ReproError(f"{shlex.join(cmd)} failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


def _make_vars() -> list[str]:
    # The trees `invoke build` compiles: MicroPython with ports/manticore/patches applied.
    return [f"MICROPY_TOP={micropython_build_dir(quiet=True)}", f"LWIP_DIR={lwip_dir()}",
            f"MBEDTLS_DIR={mbedtls_dir()}"]


def compile_probes(repo: Path, out: Path) -> dict[str, bytes]:
    """PROBE_SOURCES compiled with the Makefile's CFLAGS in `repo`'s
    ports/manticore (as make does); object name -> bytes."""
    port = repo / "ports" / "manticore"
    out_text = run(["make", "-s", "--no-print-directory", "-C", str(port),
                    *_make_vars(), "print-cflags"])
    line = [x for x in out_text.splitlines() if x.startswith("CFLAGS: ")]
    if not line:
        raise ReproError(f"make print-cflags printed no CFLAGS:\n{out_text}")
    cflags = shlex.split(line[-1][len("CFLAGS: "):])
    out.mkdir(parents=True, exist_ok=True)
    objects = {}
    for src in PROBE_SOURCES:
        src = src.format(lwip=lwip_dir(), top=micropython_build_dir(quiet=True))
        obj = out / (Path(src).stem + ".o")
        run(["gcc", *cflags, "-c", "-o", str(obj), src], cwd=port)
        objects[obj.name] = obj.read_bytes()
    return objects


def check_objects(workdir: Path) -> list[str]:
    """Differences between the probe objects of two clones at different
    paths (empty when reproducible)."""
    a = clone(workdir / "a")
    b = clone(workdir / "clone-b-longer-path")
    objs_a = compile_probes(a, workdir / "obj-a")
    objs_b = compile_probes(b, workdir / "obj-b")
    return [f"{name} differs" for name in objs_a
            if objs_a[name] != objs_b.get(name)]


def check_iso(elf: Path, workdir: Path) -> tuple[str, str]:
    """sha256 of two ISOs of `elf` staged at different paths, a clock second
    or more apart."""
    first = workdir / "a.iso"
    second = workdir / "b.iso"
    image.make_iso(elf, first, staging=workdir / "stage-a", quiet=True)
    time.sleep(1.1)
    image.make_iso(elf, second, staging=workdir / "stage-bb", quiet=True)
    return image.sha256(first), image.sha256(second)


def check_full(workdir: Path) -> dict[str, tuple[str, str]]:
    """Two clones, two full `invoke build iso`; artefact -> (sha a, sha b)."""
    results = {}
    clones = [clone(workdir / "a"), clone(workdir / "clone-b-longer-path")]
    for repo in clones:
        run([sys.executable, "-m", "invoke", "build", "iso"], cwd=repo)
    for name in ("kernel.elf", "kernel.iso"):
        results[name] = tuple(image.sha256(repo / "build" / name)
                              for repo in clones)
    return results
