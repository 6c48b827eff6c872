"""Benchmark: sync 100,000 log records to a local Datasette 1.0a41; prints records per second.

Usage: python bench/bench_sync.py [--records N] [--batch-size B ...]
Starts datasette on 127.0.0.1 (free port, temp dir), seeds a fresh maintenance log with N check results (plus the
run they belong to), syncs it with each batch size into a fresh upstream database, and checks the upstream count.
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

from canteen_ops import upstream  # noqa: E402
from canteen_ops.store.log import MaintenanceLog  # noqa: E402
from canteen_ops.timeutil import iso  # noqa: E402
from canteen_ops.lab.district import DatasetteServer  # noqa: E402


def seed(log: MaintenanceLog, n: int) -> None:
    with log.transaction():
        run_id = log.start_run("check", ["--all"], "bench")
        now = iso()
        for i in range(n):
            log.insert("results", {
                "run_id": run_id, "school_id": f"school-{i % 50:02d}", "device_id": f"cam-{i % 1000:04d}",
                "check_name": ("reachable", "login", "clock", "stream", "picture")[i % 5],
                "status": "ok" if i % 17 else "crit", "summary": f"port 80 open in {i % 400} ms",
                "data": {"latency_ms": i % 400, "port": 80}, "duration_ms": 12.5, "observed_at": now,
            })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, action="append", default=None)
    args = ap.parse_args()
    sizes = args.batch_size or [100, 1000]
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        tmp = Path(tmp)
        log = MaintenanceLog.open(tmp / "local.db")
        t0 = time.perf_counter()
        seed(log, args.records)
        total = sum(upstream.pending_counts(log).values())
        print(f"seeded {total} records in {time.perf_counter() - t0:.1f} s")
        for size, wal in [(s, w) for w in (False, True) for s in sizes]:
            server = DatasetteServer(tmp / f"up-{size}-{wal}", max_insert_rows=max(sizes))
            if wal:  # what docs/upstream.md recommends to districts: `sqlite-utils enable-wal canteen.db`
                conn = sqlite3.connect(server.db_path)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.close()
            server.start()
            token = server.token()
            try:
                log.conn.execute("DELETE FROM sync_state")
                t0 = time.perf_counter()
                report = upstream.sync(log, server.url, token, batch_size=size)
                dt = time.perf_counter() - t0
                conn = sqlite3.connect(server.db_path)
                remote = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                conn.close()
                assert report.sent == total and remote == args.records, (report.sent, remote)
                print(f"batch {size:>5}, upstream {'WAL   ' if wal else 'rollback journal'}: {report.sent} records in {dt:.1f} s = {report.sent / dt:,.0f} records/s "
                      f"({sum(t.batches for t in report.tables.values())} requests)")
            finally:
                server.stop()
        log.close()


if __name__ == "__main__":
    main()
