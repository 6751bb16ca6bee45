"""`invoke bench storage`: filesystem throughput in the guest on a virtio-blk disk.

Measured in the guest with time.ticks_us, on a second disk (vdb, a sparse raw image on the
host, cache=writeback as QEMU defaults), after a warm-up pass:
  - raw: the block device from Python (blk.Disk readblocks/writeblocks), 4 MiB sequentially
    in CHUNK-byte calls: the ceiling every filesystem runs under;
  - littlefs2 and FAT (MicroPython's VfsLfs2 / VfsFat, as kernel/fs.py mounts them): a 4 MiB
    file written in CHUNK-byte writes and closed (plus os.sync: durable), then read back;
    and N small files (100 bytes) created, read and deleted, in operations per second.
Ratios are each filesystem's rate over the raw rate of the same run. The Linux peer
comparison is not done yet (the peer image has no virtio-blk module in its initramfs).
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

GUEST = r"""
import blk, gc, json, os, time, vfs
CHUNK = %(chunk)d
SIZE = %(size)d
SMALL = %(small)d
RUNS = %(runs)d
disk = blk.Disk('vdb', block_size=4096)
buf = bytearray(os.urandom(CHUNK))

def rate(nbytes, us):
    return nbytes / (us / 1e6) / (1 << 20)

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
        vfs.umount('/bench')
    except OSError:
        pass
    if kind == 'lfs':
        import kernel.fs as kfs
        fs = kfs._lfs(disk, mkfs=True)
    else:
        d = blk.Disk('vdb')
        vfs.VfsFat.mkfs(d)
        fs = vfs.VfsFat(d)
    vfs.mount(fs, '/bench')

def files(kind):
    mkfs(kind)
    gc.collect()
    t = time.ticks_us()
    with open('/bench/big', 'wb') as f:
        for i in range(SIZE // CHUNK):
            f.write(buf)
    os.sync()
    w = time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    with open('/bench/big', 'rb') as f:
        while f.readinto(buf):
            pass
    r = time.ticks_diff(time.ticks_us(), t)
    os.mkdir('/bench/s')
    small = b'x' * 100
    t = time.ticks_us()
    for i in range(SMALL):
        with open('/bench/s/%%d' %% i, 'wb') as f:
            f.write(small)
    c = time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    for i in range(SMALL):
        with open('/bench/s/%%d' %% i, 'rb') as f:
            f.read()
    rd = time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    for i in range(SMALL):
        os.remove('/bench/s/%%d' %% i)
    d = time.ticks_diff(time.ticks_us(), t)
    vfs.umount('/bench')
    return {'write': rate(SIZE, w), 'read': rate(SIZE, r), 'create': SMALL / (c / 1e6),
            'small_read': SMALL / (rd / 1e6), 'delete': SMALL / (d / 1e6)}

results = {'raw': [], 'lfs': [], 'fat': []}
raw(); files('lfs')  # warm-up
for run in range(RUNS):
    results['raw'].append(raw())
    results['lfs'].append(files('lfs'))
    results['fat'].append(files('fat'))
print(json.dumps(results))
"""

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
    return {"results": res, "ratios": ratios, "samples": raw}


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
    return "\n".join(lines)


def run_storage_bench(quick: bool = False, accel: str = "auto", runs: int | None = None,
                      out: Path | None = None, log=print) -> dict:
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
    cfg = VMConfig(boot="kernel", accel=accel_name, memory="256M", append="root=ram",
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
    report = {"accel": accel_name, "accel_reason": reason, "quick": quick, "runs": runs,
              "bytes": size, "chunk": CHUNK, "small_files": small, "qemu": qemu_version(),
              "host": platform.node(),
              "linux": "not measured: the Linux peer has no virtio-blk driver yet",
              **storage_report(raw)}
    return write_report("storage", report, format_storage_table(report), out, log)
