"""Benchmark: the log's full-text search and `status` on a log of N check results; prints the figures.

Usage: python bench/bench_log.py [--records N]
Seeds a v4 log (before full-text search) with N results (Chinese and ASCII summaries) and notes, times migration
v5 (building the trigram indexes from existing records), the insert cost with the index triggers, `log list --grep`
through the index (≥ 3 characters) and through the LIKE fallback (2 characters), and current_status over 1,000
devices.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from canteen_ops.store import schema  # noqa: E402
from canteen_ops.store.entries import list_entries  # noqa: E402
from canteen_ops.store.log import MaintenanceLog  # noqa: E402
from canteen_ops.timeutil import iso, utcnow  # noqa: E402

SUMMARIES = ("port 80 open in {} ms", "2号硬盘故障 {}", "画面模糊，清晰度 {}", "clock {} s ahead", "录像缺失 {} 分钟")


def seed_v4(path: Path, n: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for script in schema.MIGRATIONS[:4]:
        for stmt in schema._statements(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 4")
    now = iso()
    conn.executemany(
        "INSERT INTO results (id, seq, created_at, updated_at, school_id, device_id, check_name, status, summary, "
        "observed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((f"r{i}", i + 1, now, now, f"s{i % 50:02d}", f"cam-{i % 1000:04d}", ("reachable", "storage", "picture",
          "clock", "gaps")[i % 5], "ok" if i % 17 else "crit", SUMMARIES[i % 5].format(i % 400), now)
         for i in range(n)))
    conn.execute("UPDATE counters SET value = ?", [n])
    conn.execute("COMMIT")
    conn.close()


def timed(label: str, f, repeat: int = 1):
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = f()
    ms = (time.perf_counter() - t0) * 1000 / repeat
    print(f"{label:<58} {ms:9.1f} ms")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    n = ap.parse_args().records
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        path = Path(tmp) / "log.db"
        seed_v4(path, n)
        log = timed(f"migration v5 (trigram indexes over {n:,} results)", lambda: MaintenanceLog.open(path))
        from canteen_ops.status import Result, Status

        timed("insert 1,000 results (one transaction, index triggers)", lambda: log.record_results(
            None, [Result(f"cam-{i:04d}", "picture", Status.WARN, f"画面模糊 {i}", school_id="s00")
                   for i in range(1000)]))
        hits = timed("log list --grep 硬盘故障 --limit 50 (FTS5 trigram)",
                     lambda: list_entries(log, grep="硬盘故障", limit=50), 5)
        print(f"{'':<58} {len(hits)} entries")
        timed("log list --grep 硬盘故障 (all matches)", lambda: list_entries(log, grep="硬盘故障"), 3)
        timed("log list --grep 硬盘 --limit 50 (LIKE fallback)", lambda: list_entries(log, grep="硬盘", limit=50), 5)
        timed("log list --limit 50 (no grep)", lambda: list_entries(log, limit=50), 5)
        from canteen_ops.current import current_status
        from canteen_ops.inventory.loader import parse_inventory

        devices = "\n".join(f"      - {{id: cam-{i:04d}, kind: camera, vendor: onvif, host: 127.0.0.1}}"
                            for i in range(1000))
        inv = parse_inventory(f"version: 1\nschools:\n  - id: s00\n    name: 一小\n    devices:\n{devices}\n")
        timed("status over 1,000 devices (newest result per check)",
              lambda: current_status(log, inv, inv.devices, utcnow()), 3)
        log.close()
        print(f"log file with indexes: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
