"""The Linux peer's launcher side without QEMU or downloads: -initrd in build_command, the
kernel command line of each mode, the initramfs layout, and /init's shell syntax."""

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from manticore_host import initramfs, linuxpeer
from manticore_host.qemu import VMConfig, build_command

pytestmark = pytest.mark.timeout(30)

IMAGE = linuxpeer.PeerImage(
    vmlinuz=Path("/peer/vmlinuz"), initrd=Path("/peer/initrd.gz"),
    micropython=Path("/peer/micropython"), kernel_version="6.12.117+deb13-amd64",
    modules=["failover", "net_failover", "virtio_net"], provenance=[],
    vmlinuz_bytes=1, initrd_bytes=1, micropython_bytes=1)


def option(command, name):
    return [command[i + 1] for i, a in enumerate(command[:-1]) if a == name]


def command(cfg):
    return build_command(cfg, "/t/qmp.sock", "/t/serial.sock", accel="tcg")


def test_initrd_goes_with_direct_boot_only():
    c = command(VMConfig(kernel=Path("/k"), initrd=Path("/i.gz")))
    assert option(c, "-kernel") == ["/k"] and option(c, "-initrd") == ["/i.gz"]
    assert "-initrd" not in command(VMConfig(kernel=Path("/k")))
    with pytest.raises(ValueError, match="initrd"):
        command(VMConfig(boot="iso", iso=Path("/x.iso"), initrd=Path("/i.gz")))


@pytest.mark.parametrize("mode,app,words", [
    ("repl", None, ["mode=repl"]),
    ("raw", None, ["mode=raw"]),
    ("app", "echod", ["mode=app", "app=echod"]),
])
def test_peer_config_modes(mode, app, words):
    cfg = linuxpeer.peer_config(IMAGE, mode, app, memory="256M", append="heap=4M")
    assert cfg.boot == "kernel" and cfg.app is None and cfg.fw_cfg_cmdline is None
    assert cfg.kernel == IMAGE.vmlinuz and cfg.initrd == IMAGE.initrd
    c = command(cfg)
    append = option(c, "-append")[0].split()
    assert append[:3] == ["console=ttyS0,115200", "quiet", "panic=-1"]
    assert append[3:] == words + ["heap=4M"]
    assert option(c, "-m") == ["256M"] and "-fw_cfg" not in c


def test_peer_config_tap_gets_the_static_address():
    cfg = linuxpeer.peer_config(IMAGE, "app", "echod", net="tap", netns="ns1")
    assert "ip=192.168.77.2 netmask=255.255.255.0" in cfg.kernel_cmdline()


@pytest.mark.parametrize("mode,app", [("bogus", None), ("app", None), ("repl", "echod")])
def test_peer_config_refuses_nonsense(mode, app):
    with pytest.raises(ValueError):
        linuxpeer.peer_config(IMAGE, mode, app)
    with pytest.raises(ValueError):
        linuxpeer.peer_config(IMAGE, "repl", app=None, boot="iso")


def test_ready_markers():
    assert linuxpeer.ready_marker("repl") == b">>> "
    assert linuxpeer.ready_marker("raw") == b"rawrepl: ready"
    assert linuxpeer.ready_marker("app", "echod") == b"echod: listening on 7777/tcp"


def test_initramfs_layout():
    modules = [("failover", b"\x7fELF1"), ("virtio_net", b"\x7fELF2")]
    raw = initramfs.build(linuxpeer.initramfs_entries(
        b"BUSYBOX", ["/bin/sh", "/sbin/ip", "/usr/bin/setsid"], b"MPY", modules, "6.1.0"))
    files = {e.path: e for e in initramfs.read_newc(raw)}
    assert files["init"].mode == stat.S_IFREG | 0o755
    assert files["init"].data == (linuxpeer.PEER_SRC / "init").read_bytes()
    assert files["bin/micropython"].data == b"MPY"
    assert files["bin/sh"].data == b"/bin/busybox" and stat.S_ISLNK(files["bin/sh"].mode)
    assert files["dev/console"].rdev == (5, 1) and stat.S_ISCHR(files["dev/console"].mode)
    assert files["lib/modules/load-order"].data == b"6.1.0/failover.ko\n6.1.0/virtio_net.ko\n"
    assert files["lib/modules/6.1.0/virtio_net.ko"].data == b"\x7fELF2"
    assert files["usr/share/udhcpc/default.script"].mode & 0o111


@pytest.mark.parametrize("script", ["init", "udhcpc.script"])
def test_shell_scripts_parse(script):
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    result = subprocess.run([sh, "-n", str(linuxpeer.PEER_SRC / script)],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr


def test_make_command_keeps_the_standard_variant():
    cmd = linuxpeer.make_command(Path("/mpy"), Path("/b"), mbedtls=Path("/tls"))
    assert cmd[:3] == ["make", "-C", "/mpy/ports/unix"] and "-j2" in cmd
    assert "VARIANT=standard" in cmd and "LDFLAGS_EXTRA=-static" in cmd
    # The optimisation level of ports/manticore, not the unix port's -Os: the benchmarks
    # compare environments, not compiler settings.
    assert [a for a in cmd if a.startswith("COPT")] == \
        ["COPT=-O2 -DNDEBUG -fdata-sections -ffunction-sections"]
    # ssl over the given mbedTLS tree with the peer's config; CFLAGS_EXTRA only adds its
    # headers and the tracked allocator, never an optimisation flag.
    assert "MICROPY_PY_SSL=1" in cmd and "MICROPY_SSL_MBEDTLS=1" in cmd
    assert "MBEDTLS_DIR=/tls" in cmd
    assert f'MBEDTLS_CONFIG_FILE=\\"{linuxpeer.MBEDTLS_CONFIG}\\"' in cmd
    assert [a for a in cmd if a.startswith("CFLAGS")] == \
        ["CFLAGS_EXTRA=-I/tls/include -DMICROPY_TRACKED_ALLOC=1"]
    makefile = (Path(__file__).resolve().parents[2] / "ports" / "manticore" / "Makefile")
    assert "-O2 -DNDEBUG" in makefile.read_text(), "ports/manticore changed its -O level"
    assert f"FROZEN_MANIFEST={linuxpeer.MANIFEST}" in cmd
    assert "LDFLAGS_EXTRA=-static" not in linuxpeer.make_command(Path("/m"), Path("/b"),
                                                                static=False,
                                                                mbedtls=Path("/tls"))


def test_mpy_cross_is_built_without_the_ports_variables():
    """On a fresh tree the unix port's make would build mpy-cross as a sub-make that inherits
    BUILD= and PROG= from the port's command line (and links mpy-cross's objects as the
    port's binary): the peer builds mpy-cross first, in its own place."""
    cmd = linuxpeer.mpy_cross_command(Path("/mpy"))
    assert cmd[:3] == ["make", "-C", "/mpy/mpy-cross"]
    assert not [a for a in cmd if "=" in a], cmd
