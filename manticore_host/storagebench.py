"""`invoke bench storage`: filesystem throughput in the guest on a virtio-blk disk.

Measured in the guest with time.ticks_us, on a second disk (vdb, a sparse raw image on the
host, cache=writeback as QEMU defaults), after a warm-up pass:
  - raw: the block device from Python (blk.Disk readblocks/writeblocks), 4 MiB sequentially
    in CHUNK-byte calls: the ceiling every filesystem runs under;
  - littlefs2 and FAT (MicroPython's VfsLfs2 / VfsFat, as kernel/fs.py mounts them): a 4 MiB
    file written in CHUNK-byte writes and closed (plus os.sync: durable), then read back;
    and N small files (100 bytes) created, read and deleted, in operations per second.
Ratios are each filesystem's rate over the raw rate of the same run.

The Linux peer (linuxpeer.py: Debian's kernel and the same MicroPython, its unix port) runs
the same workload, in the same run, under the same QEMU options (-m, virtio-blk-pci disks of
the same size, cache=writeback), through Linux's own storage stack: raw on /dev/vda (the
block device through the page cache), ext4 on /dev/vdb (Linux's own filesystem) and vfat on
/dev/vdc (the same on-disk format as manticore's FAT), both made on the host (mkfs.ext4
without lazy initialisation, mkfs.vfat) and mounted with the defaults. Linux keeps writes
in its page cache, so to measure the same thing as on manticore (where littlefs and FAT
write to the device at close()) every write phase on the peer ends with sync(2) (busybox
`sync` through os.system: the unix port has no os.sync), inside the timing, and every read
phase starts with the page cache dropped (/proc/sys/vm/drop_caches), so reads come from the
device as on manticore. Ratios: manticore raw / Linux raw, littlefs2 / ext4, FAT / vfat.
"""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path

from manticore_host import image
from manticore_host.bench import qemu_version, write_report
from manticore_host.qemu import PROMPT, VM, Disk, VMConfig, resolve_accel

CHUNK = 64 * 1024
DISK_SIZE = 64 << 20
MEMORY = "256M"

# The file workload both guests run, word for word: a big file written in CHUNK-byte writes
# and read back, then SMALL 100-byte files created, read and deleted. Each guest's script
# defines before it where it works (ROOT) and what its storage stack needs around the
# phases: wrote() ends a write phase inside its timing (durable on the device), cold()
# starts a read phase outside it (no cached pages), after_small() ends a create or delete
# phase inside its timing.
FILES = r"""
def rate(nbytes, us):
    return nbytes / (us / 1e6) / (1 << 20)

def file_rates():
    gc.collect()
    t = time.ticks_us()
    with open(ROOT + '/big', 'wb') as f:
        for i in range(SIZE // CHUNK):
            f.write(buf)
    wrote()
    w = time.ticks_diff(time.ticks_us(), t)
    cold()
    t = time.ticks_us()
    with open(ROOT + '/big', 'rb') as f:
        while f.readinto(buf):
            pass
    r = time.ticks_diff(time.ticks_us(), t)
    os.mkdir(ROOT + '/s')
    small = b'x' * 100
    t = time.ticks_us()
    for i in range(SMALL):
        with open(ROOT + '/s/%%d' %% i, 'wb') as f:
            f.write(small)
    after_small()
    c = time.ticks_diff(time.ticks_us(), t)
    cold()
    t = time.ticks_us()
    for i in range(SMALL):
        with open(ROOT + '/s/%%d' %% i, 'rb') as f:
            f.read()
    rd = time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    for i in range(SMALL):
        os.remove(ROOT + '/s/%%d' %% i)
    after_small()
    d = time.ticks_diff(time.ticks_us(), t)
    return {'write': rate(SIZE, w), 'read': rate(SIZE, r), 'create': SMALL / (c / 1e6),
            'small_read': SMALL / (rd / 1e6), 'delete': SMALL / (d / 1e6)}
"""

GUEST = r"""
import blk, gc, json, os, time, vfs
CHUNK = %(chunk)d
SIZE = %(size)d
SMALL = %(small)d
RUNS = %(runs)d
ROOT = '/bench'
disk = blk.Disk('vdb', block_size=4096)
buf = bytearray(os.urandom(CHUNK))

# littlefs and FAT write to the device at close(): nothing to drop, nothing else to flush.
wrote = os.sync
def cold():
    pass
def after_small():
    pass
""" + FILES + r"""
def raw():
    t = time.ticks_us()
    for i in range(SIZE // CHUNK):
        disk.writeblocks(i * CHUNK // 4096, buf)
    disk.ioctl(3, 0)
    w = time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    for i in range(SIZE // CHUNK):
        disk.readblocks(i * CHUNK // 4096, buf)
    r = time.ticks_diff(time.ticks_us(), t)
    return {'write': rate(SIZE, w), 'read': rate(SIZE, r)}

def mkfs(kind):
    try:
        vfs.umount(ROOT)
    except OSError:
        pass
    if kind == 'lfs':
        import kernel.fs as kfs
        fs = kfs._lfs(disk, mkfs=True)
    else:
        d = blk.Disk('vdb')
        vfs.VfsFat.mkfs(d)
        fs = vfs.VfsFat(d)
    vfs.mount(fs, ROOT)

def files(kind):
    mkfs(kind)
    rates = file_rates()
    vfs.umount(ROOT)
    return rates

results = {'raw': [], 'lfs': [], 'fat': []}
raw(); files('lfs')  # warm-up
for run in range(RUNS):
    results['raw'].append(raw())
    results['lfs'].append(files('lfs'))
    results['fat'].append(files('fat'))
print(json.dumps(results))
"""

