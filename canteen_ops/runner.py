"""Run one task per device with bounded concurrency, a per-device deadline, progress and clean Ctrl-C.

Modelled on Nornir's threaded runner: each device is handled by exactly one worker (so one connection at a
time per device), results come back to the calling thread (so the log is written from one place), and the
worst status decides the exit code.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from canteen_ops.status import Result, Status, worst

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device

DeviceTask = Callable[["Device"], Iterable[Result]]


def default_workers() -> int:
    """Sized for a technician's laptop: I/O bound work, but be gentle with fragile site networks."""
    return int(os.environ.get("CANTEEN_OPS_WORKERS", "0")) or min(32, (os.cpu_count() or 2) * 8)


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

    devices may be an iterator: the next device is taken only when a worker is free for it (a forked child
    takes its devices from a feed shared with the others, checks/fanout.py); no progress bar then.
    """
    outcome = RunOutcome()
    total = len(devices) if isinstance(devices, Sized) else None
    if total == 0:
        return outcome
    source = iter(devices)
    ceiling = max(1, min(workers or default_workers(), total or sys.maxsize))
    # An explicit worker count is kept; the default one is reached only while devices keep us waiting.
    concurrency = _Concurrency(ceiling, start=ceiling if workers else _Concurrency.START)
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
    more = True
    try:
        while more or pending:
            while more and len(pending) < concurrency.limit:
                device = next(source, None)
                if device is None:
                    more = False
                else:
                    pending[pool.submit(guarded, device)] = (device, time.monotonic())
            if not pending:
                break
            timeout = concurrency.tick()
            if deadline_s:
                oldest = min(started for _, started in pending.values())
                left = max(0.0, oldest + deadline_s - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
            done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            concurrency.update()
            for fut in done:
                device, _ = pending.pop(fut)
                finish(device, fut.result())
                if bar:
                    bar.advance()
            if deadline_s:
                now = time.monotonic()
                for fut, (device, started) in list(pending.items()):
                    if now - started >= deadline_s:
                        pending.pop(fut)
                        fut.cancel()
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


class _Concurrency:
    """How many devices run at once. Threads only pay while devices keep us waiting: against devices that answer
    in a millisecond the work is CPU (XML, HTTP, digests), and every thread beyond a few per process only adds
    GIL hand-offs — on the 1,000-device lab, 16 threads cost a third more CPU than 2 (docs/benchmarks.md). Real
    cameras often take tens of milliseconds per answer, and then many threads are what makes a fleet fast. So
    the limit starts at START and doubles, up to the ceiling, whenever this process wanted less than GROW_BELOW of
    a core over the last tick: it waits on devices, so more of them at once will help.

    "Wanted" counts the time its threads were ready but waiting for a core (demand_s): with check's worker
    processes sharing the cores, each gets less than a core however much it wants, and judging by CPU time alone
    took that for waiting on devices and doubled every worker to the ceiling (the 1,000-device lab: median 2.84 s
    instead of 2.60 s at 4 a process)."""

    START = 4
    TICK_S = 0.2
    GROW_BELOW = 0.5

    def __init__(self, ceiling: int, start: int):
        self.ceiling = ceiling
        self.limit = max(1, min(ceiling, start))
        self._demand, self._at = demand_s(), time.monotonic()

    def tick(self) -> float | None:
        """How long the runner may wait before update() should look again (None: the limit is final)."""
        return self.TICK_S if self.limit < self.ceiling else None

    def update(self) -> None:
        if self.limit >= self.ceiling:
            return
        now = time.monotonic()
        if now - self._at < self.TICK_S:
            return
        demand = demand_s()
        if (demand - self._demand) / (now - self._at) < self.GROW_BELOW:
            self.limit = min(self.ceiling, self.limit * 2)
        self._demand, self._at = demand, now


def demand_s() -> float:
    """Seconds this process's threads ran or were ready to run (Linux /proc/self/task/*/schedstat: time on a
    core + time waiting in the run queue); CPU time alone where that is not available (macOS)."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return time.process_time()
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                on_cpu, queued, _ = f.read().split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        except (OSError, ValueError):
            return time.process_time()
        total += int(on_cpu) + int(queued)
    return total / 1e9


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
