"""`invoke bench echo`: UDP echo request/response rate and latency against echod (lwIP
sockets under asyncio) and rawecho (the raw NIC queue: Ethernet/IPv4/UDP parsed by the app),
and against the same apps/echod.py on the Linux + MicroPython peer (linuxpeer.py; path
"linux-echod"), whose rates are the baseline of the ratios.

For each app (echod, rawecho, both on 7777/udp), each path (QEMU user networking through a 127.0.0.1 hostfwd; a tap device inside a
network namespace made for the run) and for 64- and 1400-byte payloads at 1 and at 32
requests in flight, a closed-loop load generator measures replies per second and the
round-trip latency (p50, p99).  The same generator runs against a host-local UDP echo server
on 127.0.0.1 (tools/udpecho, C) in the same run: that figure is the generator's own ceiling,
and the guest's figures mean something only while they stay well below it.

All traffic goes to 127.0.0.1 or to the guest inside the namespace; nothing else.
Results: a table on stdout and build/bench/echo.json.
"""

from __future__ import annotations

import math
import platform
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from manticore_host import image
from manticore_host.bench import write_report
from manticore_host.qemu import VM, VMConfig, resolve_accel

ECHO_PORT = 7777
LISTENING = b"echod: listening on 7777/udp"
APPS = ("echod", "rawecho")
READY = {"echod": LISTENING, "rawecho": b"rawecho: ", "rawecho-poll": b"rawecho: "}
LINUX_APP = "linux-echod"           # apps/echod.py on the Linux + MicroPython peer
USER_GUEST_IP = "10.0.2.15"         # slirp's guest address; rawecho needs it on the cmdline
SIZES = (64, 1400)
INFLIGHT = (1, 32)
LOSS_TIMEOUT = 0.1                  # a request unanswered this long is given up (and
                                    # replaced); lost if no reply came even later
LATE_WAIT = 0.5                     # after a run: how long given-up requests may still answer
SEQ_BYTES = 8                       # each request starts with its sequence number
UDPECHO_SRC = image.ROOT / "tools" / "udpecho" / "udpecho.c"


# -- the load generator ---------------------------------------------------------------------

@dataclass
class EchoResult:
    """One closed-loop run: `received` good replies in `seconds`."""
    size: int
    inflight: int
    sent: int = 0
    received: int = 0
    lost: int = 0                   # given up after the loss timeout and never answered
    late: int = 0                   # given up after the loss timeout, answered later (not lost:
                                    # the guest answered; the latency spike is in p99/max)
    corrupt: int = 0                # a reply whose bytes differ from the request
    seconds: float = 0.0
    rate: float = 0.0               # replies per second
    p50_us: float | None = None
    p99_us: float | None = None
    max_us: float | None = None
    latencies_us: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("latencies_us")
        return d


def percentile(sorted_values: list[float], p: float) -> float | None:
    """The p-th percentile (0..100) of an ascending list, nearest-rank."""
    if not sorted_values:
        return None
    rank = math.ceil(p / 100 * len(sorted_values))     # 1-based
    k = max(0, min(len(sorted_values) - 1, rank - 1))
    return sorted_values[k]


def _payload(size: int, seq: int, filler: bytes) -> bytes:
    if size < SEQ_BYTES:
        raise ValueError(f"payload size {size}: the generator needs at least {SEQ_BYTES} bytes")
    return seq.to_bytes(SEQ_BYTES, "little") + filler[:size - SEQ_BYTES]


