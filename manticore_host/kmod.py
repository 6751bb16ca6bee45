"""Linux kernel modules on the host: find them in an unpacked kernel package, read their
`.modinfo`, put them in load order and decompress them.

The peer image loads its modules with busybox `insmod`, which knows nothing of
dependencies or compression, so the work depmod and modprobe would do at boot is done
here, once, from the modules themselves: each module's `.modinfo` ELF section holds NUL
separated `key=value` strings, among them `depends=a,b` (what must be loaded first),
`name=` and `vermagic=` (the kernel release it was built for).  Modules built into the
kernel (listed in modules.builtin) need no loading and are left out.
"""

from __future__ import annotations

import io
import lzma
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SUFFIXES = (".ko.xz", ".ko")


class ModuleError(RuntimeError):
    """A module or one of its dependencies is missing or unreadable."""


def module_name(path: str | Path) -> str:
    """The module name for a file name: virtio_net.ko.xz -> virtio_net ('-' reads as '_',
    as the kernel does)."""
    base = Path(path).name
    for suffix in SUFFIXES:
        if base.endswith(suffix):
            base = base[:-len(suffix)]
            break
    return base.replace("-", "_")


def read_module(path: Path) -> bytes:
    """The ELF object of a module file, decompressed if it is .ko.xz."""
    data = Path(path).read_bytes()
    return lzma.decompress(data) if str(path).endswith(".xz") else data


def parse_modinfo(section: bytes) -> dict[str, list[str]]:
    """`.modinfo` contents -> {key: [values]} (alias, parm and others repeat)."""
    info: dict[str, list[str]] = {}
    for entry in section.split(b"\0"):
        if not entry:
            continue
        key, sep, value = entry.decode("utf-8", "replace").partition("=")
        if sep:
            info.setdefault(key, []).append(value)
    return info


def modinfo(elf: bytes) -> dict[str, list[str]]:
    """The parsed `.modinfo` section of a module's ELF bytes."""
    from elftools.elf.elffile import ELFFile
    try:
        section = ELFFile(io.BytesIO(elf)).get_section_by_name(".modinfo")
    except Exception as e:              # elftools raises its own error types
        raise ModuleError(f"not an ELF kernel module: {e}") from e
    if section is None:
        raise ModuleError("no .modinfo section")
    return parse_modinfo(section.data())


def depends(info: dict[str, list[str]]) -> list[str]:
    """The module names in `depends=` (empty when it depends on nothing)."""
    names: list[str] = []
    for value in info.get("depends", []):
        names += [n.strip().replace("-", "_") for n in value.split(",") if n.strip()]
    return names


@dataclass
class ModuleTree:
    """The modules of one kernel release: `usr/lib/modules/<release>/` of an unpacked
    linux-image package."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    builtin: set[str] = field(default_factory=set)

    @classmethod
    def scan(cls, root: Path) -> "ModuleTree":
        root = Path(root)
        tree = cls(root)
        for path in sorted((root / "kernel").rglob("*.ko*")):
            if any(path.name.endswith(s) for s in SUFFIXES):
                tree.files.setdefault(module_name(path), path)
        builtin = root / "modules.builtin"
        if builtin.is_file():
            tree.builtin = {module_name(line.strip())
                            for line in builtin.read_text().splitlines() if line.strip()}
        return tree

    @property
    def release(self) -> str:
        return self.root.name

    def info(self, name: str) -> dict[str, list[str]]:
        path = self.files.get(name)
        if path is None:
            raise ModuleError(f"module {name} not found under {self.root / 'kernel'}")
        try:
            return modinfo(read_module(path))
        except (ModuleError, lzma.LZMAError, OSError) as e:
            raise ModuleError(f"{path}: {e}") from e


def load_order(wanted: list[str], info: Callable[[str], dict[str, list[str]]],
               builtin: set[str] = frozenset()) -> list[str]:
    """The modules to insmod, dependencies first, for the `wanted` names.

    `info(name)` gives a module's parsed .modinfo; built-in modules are skipped (they
    need no loading, nor do their dependencies for them).  A dependency cycle or a
    missing module raises ModuleError naming the chain."""
    order: list[str] = []
    state: dict[str, str] = {}          # name -> "visiting" | "done"

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in builtin or state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ModuleError(f"dependency cycle: {' -> '.join(chain + (name,))}")
        state[name] = "visiting"
        try:
            deps = depends(info(name))
        except ModuleError as e:
            via = f" (needed by {' -> '.join(chain)})" if chain else ""
            raise ModuleError(f"{e}{via}") from e
        for dep in deps:
            visit(dep, chain + (name,))
        state[name] = "done"
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"), ())
    return order


def resolve(tree: ModuleTree, wanted: list[str]) -> list[tuple[str, bytes]]:
    """[(name, decompressed ELF)] to load in this order for `wanted`; each module's
    vermagic is checked against the tree's kernel release."""
    infos: dict[str, dict[str, list[str]]] = {}

    def info(name: str) -> dict[str, list[str]]:
        if name not in infos:
            infos[name] = tree.info(name)
        return infos[name]

    result = []
    for name in load_order(wanted, info, tree.builtin):
        vermagic = (info(name).get("vermagic") or [""])[0]
        if vermagic.split(" ")[0] != tree.release:
            raise ModuleError(f"{name}: vermagic {vermagic!r} is not for kernel "
                              f"{tree.release}")
        result.append((name, read_module(tree.files[name])))
    return result
