"""Run one task per device on a pool of threads, with a per-device deadline, progress and clean Ctrl-C.

Modelled on Nornir's threaded runner: each device is handled by exactly one thread (so one connection at a
time per device), results come back to the calling thread (so the log is written from one place), and the
worst status decides the exit code. Threads, because checking a device is mostly waiting for its answers;
hundreds of devices are in flight at once (default_workers).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sized
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, SimpleQueue
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from canteen_ops.status import Result, Status, worst

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device

DeviceTask = Callable[["Device"], Iterable[Result]]


DEFAULT_WORKERS = 256


def default_workers() -> int:
    """Devices in flight at once. Real devices take 10–100 ms per answer, so a device's thread mostly waits: many
    devices in flight is what makes a fleet fast (docs/benchmarks.md: 1,000 devices with 40 ms per answer). Each
    device still gets one connection at a time, so a school's network sees at most its own devices' connections."""
    return int(os.environ.get("CANTEEN_OPS_WORKERS", "0")) or DEFAULT_WORKERS


@dataclass
class RunOutcome:
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False
    timed_out: list[str] = field(default_factory=list)  # device ids that hit the deadline

    @property
    def status(self) -> Status:
        return worst(r.status for r in self.results)

    @property
    def exit_code(self) -> int:
        return self.status.exit_code


def run_devices(
    devices: Iterable["Device"],
    task: DeviceTask,
    *,
    workers: int | None = None,
    deadline_s: float | None = None,
    on_result: Callable[[Result], None] | None = None,
    on_device: Callable[["Device", list[Result]], None] | None = None,
    progress: bool | None = None,
    label: str = "devices",
) -> RunOutcome:
    """Run `task(device)` for every device. A task returns the device's results; an exception in a task
    becomes one `unknown` result for that device, so one broken device never stops the fleet.

    deadline_s bounds each device (drivers bound each call too); a device past its deadline gets an
    `unknown` result and its late results are dropped. Ctrl-C stops scheduling, keeps what finished and
    re-raises KeyboardInterrupt after `on_result` has seen every finished result. `on_device(device, results)`
    follows the device's last `on_result`, in the calling thread (check --processes sends one message per device).

    At most `workers` devices are in flight (default_workers(), fewer for a smaller fleet, and fewer where the
    open-files limit cannot be raised to fit them). devices may be an iterator: the next device is taken only
    when a worker is free for it; no progress bar then.
    """
    outcome = RunOutcome()
    total = len(devices) if isinstance(devices, Sized) else None
    if total == 0:
        return outcome
    source = iter(devices)
    ceiling = fit_open_files(max(1, min(workers or default_workers(), total or sys.maxsize)))
    show = sys.stderr.isatty() if progress is None else progress

    def emit(result: Result) -> None:
        outcome.results.append(result)
        if on_result:
            on_result(result)

    def finish(device: "Device", results: list[Result]) -> None:
        for r in results:
            emit(r)
        if on_device:
            on_device(device, results)

    def guarded(device: "Device") -> list[Result]:
        t0 = time.monotonic()
        try:
            results = list(task(device))
        except Exception as exc:  # contained per device
            results = [Result(device.id, "task", Status.UNKNOWN, f"internal error: {type(exc).__name__}: {exc}",
                              school_id=device.school_id)]
        for r in results:
            r.school_id = r.school_id or device.school_id
            if r.duration_ms is None:
                r.duration_ms = round((time.monotonic() - t0) * 1000, 1)
        return results

    bar = _Progress(total, label) if show and total else None
    pool = ThreadPoolExecutor(max_workers=ceiling, thread_name_prefix="device")
    pending: dict[Future, tuple["Device", float]] = {}
    started: deque[Future] = deque()  # pending futures, oldest first (a device starts when it is submitted)
    finished: SimpleQueue[Future] = SimpleQueue()  # each future puts itself here when it ends: O(1) a device
    # Devices past their deadline whose task still runs (a driver call has its own, later, timeout): they keep
    # their thread, so they count against the in-flight bound until they end; their results are dropped.
    overdue: set[Future] = set()
    more = True
    try:
        while more or pending:
            while more and len(pending) + len(overdue) < ceiling:
                device = next(source, None)
                if device is None:
                    more = False
                else:
                    fut = pool.submit(guarded, device)
                    pending[fut] = (device, time.monotonic())
                    started.append(fut)
                    fut.add_done_callback(finished.put)
            if not pending and not more:
                break  # (threads still held by overdue devices end on their own)
            while started and started[0] not in pending:
                started.popleft()
            timeout = None
            if deadline_s and started:
                timeout = max(0.0, pending[started[0]][1] + deadline_s - time.monotonic())
            try:
                fut = finished.get(timeout=timeout)
                while True:
                    overdue.discard(fut)
                    if fut in pending:
                        device, _ = pending.pop(fut)
                        finish(device, fut.result())
                        if bar:
                            bar.advance()
                    fut = finished.get_nowait()
            except Empty:
                pass
            now = time.monotonic()
            while deadline_s and started and (started[0] not in pending or now - pending[started[0]][1] >= deadline_s):
                fut = started.popleft()
                if fut not in pending:
                    continue
                device, _ = pending.pop(fut)
                if not fut.cancel():
                    overdue.add(fut)
                outcome.timed_out.append(device.id)
                finish(device, [Result(device.id, "deadline", Status.UNKNOWN,
                                       f"no answer within the {deadline_s:g} s per-device deadline",
                                       school_id=device.school_id)])
                if bar:
                    bar.advance()
    except KeyboardInterrupt:
        outcome.interrupted = True
        for fut in pending:
            fut.cancel()
        # Keep whatever finished in the meantime.
        for fut, (device, _) in list(pending.items()):
            if fut.done() and not fut.cancelled():
                finish(device, fut.result())
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if bar:
            bar.close()
    return outcome


FILES_PER_DEVICE = 3  # its connection, and a stream probe's or a backup's file and lock
FILES_RESERVED = 64  # the log, the inventory, the interpreter's own


def fit_open_files(workers: int) -> int:
    """How many devices can be in flight under the open-files limit: the soft limit is raised to fit `workers`
    (up to the hard limit) where there is one (not on Windows, where sockets are not limited this way)."""
    from canteen_ops.fdlimit import raise_open_files

    limit = raise_open_files(workers * FILES_PER_DEVICE + FILES_RESERVED)
    if limit is None:
        return workers
    return max(1, min(workers, (limit - FILES_RESERVED) // FILES_PER_DEVICE))


class _Progress:
    """A rich progress bar on stderr, only when a person is watching (never in cron or pipes)."""

    def __init__(self, total: int, label: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from canteen_ops.cli.render import clean, make_console

        self._p = Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
                           MofNCompleteColumn(), TimeElapsedColumn(), console=make_console(stderr=True),
                           transient=True)
        self._p.start()
        self._t = self._p.add_task(clean(label, oneline=True), total=total)

    def advance(self) -> None:
        self._p.advance(self._t)

    def close(self) -> None:
        self._p.stop()
