"""Cost of the Hikvision ISAPI and Dahua CGI drivers against the lab, over real loopback sockets.

Usage: python bench/bench_drivers.py [-n RUNS]

For each vendor and device kind, each getter is timed on a warm driver (connection and challenge already
established): median wall ms and HTTP requests on the wire per call. Then the first contact of a fresh driver
(unauthenticated probe + login), a wrong password (requests sent, failed logins the device counted), and the
hostile-body faults: time to refuse a 64 MiB body and the peak Python memory while doing it.
The lab runs in a thread of this process, so the figures include its CPU time on the same 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

UTC = dt.timezone.utc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=5)
    args = ap.parse_args()

    from canteen_ops.drivers.base import DriverError, auth_guard
    from canteen_ops.drivers.registry import open_driver
    from canteen_ops.inventory.loader import load_inventory
    from canteen_ops.lab.fleet import build_fleet, write_inventory
    from canteen_ops.lab.service import LabThread

    fleet = build_fleet(2, 2, ("hikvision", "dahua"), first_address="127.77.31.1", seed=11)
    lab = LabThread(fleet).start()
    try:
        inv = load_inventory(write_inventory(fleet, Path(tempfile.mkdtemp(prefix="bench-drivers-"))))
        now = dt.datetime.now(UTC)
        getters = [("login", ()), ("facts", ()), ("clock", ()), ("storage", ()), ("channels", ()),
                   ("recordings 24h", ("recordings", 1, now - dt.timedelta(hours=24), now)),
                   ("recordings 60d", ("recordings", 1, now - dt.timedelta(days=60), now)),
                   ("streams", ()), ("export_config", ()), ("settings", ()), ("upgrade_status", ())]
        print(f"{'vendor/kind':18} {'getter':16} {'median ms':>10} {'requests':>9}")
        for vendor in ("hikvision", "dahua"):
            for kind in ("nvr", "camera"):
                state = next(d for d in fleet.devices if d.vendor == vendor and d.kind == kind)
                device = inv.device(state.id)
                t0 = time.perf_counter()
                drv = open_driver(device)
                drv.login()
                first = (time.perf_counter() - t0) * 1000
                print(f"{vendor + '/' + kind:18} {'first login':16} {first:10.1f} {drv.requests_sent:9d}")
                for label, spec in getters:
                    if kind == "camera" and label.startswith("recordings"):
                        continue
                    name, call_args = (spec[0], spec[1:]) if spec else (label, ())
                    times, reqs = [], []
                    for _ in range(args.runs):
                        before = drv.requests_sent
                        t = time.perf_counter()
                        try:
                            getattr(drv, name)(*call_args)
                        except DriverError as exc:
                            print(f"  {label}: {type(exc).__name__}: {exc}")
                            break
                        times.append((time.perf_counter() - t) * 1000)
                        reqs.append(drv.requests_sent - before)
                    if times:
                        print(f"{vendor + '/' + kind:18} {label:16} {statistics.median(times):10.1f} "
                              f"{statistics.median(reqs):9.0f}")
                drv.close()

        print()
        for vendor in ("hikvision", "dahua"):
            state = next(d for d in fleet.devices if d.vendor == vendor and d.kind == "camera")
            device = inv.device(state.id)
            auth_guard.reset()
            state.set_fault("wrong-password")
            drv = open_driver(device)
            try:
                drv.login()
            except DriverError:
                pass
            for _ in range(5):  # later calls in the run must cost nothing
                try:
                    drv.facts()
                except DriverError:
                    pass
            print(f"{vendor}: wrong password, 6 getter calls → {drv.requests_sent} requests on the wire, "
                  f"{state.failed_logins} failed login(s) counted by the device")
            drv.close()
            state.clear_fault()
            auth_guard.reset()

            for fault in ("oversized-body", "xml-bomb", "malformed-xml"):
                if vendor == "dahua" and fault == "xml-bomb":
                    continue
                state.set_fault(fault)
                drv = open_driver(device)
                tracemalloc.start()
                t = time.perf_counter()
                try:
                    drv.facts()
                    outcome = "accepted (!)"
                except DriverError as exc:
                    outcome = type(exc).__name__
                el = (time.perf_counter() - t) * 1000
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                drv.close()
                state.clear_fault()
                print(f"{vendor}: {fault:15} → {outcome} in {el:.0f} ms, peak Python memory {peak / 2**20:.1f} MiB")
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
