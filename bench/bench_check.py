"""Benchmark `check` (issue 4): fleet checks without stream decode at 10 / 100 / 1,000 lab devices, against the
naive loop (one onvif-zeep ONVIFCamera per device, sequentially, for every vendor: the lab's Hikvision and Dahua
devices answer ONVIF too; for mixed fleets also a vendor-native httpx loop), the client CPU per device of each
vendor and kind, and stream+picture on 1 vs 50 lab streams (one process and the default processes).

    /work/.venv-dev/bin/python bench/bench_check.py            # everything (about 5 minutes on 2 cores)
    ... --sizes 10,100 --fleets onvif --no-streams             # a quick look

How it measures:
- The lab runs in its own process (`python -m canteen_ops.lab.service`), so it does not share our GIL; its CPU
  time is read from /proc before and after each measurement.
- Each measurement runs in a fresh child process (`--child`), so its peak RSS (ru_maxrss) is its own; wall time
  covers loading the inventory and running the checks (not interpreter start-up); CPU = user + system of the child
  and of the worker processes it starts (`processes` = 2); peak RSS is that of the largest single process.
- The naive loop is too slow to run on 1,000 devices: it runs on the first NAIVE_SAMPLE devices and is
  extrapolated to the fleet size: its start-up (imports, inventory) once, plus the loop's time per device × the
  fleet (it is sequential, so per-device time is constant). Said so in the output.
- The machine's speed drifts by about ±20 % over an hour and can turn within a minute, so a speed-up is only read
  from a check and the naive loop measured around it: at the largest size the check (with the processes `check`
  uses by default) runs `--repeat` (5) times, each time between two halves of each naive loop (the first half of
  the sample just before, the second half just after), and the output gives the median and the range.
- Only loopback addresses (127.x) are used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NO_STREAM = ["reachable", "login", "facts", "clock", "ntp", "storage", "channels", "retention", "gaps"]
FLEETS = {
    # name: (schools, cameras per school, vendors, first address) → 100 × (1 NVR + 9 cameras) = 1,000 devices
    "onvif": (100, 9, "onvif", "127.31.0.1"),
    "mixed": (100, 9, "hikvision,dahua,onvif", "127.32.0.1"),
}


# --- child: one measurement ------------------------------------------------------------------------------------
def child(a: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    from canteen_ops.inventory.loader import load_inventory

    inv = load_inventory(a.inventory)
    devices = _first(inv, a.limit, cameras_only=a.cameras_only, offset=a.offset)
    out: dict = {"devices": len(devices)}
    if a.mode == "checks":
        from canteen_ops.checks.run import run_checks

        outcome = run_checks(devices, inv, a.names.split(","), workers=a.workers or None, deadline_s=120,
                             progress=False, processes=a.processes)
        statuses: dict[str, int] = {}
        for r in outcome.results:
            statuses[r.status.value] = statuses.get(r.status.value, 0) + 1
        out.update(results=len(outcome.results), statuses=statuses)
        bad = [f"{r.device_id} {r.check}: {r.summary}" for r in outcome.results if r.status.value != "ok"][:5]
        out["sample_problems"] = bad
    elif a.mode == "per-device":
        out.update(per_device(inv, a.limit))
    else:
        out.update(naive(devices, native=a.mode == "naive-native"))
    ru, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    # worker processes count too: CPU summed, peak RSS the largest single process
    out.update(wall_s=round(time.perf_counter() - t_start, 3),
               cpu_s=round(ru.ru_utime + ru.ru_stime + ch.ru_utime + ch.ru_stime, 3),
               peak_rss_mb=round(max(ru.ru_maxrss, ch.ru_maxrss) / 1024, 1))
    print(json.dumps(out))


def _first(inv, n: int, cameras_only: bool = False, offset: int = 0):
    devs = [d for d in inv.devices if d.kind == "camera"] if cameras_only else inv.devices
    return devs[offset:offset + n]


def per_device(inv, n: int) -> dict:
    """Client CPU per device of each (vendor, kind), its checks run in turn in this thread (no pool, no fork):
    what one device costs us, apart from concurrency."""
    import datetime as dt

    from canteen_ops.checks.context import CheckContext
    from canteen_ops.checks.run import _registry, check_device

    schools, checks = {s.id: s for s in inv.schools}, _registry()
    now = dt.datetime.now(dt.timezone.utc)
    out = {}
    for vendor in ("onvif", "hikvision", "dahua"):
        for kind in ("camera", "nvr"):
            devs = [d for d in inv.devices if d.vendor == vendor and d.kind == kind][:n + 1]
            if len(devs) < 2:
                continue
            for i, d in enumerate(devs):
                if i == 1:  # the first device pays the imports and WSDL parses
                    c0 = time.process_time()
                check_device(CheckContext(d, schools[d.school_id], inv, now=now), NO_STREAM, checks)
            out[f"{vendor} {kind}"] = round((time.process_time() - c0) / (len(devs) - 1) * 1000, 2)
    return {"cpu_ms": out}


def naive(devices, native: bool = False) -> dict:
    """What a technician's first script does: for each device in turn, a new client and the same questions the
    checks ask. The issue's naive loop is one onvif-zeep ONVIFCamera per device, sequentially, for every vendor
    (Hikvision and Dahua devices speak ONVIF too, in the lab as in the field): a new ONVIFCamera (which parses
    the WSDLs again), identity, clock, NTP; for NVRs the profiles and the recording summary. With native=True,
    Hikvision / Dahua devices get instead a new httpx client with Digest auth and the identity, time, NTP (and
    for NVRs storage and channel status) requests. Errors are counted, not raised.

    The loop is timed on its own (loop_wall_s, loop_cpu_s): the child's imports and inventory load happen once
    however many devices there are, so only the loop is extrapolated per device."""
    import socket

    import httpx
    from onvif import ONVIFCamera

    from canteen_ops.drivers.onvif.transport import wsdl_dir

    paths = {
        "hikvision": (["/ISAPI/System/deviceInfo", "/ISAPI/System/time", "/ISAPI/System/time/ntpServers"],
                      ["/ISAPI/ContentMgmt/Storage", "/ISAPI/ContentMgmt/InputProxy/channels/status"]),
        "dahua": (["/cgi-bin/magicBox.cgi?action=getSystemInfo", "/cgi-bin/global.cgi?action=getCurrentTime",
                   "/cgi-bin/configManager.cgi?action=getConfig&name=NTP"],
                  ["/cgi-bin/storageDevice.cgi?action=getDeviceAllInfo"]),
    }
    errors = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for d in devices:
        try:
            with socket.create_connection((d.host, d.port), timeout=d.timeout):
                pass
            if d.vendor == "onvif" or not native:
                cam = ONVIFCamera(d.host, d.port, d.credentials.username, d.credentials.resolve(), wsdl_dir())
                cam.devicemgmt.GetDeviceInformation()
                cam.devicemgmt.GetSystemDateAndTime()
                cam.devicemgmt.GetNTP()
                if d.kind == "nvr":
                    cam.create_media_service().GetProfiles()
                    # ONVIFCamera finds the search service only through GetServices (not in GetCapabilities)
                    for svc in cam.devicemgmt.GetServices({"IncludeCapability": False}):
                        cam.xaddrs[svc.Namespace] = svc.XAddr
                    cam.create_search_service().GetRecordingSummary()
            else:
                common, nvr_only = paths[d.vendor]
                with httpx.Client(base_url=d.base_url, timeout=d.timeout,
                                  auth=httpx.DigestAuth(d.credentials.username, d.credentials.resolve())) as c:
                    for path in common + (nvr_only if d.kind == "nvr" else []):
                        c.get(path).raise_for_status()
        except Exception:  # noqa: BLE001 - a naive loop just moves on
            errors += 1
    return {"naive_errors": errors, "loop_wall_s": round(time.perf_counter() - t0, 3),
            "loop_cpu_s": round(time.process_time() - c0, 3)}


# --- parent: lab process, measurements, report ------------------------------------------------------------------
class Lab:
    def __init__(self, name: str, schools: int, cameras: int, vendors: str, first: str):
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-lab-{name}-"))
        cmd = [sys.executable, "-m", "canteen_ops.lab.service", "--dir", str(self.dir), "--schools", str(schools),
               "--cameras-per-school", str(cameras), "--vendors", vendors, "--first-address", first,
               "--seed", "1"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        info = self.dir / "lab.json"
        deadline = time.monotonic() + 300
        while not info.exists():
            if self.proc.poll() is not None:
                raise SystemExit(f"lab failed to start: {self.proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("lab did not start within 300 s")
            time.sleep(0.2)
        self.info = json.loads(info.read_text())
        self.inventory = self.info["inventory"]

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure(lab: Lab, mode: str, limit: int, names: list[str] = NO_STREAM, workers: int = 0,
            cameras_only: bool = False, processes: int = 1, offset: int = 0) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, "--child", "--mode", mode, "--inventory", lab.inventory, "--limit", str(limit),
           "--names", ",".join(names), "--workers", str(workers), "--processes", str(processes),
           "--offset", str(offset)] + (
               ["--cameras-only"] if cameras_only else [])
    cpu0 = lab.cpu_s()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"child failed ({mode}, {limit}): {p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["lab_cpu_s"] = round(lab.cpu_s() - cpu0, 2)
    return out


def bench_fleet(name: str, sizes: list[int], naive_sample: int, streams: int | None,
                first_address: str | None = None, repeat: int = 3) -> list[str]:
    schools, cams, vendors, first = FLEETS[name]
    first = first_address or first
    t0 = time.perf_counter()
    lab = Lab(name, schools, cams, vendors, first)
    lines = [f"\n### {name} fleet ({vendors}; lab of {lab.info['devices']} devices started in "
             f"{time.perf_counter() - t0:.0f} s, lab RSS {lab.rss_mb():.0f} MiB)\n",
             "| devices | processes | wall s | CPU s (checks) | CPU s (lab) | peak RSS MiB | results | statuses |",
             "|---:|---:|---:|---:|---:|---:|---:|---|"]
    default = default_processes(max(sizes), NO_STREAM)
    try:
        for n in sizes:
            for procs in (1, 2):
                if n == max(sizes) and procs == default:
                    continue  # measured below, paired with the naive loop
                _row(lines, name, measure(lab, "checks", n, processes=procs), procs, n)
        pd = measure(lab, "per-device", 40)
        print(f"[{name}] per device: {pd}", file=sys.stderr)
        baselines = [("naive", "one `ONVIFCamera` per device for every vendor, sequentially: the issue's naive loop")]
        if vendors != "onvif":
            baselines.append(("naive-native", "a new client per device in each vendor's own protocol — "
                                              "`ONVIFCamera` for ONVIF, an httpx Digest client for Hikvision/Dahua"))
        # The machine's speed drifts (±20 % over an hour on the 2-core VM, and it can turn within a minute): each
        # fleet check (with the processes `check` uses by default) is bracketed by its naive loops, half of the
        # sample just before it and the other half just after, and every speed-up is taken from one such triple.
        pairs: list[tuple[dict, dict[str, dict]]] = []
        half = naive_sample // 2
        for _ in range(repeat):
            before = {mode: measure(lab, mode, half) for mode, _what in baselines}
            big = measure(lab, "checks", max(sizes), processes=default)
            big["processes"] = default
            _row(lines, name, big, default, max(sizes))
            naives = {}
            for mode, _what in baselines:
                after = measure(lab, mode, naive_sample - half, offset=half)
                naives[mode] = _joined(before[mode], after)
                print(f"[{name}] {mode} on {naive_sample} (bracketing the check): {naives[mode]}", file=sys.stderr)
            pairs.append((big, naives))
        lines += ["", "Client CPU per device, each device's checks run in turn (no pool, no fork; 40 of each): "
                  + ", ".join(f"{k} {v:.1f} ms" for k, v in pd["cpu_ms"].items()) + "."]
        for mode, what in baselines:
            lines += ["", _naive_line(what, [(big, naives[mode]) for big, naives in pairs])]
        if streams:
            media = ["stream", "picture"]
            rows = [(1, 1), (streams, 1), (streams, 2)]
            measured = []
            for n, procs in dict.fromkeys(rows):
                m = measure(lab, "checks", n, media, workers=streams, cameras_only=True, processes=procs)
                print(f"[{name}] streams {n}, {procs} process(es): {m}", file=sys.stderr)
                measured.append((procs, m))
            lines += ["", f"Stream + picture on the first cameras of this fleet (main-stream facts without decoding, "
                          f"then 12 decoded frames of the 640×360 sub-stream and the quality metrics), "
                          f"workers = {streams}; with 2 processes the picture metrics are computed in "
                          f"2 worker processes:", "",
                      "| streams | processes | wall s | CPU s (checks) | CPU s (lab) | peak RSS MiB | statuses |",
                      "|---:|---:|---:|---:|---:|---:|---|"]
            for procs, m in measured:
                lines.append(f"| {m['devices']} | {procs} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | "
                             f"{m['lab_cpu_s']:.2f} | {m['peak_rss_mb']:.0f} | {_fmt(m['statuses'])} |")
            one, many = measured[0][1], measured[1][1]
            lines.append(f"\n{streams} streams take **{many['wall_s'] / one['wall_s']:.1f}×** the time of one in one "
                         f"process (the default; target ≤ 3×), **{measured[2][1]['wall_s'] / many['wall_s']:.2f}×** "
                         f"that with 2 worker processes.")
    finally:
        lab.stop()
    return lines


def default_processes(n: int, checks: list[str], kind: str = "camera") -> int:
    """What `check` uses for n devices of one kind."""
    from types import SimpleNamespace

    from canteen_ops.checks.run import default_processes as default

    return default([SimpleNamespace(kind=kind)] * n, checks)


def _row(lines: list[str], name: str, m: dict, procs: int, n: int) -> None:
    print(f"[{name}] checks on {n}, {procs} process(es): {m}", file=sys.stderr)
    lines.append(f"| {m['devices']} | {procs} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['lab_cpu_s']:.2f} | "
                 f"{m['peak_rss_mb']:.0f} | {m['results']} | {_fmt(m['statuses'])} |")


def _joined(before: dict, after: dict) -> dict:
    """One naive measurement from its two halves: both loops, and their start-up counted once (the mean)."""
    startup = (before["wall_s"] - before["loop_wall_s"] + after["wall_s"] - after["loop_wall_s"]) / 2
    startup_cpu = (before["cpu_s"] - before["loop_cpu_s"] + after["cpu_s"] - after["loop_cpu_s"]) / 2
    loop, loop_cpu = before["loop_wall_s"] + after["loop_wall_s"], before["loop_cpu_s"] + after["loop_cpu_s"]
    return {"devices": before["devices"] + after["devices"],
            "naive_errors": before["naive_errors"] + after["naive_errors"],
            "loop_wall_s": loop, "loop_cpu_s": loop_cpu, "wall_s": startup + loop, "cpu_s": startup_cpu + loop_cpu}


def _naive_line(what: str, pairs: list[tuple[dict, dict]]) -> str:
    """The speed-up of each fleet check over the naive loop measured around it; the median one is shown. The
    naive loop is extrapolated as its start-up (imports, inventory) once plus its per-device time × the fleet."""
    rows = []
    for big, nv in pairs:
        n_big = big["devices"]
        per, per_cpu = nv["loop_wall_s"] / nv["devices"], nv["loop_cpu_s"] / nv["devices"]
        wall = nv["wall_s"] - nv["loop_wall_s"] + per * n_big
        cpu = nv["cpu_s"] - nv["loop_cpu_s"] + per_cpu * n_big
        rows.append((wall / big["wall_s"], per, per_cpu, wall, cpu, big, nv))
    rows.sort(key=lambda r: r[0])
    speedup, per, per_cpu, wall, cpu, big, nv = rows[len(rows) // 2]
    n_big = big["devices"]
    spread = (f" Over {len(rows)} checks, each between two halves of the naive loop: "
              f"**{rows[0][0]:.0f}–{rows[-1][0]:.0f}×** "
              f"(check {min(r[5]['wall_s'] for r in rows):.1f}–{max(r[5]['wall_s'] for r in rows):.1f} s, naive "
              f"{min(r[1] for r in rows) * 1000:.0f}–{max(r[1] for r in rows) * 1000:.0f} ms per device).")
    return (f"Naive loop ({what}) measured on the first {nv['devices']} devices, half just before and half just "
            f"after `check`: "
            f"{nv['wall_s']:.1f} s wall ({nv['wall_s'] - nv['loop_wall_s']:.1f} s of it start-up), "
            f"{nv['cpu_s']:.1f} s CPU, {nv['naive_errors']} errors → {per * 1000:.0f} ms wall and "
            f"{per_cpu * 1000:.0f} ms CPU per device, **extrapolated** to {n_big} devices (start-up once, then "
            f"per device): {wall:.0f} s wall, {cpu:.0f} s CPU. `check` on {n_big} ({big['processes']} processes, "
            f"the default): {big['wall_s']:.1f} s wall, {big['cpu_s']:.1f} s CPU → **{speedup:.0f}× faster** in "
            f"wall time, {cpu / big['cpu_s']:.0f}× less CPU (the median check)."
            + (spread if len(rows) > 1 else ""))


def _fmt(statuses: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="checks")
    p.add_argument("--inventory")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--names", default=",".join(NO_STREAM))
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--cameras-only", action="store_true")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--fleets", default="onvif,mixed")
    p.add_argument("--naive-sample", type=int, default=20)
    p.add_argument("--streams", type=int, default=50)
    p.add_argument("--no-streams", action="store_true")
    p.add_argument("--repeat", type=int, default=5, help="fleet checks at the largest size, each bracketed by "
                   "the naive loops")
    p.add_argument("--first-address", help="first lab address (127.x), when the default block is in use")
    a = p.parse_args()
    if a.child:
        child(a)
        return
    sizes = [int(x) for x in a.sizes.split(",")]
    lines = ["## check (issue 4)", "", "Machine: 2-core, 24 GiB, Python 3.11. "
             "`python bench/bench_check.py`; checks without stream decode = " + ", ".join(NO_STREAM) + "."]
    for name in a.fleets.split(","):
        lines += bench_fleet(name, sizes, a.naive_sample, None if a.no_streams or name != "mixed" else a.streams,
                             a.first_address, a.repeat)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
