"""A big fleet's protocol checks spread over worker processes, one share each (procpool.py: spawn, so it also
runs where fork does not exist). Parsing the answers (httpx, XML, zeep's SOAP) is CPU work, and one process's
threads share one core: on the 2-core reference machine 1,000 lab devices took 1.25× as long in one process,
the workers' start-up included (docs/benchmarks.md).

Each worker gets the inventory and its share (pickled once per share), runs the ordinary threaded runner over
it, and sends each device's results back as the device finishes; the parent stays the only writer of the log:
`on_results` gets them in the parent's thread, as with one process. Ctrl-C in the parent ends the workers and
keeps every result already received.
"""

from __future__ import annotations

import datetime as dt
import queue
import time
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Callable

from canteen_ops.runner import RunOutcome, default_workers, run_devices
from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.checks.context import DriverFactory
    from canteen_ops.inventory.model import Device, Inventory

_DEVICE, _DONE = "device", "done"
BATCH_MAX = 64  # results of this many devices, received together, are delivered in one call
SETTLE_S = 2.0  # a share whose worker returned is taken from its return value if its messages lag this long


def check_share(index: int, inventory: "Inventory", devices: list["Device"], names: list[str], workers: int,
                deadline_s: float | None, driver_factory: "DriverFactory | None", now: dt.datetime,
                tls_pins: dict[str, str], login_memory: Any = None
                ) -> tuple[list[tuple[str, list[Result]]], list[str]]:
    """In a worker process: check `devices` with `workers` threads, sending each device's results as it ends.
    login_memory: the parent's store.logins.LoginMemory (refusals of earlier commands withhold credentials here
    too, and refusals seen here are recorded). Returns every device's results too: a worker that dies while
    sending keeps the queue's shared write lock, and the others' messages never arrive (the parent then takes
    them from here)."""
    from canteen_ops.checks.run import device_task
    from canteen_ops.drivers.base import auth_guard
    from canteen_ops.procpool import send

    auth_guard.use_memory(login_memory)
    task = device_task(inventory, names, driver_factory=driver_factory, now=now, deadline_s=deadline_s,
                       tls_pins=tls_pins)
    done: list[tuple[str, list[Result]]] = []

    def on_device(device: "Device", results: list[Result]) -> None:
        done.append((device.id, results))
        send((_DEVICE, index, device.id, results))

    out = run_devices(devices, task, workers=workers, deadline_s=deadline_s, progress=False, on_device=on_device)
    send((_DONE, index, None, out.timed_out))
    return done, out.timed_out


def run_sharded(devices: list["Device"], inventory: "Inventory", names: list[str], *, processes: int,
                workers: int | None, deadline_s: float | None, on_results: Callable[[list[Result]], None] | None,
                progress: bool | None, driver_factory: "DriverFactory | None" = None,
                now: dt.datetime | None = None, tls_pins: dict[str, str] | None = None,
                label: str = "checking") -> RunOutcome:
    """Check `devices` in `processes` worker processes; `workers` devices in flight in all (split evenly). A
    worker that dies leaves one `unknown` line for each of its devices that had not reported."""
    import sys

    from canteen_ops.drivers.base import auth_guard
    from canteen_ops.procpool import WorkerProcesses
    from canteen_ops.runner import _Progress

    remember_passwords(devices)
    now = now or dt.datetime.now(dt.timezone.utc)
    shares = [devices[i::processes] for i in range(processes)]
    shares = [s for s in shares if s]
    per_process = max(1, -(-(workers or default_workers()) // len(shares)))
    outcome = RunOutcome()
    reported: set[str] = set()
    waiting = set(range(len(shares)))
    finished: dict[int, float] = {}  # share → when its worker function returned
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(len(devices), label) if show else None

    def deliver(messages: list[tuple]) -> None:
        results: list[Result] = []
        for kind, i, device_id, payload in messages:
            if kind == _DONE:
                waiting.discard(i)
                outcome.timed_out.extend(payload)
            elif device_id not in reported:  # (a late message from a worker already given up on)
                reported.add(device_id)
                results.extend(payload)
                if bar:
                    bar.advance()
        if results:
            outcome.results.extend(results)
            if on_results:
                on_results(results)

    def lost(i: int, why: str) -> None:
        waiting.discard(i)
        deliver([(_DEVICE, i, d.id, [Result(d.id, "task", Status.UNKNOWN, why, school_id=d.school_id)])
                 for d in shares[i] if d.id not in reported])

    pool = WorkerProcesses(len(shares), messages=True)
    try:
        futures = {pool.submit(check_share, i, inventory, share, names, per_process, deadline_s, driver_factory,
                               now, tls_pins or {}, auth_guard.memory): i for i, share in enumerate(shares)}
        while waiting:
            messages = _receive(pool.messages)
            deliver(messages)
            if messages:
                continue
            for fut, i in futures.items():
                if i in waiting and fut.done() and fut.exception() is None:
                    # Finished, but its messages have not come: a dead worker may hold the queue's write lock.
                    if time.monotonic() - finished.setdefault(i, time.monotonic()) > SETTLE_S:
                        per_device, timed_out = fut.result()
                        deliver([(_DEVICE, i, device_id, res) for device_id, res in per_device]
                                + [(_DONE, i, None, timed_out)])
                elif i in waiting and fut.done():
                    deliver(_receive(pool.messages, wait_s=0.5))  # what it sent before it failed
                    exc = fut.exception()
                    lost(i, "worker process died" if isinstance(exc, BrokenProcessPool)
                         else f"worker process failed: {type(exc).__name__}: {exc}")
        # Every share has reported, but a worker may still be writing its return value: ending it mid-write
        # would leave half a message in the executor's result pipe, and its reader (and shutdown) would wait for
        # ever. Stop the workers only once their futures are settled.
        futures_wait(futures, timeout=30)
    except KeyboardInterrupt:
        outcome.interrupted = True
        deliver(_receive(pool.messages, wait_s=0))  # keep what already arrived
        raise
    finally:
        # Every share has reported (or the run is being abandoned): the workers leave at once instead of tearing
        # down their interpreters (up to a second on a loaded machine, with a big fleet's objects to free).
        pool.close(stop=True)
        if bar:
            bar.close()
    return outcome


def _receive(messages: Any, wait_s: float = 0.2) -> list[tuple]:
    """What the workers sent: the first message within wait_s, and whatever else is already there."""
    out: list[tuple] = []
    try:
        out.append(messages.get(timeout=wait_s) if wait_s else messages.get_nowait())
        while len(out) < BATCH_MAX:
            out.append(messages.get_nowait())
    except queue.Empty:
        pass
    return out


def remember_passwords(devices: list["Device"]) -> None:
    """Resolve the devices' passwords here, in the parent, so that it can mask them (redact.py): the workers
    log in with them, but the parent writes the log and the screen, and a device may echo its password back in
    an error. (The workers get them already read, with the inventory.) Unreadable ones are left to the device's
    own check, which reports them."""
    from canteen_ops.inventory.model import SecretUnavailable

    for creds in {id(d.credentials): d.credentials for d in devices if d.credentials is not None}.values():
        try:
            creds.resolve()
        except SecretUnavailable:
            pass
