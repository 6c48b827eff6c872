"""Start-up time of the CLI: `canteen-ops --help` and `canteen-ops inventory list`, each in a fresh process.

Usage: python bench/bench_startup.py [-n RUNS] [--compare OTHER_CHECKOUT]

Prints the median and p95 wall time in ms for each command, and the median CPU time (user + system) of the child.
A bare `python -c pass` gives the interpreter's own floor. The commands run round-robin, so a load spike from other
work on the machine hits every command alike. CPU time barely moves under such load; wall time does, so read the
floor line before comparing runs. With --compare, the same commands also run from another checkout (e.g. a
worktree at an older commit) in the same rounds. Target (issue 2): --help <= 150 ms on the 2-core reference machine.
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
TARGET_HELP_MS = 150.0


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    c0, t0 = _child_cpu(), time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    wall, cpu = (time.perf_counter() - t0) * 1000, (_child_cpu() - c0) * 1000
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return wall, cpu


def p95(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def big_inventory(path: Path, schools: int = 100, cameras: int = 9) -> Path:
    """A generated inventory: `schools` schools, each with one NVR and `cameras` cameras (1,000 devices)."""
    areas = ["加工区", "烹饪区", "专间", "洗消间", "备餐区", "留样区", "仓库"]
    lines = ["version: 1", "credentials:", "  hik: {username: admin, password_env: HIK_PW}",
             "defaults: {credentials: hik, timeout: 5}", "schools:"]
    for s in range(schools):
        lines += [f"  - id: school-{s:03d}", f"    name: 第{s + 1}中学", "    district: 测试区", "    devices:",
                  f"      - {{id: s{s:03d}-nvr, kind: nvr, vendor: hikvision, host: 10.{s // 250}.{s % 250}.10}}"]
        for c in range(cameras):
            lines.append(f"      - {{id: s{s:03d}-cam-{c:02d}, kind: camera, vendor: hikvision, "
                         f"host: 10.{s // 250}.{s % 250}.{20 + c}, area: {areas[c % len(areas)]}, "
                         f"nvr: s{s:03d}-nvr, nvr_channel: {c + 1}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cases_for(root: Path, label: str, tmp: Path) -> list[tuple[str, list[str], dict[str, str], Path]]:
    py = sys.executable
    example = root / "inventory.example.yaml"
    env = {**os.environ, "CANTEEN_OPS_DB": str(tmp / f"log-{label}.db"), "COLUMNS": "160", "PYTHONPATH": str(root)}
    suffix = f" [{label}]" if label != "this" else ""
    return [
        (f"canteen-ops --help{suffix}", [py, "-m", "canteen_ops", "--help"], env, root),
        (f"canteen-ops inventory --help{suffix}", [py, "-m", "canteen_ops", "inventory", "--help"], env, root),
        (f"canteen-ops inventory list{suffix}", [py, "-m", "canteen_ops", "-i", str(example), "inventory", "list"],
         env, root),
        (f"canteen-ops inventory list --json{suffix}",
         [py, "-m", "canteen_ops", "-i", str(example), "inventory", "list", "--json"], env, root),
        (f"inventory validate, 1,000 devices{suffix}",
         [py, "-m", "canteen_ops", "-i", str(tmp / "big.yaml"), "inventory", "validate"], env, root),
        (f"inventory list, 1,000 devices{suffix}",
         [py, "-m", "canteen_ops", "-i", str(tmp / "big.yaml"), "inventory", "list"], env, root),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=30)
    ap.add_argument("--compare", type=Path, help="another checkout to measure in the same rounds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        big_inventory(tmp / "big.yaml")
        cases = [("python -c pass (floor)", [sys.executable, "-c", "pass"], dict(os.environ), ROOT),
                 ("python -c 'import typer' (Typer's floor)", [sys.executable, "-c", "import typer"],
                  dict(os.environ), ROOT)]
        cases += cases_for(ROOT, "this", tmp)
        if args.compare:
            cases += cases_for(args.compare.resolve(), "compare", tmp)
        for _name, argv, env, cwd in cases:  # warm the page cache and write .pyc files
            run_once(argv, env, cwd)
        walls: dict[str, list[float]] = {c[0]: [] for c in cases}
        cpus: dict[str, list[float]] = {c[0]: [] for c in cases}
        load_before = os.getloadavg()[0]
        for _ in range(args.runs):
            for name, argv, env, cwd in cases:
                wall, cpu = run_once(argv, env, cwd)
                walls[name].append(wall)
                cpus[name].append(cpu)
        load_after = os.getloadavg()[0]
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each, round-robin; "
          f"1-min load average {load_before:.2f} before, {load_after:.2f} after")
    if args.compare:
        print(f"compare = {args.compare}")
    print(f"{'command':48} {'median ms':>10} {'p95 ms':>8} {'cpu ms':>8}")
    for name in walls:
        print(f"{name:48} {statistics.median(walls[name]):10.1f} {p95(walls[name]):8.1f} "
              f"{statistics.median(cpus[name]):8.1f}")
    help_median = statistics.median(walls["canteen-ops --help"])
    verdict = "meets" if help_median <= TARGET_HELP_MS else "MISSES"
    print(f"--help median {help_median:.1f} ms {verdict} the {TARGET_HELP_MS:.0f} ms target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
