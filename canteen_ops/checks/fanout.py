"""Spread a fleet over several processes, so checks use every core (the GIL keeps one process's threads on
one core: zeep and HTTP parsing are CPU work, a few ms per camera and more per NVR).

Each child is forked with everything already loaded (inventory, history, parsed WSDLs), runs the ordinary
threaded runner on its share of the devices, and sends each device's results back over its pipe. The parent
stays the only writer of the log: `on_results` gets each device's results in the parent's thread, as with one
process. Ctrl-C in the parent stops the children and keeps every result already received.
"""

from __future__ import annotations

import gc
import os
import signal
from typing import TYPE_CHECKING, Callable

from canteen_ops.gcpause import gc_paused
from canteen_ops.runner import RunOutcome, run_devices
from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device

_DONE, _DEVICE, _FAILED = "done", "device", "failed"


def run_forked(devices: list["Device"], task: Callable[["Device"], list[Result]], *, processes: int,
               workers: int | None, deadline_s: float | None,
               on_results: Callable[[list[Result]], None] | None,
               progress: bool | None, label: str = "checking") -> RunOutcome:
    import multiprocessing as mp
    import sys
    from multiprocessing.connection import wait

    ctx = mp.get_context("fork")
    chunks = deal(devices, processes)
    remember_passwords(devices)
    per_child_workers = max(1, (workers or 0) // processes) if workers else None

    def child(index: int, chunk: list["Device"], conn) -> None:
        # One pipe per child, written synchronously from the child's main thread: no multiprocessing.Queue feeder
        # thread, whose join at exit could hang a forked child for ever (seen in CI), and a dead child reads as
        # EOF at once. One message per device with all its results: 1,000 devices make 1,000 messages, not 6,000.
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
        batch_scheduling()
        try:
            out = run_devices(chunk, task, workers=per_child_workers, deadline_s=deadline_s, progress=False,
                              on_device=lambda device, results: conn.send((_DEVICE, results)), label=label)
            conn.send((_DONE, index, out.timed_out))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which reports the devices
            conn.send((_FAILED, index, f"{type(exc).__name__}: {exc}"))
        finally:
            conn.close()

    outcome = RunOutcome()
    procs = []
    # Everything loaded so far (inventory, parsed WSDLs) is frozen for the fork: a child's garbage collector
    # would otherwise walk it on every full collection (a tenth of a child's CPU on the 1,000-device lab) and
    # touch its pages, undoing copy-on-write. The parent unfreezes once the children are started.
    gc.freeze()
    try:
        for chunk in (c for c in chunks if c):
            reader, writer = ctx.Pipe(duplex=False)
            p = ctx.Process(target=child, args=(len(procs), chunk, writer), daemon=True)
            p.start()
            writer.close()  # only the child writes: its exit (however it happens) is EOF here
            procs.append((p, chunk, reader))
    finally:
        gc.unfreeze()
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from canteen_ops.runner import _Progress

        bar = _Progress(len(devices), label)
    seen: set[str] = set()
    done: set[int] = set()
    readers = {reader: i for i, (_, _, reader) in enumerate(procs)}

    def emit(results: list[Result]) -> None:  # one device's results
        outcome.results.extend(results)
        seen.update(r.device_id for r in results if r.device_id)
        if on_results:
            on_results(results)

    def handle(i: int, msg) -> None:
        if msg[0] == _DEVICE:
            emit(msg[1])
            if bar:
                bar.advance()
        elif msg[0] == _DONE:
            done.add(i)
            outcome.timed_out.extend(msg[2])
        elif msg[0] == _FAILED:
            done.add(i)
            _lost(procs[i][1], seen, f"worker process failed: {msg[2]}", emit)

    try:
        while readers:
            for reader in wait(list(readers), timeout=0.5):
                i = readers[reader]
                try:
                    handle(i, reader.recv())
                except (EOFError, OSError):
                    del readers[reader]
                    p, chunk, _ = procs[i]
                    p.join(timeout=5)
                    if i not in done:  # died without saying so (killed, out of memory)
                        done.add(i)
                        _lost(chunk, seen, f"worker process died (exit {p.exitcode})", emit)
    except KeyboardInterrupt:
        outcome.interrupted = True
        for p, _, _ in procs:
            if p.is_alive():
                p.terminate()
        for reader, i in list(readers.items()):  # keep what already arrived
            try:
                while reader.poll(0):
                    msg = reader.recv()
                    if msg[0] == _DEVICE:
                        emit(msg[1])
            except (EOFError, OSError):
                pass
        raise
    finally:
        for p, _, reader in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
            reader.close()
        if bar:
            bar.close()
    return outcome


def batch_scheduling() -> bool:
    """Ask Linux to schedule this worker as batch work (SCHED_BATCH, same priority): a worker woken by a device's
    answer then waits for the running process's time slice to end instead of preempting it. The workers of one run
    otherwise preempt each other at every answer, thousands of times a second on a big fleet; on the 1,000-device
    lab this cut the workers' CPU by ~10 % and the check's time by ~12 % (docs/benchmarks.md). Only throughput
    changes (nothing here is interactive: the parent draws the progress bar). False where the policy does not
    exist (macOS) or is refused; the run goes on as before."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        return False
    return True


def remember_passwords(devices: list["Device"]) -> None:
    """Resolve the devices' passwords here, in the parent, so that it can mask them (redact.py): the children
    log in with them, but the parent writes the log and the screen, and a device may echo its password back in
    an error. (The children inherit them already read: Credentials.resolve reads once per loaded inventory.)
    Unreadable ones are left to the device's own check, which reports them."""
    from canteen_ops.inventory.model import SecretUnavailable

    for creds in {id(d.credentials): d.credentials for d in devices if d.credentials is not None}.values():
        try:
            creds.resolve()
        except SecretUnavailable:
            pass


def deal(devices: list["Device"], n: int) -> list[list["Device"]]:
    """Split devices over n processes so each gets its share of every kind of work: dealt round-robin within
    each (kind, vendor) class, NVRs (the expensive devices) first. Dealing the inventory order itself would
    give one child every NVR whenever schools have an even number of devices (NVR first, then cameras)."""
    classes: dict[tuple[str, str], list["Device"]] = {}
    for d in devices:
        classes.setdefault((d.kind, d.vendor), []).append(d)
    ordered = [d for key in sorted(classes, key=lambda k: (k[0] != "nvr", k)) for d in classes[key]]
    return [ordered[i::n] for i in range(n)]


def _lost(chunk, seen: set[str], why: str, emit) -> None:
    """Devices of a failed child that never reported: one unknown line each."""
    for d in chunk:
        if d.id not in seen:
            seen.add(d.id)
            emit([Result(d.id, "task", Status.UNKNOWN, why, school_id=d.school_id)])


def default_processes(n_devices: int, checks: list[str] | tuple[str, ...] = ()) -> int:
    """How many processes `check` forks when not told.

    Protocol checks (a few ms of CPU per camera, more per NVR) from 200 devices on: one per core. An extra
    process once kept the cores busy while the others waited on answers; since the workers run as batch work and
    keep a few devices each in flight without growing to the ceiling (runner._Concurrency), it only adds CPU
    (1,000 lab devices on 2 cores, alternated: mixed median 2.67 s with 2 processes vs 2.96 s with 3, ONVIF
    2.38 vs 2.53 s; docs/benchmarks.md). Stream / picture checks from 8 cameras on: one per core (~70 ms of
    CPU each — RTSP, decoding, picture metrics — and ~430 MiB per 25 streams; 50 streams in one process spend
    half their CPU fighting over the GIL). At most 8 either way."""
    cores = os.cpu_count() or 1
    if {"stream", "picture"} & set(checks):
        return min(cores, 8) if n_devices >= 8 else 1
    return min(cores, 8) if n_devices >= 200 else 1


def warm_shared_state(devices: list["Device"], checks: list[str]) -> None:
    """Load, once in the parent, what the children will need, so they share it instead of each loading it: the
    drivers of the vendors in the fleet, the ONVIF WSDLs (device management always, recording search for NVR
    checks, media for stream checks; a WSDL nobody needs would be ~0.1 s of the parent's time before the fork)
    and, for stream checks, PyAV and the picture metrics."""
    with gc_paused():  # modules and parsed WSDLs stay alive: nothing for the collector to find
        _warm(devices, checks)


def _warm(devices: list["Device"], checks: list[str]) -> None:
    from canteen_ops.drivers.base import driver_class

    for vendor in sorted({d.vendor for d in devices}):
        driver_class(vendor)
    video = bool({"stream", "picture"} & set(checks))
    if video:
        import av  # noqa: F401

        import canteen_ops.media.probe  # noqa: F401
        import canteen_ops.media.quality  # noqa: F401
    onvif = [d for d in devices if d.vendor == "onvif"]
    if not onvif:
        return
    from canteen_ops.drivers.onvif import shared_client

    services = ["device"]
    if any(d.kind == "nvr" for d in onvif) and {"channels", "retention", "gaps"} & set(checks):
        services.append("search")
    if video:
        services.append("media")
    for service in services:
        shared_client(service)