PEER_GUEST = r"""
import gc, json, os, time
CHUNK = %(chunk)d
SIZE = %(size)d
SMALL = %(small)d
RUNS = %(runs)d
ROOT = '/tmp/bench'
buf = bytearray(os.urandom(CHUNK))

def sh(cmd):
    st = os.system(cmd)
    if st:
        raise OSError('%%s: status %%d' %% (cmd, st))

# Linux keeps writes in its page cache: sync(2) inside every write, create and delete phase,
# and the cache dropped before every read phase, to measure the device as on manticore.
def wrote():
    sh('sync')
after_small = wrote

def cold():
    sh('sync')
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3')
""" + FILES + r"""
def raw():
    cold()
    t = time.ticks_us()
    with open('/dev/vda', 'r+b') as f:
        for i in range(SIZE // CHUNK):
            f.write(buf)
    wrote()
    w = time.ticks_diff(time.ticks_us(), t)
    cold()
    t = time.ticks_us()
    with open('/dev/vda', 'rb') as f:
        for i in range(SIZE // CHUNK):
            f.readinto(buf)
    r = time.ticks_diff(time.ticks_us(), t)
    return {'write': rate(SIZE, w), 'read': rate(SIZE, r)}

def files(dev, kind):
    sh('mkdir -p %%s && mount -t %%s /dev/%%s %%s' %% (ROOT, kind, dev, ROOT))
    cold()
    rates = file_rates()
    os.rmdir(ROOT + '/s')
    os.remove(ROOT + '/big')
    sh('umount ' + ROOT)
    return rates

results = {'linux_raw': [], 'ext4': [], 'vfat': []}
raw(); files('vdb', 'ext4')  # warm-up
for run in range(RUNS):
    results['linux_raw'].append(raw())
    results['ext4'].append(files('vdb', 'ext4'))
    results['vfat'].append(files('vdc', 'vfat'))
print(json.dumps(results))
"""

# (ratio name, this project's kind, the Linux peer's kind)
PEER_PAIRS = (("raw", "raw", "linux_raw"), ("littlefs2/ext4", "lfs", "ext4"),
              ("FAT/vfat", "fat", "vfat"))

METRICS = (("write", "MiB/s"), ("read", "MiB/s"), ("create", "ops/s"), ("small_read", "ops/s"),
           ("delete", "ops/s"))


def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None


def storage_report(raw: dict) -> dict:
    res = {kind: {key: _median(rows, key) for key, _ in METRICS}
           for kind, rows in raw.items()}
    ratios = {}
    for kind in ("lfs", "fat"):
        for key in ("write", "read"):
            base, value = res["raw"].get(key), res[kind].get(key)
            if base and value:
                ratios[f"{kind}_{key}_vs_raw"] = value / base
    # Rates: above 1 favours this project.
    linux = {}
    for name, ours, theirs in PEER_PAIRS:
        if ours not in res or theirs not in res:
            continue
        for key, _ in METRICS:
            a, b = res[ours].get(key), res[theirs].get(key)
            if a and b:
                linux.setdefault(name, {})[key] = a / b
    return {"results": res, "ratios": ratios, "linux_ratios": linux, "samples": raw}


def format_storage_table(report: dict) -> str:
    res = report["results"]
    lines = [f"{'metric':22} {'raw blk':>10} {'littlefs2':>10} {'FAT':>10} "
             f"{'lfs/raw':>8} {'fat/raw':>8}"]
    for key, unit in METRICS:
        def cell(kind):
            v = res[kind].get(key)
            return f"{v:10.1f}" if v is not None else f"{'-':>10}"
        ratio = [report["ratios"].get(f"{k}_{key}_vs_raw") for k in ("lfs", "fat")]
        lines.append(f"{key + ' (' + unit + ')':22} {cell('raw')} {cell('lfs')} {cell('fat')} "
                     + " ".join(f"{r:7.2f}x" if r else f"{'-':>8}" for r in ratio))
    if "linux_raw" in res:
        lines += ["", "Linux + MicroPython peer, same disks and workload (sync(2) in every "
                  "write phase, cold page cache in every read phase)",
                  f"{'metric':22} {'raw blk':>10} {'ext4':>10} {'vfat':>10} "
                  f"{'raw/raw':>8} {'lfs/ext4':>8} {'fat/vfat':>8}"]
        lx = report.get("linux_ratios", {})
        for key, unit in METRICS:
            def cell(kind):
                v = res[kind].get(key)
                return f"{v:10.1f}" if v is not None else f"{'-':>10}"
            ratio = [lx.get(name, {}).get(key) for name, _, _ in PEER_PAIRS]
            lines.append(f"{key + ' (' + unit + ')':22} {cell('linux_raw')} {cell('ext4')} "
                         f"{cell('vfat')} "
                         + " ".join(f"{r:7.2f}x" if r else f"{'-':>8}" for r in ratio))
    elif report.get("linux"):
        lines += ["", f"Linux + MicroPython peer: {report['linux']}"]
    return "\n".join(lines)