def echo_load(sock: socket.socket, size: int, inflight: int, *, seconds: float | None = None,
              count: int | None = None, loss_timeout: float = 1.0,
              deadline: float | None = None) -> EchoResult:
    """Closed loop on a *connected* UDP socket: keep `inflight` requests outstanding, send a
    new one for every reply (and for every request given up after `loss_timeout`), for
    `seconds` of wall time or until `count` requests were sent (and answered or given up).  Replies are checked byte for
    byte.  `deadline` (time.monotonic) bounds the whole run in any case.  A request given up
    is `late` if its reply comes after all (within LATE_WAIT after the run), else `lost`:
    a loaded host can hold a reply longer than the loss timeout without the guest dropping
    anything."""
    if (seconds is None) == (count is None):
        raise ValueError("give exactly one of seconds or count")
    if inflight < 1:
        raise ValueError(f"inflight {inflight}: expected >= 1")
    filler = bytes((i * 7 + 13) & 0xFF for i in range(max(size, SEQ_BYTES)))
    res = EchoResult(size, inflight)
    outstanding: OrderedDict[int, int] = OrderedDict()    # seq -> send time (ns)
    given_up: set[int] = set()                            # seqs counted as lost so far
    lat = res.latencies_us
    buf = bytearray(65536)
    clock = time.perf_counter_ns
    seq = 0
    t0 = clock()
    stop_ns = t0 + int(seconds * 1e9) if seconds is not None else None
    hard_stop = deadline if deadline is not None else time.monotonic() + (
        (seconds or 0) + 60 if count is None else 3600)
    loss_ns = int(loss_timeout * 1e9)
    sock.settimeout(min(loss_timeout, 0.2))

    def send_one():
        nonlocal seq
        seq += 1
        outstanding[seq] = clock()
        sock.send(_payload(size, seq, filler))
        res.sent += 1

    def want_more(now):
        if stop_ns is not None:
            return now < stop_ns
        return res.sent < count

    while len(outstanding) < inflight and want_more(clock()):
        send_one()
    while outstanding:
        if time.monotonic() > hard_stop:
            break
        try:
            n = sock.recv_into(buf)
        except socket.timeout:
            n = -1
        except ConnectionRefusedError:  # ICMP port unreachable from an earlier send
            n = -1
        now = clock()
        if n >= SEQ_BYTES:
            got = int.from_bytes(buf[:SEQ_BYTES], "little")
            sent_at = outstanding.pop(got, None)
            if sent_at is not None:
                if buf[:n] == _payload(size, got, filler):
                    res.received += 1
                    lat.append((now - sent_at) / 1000)
                else:
                    res.corrupt += 1
            elif got in given_up:
                given_up.discard(got)
                res.late += 1
        # give up on requests older than the loss timeout
        while outstanding:
            oldest, sent_at = next(iter(outstanding.items()))
            if now - sent_at < loss_ns:
                break
            del outstanding[oldest]
            given_up.add(oldest)
        while len(outstanding) < inflight and want_more(now):
            send_one()
        if stop_ns is not None and now >= stop_ns and not outstanding:
            break
    given_up.update(outstanding)
    res.seconds = (clock() - t0) / 1e9
    # replies still on their way: late, not lost (the rate above does not count them)
    wait_until = time.monotonic() + LATE_WAIT if given_up else 0
    while given_up and time.monotonic() < wait_until:
        sock.settimeout(max(0.01, wait_until - time.monotonic()))
        try:
            n = sock.recv_into(buf)
        except (socket.timeout, ConnectionRefusedError):
            break
        if n >= SEQ_BYTES:
            got = int.from_bytes(buf[:SEQ_BYTES], "little")
            if got in given_up:
                given_up.discard(got)
                res.late += 1
    res.lost = len(given_up)
    res.rate = res.received / res.seconds if res.seconds > 0 else 0.0
    lat.sort()
    res.p50_us, res.p99_us = percentile(lat, 50), percentile(lat, 99)
    res.max_us = lat[-1] if lat else None
    return res


def udp_client(addr: tuple[str, int], factory=None) -> socket.socket:
    """A UDP socket connected to `addr` (created by `factory`, e.g. NetNamespace.socket)."""
    sock = factory(socket.AF_INET, socket.SOCK_DGRAM) if factory else \
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.connect(addr)
    return sock


# -- the host-local reference server --------------------------------------------------------

