"""Benchmark `check` where devices are far away (issue 16), every figure a ratio measured in one run:

1. latency: `canteen-ops check --skip stream,picture` on 1,000 mixed Hikvision/Dahua/ONVIF lab devices with the
   lab's `slow` fault (40 ms added to every answer, per answer, by the lab's HTTP core) against the same fleet
   without it (target ≤ 1.5×);
2. black holes: the same with 20 devices black-holed (connections accepted, never answered) among the slow ones,
   against the slow fleet alone (target: at most one device timeout more, 5 s in the lab's inventory);
3. naive loop: the loopback fleet's checks (inventory load + run_checks in a fresh process, as bench_check.py
   measures them) against the issue's naive loop (one onvif-zeep ONVIFCamera per device, sequentially), whose
   20-device sample is run half just before and half just after the check and extrapolated (target ≥ 30×);
   beside it the ceiling: the same naive loop against the fleet's serial CPU (the checks with one worker, plus
   the lab's CPU meanwhile) divided by the cores — what perfect concurrency with no overhead would reach.

    .venv/bin/python bench/bench_latency.py                 # 3 rounds (about 4 minutes on 2 cores)
    .venv/bin/python bench/bench_latency.py --rounds 1 --latency-ms 40 --blackholes 20

Each round measures every variant once, in turn, against the same lab, so the machine's drift (other jobs share
its 2 cores) hits both sides of a ratio alike; the report gives every round and the median ratio. The lab runs
in its own process: its CPU time is read from /proc (it must not be the bottleneck), and the peak number of
connections it holds open during a run is sampled from /proc/<pid>/fd (how many devices were in flight).
Only loopback addresses (127.x) are used.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_check import FLEETS, NO_STREAM, Lab, _joined, default_processes, measure  # noqa: E402

from canteen_ops.lab.control import request  # noqa: E402


class FdPeak:
    """Peak number of open sockets of a process, sampled every 50 ms while running."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.base = self._count()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _count(self) -> int:
        n = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                n += os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith("socket:")
            except OSError:
                pass
        return n

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._count() - self.base)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def cli_check(lab: Lab, workdir: Path, tag: str) -> dict:
    """The whole command as a technician runs it (fresh log each time), timed from outside."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), CANTEEN_OPS_DB=str(workdir / f"log-{tag}.db"))
    cmd = [sys.executable, "-m", "canteen_ops", "-i", lab.inventory, "check", "--skip", "stream,picture", "-q"]
    cpu0, fds = lab.cpu_s(), FdPeak(lab.proc.pid)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    wall = time.perf_counter() - t0
    peak = fds.stop()
    if p.returncode not in (0, 1, 2, 3):
        raise SystemExit(f"check failed ({tag}, exit {p.returncode}): {p.stderr[-3000:]}")
    problems = [line for line in p.stdout.splitlines() if line.strip()]
    return {"wall_s": round(wall, 2), "lab_cpu_s": round(lab.cpu_s() - cpu0, 2), "lab_peak_connections": peak,
            "exit": p.returncode, "problem_lines": len(problems),
            "crit": sum(line.startswith("CRIT") for line in problems)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--latency-ms", type=int, default=40)
    p.add_argument("--blackholes", type=int, default=20)
    p.add_argument("--naive-sample", type=int, default=20)
    p.add_argument("--first-address", default=FLEETS["mixed"][3])
    a = p.parse_args()
    schools, cams, vendors, _ = FLEETS["mixed"]
    t0 = time.perf_counter()
    lab = Lab("latency", schools, cams, vendors, a.first_address)
    started = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    ids = [d["id"] for d in request(lab.info, "GET", "/status")["devices"]]
    holes = ids[len(ids) // (2 * a.blackholes)::len(ids) // a.blackholes][:a.blackholes]  # spread over the fleet
    timeout_s = _timeout(lab.inventory)
    rounds = []
    try:
        for r in range(a.rounds):
            half = a.naive_sample // 2
            before = measure(lab, "naive", half)
            loop = measure(lab, "checks", len(ids), processes=_default(len(ids)))
            after = measure(lab, "naive", a.naive_sample - half, offset=half)
            naive = _joined(before, after)
            other = measure(lab, "checks", len(ids), processes=_other(len(ids)))  # does the default pay?
            serial = measure(lab, "checks", len(ids), workers=1)  # the work itself, without concurrency
            base = cli_check(lab, work, f"{r}-base")
            request(lab.info, "POST", "/fault", {"device": "*", "fault": "slow", "value": str(a.latency_ms)})
            slow = cli_check(lab, work, f"{r}-slow")
            for d in holes:
                request(lab.info, "POST", "/fault", {"device": d, "fault": "blackhole"})
            holed = cli_check(lab, work, f"{r}-blackhole")
            request(lab.info, "POST", "/clear", {"device": "*", "fault": None})
            row = {"base": base, "slow": slow, "blackhole": holed, "checks": loop, "other_processes": other,
                   "serial": serial, "naive": naive}
            print(f"round {r + 1}: {row}", file=sys.stderr)
            rounds.append(row)
    finally:
        lab.stop()
    print("\n".join(report(a, rounds, len(ids), started, timeout_s)))


def _default(n: int) -> int:
    return default_processes(n, NO_STREAM)


def _other(n: int) -> int:
    """The processes to compare the default with: one if the default uses workers, else two."""
    return 1 if _default(n) > 1 else 2


def _timeout(inventory: str) -> float:
    from canteen_ops.inventory.loader import load_inventory

    return max(d.timeout for d in load_inventory(inventory).devices)


def report(a, rounds: list[dict], n: int, lab_start_s: float, timeout_s: float) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    lines = [f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()} ({platform.system()} "
             f"{platform.machine()}); load average at the end {os.getloadavg()[0]:.1f}. Lab of {n} devices "
             f"({FLEETS['mixed'][2]}) started in {lab_start_s:.0f} s. Command: `check --skip stream,picture -q` "
             f"(`canteen-ops`, fresh log), default workers and processes ({_default(n)}).", "",
             f"| round | no latency s | {a.latency_ms} ms per answer s | ratio | + {a.blackholes} black holes s | "
             f"added s | lab CPU s (slow run) | lab peak connections | naive ms/device | checks s | naive ratio | "
             f"checks s, {_other(n)} process(es) | serial CPU s (checks + lab) | ceiling |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ratios, added, speedups, gains, ceilings = [], [], [], [], []
    for i, r in enumerate(rounds, 1):
        base, slow, holed, loop, nv = r["base"], r["slow"], r["blackhole"], r["checks"], r["naive"]
        ratio = slow["wall_s"] / base["wall_s"]
        extra = holed["wall_s"] - slow["wall_s"]
        per = nv["loop_wall_s"] / nv["devices"]
        naive_wall = nv["wall_s"] - nv["loop_wall_s"] + per * loop["devices"]
        speedup = naive_wall / loop["wall_s"]
        ratios.append(ratio), added.append(extra), speedups.append(speedup)
        gains.append(r["other_processes"]["wall_s"] / loop["wall_s"])
        # The best any concurrency could do: the fleet's CPU, run serially (ours and the lab's), spread over
        # every core with no overhead at all.
        work = r["serial"]["cpu_s"] + r["serial"]["lab_cpu_s"]
        ceilings.append(naive_wall / (work / (os.cpu_count() or 1)))
        lines.append(f"| {i} | {base['wall_s']:.1f} | {slow['wall_s']:.1f} | **{ratio:.2f}×** | {holed['wall_s']:.1f} | "
                     f"**{extra:+.1f}** | {slow['lab_cpu_s']:.1f} | {slow['lab_peak_connections']} | {per * 1000:.0f} | "
                     f"{loop['wall_s']:.1f} | **{speedup:.0f}×** | {r['other_processes']['wall_s']:.1f} | "
                     f"{r['serial']['cpu_s']:.1f} + {r['serial']['lab_cpu_s']:.1f} | {ceilings[-1]:.0f}× |")
    crit = rounds[-1]["blackhole"]["crit"]
    lines += ["", f"Median: latency ratio **{statistics.median(ratios):.2f}×** (target ≤ 1.5×), black holes "
              f"**{statistics.median(added):+.1f} s** (target ≤ one device timeout, {timeout_s:g} s; {crit} CRIT "
              f"lines in the last black-hole run), naive loop **{statistics.median(speedups):.0f}×** (target ≥ 30×; "
              f"extrapolated from {rounds[-1]['naive']['devices']} devices, errors: "
              f"{sum(r['naive']['naive_errors'] for r in rounds)}); the default "
              f"({_default(n)} process(es)) against `--processes {_other(n)}`: **{statistics.median(gains):.2f}×** "
              f"as fast (checks without the CLI). Ceiling **{statistics.median(ceilings):.0f}×**: the naive loop against "
              f"the checks' serial CPU and the lab's spread over {os.cpu_count()} cores with no overhead — no "
              f"concurrency can beat it; only less work per device can."]
    return lines


if __name__ == "__main__":
    main()
