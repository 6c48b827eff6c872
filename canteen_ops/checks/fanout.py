"""Spread a fleet over several processes, so checks use every core (the GIL keeps one process's threads on
one core: zeep and TLS/HTTP parsing are CPU work, about 6 ms per camera and 100+ ms per NVR).

Each child is forked with everything already loaded (inventory, history, parsed WSDLs), runs the ordinary
threaded runner on its share of the devices, and sends each Result back over a queue. The parent stays the only
writer of the log: `on_result` is called in the parent's thread, as with one process. Ctrl-C in the parent
stops the children and keeps every result already received.
"""

from __future__ import annotations

import os
import queue as queue_mod
import signal
from typing import TYPE_CHECKING, Callable

from canteen_ops.runner import RunOutcome, run_devices
from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device

_DONE, _DEVICE, _FAILED = "done", "device", "failed"


def run_forked(devices: list["Device"], task: Callable[["Device"], list[Result]], *, processes: int,
               workers: int | None, deadline_s: float | None, on_result: Callable[[Result], None] | None,
               progress: bool | None, label: str = "checking") -> RunOutcome:
    import multiprocessing as mp
    import sys

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    # Round-robin, so every child gets its share of NVRs (the expensive devices) and of each school.
    chunks = [devices[i::processes] for i in range(processes)]
    per_child_workers = max(1, (workers or 0) // processes) if workers else None

    def child(index: int, chunk: list["Device"]) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us

        def counted(device: "Device") -> list[Result]:
            try:
                return task(device)
            finally:
                q.put((_DEVICE, device.id))

        try:
            out = run_devices(chunk, counted, workers=per_child_workers, deadline_s=deadline_s,
                              on_result=q.put, progress=False, label=label)
            q.put((_DONE, index, out.timed_out))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which reports the devices
            q.put((_FAILED, index, f"{type(exc).__name__}: {exc}"))

    outcome = RunOutcome()
    procs = []
    for chunk in (c for c in chunks if c):
        p = ctx.Process(target=child, args=(len(procs), chunk), daemon=True)
        p.start()
        procs.append((p, chunk))
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from canteen_ops.runner import _Progress

        bar = _Progress(len(devices), label)
    seen: set[str] = set()
    done: set[int] = set()

    def emit(r: Result) -> None:
        outcome.results.append(r)
        if r.device_id:
            seen.add(r.device_id)
        if on_result:
            on_result(r)

    try:
        while len(done) < len(procs):
            try:
                msg = q.get(timeout=0.5)
            except queue_mod.Empty:
                # A child that died without saying so (killed, out of memory): its unfinished devices get one line.
                for i, (p, chunk) in enumerate(procs):
                    if i not in done and not p.is_alive() and p.exitcode != 0:
                        done.add(i)
                        _lost(chunk, seen, f"worker process died (exit {p.exitcode})", emit)
                continue
            if isinstance(msg, Result):
                emit(msg)
            elif msg[0] == _DEVICE:
                if bar:
                    bar.advance()
            elif msg[0] == _DONE:
                done.add(msg[1])
                outcome.timed_out.extend(msg[2])
            elif msg[0] == _FAILED:
                done.add(msg[1])
                _lost(procs[msg[1]][1], seen, f"worker process failed: {msg[2]}", emit)
    except KeyboardInterrupt:
        outcome.interrupted = True
        for p, _ in procs:
            if p.is_alive():
                p.terminate()
        # keep what already arrived
        while True:
            try:
                msg = q.get_nowait()
            except (queue_mod.Empty, OSError, EOFError):
                break
            if isinstance(msg, Result):
                emit(msg)
        raise
    finally:
        for p, _ in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
        q.close()
        if bar:
            bar.close()
    return outcome


def _lost(chunk, seen: set[str], why: str, emit) -> None:
    """Devices of a failed child that never reported: one unknown line each."""
    for d in chunk:
        if d.id not in seen:
            seen.add(d.id)
            emit(Result(d.id, "task", Status.UNKNOWN, why, school_id=d.school_id))


def default_processes(n_devices: int) -> int:
    """One process per core for big fleets; a small run is not worth the fork."""
    return min(os.cpu_count() or 1, 8) if n_devices >= 200 else 1


def warm_shared_state(devices: list["Device"]) -> None:
    """Parse the ONVIF WSDLs once in the parent, so forked children share them instead of each parsing them."""
    if any(d.vendor == "onvif" for d in devices):
        from canteen_ops.drivers.onvif import shared_client

        for service in ("device", "media", "search"):
            shared_client(service)

