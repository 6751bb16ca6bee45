"""Kernel module load order from .modinfo (manticore_host/kmod.py), on small ELF objects
made here: the same section layout the kernel's modules have, without a kernel package."""

import lzma
import struct

import pytest

from manticore_host import kmod

pytestmark = pytest.mark.timeout(30)

RELEASE = "6.1.0-test-amd64"


def elf_with_modinfo(modinfo: bytes) -> bytes:
    """A minimal ELF64 relocatable object with a .modinfo and a .shstrtab section."""
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    data_off = 64
    str_off = data_off + len(modinfo)
    sh_off = (str_off + len(shstrtab) + 7) & ~7
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 1, 62, 1,
                         0, 0, sh_off, 0, 64, 0, 0, 64, 3, 2)
    body = modinfo + shstrtab
    body += bytes(sh_off - data_off - len(body))
    sections = struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    sections += struct.pack("<IIQQQQIIQQ", 1, 1, 2, 0, data_off, len(modinfo), 0, 0, 1, 0)
    sections += struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, str_off, len(shstrtab), 0, 0, 1, 0)
    return header + body + sections


def modinfo_bytes(name, depends="", release=RELEASE, extra=()):
    fields = [f"name={name}", f"depends={depends}",
              f"vermagic={release} SMP preempt mod_unload modversions ", *extra]
    return b"".join(f.encode() + b"\0" for f in fields)


def make_tree(tmp_path, modules, builtin=(), compress=True):
    """modules: {name: depends}; files under kernel/<dir>/ as .ko.xz (or .ko)."""
    root = tmp_path / RELEASE
    for i, (name, deps) in enumerate(modules.items()):
        d = root / "kernel" / ("drivers/net" if i % 2 else "net/core")
        d.mkdir(parents=True, exist_ok=True)
        elf = elf_with_modinfo(modinfo_bytes(name, deps))
        if compress:
            (d / f"{name.replace('_', '-') if name == 'net_failover' else name}.ko.xz"
             ).write_bytes(lzma.compress(elf, format=lzma.FORMAT_XZ))
        else:
            (d / f"{name}.ko").write_bytes(elf)
    root.mkdir(parents=True, exist_ok=True)
    (root / "modules.builtin").write_text(
        "".join(f"kernel/drivers/virtio/{b}.ko\n" for b in builtin))
    return kmod.ModuleTree.scan(root)


def test_modinfo_parsed_from_the_elf_section():
    info = kmod.modinfo(elf_with_modinfo(modinfo_bytes(
        "virtio_net", "net_failover", extra=["alias=virtio:d00000001v*", "alias=x"])))
    assert info["name"] == ["virtio_net"]
    assert info["alias"] == ["virtio:d00000001v*", "x"]
    assert kmod.depends(info) == ["net_failover"]
    assert kmod.depends(kmod.parse_modinfo(b"depends=\0")) == []
    assert kmod.depends(kmod.parse_modinfo(b"depends=a,b-c\0")) == ["a", "b_c"]


def test_not_a_module():
    with pytest.raises(kmod.ModuleError):
        kmod.modinfo(b"not an elf at all")


def test_virtio_net_chain_in_dependency_order(tmp_path):
    tree = make_tree(tmp_path, {"virtio_net": "net_failover", "net_failover": "failover",
                                "failover": ""}, builtin=("virtio", "virtio_pci"))
    assert tree.release == RELEASE
    got = kmod.resolve(tree, ["virtio_pci", "virtio_net"])
    assert [n for n, _ in got] == ["failover", "net_failover", "virtio_net"]
    # decompressed: plain ELF for busybox insmod
    assert all(elf.startswith(b"\x7fELF") for _, elf in got)
    assert "net_failover" in tree.files          # the file was net-failover.ko.xz


def test_shared_dependency_loaded_once_and_uncompressed_modules(tmp_path):
    tree = make_tree(tmp_path, {"a": "c", "b": "c,d", "c": "d", "d": ""}, compress=False)
    order = [n for n, _ in kmod.resolve(tree, ["a", "b"])]
    assert order == ["d", "c", "a", "b"]


def test_builtin_dependency_is_skipped(tmp_path):
    tree = make_tree(tmp_path, {"virtio_net": "virtio_ring"}, builtin=("virtio_ring",))
    assert [n for n, _ in kmod.resolve(tree, ["virtio_net"])] == ["virtio_net"]


def test_missing_dependency_names_the_chain(tmp_path):
    tree = make_tree(tmp_path, {"virtio_net": "net_failover", "net_failover": "failover"})
    with pytest.raises(kmod.ModuleError, match="failover not found.*virtio_net -> net_failover"):
        kmod.resolve(tree, ["virtio_net"])


def test_cycle_is_reported():
    infos = {"a": {"depends": ["b"]}, "b": {"depends": ["a"]}}
    with pytest.raises(kmod.ModuleError, match="cycle: a -> b -> a"):
        kmod.load_order(["a"], infos.__getitem__)


def test_vermagic_of_another_kernel_is_refused(tmp_path):
    root = tmp_path / RELEASE / "kernel"
    root.mkdir(parents=True)
    (root / "m.ko").write_bytes(elf_with_modinfo(modinfo_bytes("m", release="5.10.0-9")))
    with pytest.raises(kmod.ModuleError, match="vermagic"):
        kmod.resolve(kmod.ModuleTree.scan(tmp_path / RELEASE), ["m"])
