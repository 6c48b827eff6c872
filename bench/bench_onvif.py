"""ONVIF fleet reads: the naive onvif-zeep loop vs the shared-WSDL OnvifDriver, at 10 / 100 / 1,000 devices.

Usage: python bench/bench_onvif.py [--sizes 10,100,1000] [--naive-sample 50] [--workers 16] [--no-checks]

A lab process (separate, so its CPU is not billed to the client) serves an all-ONVIF fleet on 127.60.x.y:8080:
schools of one NVR and nine cameras, every device with its own loopback address. Per device, every mode reads
the same things: device information (facts), GetSystemDateAndTime (clock), GetNTP and the media profiles.

- naive:       one `onvif.ONVIFCamera` per device, sequentially (how the onvif-zeep README does it). Each one
               parses the WSDLs again, so it is measured on the first `--naive-sample` devices and extrapolated
               linearly to N (printed with a `~`).
- driver-seq:  OnvifDriver (one zeep Client per WSDL per process, per-device WS-Security and transport),
               facts() + clock() + channels(), sequentially.
- driver-pool: the same through a thread pool of `--workers`.
- checks:      `canteen_ops.checks.run.run_checks` with reachable, login, facts, clock, ntp (the checks on top
               of the driver, as `canteen-ops check --only ...` runs them; no profile read), default workers.

For each: wall time, client CPU (user+sys of this process), lab CPU, client RSS after the run and its peak.
The WSDL parse (once per process) is reported on its own line. Target (issue 4): 1,000 devices ≤ 5 s on the
2-core reference machine and ≥ 40× faster than the naive loop.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST_ADDRESS = "127.60.0.1"
CAMERAS_PER_SCHOOL = 9
PASSWORD = "Bench-onvif-2026"
SEED = 4242


def fleet_for(n: int):
    from canteen_ops.lab.fleet import build_fleet

    schools = max(1, math.ceil(n / (CAMERAS_PER_SCHOOL + 1)))
    fleet = build_fleet(schools, CAMERAS_PER_SCHOOL, ("onvif",), first_address=FIRST_ADDRESS, seed=SEED,
                        passwords={"onvif": PASSWORD})
    return fleet


# --- the lab side (child process) -------------------------------------------------------------------------
def serve(n: int) -> None:
    from canteen_ops.lab.service import LabThread

    lab = LabThread(fleet_for(n)).start(timeout=120)
    print("READY", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            print(json.dumps({"cpu": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024,
                              "requests": lab.service.http.requests}), flush=True)
        elif cmd == "quit":
            break
    lab.stop()


class Lab:
    def __init__(self, n: int):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(n)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            self.close()
            raise SystemExit(f"lab did not start: {line!r}")

    def stats(self) -> dict:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(15)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# --- the client side --------------------------------------------------------------------------------------
def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set of this process in MiB."""
    cur = peak = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cur, peak


def naive_one(d) -> None:
    from onvif import ONVIFCamera

    cam = ONVIFCamera(d.host, d.http_port, d.username, PASSWORD)
    cam.devicemgmt.GetDeviceInformation()
    cam.devicemgmt.GetSystemDateAndTime()
    cam.devicemgmt.GetNTP()
    cam.create_media_service().GetProfiles()


def device_of(d):
    from canteen_ops.inventory.model import Credentials, Device, Policy

    return Device(id=d.id, kind=d.kind, vendor="onvif", host=d.host, port=d.http_port, rtsp_port=d.rtsp_port,
                  https=False, school_id="bench", credentials=Credentials("bench", d.username, password=PASSWORD),
                  timeout=10.0, policy=Policy())


def driver_one(device) -> None:
    from canteen_ops.drivers.onvif.driver import OnvifDriver

    with OnvifDriver(device, PASSWORD) as drv:
        drv.facts()
        drv.clock()
        drv.channels()


def measure(label: str, n: int, lab: Lab, fn) -> dict:
    lab0, c0, t0 = lab.stats(), cpu(), time.perf_counter()
    errors = fn()
    wall, ccpu, lab1 = time.perf_counter() - t0, cpu() - c0, lab.stats()
    cur, peak = rss_mb()
    row = {"mode": label, "n": n, "wall_s": wall, "client_cpu_s": ccpu, "lab_cpu_s": lab1["cpu"] - lab0["cpu"],
           "requests": lab1["requests"] - lab0["requests"], "rss_mb": cur, "peak_rss_mb": peak, "errors": errors}
    return row


