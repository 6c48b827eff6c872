"""Start-up time of the CLI: `canteen-ops --help` and `canteen-ops inventory list`, each in a fresh process.

Usage: python bench/bench_startup.py [-n RUNS]
Prints median and p95 wall time in ms per command, and the median CPU time (user + system) of the child, next to a
bare `python -c pass` for the interpreter's own floor. CPU time barely moves when other work shares the machine;
wall time does, so read the floor line before comparing runs. Target (issue 2): --help <= 150 ms on the 2-core
reference machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "inventory.example.yaml"
TARGET_HELP_MS = 150.0


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(argv: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """(wall ms, cpu ms) per run."""
    wall, cpu = [], []
    for _ in range(runs):
        c0, t0 = _child_cpu(), time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((_child_cpu() - c0) * 1000)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return wall, cpu


def p95(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=30)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CANTEEN_OPS_DB": str(Path(tmp) / "log.db"), "COLUMNS": "160",
               "PYTHONPATH": str(ROOT)}
        cases = [
            ("python -c pass (floor)", [py, "-c", "pass"]),
            ("canteen-ops --help", [py, "-m", "canteen_ops", "--help"]),
            ("canteen-ops inventory --help", [py, "-m", "canteen_ops", "inventory", "--help"]),
            ("canteen-ops inventory list (16 devices)", [py, "-m", "canteen_ops", "-i", str(EXAMPLE), "inventory",
                                                         "list"]),
            ("canteen-ops inventory list --json", [py, "-m", "canteen_ops", "-i", str(EXAMPLE), "inventory", "list",
                                                   "--json"]),
        ]
        measure(cases[1][1], 3, env)  # warm the page cache and .pyc files
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each")
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'command':44} {'median ms':>10} {'p95 ms':>8} {'cpu ms':>8}")
        results = {}
        for name, argv in cases:
            wall, cpu = measure(argv, args.runs, env)
            results[name] = wall
            print(f"{name:44} {statistics.median(wall):10.1f} {p95(wall):8.1f} {statistics.median(cpu):8.1f}",
                  flush=True)
    help_median = statistics.median(results["canteen-ops --help"])
    verdict = "meets" if help_median <= TARGET_HELP_MS else "MISSES"
    print(f"--help median {help_median:.1f} ms {verdict} the {TARGET_HELP_MS:.0f} ms target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
