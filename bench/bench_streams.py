"""Stream + picture checks on 1 vs 50 lab cameras at once (issue 4 target: 50 streams ≤ 3× the time of one).

The lab RTSP server runs in its own process (as `lab up` would), serving N identical cameras on N loopback
addresses, each with a 1080p main stream and a 640x360 sub-stream; this process checks them with PyAV in threads
and runs the quality metrics on the decoded frames. Two ways to check a camera are measured:

  main      decode `--frames` frames of the 1080p main stream; stream facts and picture checks from it
  main+sub  stream facts from the main stream (nothing decoded, 12 packets read for fps/bitrate), picture
            checks on `--frames` frames of the sub-stream (one connection at a time per camera)

Prints wall times, the 50/1 ratios and the lab server's CPU use.

    python bench/bench_streams.py [--streams 50] [--size 1920x1080] [--frames 12]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from canteen_ops.inventory.model import Policy  # noqa: E402
from canteen_ops.media.probe import probe_stream  # noqa: E402
from canteen_ops.media.quality import assess, assess_probe, assess_stream  # noqa: E402

USER, PASSWORD = "admin", "bench-Secret-1"
FIRST = "127.0.3.1"
PORT = 8554
PATH = "/Streaming/Channels/101"
SUB_PATH = "/Streaming/Channels/102"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def check(i: int, mode: str, frames: int, policy: Policy) -> tuple[float, str, float | None]:
    t0 = time.monotonic()
    host = f"127.0.3.{1 + i}"
    if mode == "main":
        r = probe_stream(f"rtsp://{host}:{PORT}{PATH}", username=USER, password=PASSWORD, timeout=30, frames=frames)
        findings = assess_probe(r, policy)
    else:
        r = probe_stream(f"rtsp://{host}:{PORT}{PATH}", username=USER, password=PASSWORD, timeout=30, frames=0)
        findings = [f for f in assess_stream(r, policy) if f.code != "ok"]
        sub = probe_stream(f"rtsp://{host}:{PORT}{SUB_PATH}", username=USER, password=PASSWORD, timeout=30,
                           frames=frames)
        findings += [f for f in (assess(sub.frames, policy) if sub.ok else assess_stream(sub, policy))
                     if f.code != "ok"]
    return time.monotonic() - t0, ",".join(f.code for f in findings) or "ok", r.time_to_first_frame_s


def _rtsp(sock, buf: bytearray, method: str, url: str, headers: dict[str, str], cseq: int) -> tuple[int, dict]:
    sock.sendall((f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n"
                  + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode())
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    n = int(hdrs.get("content-length", 0))
    while len(rest) < n:
        rest += sock.recv(65536)
    buf[:] = rest[n:]
    return int(lines[0].split()[1]), hdrs


def _digest(chal: str, method: str, uri: str) -> str:
    import hashlib
    import re

    p = dict(re.findall(r'(\w+)="?([^",]*)"?', chal))
    md5 = lambda x: hashlib.md5(x.encode()).hexdigest()  # noqa: E731
    ha1, ha2 = md5(f"{USER}:{p['realm']}:{PASSWORD}"), md5(f"{method}:{uri}")
    resp = md5(f"{ha1}:{p['nonce']}:00000001:c0ffee:auth:{ha2}")
    return (f'Digest username="{USER}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", '
            f'response="{resp}", qop=auth, nc=00000001, cnonce="c0ffee"')


def serve_only(n: int, seconds: float, server_pid: int) -> tuple[float, float]:
    """n raw RTSP clients play the 1080p main streams and just drain the bytes: the lab server's own cost."""
    import socket
    import threading

    stop = threading.Event()
    received = [0] * n

    def client(i: int) -> None:
        url = f"rtsp://127.0.3.{1 + i}:{PORT}{PATH}"
        with socket.create_connection((f"127.0.3.{1 + i}", PORT), timeout=10) as sock:
            buf = bytearray()
            _, h = _rtsp(sock, buf, "DESCRIBE", url, {}, 1)
            chal = h["www-authenticate"]
            _rtsp(sock, buf, "DESCRIBE", url, {"Authorization": _digest(chal, "DESCRIBE", url)}, 2)
            track = url + "/trackID=1"
            _, h = _rtsp(sock, buf, "SETUP", track, {"Authorization": _digest(chal, "SETUP", track),
                                                     "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}, 3)
            _rtsp(sock, buf, "PLAY", url, {"Authorization": _digest(chal, "PLAY", url),
                                           "Session": h["session"].split(";")[0]}, 4)
            while not stop.is_set():
                received[i] += len(sock.recv(1 << 20))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # all playing
    cpu0, b0, t0 = cpu_seconds(server_pid), sum(received), time.monotonic()
    time.sleep(seconds)
    cpu, nbytes, wall = cpu_seconds(server_pid) - cpu0, sum(received) - b0, time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(5)
    return 100 * cpu / wall, nbytes * 8 / wall / 1e6


def run(n: int, mode: str, frames: int, policy: Policy, server_pid: int) -> dict:
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(lambda i: check(i, mode, frames, policy), range(n)))
    wall = time.monotonic() - t0
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    server_cpu = cpu_seconds(server_pid) - cpu0
    client_cpu = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    codes = {c for _, c, _ in results}
    return {"n": n, "wall": wall, "per_check_median": statistics.median(t for t, _, _ in results),
            "ttff_median": statistics.median(t or 0 for _, _, t in results), "codes": codes,
            "server_cpu": server_cpu, "server_cpu_pct": 100 * server_cpu / wall, "client_cpu": client_cpu}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=float, default=25)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "canteen-ops-bench-loops"))
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    policy = Policy(min_resolution=args.size)

    env = dict(os.environ, LAB_RTSP_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
    t0 = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "canteen_ops.lab.rtsp", "--first-host", FIRST, "--count", str(args.streams),
         "--port", str(PORT), "--path", PATH, "--size", args.size, "--fps", str(args.fps),
         "--user", USER, "--cache-dir", args.cache_dir, "--sub-path", SUB_PATH, "--sub-size", "640x360"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = server.stdout.readline()
        if not line.startswith("ready"):
            print("lab server failed to start", file=sys.stderr)
            return 1
        ready = time.monotonic() - t0
        idle0 = cpu_seconds(server.pid)
        time.sleep(1.0)
        idle_cpu = cpu_seconds(server.pid) - idle0
        print(f"lab: {args.streams} cameras {args.size}@{args.fps:g} on {FIRST}..; ready in {ready:.1f} s "
              f"(includes encoding the loop unless cached), idle CPU {100 * idle_cpu:.1f}%, "
              f"RSS {rss_mb(server.pid):.0f} MB")
        check(0, "main+sub", args.frames, policy)  # warm-up: imports, first connections
        print(f"\n{'mode':<10}{'case':<12}{'wall s':>8}{'per check s':>13}{'ttff s':>9}{'client CPU s':>14}"
              f"{'lab CPU s':>11}{'lab CPU %':>11}  findings")
        ratios, projections = {}, {}
        for mode in ("main", "main+sub"):
            ones = [run(1, mode, args.frames, policy, server.pid) for _ in range(args.repeat)]
            one = min(ones, key=lambda r: r["wall"])
            many = [run(args.streams, mode, args.frames, policy, server.pid) for _ in range(args.repeat)]
            best = min(many, key=lambda r: r["wall"])
            for name, r in (("1 stream", one), (f"{args.streams} streams", best)):
                print(f"{mode:<10}{name:<12}{r['wall']:>8.2f}{r['per_check_median']:>13.2f}{r['ttff_median']:>9.2f}"
                      f"{r['client_cpu']:>14.2f}{r['server_cpu']:>11.2f}{r['server_cpu_pct']:>10.0f}%  "
                      f"{','.join(sorted(r['codes']))}")
            print(f"{'':<10}all runs, wall s: 1 stream {[round(r['wall'], 2) for r in ones]}, "
                  f"{args.streams} streams {[round(r['wall'], 2) for r in many]}")
            ratios[mode] = best["wall"] / one["wall"]
            # What an idle 2-core machine would do: the 50 checks are CPU-bound, the single one is latency-bound.
            projected = max(one["wall"], (best["client_cpu"] + best["server_cpu"]) / 2)
            projections[mode] = projected / one["wall"]
        print()
        for mode, ratio in ratios.items():
            print(f"ratio {args.streams} / 1, {mode:<9}= {ratio:.2f}x (target <= 3x): {'PASS' if ratio <= 3 else 'FAIL'}"
                  f"; CPU-bound projection for an idle 2-core machine {projections[mode]:.2f}x")
        pct, mbps = serve_only(args.streams, 5.0, server.pid)
        print(f"lab server alone, {args.streams} x {args.size} streams playing to raw clients: {pct:.0f}% of one core "
              f"({pct / args.streams:.2f}% per stream), {mbps:.0f} Mbit/s delivered")
        load = os.getloadavg()
        print(f"lab server RSS {rss_mb(server.pid):.0f} MB; load average during the run {load[0]:.1f} "
              f"(2 cores; other work on the machine inflates every figure)")
        return 0 if min(ratios.values()) <= 3 else 1
    finally:
        server.stdin.close()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.terminate()
            server.wait(5)


if __name__ == "__main__":
    raise SystemExit(main())