def run_naive(n: int) -> dict:
    """The naive loop on its own lab of n devices."""
    devs = fleet_for(n).devices[:n]
    lab = Lab(n)
    try:
        def naive():
            for d in devs:
                naive_one(d)
            return 0

        return measure("naive", n, lab, naive)
    finally:
        lab.close()


def run_size(n: int, args) -> list[dict]:
    from canteen_ops.drivers.base import auth_guard

    fleet = fleet_for(n)
    devs = fleet.devices[:n]
    rows = []
    lab = Lab(n)
    try:
        devices = [device_of(d) for d in devs]

        def seq():
            auth_guard.reset()
            bad = 0
            for dev in devices:
                try:
                    driver_one(dev)
                except Exception:
                    bad += 1
            return bad

        def pool():
            auth_guard.reset()
            with ThreadPoolExecutor(args.workers) as ex:
                futs = [ex.submit(driver_one, dev) for dev in devices]
            return sum(1 for f in futs if f.exception() is not None)

        rows.append(measure("driver-seq", n, lab, seq))
        rows.append(measure(f"driver-pool{args.workers}", n, lab, pool))
        if not args.no_checks:
            rows.append(measure("checks", n, lab, lambda: checks(fleet, n)))
    finally:
        lab.close()
    return rows


def checks(fleet, n: int) -> int:
    from canteen_ops.checks.run import run_checks
    from canteen_ops.drivers.base import auth_guard
    from canteen_ops.inventory.loader import load_inventory
    from canteen_ops.lab.fleet import write_inventory

    auth_guard.reset()
    with tempfile.TemporaryDirectory() as tmp:
        inv = load_inventory(write_inventory(fleet, Path(tmp)))
        devices = inv.devices[:n]
        outcome = run_checks(devices, inv, ["reachable", "login", "facts", "clock", "ntp"], progress=False)
    return sum(1 for r in outcome.results if r.status.value == "unknown")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--naive-sample", type=int, default=50, help="devices the naive loop really runs on (0: skip)")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--no-checks", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0

    from canteen_ops.drivers.onvif.transport import import_onvif_quietly, shared_client

    import_onvif_quietly()
    c0, t0 = cpu(), time.perf_counter()
    for name in ("device", "media"):
        shared_client(name)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; load average "
          f"{os.getloadavg()[0]:.1f} at start")
    print(f"WSDL parse, once per process (devicemgmt + media): {time.perf_counter() - t0:.2f} s wall, "
          f"{cpu() - c0:.2f} s CPU")
    naive: dict = {}
    all_rows = []
    header = (f"{'N':>5} {'mode':<16} {'wall s':>8} {'client CPU s':>12} {'lab CPU s':>9} {'ms/dev':>7} "
              f"{'RSS MiB':>8} {'peak':>6} {'vs naive':>9} {'errors':>6}")

    def show(r: dict, speed: str = "") -> None:
        print(f"{r['n']:>5} {r['mode']:<16} {r['wall_s']:8.2f} {r['client_cpu_s']:12.2f} {r['lab_cpu_s']:9.2f} "
              f"{1000 * r['wall_s'] / r['n']:7.2f} {r['rss_mb']:8.0f} {r['peak_rss_mb']:6.0f} {speed:>9} "
              f"{r['errors']:>6}", flush=True)

    print(header)
    if args.naive_sample > 0:
        r = run_naive(args.naive_sample)
        all_rows.append(r)
        naive.update(wall=r["wall_s"] / r["n"], cpu=r["client_cpu_s"] / r["n"], measured_on=r["n"])
        show(r)
    for n in [int(x) for x in args.sizes.split(",") if x]:
        if naive:
            print(f"{n:>5} {'naive (extrap.)':<16} {'~' + format(naive['wall'] * n, '.1f'):>8} "
                  f"{'~' + format(naive['cpu'] * n, '.1f'):>12}")
        for r in run_size(n, args):
            all_rows.append(r)
            show(r, f"{naive['wall'] * r['n'] / r['wall_s']:8.0f}x" if naive else "")
    if naive:
        print(f"naive measured on {naive['measured_on']} devices: {1000 * naive['wall']:.0f} ms wall, "
              f"{1000 * naive['cpu']:.0f} ms CPU per device; larger N extrapolated linearly")
    if args.json:
        print(json.dumps(all_rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