class HostEcho:
    """tools/udpecho (C) on 127.0.0.1, compiled into build/tools/ on first use; a Python echo
    in a subprocess when no C compiler is there.  A context manager; `.port`, `.kind`."""

    PY_FALLBACK = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.bind(('127.0.0.1',0)); print('udpecho: %d' % s.getsockname()[1], flush=True)\n"
        "while True:\n"
        "    d,a=s.recvfrom(65536); s.sendto(d,a)\n")

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.kind = ""

    @staticmethod
    def binary() -> Path | None:
        src = UDPECHO_SRC
        out = image.BUILD / "tools" / "udpecho"
        if out.is_file() and out.stat().st_mtime >= src.stat().st_mtime:
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            r = subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(src)],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out if r.returncode == 0 else None

    def __enter__(self) -> "HostEcho":
        exe = self.binary()
        argv = [str(exe), "0"] if exe else [sys.executable, "-c", self.PY_FALLBACK]
        self.kind = "C tools/udpecho" if exe else "Python (no C compiler)"
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("udpecho: "):
            self.__exit__()
            raise RuntimeError(f"host echo server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None


# -- the guest --------------------------------------------------------------------------------

def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now for both UDP and TCP (for hostfwd
    rules, which QEMU refuses to start with if the host port is taken).  Each port is held
    bound in both protocols until all are found: closing one before asking for the next
    let the kernel hand out the same port twice, and two forwards of one VM then collided
    (CI: "Could not set up host forwarding rule")."""
    held, ports = [], []
    try:
        for _ in range(64 * count):
            if len(ports) == count:
                break
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(udp)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(tcp)
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:             # taken for TCP: keep the UDP one held, try another
                continue
            ports.append(port)
    finally:
        for s in held:
            s.close()
    if len(ports) < count:
        raise OSError(f"found only {len(ports)} of {count} ports free for UDP and TCP")
    return ports


def free_port() -> int:
    """A port free on 127.0.0.1 right now for both UDP and TCP (see free_ports)."""
    return free_ports(1)[0]


def echod_config(net: str, accel: str, port: int | None = None, app: str = "echod",
                 **kw) -> VMConfig:
    """echod (or rawecho) in a VM: net "user" (UDP and TCP 7777 forwarded from
    127.0.0.1:port) or "tap".  rawecho gets port=7777 on its command line, and under user
    networking also slirp's guest address (ip=10.0.2.15: it does no DHCP; slirp learns its
    MAC through ARP, which rawecho answers); on tap the launcher adds ip=192.168.77.2."""
    if net == "user":
        kw["publish"] = [f"{port}:{ECHO_PORT}/udp", f"{port}:{ECHO_PORT}/tcp"]
    if app.startswith("rawecho"):
        words = [f"port={ECHO_PORT}"] + ([f"ip={USER_GUEST_IP}"] if net == "user" else [])
        if app == "rawecho-poll":       # busy-poll: the app owns the core, no RX interrupts
            words.append("poll=1")
            app = "rawecho"
        kw["append"] = " ".join([kw.get("append", "")] + words).strip()
    return VMConfig(boot="kernel", app=app, net=net, accel=accel, **kw)


def start_echod(vm: VM, timeout: float = 60, app: str = "echod") -> None:
    vm.start()
    vm.console.read_until(READY[app], timeout)


def wait_answering(sock: socket.socket, timeout: float = 20) -> None:
    """Until the echo answers (the first datagram may wait for ARP or a DHCP lease)."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            sock.send(b"ping-ping")
            if sock.recv(64) == b"ping-ping":
                return
        except (socket.timeout, ConnectionRefusedError):
            pass
    raise TimeoutError(f"no echo within {timeout:g} s")


# -- the benchmark ----------------------------------------------------------------------------

def run_cases(sock: socket.socket, seconds: float, log, label: str) -> dict:
    """Every case, one after the other, on one socket (the host-local reference)."""
    results = {}
    for size in SIZES:
        for inflight in INFLIGHT:
            r = echo_load(sock, size, inflight, seconds=seconds, loss_timeout=LOSS_TIMEOUT)
            results[f"{size}B x{inflight}"] = r.summary()
            log(f"  {label:10} {size:5} B  {inflight:2} in flight  {_row(r.summary())}")
            _drain(sock)
    return results


def _drain(sock: socket.socket) -> None:
    """Let late replies of the previous case arrive and discard them."""
    sock.settimeout(0.05)
    try:
        for _ in range(10000):
            sock.recv(65536)
    except (socket.timeout, ConnectionRefusedError):
        pass


def _row(r: dict) -> str:
    if "error" in r:
        return f"error: {r['error'][:70]}"
    p50 = f"{r['p50_us']:.0f}" if r.get("p50_us") is not None else "-"
    p99 = f"{r['p99_us']:.0f}" if r.get("p99_us") is not None else "-"
    return (f"{r['rate']:9.0f}/s  p50 {p50:>7} us  p99 {p99:>7} us  "
            f"lost {r['lost']}/{r['sent']}" + (f" late {r['late']}" if r.get("late") else "")
            + (f" corrupt {r['corrupt']}" if r["corrupt"] else ""))