def _make_fs(path: Path, kind: str) -> None:
    """A DISK_SIZE image at `path` holding an empty `kind` filesystem (host tools)."""
    import subprocess
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    if kind == "ext4":
        # No lazy inode-table/journal initialisation: the kernel would otherwise zero them
        # in a background thread while the benchmark runs.
        cmd = ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
               str(path)]
    elif kind == "vfat":
        cmd = ["mkfs.vfat", str(path)]
    else:
        return
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()}")


def run_peer_storage(code: str, accel_name: str, memory: str, log=print) -> dict:
    """The peer's samples: PEER_GUEST run in the Linux + MicroPython guest (raw mode)."""
    from manticore_host import linuxpeer
    peer = linuxpeer.ensure_image(log=log)
    base = image.BUILD / "bench"
    base.mkdir(parents=True, exist_ok=True)
    disks = [(base / f"storage-peer-{kind}.img", kind) for kind in ("raw", "ext4", "vfat")]
    try:
        for path, kind in disks:
            _make_fs(path, kind)
        cfg = linuxpeer.peer_config(peer, mode="raw", accel=accel_name, memory=memory,
                                    disks=[Disk(path) for path, _ in disks])
        with VM(cfg) as vm:
            vm.start(timeout=60)
            vm.console.read_until(linuxpeer.READY["raw"], 120)
            out_text, err = vm.console.raw_exec(code, timeout=900)
    finally:
        for path, _ in disks:
            path.unlink(missing_ok=True)
    if err:
        raise RuntimeError(f"the peer's program failed:\n{err}")
    return json.loads([ln for ln in out_text.splitlines() if ln.strip()][-1])


def run_storage_bench(quick: bool = False, accel: str = "auto", runs: int | None = None,
                      out: Path | None = None, linux: bool = True, log=print) -> dict:
    accel_name, reason = resolve_accel(accel)
    runs = runs or (1 if quick else 3)
    size = (1 << 20) if quick else (4 << 20)
    small = 20 if quick else 200
    log(f"bench storage: {runs} run(s), {size >> 20} MiB sequential in {CHUNK // 1024} KiB "
        f"calls, {small} small files; accel {accel_name} ({reason})")
    disk = image.BUILD / "bench" / "storage-vdb.img"
    disk.parent.mkdir(parents=True, exist_ok=True)
    with open(disk, "wb") as f:
        f.truncate(DISK_SIZE)
    # vda is a small disk left alone (root=ram); the benchmark's disk is vdb.
    root = image.BUILD / "bench" / "storage-vda.img"
    with open(root, "wb") as f:
        f.truncate(1 << 20)
    cfg = VMConfig(boot="kernel", accel=accel_name, memory=MEMORY, append="root=ram",
                   disks=[Disk(root), Disk(disk)])
    try:
        with VM(cfg) as vm:
            vm.start(timeout=60)
            vm.console.read_until(PROMPT, 60)
            code = GUEST % {"chunk": CHUNK, "size": size, "small": small, "runs": runs}
            out_text, err = vm.console.raw_exec(code, timeout=600)
    finally:
        disk.unlink(missing_ok=True)
        root.unlink(missing_ok=True)
    if err:
        raise RuntimeError(f"bench storage: the guest program failed:\n{err}")
    lines = [ln for ln in out_text.splitlines() if ln.strip()]
    raw = json.loads(lines[-1])
    params = {"chunk": CHUNK, "size": size, "small": small, "runs": runs}
    if linux:
        try:
            raw.update(run_peer_storage(PEER_GUEST % params, accel_name, MEMORY, log))
            note = "Linux + MicroPython peer: raw /dev/vda, ext4 and vfat (see linux_ratios)"
        except Exception as e:          # reported; this project's figures still stand
            note = f"error: {(str(e).splitlines() or [type(e).__name__])[0]}"
            log(f"bench storage: the Linux peer failed: {note}")
    else:
        note = "left out (--no-linux)"
    report = {"accel": accel_name, "accel_reason": reason, "quick": quick, "runs": runs,
              "bytes": size, "chunk": CHUNK, "small_files": small, "qemu": qemu_version(),
              "host": platform.node(), "memory": MEMORY, "linux": note,
              **storage_report(raw)}
    return write_report("storage", report, format_storage_table(report), out, log)
