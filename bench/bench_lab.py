"""Benchmark the device lab: one process serving ≥ 1,000 simulated devices; its memory and CPU per request.

The lab runs as its own process (exactly what `canteen-ops lab up` starts), so its CPU time and memory are read
from /proc/<pid> without the client's. The client is httpx (DigestAuth for Hikvision/Dahua, plain SOAP for
ONVIF) over loopback, with bounded concurrency, a bounded number of requests and a time limit.

    python bench/bench_lab.py [--schools 125 --cameras-per-school 7 --rounds 3 --concurrency 64 --max-seconds 120]

Prints: start-up time, RSS idle (total and per device), then per load phase the requests the lab answered,
wall time, requests/s, lab CPU ms per request and RSS after the phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ONVIF_TIME = (b'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
              b'<s:Body><GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')
PATHS = {"hikvision": "/ISAPI/System/deviceInfo", "dahua": "/cgi-bin/magicBox.cgi?action=getSystemInfo",
         "onvif": "/onvif/device_service"}


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds user+system, RSS bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss


def control(info: dict, path: str) -> dict:
    import http.client

    host, _, port = info["control"].rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path, headers={"X-Lab-Token": info["token"]})
    data = json.loads(conn.getresponse().read())
    conn.close()
    return data


class Load:
    """One client per device (keep-alive, Digest challenge cached by its DigestAuth), kept across phases."""

    def __init__(self, devices, concurrency: int, deadline: float):
        self.devices, self.deadline = devices, deadline
        self.sem = asyncio.Semaphore(concurrency)
        self.clients: dict[str, object] = {}

    def client(self, dev):
        import httpx

        if dev.id not in self.clients:
            auth = None if dev.vendor == "onvif" else httpx.DigestAuth(dev.credentials.username,
                                                                        dev.credentials.resolve())
            self.clients[dev.id] = httpx.AsyncClient(
                base_url=dev.base_url, auth=auth, timeout=10, verify=False,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
        return self.clients[dev.id]

    async def phase(self, rounds: int) -> tuple[int, int]:
        ok = failed = 0

        async def one_device(dev) -> None:
            nonlocal ok, failed
            async with self.sem:
                c = self.client(dev)
                for _ in range(rounds):
                    if time.monotonic() > self.deadline:
                        return
                    if dev.vendor == "onvif":
                        r = await c.post(PATHS["onvif"], content=ONVIF_TIME,
                                         headers={"Content-Type": "application/soap+xml"})
                    else:
                        r = await c.get(PATHS[dev.vendor])
                    ok, failed = (ok + 1, failed) if r.status_code == 200 else (ok, failed + 1)

        await asyncio.gather(*(one_device(d) for d in self.devices))
        return ok, failed

    async def close(self) -> None:
        for c in self.clients.values():
            await c.aclose()


async def run_phases(proc, info, devices, a) -> None:
    load = Load(devices, a.concurrency, time.monotonic() + a.max_seconds)
    cpu0, rss0 = proc_stats(proc.pid)
    try:
        for phase, rounds in (("first contact (401 challenge + authenticated retry)", 1),
                              (f"keep-alive, cached Digest challenge ({a.rounds} per device)", a.rounds)):
            before = control(info, "/status")["requests"]
            c0, _ = proc_stats(proc.pid)
            t = time.perf_counter()
            ok, failed = await load.phase(rounds)
            wall = time.perf_counter() - t
            c1, rss = proc_stats(proc.pid)
            served = control(info, "/status")["requests"] - before  # device HTTP exchanges only
            print(f"  {phase}: {ok} ok / {failed} failed client requests, {served} HTTP exchanges served in "
                  f"{wall:.2f} s ({served / wall:.0f}/s wall, client-bound); lab CPU "
                  f"{(c1 - c0) * 1000 / max(served, 1):.3f} ms per exchange; RSS {rss / 2**20:.1f} MiB")
    finally:
        await load.close()
    cpu_end, rss_end = proc_stats(proc.pid)
    print(f"  lab CPU total during load {cpu_end - cpu0:.2f} s; RSS growth {(rss_end - rss0) / 2**20:.1f} MiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schools", type=int, default=125)
    ap.add_argument("--cameras-per-school", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3, help="requests per device in the keep-alive phase")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    a = ap.parse_args()

    from canteen_ops.inventory.loader import load_inventory

    block = f"127.{random.randrange(100, 250)}.0.1"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "lab"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "canteen_ops.lab.service", "--dir", str(d), "--schools",
                                 str(a.schools), "--cameras-per-school", str(a.cameras_per_school), "--vendors",
                                 "hikvision,dahua,onvif", "--first-address", block, "--no-warm"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while not (d / "lab.json").exists():
                if proc.poll() is not None:
                    print(proc.stderr.read().decode(), file=sys.stderr)
                    return 1
                time.sleep(0.05)
            startup = time.perf_counter() - t0
            info = json.loads((d / "lab.json").read_text())
            inv = load_inventory(d / "inventory.yaml")
            devices = inv.devices
            n = len(devices)
            time.sleep(1.0)
            cpu0, rss0 = proc_stats(proc.pid)
            streams = sum(x["channels"] for x in control(info, "/status")["devices"])
            print(f"lab: {n} devices ({a.schools} schools), {streams} video channels (each an RTSP stream), one process (pid {proc.pid})")
            print(f"  start-up to ready: {startup:.2f} s; RSS idle {rss0 / 2**20:.1f} MiB "
                  f"({rss0 / n / 1024:.1f} KiB per device, everything included)")
            asyncio.run(run_phases(proc, info, devices, a))
        finally:
            proc.terminate()
            proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
