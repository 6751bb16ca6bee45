"""The Linux peer image: Debian's kernel + busybox + MicroPython's unix port (static), the
baseline the benchmarks compare manticore with, booted under the same launcher and QEMU
options (TCG), and its shims checked on the host with the very same binary first."""

from __future__ import annotations

import shutil
import socket
import stat
import statistics
import subprocess
import sys
import textwrap
import time

import pytest

from manticore_host import initramfs, linuxpeer
from manticore_host.echobench import ECHO_PORT, free_port, udp_client, wait_answering
from peertools import ACCEL, BUILD_ALLOWANCE, pyboard_module, qemu_on_pty
from vmtools import wait_for

HOST_TIMEOUT = 60 + BUILD_ALLOWANCE
BOOT_TIMEOUT = 150 + BUILD_ALLOWANCE


# --------------------------------------------------------------------------- the build


@pytest.mark.timeout(HOST_TIMEOUT)
def test_image_is_built_from_the_pins_and_cached(peer_build, summary):
    image = peer_build.image()
    assert len(image.provenance) == len(linuxpeer.PINS)
    for p, pin in zip(image.provenance, linuxpeer.PINS.values()):
        assert set(p) >= {"name", "version", "sha256", "pinned"}
        if p["pinned"]:
            assert (p["name"], p["version"], p["sha256"]) == (pin.name, pin.version, pin.sha256)
        else:   # Debian dropped the pin: the build goes on, and says so
            summary(f"linuxpeer: WARNING: {pin.name} {pin.version} is gone from the suite; "
                    f"the image has {p['name']} {p['version']} (update the pin)")
    assert image.modules == ["failover", "net_failover", "virtio_net"]
    assert image.vmlinuz.stat().st_size == image.vmlinuz_bytes
    assert image.initrd.stat().st_size == image.initrd_bytes
    t0 = time.monotonic()
    again = linuxpeer.ensure_image(log=lambda m: None)
    took = time.monotonic() - t0
    assert again.key == image.key and again.built_seconds is None, "second call must be cached"
    assert took < 10, f"a cached ensure_image() took {took:.1f} s"
    summary(f"linuxpeer: kernel {image.kernel_version}, vmlinuz {image.vmlinuz_bytes} B, "
            f"initrd {image.initrd_bytes} B, micropython {image.micropython_bytes} B "
            f"(static); ensure_image {peer_build.seconds:.1f} s this session, cached {took:.2f} s")


@pytest.mark.timeout(HOST_TIMEOUT)
def test_initramfs_contents(peer_build):
    image = peer_build.image()
    files = {e.path: e for e in initramfs.read_newc(image.initrd.read_bytes())}
    assert files["init"].mode & stat.S_IXUSR
    assert files["bin/micropython"].data == image.micropython.read_bytes()
    assert stat.S_ISCHR(files["dev/console"].mode)
    order = files["lib/modules/load-order"].data.decode().split()
    assert order == [f"{image.kernel_version}/{m}.ko" for m in image.modules]
    for rel in order:
        assert files[f"lib/modules/{rel}"].data.startswith(b"\x7fELF"), "insmod needs plain .ko"
    for applet in ("bin/sh", "sbin/insmod", "bin/stty", "sbin/udhcpc", "bin/cttyhack"):
        assert files[applet].data == b"/bin/busybox", applet
    # Storage modules: a list of their own, loaded by /init only with a virtio-blk disk.
    blk = files["lib/modules/load-order-blk"].data.decode().split()
    assert blk == [f"{image.kernel_version}/{m}.ko" for m in image.block_modules]
    assert {"virtio_blk", "ext4", "jbd2", "vfat", "fat", "nls_cp437", "nls_ascii",
            "crc32c_generic"} <= set(image.block_modules), image.block_modules
    assert blk.index(f"{image.kernel_version}/jbd2.ko") < \
        blk.index(f"{image.kernel_version}/ext4.ko")
    for rel in blk:
        assert files[f"lib/modules/{rel}"].data.startswith(b"\x7fELF"), rel


