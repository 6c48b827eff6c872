"""Client side of a running lab: find it from DIR/lab.json, talk to its JSON control endpoint, start/stop it.

Stdlib only (http.client, subprocess), so `canteen-ops lab status` stays quick.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from canteen_ops.errors import LockHeld, NotFound, Unavailable, UsageError

DEFAULT_DIR = "lab-run"


def lab_dir(value: str | Path | None) -> Path:
    return Path(value or os.environ.get("CANTEEN_OPS_LAB_DIR") or DEFAULT_DIR).expanduser().resolve()


def pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there, and there is no waitpid(WNOHANG)
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours has exited too
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() == 5  # ERROR_ACCESS_DENIED: it exists, it is not ours
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def read_info(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / "lab.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise Unavailable(f"{directory / 'lab.json'} is unreadable: {exc}") from None


def running_info(directory: Path) -> dict[str, Any]:
    info = read_info(directory)
    if info is None:
        raise NotFound(f"no lab is running in {directory} (no lab.json); start one with `canteen-ops lab up`")
    if not pid_alive(int(info.get("pid", 0))):
        raise Unavailable(f"the lab in {directory} is not running (stale lab.json, pid {info.get('pid')}); "
                          f"remove {directory} or run `canteen-ops lab up` again")
    return info


def request(info: dict[str, Any], method: str, path: str, body: dict | None = None, timeout: float = 15.0
            ) -> dict[str, Any]:
    host, _, port = info["control"].rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = json.dumps(body or {}).encode()
        conn.request(method, path, body=data, headers={"X-Lab-Token": info["token"],
                                                       "Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = json.loads(resp.read() or b"{}")
    except (OSError, ValueError) as exc:
        raise Unavailable(f"lab control endpoint {info['control']} did not answer: {exc}") from None
    finally:
        conn.close()
    if resp.status == 400:
        raise UsageError(payload.get("error", "refused by the lab"))
    if resp.status != 200:
        raise Unavailable(payload.get("error", f"lab control endpoint answered HTTP {resp.status}"))
    return payload


def start_background(directory: Path, args: list[str], timeout: float = 360.0) -> dict[str, Any]:
    """Start `python -m canteen_ops.lab.service` detached; wait until it has published lab.json.

    The first start on a machine encodes the stream pictures (tens of seconds on 2 cores); later starts read them
    from the cache and take a few seconds.
    """
    info = read_info(directory)
    if info is not None:
        if pid_alive(int(info.get("pid", 0))):
            raise LockHeld(f"a lab is already running in {directory} (pid {info['pid']}); "
                           f"stop it with `canteen-ops lab down --dir {directory}`")
        (directory / "lab.json").unlink(missing_ok=True)  # stale: the lab died without cleaning up
    directory.mkdir(parents=True, exist_ok=True)
    root = str(Path(__file__).resolve().parents[2])  # run this checkout's code, installed or not
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    log_path = directory / "lab.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "canteen_ops.lab.service", "--dir", str(directory), *args],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=str(directory),
                                start_new_session=True)  # survives the terminal; `lab down` stops it
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_info(directory)
        if info is not None and info.get("pid") == proc.pid:
            return info
        if proc.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            raise Unavailable("the lab failed to start:\n  " + "\n  ".join(tail or ["(no output)"]))
        time.sleep(0.1)
    proc.terminate()
    raise Unavailable(f"the lab did not come up within {timeout:.0f} s; see {log_path}")


def stop(directory: Path, timeout: float = 15.0) -> int:
    """Ask the lab to stop, wait for its process to end (SIGTERM it if it does not). Returns its pid."""
    info = running_info(directory)
    pid = int(info["pid"])
    try:
        request(info, "POST", "/down")
    except Unavailable:
        os.kill(pid, signal.SIGTERM)
    kill = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows: SIGTERM is TerminateProcess already
    for sig, wait in ((None, timeout), (signal.SIGTERM, 5.0), (kill, 5.0)):
        if sig is not None and pid_alive(pid):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pid_alive(pid):
            break
    return pid


def block_in_use(addresses: list[str], ports: tuple[int, ...]) -> str | None:
    """The first 'address:port' of this block that something already listens on (or holds), else None."""
    import socket

    for addr in addresses:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((addr, port))
            except OSError:
                return f"{addr}:{port}"
            finally:
                s.close()
    return None


def free_block(n_devices: int, ports: tuple[int, ...], first: str, tries: int = 64) -> tuple[str, str | None]:
    """A first address whose block of n_devices loopback addresses is free on these ports: `first` itself when it
    is, else the next free block (moving by whole /24s). Returns (first address, what was in use or None)."""
    import ipaddress

    from canteen_ops.errors import Unavailable
    from canteen_ops.lab.fleet import _addresses

    start = ipaddress.IPv4Address(first)
    span = (n_devices + 253) // 254  # /24s one block covers (.0 and .255 are skipped)
    taken_first = None
    for k in range(tries):
        candidate = start + 256 * span * k
        if not candidate.is_loopback:
            break
        gen = _addresses(str(candidate))
        block = [next(gen) for _ in range(n_devices)]
        taken = block_in_use(block, ports)
        if taken is None:
            return str(candidate), taken_first
        taken_first = taken_first or taken
    raise Unavailable(f"no free block of {n_devices} loopback addresses from {first} (first in use: {taken_first}); "
                      "stop the other lab or pass --first-address")