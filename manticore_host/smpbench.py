"""`invoke bench smp`: what partitioning the cores buys, measured as ratios in one run.

- Isolation: echod's 64 B UDP echo rate and p50/p99 (1 in flight, user networking) alone on
  CPU 0 of a 2-CPU guest; beside `spin` on CPU 1; beside `spin` on CPU 0 (the cooperative
  case, for contrast: spin never yields, so echod starves); beside `churn` (allocation-heavy,
  its heap collected back to back) on CPU 1.
- Channels: the round trip of a message to an app and back (`pingpong`/`pong`) across two
  CPUs and within one, and the wake-up latency of the far end (a halted CPU woken by IPI
  across CPUs; the asyncio hand-over within one).
- Boot: QEMU launch to `>>> ` with -smp 1, 2 and 4 (the cost of bringing the APs up).

Under TCG with MTTCG on a 2-core host every vCPU is a host thread: a spinning vCPU takes a
whole host core, so the figures are emulation's; the ratios are what to read.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from manticore_host.bench import time_boot, write_report
from manticore_host.echobench import (ECHO_PORT, READY, echo_load, free_port, udp_client,
                                      wait_answering)
from manticore_host.qemu import PROMPT, VM, VMConfig, resolve_accel

ECHO_CASES = (
    ("alone", "echod@0"),
    ("spin on CPU 1", "echod@0,spin@1"),
    ("churn on CPU 1", "echod@0,churn@1"),
    ("spin on CPU 0 (same core)", "echod@0,spin@0"),
)
PINGPONG = re.compile(rb"pingpong: (\d+) rounds on CPU (\d+)<->(\d+): median (\d+) us, "
                      rb"p99 (\d+) us, wake median (\d+) us")


def _echo_case(placement: str, accel: str, seconds: float, log) -> dict:
    port = free_port()
    cfg = VMConfig(boot="kernel", cpus=2, memory="256M", accel=accel, net="user",
                   publish=[f"{port}:{ECHO_PORT}/udp", f"{port}:{ECHO_PORT}/tcp"],
                   fw_cfg_cmdline=f"app={placement}")
    with VM(cfg) as vm:
        vm.start(timeout=60)
        vm.console.read_until(READY["echod"], 60)
        with udp_client(("127.0.0.1", port)) as sock:
            try:
                wait_answering(sock, timeout=20)
            except TimeoutError:
                return {"placement": placement, "rate": 0.0, "p50_us": None, "p99_us": None,
                        "received": 0, "lost": 0, "note": "no echo within 20 s"}
            r = echo_load(sock, 64, 1, seconds=seconds, loss_timeout=0.5)
    return {"placement": placement, "rate": r.rate, "p50_us": r.p50_us, "p99_us": r.p99_us,
            "received": r.received, "lost": r.lost}


def _pingpong(placement: str, rounds: int, accel: str) -> dict:
    cfg = VMConfig(boot="kernel", cpus=2, memory="256M", accel=accel,
                   fw_cfg_cmdline=f"app={placement} rounds={rounds}")
    with VM(cfg) as vm:
        vm.start(timeout=60)
        line = vm.console.read_until(PINGPONG, 120 + rounds / 100)
        vm.wait(timeout=30)
    m = PINGPONG.search(line)
    return {"placement": placement, "rounds": int(m.group(1)), "median_us": int(m.group(4)),
            "p99_us": int(m.group(5)), "wake_median_us": int(m.group(6))}


def _ratio(a, b):
    return a / b if a and b else None


def run_smp_bench(quick: bool = False, accel: str = "auto", out: Path | None = None,
                  runs: int | None = None, log=print) -> dict:
    accel_name, reason = resolve_accel(accel)
    seconds = 2.0 if quick else 5.0
    rounds = 200 if quick else 2000
    boot_runs = runs or (1 if quick else 5)
    log(f"bench smp: {'quick' if quick else 'full'} run, accel {accel_name} ({reason})")

    echo = {}
    for label, placement in ECHO_CASES:
        echo[label] = _echo_case(placement, accel_name, seconds, log)
        r = echo[label]
        log(f"  echod, {label:26} {r['rate']:8.0f}/s  p50 {r['p50_us'] or 0:7.0f} us  "
            f"p99 {r['p99_us'] or 0:7.0f} us  lost {r['lost']}")

    channel = {"across CPUs": _pingpong("pingpong@0,pong@1", rounds, accel_name),
               "one CPU": _pingpong("pingpong@0,pong@0", rounds, accel_name)}
    for label, r in channel.items():
        log(f"  channel round trip, {label:12} median {r['median_us']} us  "
            f"p99 {r['p99_us']} us  wake {r['wake_median_us']} us")

    boot = {}
    for cpus in (1, 2, 4):
        cfg = VMConfig(boot="kernel", cpus=cpus, memory="256M", accel=accel_name)
        time_boot(cfg, PROMPT, 60)  # warm-up, discarded
        samples = [time_boot(cfg, PROMPT, 60) for _ in range(boot_runs)]
        boot[str(cpus)] = {"median_s": statistics.median(samples), "samples": samples}
        log(f"  boot to >>> with -smp {cpus}: {boot[str(cpus)]['median_s'] * 1000:.0f} ms")

    alone = echo["alone"]
    ratios = {
        "echo rate, beside spin on CPU 1 / alone": _ratio(echo["spin on CPU 1"]["rate"], alone["rate"]),
        "echo rate, beside churn on CPU 1 / alone": _ratio(echo["churn on CPU 1"]["rate"], alone["rate"]),
        "echo rate, beside spin on CPU 0 / alone": _ratio(echo["spin on CPU 0 (same core)"]["rate"], alone["rate"]),
        "echo p99, beside spin on CPU 1 / alone": _ratio(echo["spin on CPU 1"]["p99_us"], alone["p99_us"]),
        "echo p99, beside churn on CPU 1 / alone": _ratio(echo["churn on CPU 1"]["p99_us"], alone["p99_us"]),
        "channel round trip, across CPUs / one CPU": _ratio(channel["across CPUs"]["median_us"],
                                                           channel["one CPU"]["median_us"]),
        "wake-up, halted CPU by IPI / in-core hand-over": _ratio(
            channel["across CPUs"]["wake_median_us"], channel["one CPU"]["wake_median_us"]),
        "boot, -smp 2 / -smp 1": _ratio(boot["2"]["median_s"], boot["1"]["median_s"]),
        "boot, -smp 4 / -smp 1": _ratio(boot["4"]["median_s"], boot["1"]["median_s"]),
    }
    report = {"accel": accel_name, "accel_reason": reason, "quick": quick,
              "echo_seconds": seconds, "echo": echo, "channel": channel, "boot": boot,
              "ratios": ratios,
              "note": "TCG with MTTCG on the host's cores: absolute figures are emulation's; "
                      "a spinning vCPU takes a whole host core (2 on this machine)."}
    return write_report("smp", report, format_table(report), out, log)


def format_table(report: dict) -> str:
    lines = [f"{'echod 64 B x1 (user net), 2 CPUs':40} {'rate/s':>9} {'p50 us':>8} {'p99 us':>8} {'lost':>5}"]
    for label, r in report["echo"].items():
        lines.append(f"{label:40} {r['rate']:9.0f} {r['p50_us'] or 0:8.0f} "
                     f"{r['p99_us'] or 0:8.0f} {r['lost']:5d}")
    lines.append("")
    lines.append(f"{'channel round trip':40} {'median us':>9} {'p99 us':>8} {'wake us':>8}")
    for label, r in report["channel"].items():
        lines.append(f"{label:40} {r['median_us']:9d} {r['p99_us']:8d} {r['wake_median_us']:8d}")
    lines.append("")
    for cpus, b in report["boot"].items():
        lines.append(f"boot to >>> with -smp {cpus:<23} {b['median_s'] * 1000:9.0f} ms")
    lines.append("")
    for what, v in report["ratios"].items():
        lines.append(f"{what:52} {'-' if v is None else f'{v:.2f}x'}")
    return "\n".join(lines)
