"""Benchmark the nightly backup of a 1,000-device lab fleet: wall time and peak memory.

The lab runs in its own process (what `canteen-ops lab up` starts) on a random 127.x block; each backup night is
a separate `canteen-ops backup run --quiet` process exactly as cron would start it, so its peak RSS is measured
alone (os.wait4 rusage). Night 1 stores every export; night 2 finds every export unchanged (content-addressed:
nothing new is written, one log row per device). Then `backup verify` re-hashes every stored file.

    python bench/bench_backup.py [--schools 125 --cameras-per-school 7 --workers 0]

125 schools × (1 NVR + 7 cameras) = 1,000 devices; vendors rotate Hikvision / Dahua / ONVIF per school.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, int, int, str, float]:
    """(wall seconds, exit code, peak RSS bytes, stderr tail, CPU seconds) of one canteen-ops process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "canteen_ops", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (time.perf_counter() - t0, proc.returncode, usage.ru_maxrss * 1024, err[-600:],
            usage.ru_utime + usage.ru_stime)


def counts(db: Path, run_offset: int) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT status, COALESCE(reason, ''), COUNT(*) FROM backups WHERE seq > ? "
                           "GROUP BY 1, 2", [run_offset]).fetchall()
        out: dict[str, int] = {}
        for status, reason, n in rows:
            key = "ok (unchanged)" if status == "ok" and reason == "unchanged" else status
            out[key] = out.get(key, 0) + n
        return out
    finally:
        con.close()


def max_seq(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT COALESCE(MAX(seq), 0) FROM backups").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schools", type=int, default=125)
    ap.add_argument("--cameras-per-school", type=int, default=7)
    ap.add_argument("--workers", type=int, default=0, help="0 = canteen-ops' default")
    a = ap.parse_args()

    block = f"127.{random.randrange(100, 250)}.0.1"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lab_dir, bdir, db = tmp / "lab", tmp / "backups", tmp / "log.db"
        env = dict(os.environ, PYTHONPATH=str(ROOT), CANTEEN_OPS_DB=str(db), CANTEEN_OPS_OPERATOR="cron",
                   XDG_DATA_HOME=str(tmp / "xdg"), COLUMNS="120")
        if a.workers:
            env["CANTEEN_OPS_WORKERS"] = str(a.workers)
        lab = subprocess.Popen([sys.executable, "-m", "canteen_ops.lab.service", "--dir", str(lab_dir),
                                "--schools", str(a.schools), "--cameras-per-school", str(a.cameras_per_school),
                                "--vendors", "hikvision,dahua,onvif", "--first-address", block, "--no-warm"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while not (lab_dir / "lab.json").exists():
                if lab.poll() is not None:
                    print(lab.stderr.read().decode(), file=sys.stderr)
                    return 1
                time.sleep(0.05)
            inventory = lab_dir / "inventory.yaml"
            env["CANTEEN_OPS_INVENTORY"] = str(inventory)
            status = json.loads((lab_dir / "lab.json").read_text())
            sys.path.insert(0, str(ROOT))
            from canteen_ops.inventory.loader import load_inventory

            n = len(load_inventory(inventory).devices)
            print(f"fleet: {n} lab devices ({a.schools} schools × (1 NVR + {a.cameras_per_school} cameras)), "
                  f"lab pid {status.get('pid')}; backup workers: {a.workers or 'default'}")
            for night in ("night 1 (every export new)", "night 2 (every export unchanged)"):
                before = max_seq(db)
                wall, code, rss, err, cpu = run_cli(["backup", "run", "--quiet", "--backup-dir", str(bdir)], env)
                got = counts(db, before)
                print(f"{night}: {wall:.2f} s wall, {cpu:.2f} s CPU (client), exit {code}, "
                      f"peak RSS {rss / 2**20:.1f} MiB; "
                      + ", ".join(f"{v} {k}" for k, v in sorted(got.items())))
                if err.strip() and code not in (0,):
                    print("  stderr: " + err.strip().splitlines()[-1])
            files = [p for p in bdir.rglob("*") if p.is_file() and ".locks" not in p.parts]
            print(f"store: {len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.2f} MiB")
            wall, code, rss, _, cpu = run_cli(["backup", "verify", "--backup-dir", str(bdir)], env)
            print(f"verify: {wall:.2f} s wall, exit {code}, peak RSS {rss / 2**20:.1f} MiB")
        finally:
            lab.terminate()
            lab.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