def run_echo_bench(quick: bool = False, accel: str = "auto", seconds: float | None = None,
                   nets: tuple[str, ...] = ("user", "tap"), out: Path | None = None,
                   log=print, apps: tuple[str, ...] = APPS, linux: bool = True) -> dict:
    """Every case against each app of this project and (linux=True) against the same
    apps/echod.py on the Linux + MicroPython peer, over each net; the host-local ceiling
    first."""
    accel_name, reason = resolve_accel(accel)
    seconds = seconds or (1.0 if quick else 5.0)
    log(f"bench echo: {seconds:g} s per case, accel {accel_name} ({reason})")
    results: dict[str, dict] = {}
    notes: dict[str, str] = {}

    with HostEcho() as host:
        sock = udp_client(("127.0.0.1", host.port))
        try:
            results["host-local"] = run_cases(sock, seconds, log, "host-local")
        finally:
            sock.close()
        host_kind = host.kind

    guests = [(app, None) for app in apps]
    linux_peer = None
    report_breakdown = None
    if "rawecho" in apps:
        guests.append(("rawecho-poll", None))
    if linux:
        try:
            from manticore_host import linuxpeer
            linux_peer = linuxpeer.ensure_image(log=log)
            guests.append((LINUX_APP, linux_peer))
        except Exception as e:          # no peer image: say so, measure the rest
            notes[LINUX_APP] = "peer image unavailable: " + \
                (str(e).splitlines() or [type(e).__name__])[0]
            log(f"bench echo: {notes[LINUX_APP]}")
    if "tap" in nets and "rawecho" in apps:
        for pairs, cpus in ((1, 1), (2, 1), (2, 2)):
            path = f"rawecho-{pairs}q{'%dc' % cpus if cpus > 1 else ''}/tap-mq"
            try:
                results[path] = _bench_multiqueue(accel_name, seconds, log, pairs, cpus)
            except Exception as e:
                first = (str(e).splitlines() or [type(e).__name__])[0]
                log(f"  {path:19} error: {first}")
                results[path] = {"error": first}
        notes["multiqueue"] = (f"rawecho-Nq/tap-mq: {MQ_FLOWS} flows x {MQ_INFLIGHT} in flight "
                               "on an N-queue-pair tap, rawecho serving all N from one app on "
                               "one CPU; rawecho-2q2c: -smp 2, rawecho@0 on pair 0 and "
                               "rawecho@1 on pair 1. THIS HOST HAS "
                               f"{_host_cores()} CORE(S) shared by both vCPUs, QEMU's tap "
                               "backend and the generator: the 2-CPU scaling it shows is a "
                               "floor, not the guest's limit")
        try:
            report_breakdown = bench_breakdown(accel_name, seconds, log, linux_peer,
                                               cases=QUICK_BREAKDOWN if quick else None)
        except Exception as e:
            report_breakdown = {"error": (str(e).splitlines() or [type(e).__name__])[0]}
    for app, peer in guests:
        for net in nets:
            path = f"{app}/{net}"
            try:
                results[path] = _bench_guest(net, accel_name, seconds, log, app, peer)
            except Exception as e:          # report it and go on with the other path
                first = (str(e).splitlines() or [type(e).__name__])[0]
                log(f"  {path:19} error: {first}")
                results[path] = {"error": first}

    report = {"accel": accel_name, "accel_reason": reason, "quick": quick,
              "apps": [app for app, _ in guests], "nets": list(nets),
              "seconds_per_case": seconds, "host_echo": host_kind, "notes": notes,
              "host": platform.node(), "results": results,
              "ratios": echo_ratios(results), "breakdown": report_breakdown}
    return write_report("echo", report, format_table(report), out, log)


MQ_FLOWS = 8
MQ_INFLIGHT = 4