@pytest.mark.timeout(HOST_TIMEOUT)
def test_ssl_over_the_same_mbedtls_as_manticore(peer_build):
    """The peer's ssl is manticore's frozen/ssl.py over mbedTLS from the fetched tree."""
    image = peer_build.image()
    r = run_host(image, """
        import hashlib, ssl, tls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        print(ssl.__file__, type(ctx).__name__, hashlib.sha1(b"abc").digest().hex())
        """)
    assert r.returncode == 0, r.stderr
    frozen, kind, sha1 = r.stdout.split()
    assert frozen.endswith("ssl.py") and kind == "SSLContext"
    assert sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d"
    from manticore_host.fetch import mbedtls_dir
    make_log = (linuxpeer.UNIX_STATIC / "make.log").read_text(errors="replace")
    assert f"{mbedtls_dir(quiet=True)}/library/ssl_tls.c" in make_log, \
        "the peer's mbedTLS is not the fetched tree"


# --------------------------------------------------------------------------- shims on the host


def run_host(image, script: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(image.micropython), "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=timeout, **kw)


@pytest.mark.timeout(HOST_TIMEOUT)
def test_host_binary_is_the_static_standard_unix_port(peer_build):
    image = peer_build.image()
    assert linuxpeer.host_micropython(log=lambda m: None) == image.micropython
    out = run_host(image, """
        import sys, apps.echod, kernel.syscalls, peersocket, rawrepl, peer_run
        print(sys.implementation._build, sys.platform)
    """)
    assert out.returncode == 0 and out.stdout.split() == ["standard", "linux"], out
    file = subprocess.run(["file", "-b", str(image.micropython)], capture_output=True,
                          text=True)
    if file.returncode == 0:
        assert "statically linked" in file.stdout


@pytest.mark.timeout(HOST_TIMEOUT)
def test_peersocket_and_readable_under_asyncio_on_the_host(peer_build):
    """Tuple addresses, bytes addresses from recvfrom, select.poll on the wrapper (asyncio's
    stream server) and on the unwrapped socket (syscalls.readable), all on 127.0.0.1."""
    image = peer_build.image()
    port = free_port()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    script = f"""
        import peer_run
        peer_run.install_socket()
        import asyncio, socket
        from kernel import syscalls
        assert socket.__name__ == "peersocket", socket

        async def udp(sock):
            for _ in range(3):
                await syscalls.readable(sock)
                data, addr = sock.recvfrom(100)
                sock.sendto(data, addr)                 # a bytes address
            sock.sendto(b"tuple", ("127.0.0.1", {client.getsockname()[1]}))

        async def tcp(reader, writer):
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        async def main():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", {port}))           # a tuple address
            sock.setblocking(False)
            server = await asyncio.start_server(tcp, "127.0.0.1", {port})
            print("ready")
            await udp(sock)
            await asyncio.sleep(1)
            server.close()

        asyncio.run(main())
        print("done")
    """
    proc = subprocess.Popen([str(image.micropython), "-c", textwrap.dedent(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
            tcp.sendall(b"over tcp")
            assert tcp.recv(100) == b"over tcp"
        for i in range(3):
            client.sendto(b"udp %d" % i, ("127.0.0.1", port))
            assert client.recvfrom(100) == (b"udp %d" % i, ("127.0.0.1", port))
        assert client.recvfrom(100)[0] == b"tuple"
        out, _ = proc.communicate(timeout=10)
        assert "done" in out and proc.returncode == 0, out
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(HOST_TIMEOUT)
def test_peer_run_unknown_app_is_127(peer_build):
    image = peer_build.image()
    out = subprocess.run([str(image.micropython), "-m", "peer_run", "nosuchapp"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 127 and "no app 'nosuchapp'" in out.stdout, out


@pytest.mark.timeout(HOST_TIMEOUT)
def test_rawrepl_speaks_pyboards_protocol_on_the_host(peer_build):
    pyboard = pyboard_module()
    image = peer_build.image()
    # /init's loop: a soft reset ends the interpreter with status 100 and a fresh one
    # carries on in raw mode.
    mpy = image.micropython
    pyb = pyboard.Pyboard(f"exec:{mpy} -m rawrepl; s=$?; while [ $s -eq 100 ]; do "
                          f"{mpy} -m rawrepl --resumed; s=$?; done")
    try:
        pyb.enter_raw_repl()                                    # with a soft reset
        assert pyb.exec_("print(2**100)") == b"1267650600228229401496703205376\n"
        pyb.exec_("x = 6")
        assert pyb.exec_("print(x * 7)") == b"42\n", "globals live until the soft reset"
        with pytest.raises(pyboard.PyboardError) as e:
            pyb.exec_("def f():\n    raise ValueError('peer')\nf()")
        assert e.value.args[0] == "exception" and e.value.args[1] == b""
        assert b'File "<stdin>", line 2, in f' in e.value.args[2]
        assert e.value.args[2].endswith(b"ValueError: peer\n")
        assert pyb.exec_("import sys; sys.path.remove(''); print(sys.path[0])") == b".frozen\n"
        pyb.enter_raw_repl()
        assert pyb.exec_("import sys; print(sys.path[0] == '', 'x' in globals())") == \
            b"True False\n", "a soft reset restores sys.path and the globals"
        # A soft reset is a fresh interpreter: qstrs interned before it are gone.
        def n_qstr():
            out = pyb.exec_("import micropython; micropython.qstr_info()")
            return int(out.split(b"n_qstr=")[1].split(b",")[0])
        before = n_qstr()
        pyb.exec_("\n".join(f"name_{i} = {i}" for i in range(300)))     # 300 new qstrs
        grown = n_qstr()
        pyb.enter_raw_repl()
        after = n_qstr()
        assert grown >= before + 300 and after <= before + 5, (before, grown, after)
        # A soft reset unmounts what the code mounted, even a filesystem without umount()
        # (perf_bench's core_import_mpy_* mount one like this), and goes back to the start
        # directory.
        pyb.exec_("import vfs, os\nclass FS:\n    def mount(self, r, m): pass\n"
                  "    def chdir(self, p): pass\n    def getcwd(self): return ''\n"
                  "vfs.mount(FS(), '/__ram')\nos.chdir('/__ram')")
        pyb.enter_raw_repl()
        after = pyb.exec_("import vfs, os\nprint([p for _, p in vfs.mount()], os.getcwd())")
        assert b"/__ram" not in after, f"expected the soft reset to unmount /__ram: {after}"
        big = "s = 0\n" + "".join(f"s += {i}\n" for i in range(1000)) + "print(s)"
        assert pyb.exec_(big) == b"499500\n"
        pyb.exit_raw_repl()
    finally:
        pyb.close()


# --------------------------------------------------------------------------- booted under QEMU


@pytest.mark.timeout(BOOT_TIMEOUT)
def test_repl_prompt_and_one_plus_one(peer_vm, summary):
    times = []
    for _ in range(3):
        vm = peer_vm("repl")
        times.append(vm.ready_seconds)
        assert vm.console.repl("1+1") == "2"
        assert vm.console.repl("import sys; sys.platform") == "'linux'"
        if len(times) == 1:         # Ctrl-C reaches running code (the console is its tty)
            vm.console.write("while True: pass\r\r")
            vm.console.read_until(b"... ", 10)
            time.sleep(0.5)
            vm.console.write(b"\x03")
            # The tty echoes "^C" (ECHOCTL) wherever the signal lands in MicroPython's
            # output, e.g. "KeyboardInterrupt: ^C\r\n>>> ": the exception, then a prompt.
            vm.console.read_until(b"KeyboardInterrupt", 10)
            vm.console.read_until(b">>> ", 10)
            assert vm.console.repl("6 * 7") == "42"
        vm.kill()
    summary(f"linuxpeer: QEMU launch to '>>> ' under {ACCEL}: median "
            f"{statistics.median(times):.2f} s (runs {', '.join(f'{t:.2f}' for t in times)})")


@pytest.mark.timeout(BOOT_TIMEOUT)
def test_heap_option_and_sys_exit_at_the_repl_powers_off(peer_vm):
    vm = peer_vm("repl", append="heap=8M")
    heap = int(vm.console.repl("import gc; gc.mem_free() + gc.mem_alloc()"))
    assert 0.98 * 8 * 2**20 <= heap <= 8 * 2**20, \
        f"heap=8M gave a {heap}-byte heap (GC tables aside)"
    vm.console.write("import sys; sys.exit()\r")
    assert vm.wait(30) == 0
    assert b"init: micropython exited with status 0; powering off" in vm.console.log


@pytest.mark.timeout(BOOT_TIMEOUT)
def test_raw_mode_with_pyboard_over_a_pty(peer_build, tmp_path):
    pyboard = pyboard_module()
    cfg = linuxpeer.peer_config(peer_build.image(), "raw", accel=ACCEL)
    with qemu_on_pty(cfg, tmp_path) as (pts, log, qemu):
        assert wait_for(log, linuxpeer.ready_marker("raw"), 90), \
            f"no raw REPL readiness line; serial log:\n{log.read_bytes()[-3000:]!r}"
        pyb = pyboard.Pyboard(pts, baudrate=115200)
        try:
            pyb.enter_raw_repl()                                # soft reset, as pyboard does
            assert pyb.exec_("print(2**100)") == b"1267650600228229401496703205376\n"
            with pytest.raises(pyboard.PyboardError) as e:
                pyb.exec_("1/0")
            assert e.value.args[2].startswith(b"Traceback (most recent call last):")
            assert e.value.args[2].endswith(b"ZeroDivisionError: divide by zero\n")
            assert pyb.exec_("import sys; print(sys.platform)") == b"linux\n"
            pyb.exit_raw_repl()
        finally:
            pyb.close()


@pytest.mark.timeout(BOOT_TIMEOUT)
def test_raw_mode_with_the_launchers_console(peer_vm):
    vm = peer_vm("raw")
    assert vm.console.raw_exec("print(6 * 7)") == ("42\n", "")
    out, err = vm.console.raw_paste_exec("import sys\nprint(sys.implementation.name)")
    assert (out, err) == ("micropython\n", "")
    assert vm.console.repl("2 ** 10") == "1024", "the friendly side of rawrepl"
    vm.console.write(b"\x04")                       # Ctrl-D on an empty line: exit
    assert vm.wait(30) == 0


@pytest.mark.timeout(BOOT_TIMEOUT)
def test_echod_over_user_networking(peer_vm, summary):
    port = free_port()
    vm = peer_vm("app", "echod", net="user",
                 publish=[f"{port}:{ECHO_PORT}/udp", f"{port}:{ECHO_PORT}/tcp"])
    with udp_client(("127.0.0.1", port)) as sock:
        wait_answering(sock)
        sock.settimeout(5)
        for size in (0, 1, 64, 1400, 1472):
            payload = bytes((i * 7) & 0xFF for i in range(size))
            sock.send(payload)
            assert sock.recv(2048) == payload, f"{size}-byte echo"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as tcp:
        data = bytes(range(256)) * 64
        tcp.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = tcp.recv(65536)
            assert chunk, "TCP echo closed early"
            got += chunk
        assert got == data
    summary(f"linuxpeer: echod answering over user networking {vm.ready_seconds:.2f} s after "
            "QEMU launch")


@pytest.mark.timeout(BOOT_TIMEOUT)
def test_unknown_app_exits_through_isa_debug_exit(peer_vm):
    vm = peer_vm("app", "nosuchapp", wait=False)
    vm.console.read_until(b"peer_run: no app 'nosuchapp'", 90)
    # code 127 -> QEMU's status (127 << 1) | 1, as manticore's unknown app
    assert vm.wait(30) == 255


@pytest.mark.timeout(BOOT_TIMEOUT)
def test_echod_over_tap(peer_vm):
    """The other path of the echo benchmark: a tap in a namespace, the guest's address
    static from the command line (ip=192.168.77.2 netmask=... gw=..., as for manticore)."""
    from manticore_host.netns import TapAddressing, available
    ok, why = available()
    if not ok:
        pytest.skip(f"tap needs network namespaces: {why}")
    vm = peer_vm("app", "echod", net="tap")
    with udp_client((TapAddressing().guest_ip, ECHO_PORT), vm.netns.socket) as sock:
        wait_answering(sock)
        sock.settimeout(5)
        sock.send(b"x" * 1472)
        assert sock.recv(2048) == b"x" * 1472


@pytest.mark.timeout(BOOT_TIMEOUT)
def test_mpremote_exec_in_raw_mode(peer_build, tmp_path):
    """mpremote, the standard tool: raw-paste is refused (R\\x00), it falls back."""
    cfg = linuxpeer.peer_config(peer_build.image(), "raw", accel=ACCEL)
    exe = shutil.which("mpremote")
    cmd = [exe] if exe else [sys.executable, "-m", "mpremote"]
    with qemu_on_pty(cfg, tmp_path) as (pts, log, qemu):
        assert wait_for(log, linuxpeer.ready_marker("raw"), 90), log.read_bytes()[-3000:]
        for code, want in (("print(6*7)", "42"), ("import sys; print(sys.platform)", "linux")):
            run = cmd + ["connect", pts, "exec", code]
            proc = subprocess.run(run, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0 and proc.stdout.strip() == want, (
                f"{' '.join(run)}: status {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