def _host_cores() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _bench_multiqueue(accel: str, seconds: float, log, pairs: int, cpus: int = 1) -> dict:
    """rawecho on a tap with `pairs` queue pairs (all served by rawecho: a pair nobody holds
    would black-hole the flows the tap hashes to it), under MQ_FLOWS concurrent flows (one
    thread and source port each; the tap spreads flows over its queues by hash). cpus=2:
    one rawecho per CPU, each on its own pair (queue@K=K), the pair's interrupts on that CPU."""
    import threading
    from manticore_host.netns import TapAddressing, available
    ok, why = available()
    if not ok:
        return {"error": f"tap skipped: {why}"}
    if cpus > 1:
        if cpus != pairs:
            raise ValueError("one pair per CPU: pairs must equal cpus")
        app = ",".join(f"rawecho@{c}" for c in range(cpus))
        words = " ".join(f"queue@{c}={c}" for c in range(cpus))
    else:
        app, words = "rawecho", "queue=" + ",".join(str(q) for q in range(pairs))
    cfg = VMConfig(boot="kernel", app=app, net="tap", queues=pairs, accel=accel, cpus=cpus,
                   memory="256M" if cpus > 1 else VMConfig.memory,
                   append=f"port={ECHO_PORT} {words}")
    results = {}
    label = f"rawecho-{pairs}q{'%dc' % cpus if cpus > 1 else ''}/tap-mq"
    with VM(cfg) as vm:
        vm.start()
        deadline = time.monotonic() + 120
        while vm.console.log.count(READY["rawecho"]) < cpus:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {cpus} rawecho line(s) on the console")
            time.sleep(0.05)
        socks = [udp_client((TapAddressing().guest_ip, ECHO_PORT), vm.netns.socket)
                 for _ in range(MQ_FLOWS)]
        try:
            for s in socks:
                wait_answering(s)
            size = SIZES[0]
            out: list = [None] * len(socks)

            def run(i):
                out[i] = echo_load(socks[i], size, MQ_INFLIGHT, seconds=seconds,
                                   loss_timeout=LOSS_TIMEOUT)
            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(socks))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            lat = sorted(x for r in out for x in r.latencies_us)
            total = {"size": size, "inflight": MQ_FLOWS * MQ_INFLIGHT,
                     "sent": sum(r.sent for r in out), "received": sum(r.received for r in out),
                     "lost": sum(r.lost for r in out), "late": sum(r.late for r in out),
                     "corrupt": sum(r.corrupt for r in out),
                     "rate": sum(r.rate for r in out),
                     "p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99)}
            results[f"{size}B x{MQ_FLOWS * MQ_INFLIGHT}"] = total
            log(f"  {label:19} {size:5} B  {MQ_FLOWS}x{MQ_INFLIGHT} flows  "
                f"{_row(total)}")
        finally:
            for s in socks:
                s.close()
    return results


# -- where the time goes (tap, 64 B, 1 in flight) ----------------------------------------------

# (label, app, extra command-line words, cpus, cpu the app runs on); guest counters come from
# _smp.cpus() through the REPL beside the app (repl=1, idle at the prompt during the run).
BREAKDOWN = (
    ("echod", "echod", "", 1, 0),
    ("rawecho-irq", "rawecho", "spin=0", 1, 0),      # one interrupt-driven wake-up per echo
    ("rawecho", "rawecho", "", 1, 0),                # hybrid polling (the default, spin=300)
    ("rawecho-poll", "rawecho", "poll=1", 1, 0),
    ("rawecho-poll@1", "rawecho@1", "poll=1", 2, 1),  # busy-polling on a CPU of its own
)
_SNAP = ("import _smp,_nic,json\nc=_smp.cpus()[{cpu}]\ns=_nic.queue(0,0).stats()\n"
         "print('@@'+json.dumps([c[4],c[5],c[6],s['echo_cycles'],s['echo_frames']]))")


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _guest_snap(vm, cpu: int) -> list:
    import json
    out, _ = vm.console.raw_exec(_SNAP.format(cpu=cpu), timeout=30)
    for line in out.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError(f"no counters from the guest: {out[-200:]!r}")


def _tsc_mhz(vm) -> float:
    out, _ = vm.console.raw_exec("import machine\nprint('@@%d' % machine.freq())", timeout=30)
    for line in out.splitlines():
        if line.startswith("@@"):
            return int(line[2:]) / 1e6
    return 0.0


QUICK_BREAKDOWN = ("rawecho-irq", "rawecho")    # --quick (bench all in the suite): 2 boots


def bench_breakdown(accel: str, seconds: float, log, peer=None, cases=None) -> dict:
    """Where the time of one echo goes over tap at 64 B, 1 in flight: the wall time per echo
    beside the guest's busy time per echo (its TSC minus the time it spent halted), the C echo
    helper's own cycles, interrupts per echo, the QEMU process's CPU time per echo (vCPU and
    the tap backend) and the load generator's CPU time per echo (time.thread_time)."""
    from manticore_host.netns import TapAddressing, available
    ok, why = available()
    if not ok:
        return {"error": f"tap skipped: {why}"}
    wanted = cases
    cases = [c for c in list(BREAKDOWN) + ([(LINUX_APP, None, "", 1, 0)] if peer is not None
                                           else []) if wanted is None or c[0] in wanted]
    results = {}
    for label, app, words, cpus, cpu in cases:
        try:
            if app is None:
                from manticore_host import linuxpeer
                cfg = linuxpeer.peer_config(peer, mode="app", app="echod", net="tap",
                                            accel=accel)
                ready = LISTENING
            else:
                cfg = VMConfig(boot="kernel", app=app, net="tap", accel=accel, cpus=cpus,
                               memory="256M" if cpus > 1 else VMConfig.memory,
                               append=" ".join(w for w in (f"port={ECHO_PORT}" if "raw" in app
                                                          else "", words, "repl=1") if w))
                ready = READY["rawecho" if "raw" in app else "echod"]
            with VM(cfg) as vm:
                vm.start()
                vm.console.read_until(ready, 120)
                sock = udp_client((TapAddressing().guest_ip, ECHO_PORT), vm.netns.socket)
                try:
                    wait_answering(sock)
                    echo_load(sock, 64, 1, seconds=min(1.0, seconds), loss_timeout=LOSS_TIMEOUT)
                    mhz = _tsc_mhz(vm) if app else 0.0
                    a = _guest_snap(vm, cpu) if app else None
                    q0, c0 = _proc_cpu_s(vm.proc.pid), time.thread_time()
                    r = echo_load(sock, 64, 1, seconds=seconds, loss_timeout=LOSS_TIMEOUT)
                    q1, c1 = _proc_cpu_s(vm.proc.pid), time.thread_time()
                    b = _guest_snap(vm, cpu) if app else None
                finally:
                    sock.close()
            n = max(r.received, 1)
            row = {"rate": r.rate, "wall_us": 1e6 / r.rate if r.rate else None,
                   "p50_us": r.p50_us, "p99_us": r.p99_us,
                   "qemu_cpu_us": (q1 - q0) * 1e6 / n, "client_cpu_us": (c1 - c0) * 1e6 / n}
            if a is not None:
                up, idle = b[0] - a[0], b[1] - a[1]
                row["guest_busy_us"] = (up - idle) / n
                row["guest_busy_pct"] = 100 * (up - idle) / up if up else None
                row["irqs_per_echo"] = (b[2] - a[2]) / n
                frames = b[4] - a[4]
                row["c_echo_us"] = ((b[3] - a[3]) / frames / mhz) if frames and mhz else None
            results[label] = row
            log("  " + _breakdown_row(label, row))
        except Exception as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
            log(f"  breakdown {label}: error: {first}")
            results[label] = {"error": first}
    return results


def _goal_lines(res: dict) -> list[str]:
    """The issue's goals at 64 B, 1 in flight, per net, as met or not in this run."""
    out = []
    case = "64B x1"
    for net in ("user", "tap"):
        get = lambda app: (res.get(f"{app}/{net}") or {}).get(case)   # noqa: E731
        raw, echod, linux = get("rawecho"), get("echod"), get(LINUX_APP)
        if not raw or not echod or "rate" not in raw or "rate" not in echod:
            continue
        checks = [("rawecho >= 1.5x echod", raw["rate"] / echod["rate"], 1.5)]
        if linux and linux.get("rate"):
            checks.append(("rawecho >= 3x linux", raw["rate"] / linux["rate"], 3.0))
        words = [f"{what}: {x:.2f}x {'met' if x >= want else 'NOT met'}"
                 for what, x, want in checks]
        # At 1 in flight the rate is 1 / mean latency, which a loaded host's stalls (p90 and
        # beyond) dominate; the median round trip says what the guest path itself costs.
        if raw.get("p50_us") and echod.get("p50_us"):
            words.append(f"median round trip echod/rawecho {echod['p50_us'] / raw['p50_us']:.2f}x"
                         + (f", linux/rawecho {linux['p50_us'] / raw['p50_us']:.2f}x"
                            if linux and linux.get("p50_us") else ""))
        p99 = [r.get("p99_us") for r in (raw, echod, linux) if r]
        if linux and None not in p99:
            ok = p99[0] <= p99[1] <= 0.5 * p99[2]
            words.append(f"p99 rawecho {p99[0]:.0f} <= echod {p99[1]:.0f} <= 0.5x linux "
                         f"{0.5 * p99[2]:.0f} us: {'met' if ok else 'NOT met'}")
        out.append(f"goals {net} {case}: " + "; ".join(words))
    return out


def _breakdown_verdict(bd: dict) -> list[str]:
    """What the breakdown says, in words, from the figures of this run."""
    out = []
    irq, hyb = bd.get("rawecho-irq", {}), bd.get("rawecho", {})
    if irq.get("guest_busy_us") and irq.get("c_echo_us"):
        out.append(f"  an interrupt-driven echo costs the guest {irq['guest_busy_us']:.0f} us, of "
                   f"which the C echo itself {irq['c_echo_us']:.1f} us: the rest is the wake-up "
                   "(MSI, HLT exit, soft IRQ, event, asyncio) and the app's loop")
    if hyb.get("wall_us") and irq.get("wall_us"):
        out.append(f"  hybrid polling (spin) takes the wake-up out: {irq['wall_us']:.0f} -> "
                   f"{hyb['wall_us']:.0f} us per echo, irqs/echo "
                   f"{irq.get('irqs_per_echo') or 0:.2f} -> {hyb.get('irqs_per_echo') or 0:.2f}")
    for label, r in bd.items():
        if not r.get("wall_us") or r.get("client_cpu_us") is None:
            continue
        share = r["client_cpu_us"] / r["wall_us"]
        words = [f"generator busy {share * 100:.0f}% of each echo"
                 + (" (generator-bound: a floor)" if share > 0.5 else " (not the bottleneck)")]
        busy, qemu = r.get("guest_busy_us"), r.get("qemu_cpu_us")
        if busy is not None and qemu is not None:
            if busy > qemu:
                words.append(f"guest busy {busy:.0f} us > QEMU's CPU {qemu:.0f} us: the vCPU "
                             "waited for a host core (host contention)")
            else:
                words.append(f"QEMU outside guest time {qemu - busy:.0f} us (tap backend, "
                             "device emulation)")
        out.append(f"  {label}: " + "; ".join(words))
    return out


def _breakdown_row(label: str, r: dict) -> str:
    if "error" in r:
        return f"{label:15} error: {r['error'][:70]}"

    def f(key, fmt="{:7.1f}"):
        return fmt.format(r[key]) if r.get(key) is not None else f"{'-':>7}"
    return (f"{label:15} {r['rate']:7.0f}/s  wall {f('wall_us')} us/echo  guest busy "
            f"{f('guest_busy_us')} us ({f('guest_busy_pct', '{:3.0f}')}%)  C echo "
            f"{f('c_echo_us', '{:5.1f}')} us  irqs {f('irqs_per_echo', '{:4.2f}')}  "
            f"QEMU cpu {f('qemu_cpu_us')} us  client cpu {f('client_cpu_us')} us  "
            f"p50 {f('p50_us', '{:5.0f}')} p99 {f('p99_us', '{:5.0f}')}")


def echo_ratios(results: dict) -> dict[str, dict[str, float]]:
    """Replies/s of each of this project's apps over the Linux peer's echod, per net and
    case ("echod/user vs linux-echod/user": {"64B x1": 1.4, ...})."""
    ratios = {}
    for path, cases in results.items():
        app, _, net = path.partition("/")
        peer = results.get(f"{LINUX_APP}/{net}")
        if app in (LINUX_APP, "host-local") or not peer or "error" in peer or \
                "error" in cases:
            continue
        ratios[f"{path} vs {LINUX_APP}/{net}"] = {
            case: r["rate"] / peer[case]["rate"] for case, r in cases.items()
            if case in peer and peer[case]["rate"] > 0}
    # the raw queue against the socket path, and 2 queue pairs against 1
    for mine, base in [(f"{a}/{n}", f"echod/{n}") for n in ("user", "tap")
                       for a in ("rawecho", "rawecho-poll")] + \
            [("rawecho-2q/tap-mq", "rawecho-1q/tap-mq"),
             ("rawecho-2q2c/tap-mq", "rawecho-1q/tap-mq"),
             ("rawecho-2q2c/tap-mq", "rawecho-2q/tap-mq")]:
        a, b = results.get(mine), results.get(base)
        if not a or not b or "error" in a or "error" in b:
            continue
        ratios[f"{mine} vs {base}"] = {case: r["rate"] / b[case]["rate"]
                                       for case, r in a.items()
                                       if case in b and b[case]["rate"] > 0}
    return ratios


def _bench_guest(net: str, accel: str, seconds: float, log, app: str = "echod",
                 peer=None) -> dict:
    """Every case on a freshly booted guest, so that no case inherits the heap or the
    queues that an earlier one left behind."""
    if net == "tap":
        from manticore_host.netns import available
        ok, why = available()
        if not ok:
            return {"error": f"tap skipped: {why}"}
    results = {}
    for size in SIZES:
        for inflight in INFLIGHT:
            with _echod_session(net, accel, app, peer) as sock:
                r = echo_load(sock, size, inflight, seconds=seconds, loss_timeout=LOSS_TIMEOUT)
            results[f"{size}B x{inflight}"] = r.summary()
            log(f"  {app + '/' + net:19} {size:5} B  {inflight:2} in flight  "
                f"{_row(r.summary())}")
    return results


@contextmanager
def _echod_session(net: str, accel: str, app: str = "echod", peer=None):
    """A booted echod (or rawecho, or the peer's echod) and a UDP socket connected to it
    (in the VM's namespace for tap)."""
    port = free_port() if net == "user" else None
    if peer is not None:
        from manticore_host import linuxpeer
        publish = [f"{port}:{ECHO_PORT}/udp", f"{port}:{ECHO_PORT}/tcp"] \
            if net == "user" else []
        cfg = linuxpeer.peer_config(peer, mode="app", app="echod", net=net, accel=accel,
                                    publish=publish)
        ready = LISTENING
    else:
        cfg, ready = echod_config(net, accel, port, app=app), READY[app]
    with VM(cfg) as vm:
        vm.start()
        vm.console.read_until(ready, 120)
        if net == "user":
            sock = udp_client(("127.0.0.1", port))
        else:
            from manticore_host.netns import TapAddressing
            sock = udp_client((TapAddressing().guest_ip, ECHO_PORT), vm.netns.socket)
        try:
            wait_answering(sock)
            yield sock
        finally:
            sock.close()


def format_table(report: dict) -> str:
    res = report["results"]
    lines = [f"{'path':19} {'payload':>8} {'in flight':>9}  {'replies/s':>10} "
             f"{'p50 us':>8} {'p99 us':>8}  {'lost':>10}"]
    guests = [p for p in res if p != "host-local"]
    for path in ["host-local"] + guests:
        cases = res.get(path)
        if cases is None:
            continue
        if "error" in cases:
            lines.append(f"{path:19} error: {cases['error']}")
            continue
        for key, r in cases.items():
            size, inflight = key.split(" x")
            p50 = f"{r['p50_us']:.0f}" if r.get("p50_us") is not None else "-"
            p99 = f"{r['p99_us']:.0f}" if r.get("p99_us") is not None else "-"
            lines.append(f"{path:19} {size:>8} {inflight:>9}  {r['rate']:10.0f} "
                         f"{p50:>8} {p99:>8}  {r['lost']:>4}/{r['sent']:<5}"
                         + (f" (+{r['late']} late)" if r.get("late") else ""))
    local = res.get("host-local", {})
    for path in guests:
        cases = res.get(path, {})
        if "error" in cases or not cases:
            continue
        worst = max((cases[k]["rate"] / local[k]["rate"]) for k in cases
                    if k in local and local[k]["rate"] > 0)
        lines.append(f"{path}: at most {worst * 100:.1f}% of the generator's host-local rate "
                     f"({'the guest is the bottleneck' if worst < 0.5 else 'generator-bound: figures are a floor'})")
    for pair, cases in report.get("ratios", {}).items():
        lines.append(f"{pair}: " + ", ".join(f"{case} {x:.2f}x" for case, x in cases.items()))
    lines += _goal_lines(res)
    bd = report.get("breakdown")
    if bd:
        lines.append("where the time goes, tap, 64 B, 1 in flight (guest busy = TSC minus halted "
                     "time; QEMU cpu = the whole QEMU process; client = the generator's thread):")
        if "error" in bd:
            lines.append(f"  error: {bd['error']}")
        else:
            lines += ["  " + _breakdown_row(label, r) for label, r in bd.items()]
            lines += _breakdown_verdict(bd)
    for what, note in report.get("notes", {}).items():
        lines.append(f"{what}: {note}")
    lines.append(f"lost: no reply at all; late: given up after {LOSS_TIMEOUT * 1000:.0f} ms and "
                 f"answered later (within {LATE_WAIT:g} s after the run): a host stall, not a drop")
    lines.append(f"host-local reference: {report['host_echo']}; accel {report['accel']} "
                 f"({report['accel_reason']}); {report['seconds_per_case']:g} s per case")
    return "\n".join(lines)
