"""Spread a fleet over several processes, so checks use every core (the GIL keeps one process's threads on
one core: zeep and HTTP parsing are CPU work, a few ms per camera and more per NVR).

Children are forked in stages (check_stages), each with what its stage's devices need already loaded
(inventory, history, drivers, parsed WSDLs); each runs the ordinary threaded runner on devices it takes one at
a time from a feed shared with the others (_Feed), and sends each device's results back over its pipe. The parent
stays the only writer of the log: `on_results` gets each device's results in the parent's thread, as with one
process. Ctrl-C in the parent stops the children and keeps every result already received.
"""

from __future__ import annotations

import gc
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from canteen_ops.gcpause import gc_paused
from canteen_ops.runner import RunOutcome, run_devices
from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device

_DONE, _DEVICE, _FAILED = "done", "device", "failed"
BATCH_MAX = 64  # devices' results read from one child before the others get a turn


@dataclass
class Stage:
    """Devices that need the same things loaded (drivers, WSDLs, PyAV), and the function that loads them."""

    devices: list["Device"]
    prepare: Callable[[], None]


def run_forked(stages: list[Stage], task: Callable[["Device"], list[Result]], *, processes: int,
               workers: int | None, deadline_s: float | None,
               on_results: Callable[[list[Result]], None] | None,
               progress: bool | None, label: str = "checking") -> RunOutcome:
    """Stage by stage, load what the stage's devices need and fork its share of the children; every child takes
    devices from one shared feed, its own stage's first. A child forked before a later stage's loading (the ONVIF
    WSDLs, ~0.2 s on one core) works meanwhile on the core that loading leaves idle."""
    import multiprocessing as mp
    import sys
    from multiprocessing.connection import wait

    ctx = mp.get_context("fork")
    stages = [st for st in stages if st.devices]
    devices = [d for st in stages for d in st.devices]
    if not devices:
        return RunOutcome()
    feed = _Feed(ctx, [st.devices for st in stages])
    remember_passwords(devices)
    per_child_workers = max(1, (workers or 0) // processes) if workers else None

    def child(index: int, stage: int, conn) -> None:
        # One pipe per child, written synchronously from the child's main thread: no multiprocessing.Queue feeder
        # thread, whose join at exit could hang a forked child for ever (seen in CI), and a dead child reads as
        # EOF at once. One message per device with all its results: 1,000 devices make 1,000 messages, not 6,000.
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
        batch_scheduling()
        try:
            out = run_devices(feed.devices(index, stage), task, workers=per_child_workers, deadline_s=deadline_s,
                              progress=False, on_device=lambda device, results: conn.send((_DEVICE, results)),
                              label=label)
            conn.send((_DONE, index, out.timed_out))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which reports the devices
            conn.send((_FAILED, index, f"{type(exc).__name__}: {exc}"))
        finally:
            conn.close()

    outcome = RunOutcome()
    procs: list[tuple[Any, Any]] = []  # (process, its pipe's reading end)
    readers: dict[Any, int] = {}
    bar = None  # started once every child is forked: a fork must not copy its drawing thread's locks mid-use
    seen: set[str] = set()
    done: set[int] = set()
    batch: list[Result] = []

    def emit(results: list[Result]) -> None:  # one device's results, delivered with the batch
        batch.extend(results)
        seen.update(r.device_id for r in results if r.device_id)

    def flush() -> None:
        """Deliver what arrived together in one call: check records a call's results in one transaction, and a
        transaction per device was half of the parent's CPU once the children outpaced it (0.44 vs 0.23 ms a
        device with ten a transaction). While the parent keeps up, a batch is one device."""
        if batch:
            results = batch.copy()
            batch.clear()
            outcome.results.extend(results)
            if on_results:
                on_results(results)

    def lost(devices_lost: list["Device"], why: str) -> None:
        """Devices that will never report: one unknown line each."""
        for d in devices_lost:
            if d.id not in seen:
                emit([Result(d.id, "task", Status.UNKNOWN, why, school_id=d.school_id)])
        flush()

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
            lost(feed.taken_by(i), f"worker process failed: {msg[2]}")

    try:
        for stage, count in enumerate(_spread(processes, len(stages))):
            if not count:
                continue  # more stages than children: the first children load what they need themselves
            with gc_paused():  # modules and parsed WSDLs stay alive: nothing for the collector to find
                stages[stage].prepare()
            # Everything loaded so far (inventory, parsed WSDLs) is frozen for the fork: a child's garbage
            # collector would otherwise walk it on every full collection (a tenth of a child's CPU on the
            # 1,000-device lab) and touch its pages, undoing copy-on-write. Unfrozen once the stage has forked.
            gc.freeze()
            try:
                for _ in range(count):
                    reader, writer = ctx.Pipe(duplex=False)
                    _roomy(writer)
                    p = ctx.Process(target=child, args=(len(procs), stage, writer), daemon=True)
                    p.start()
                    writer.close()  # only the child writes: its exit (however it happens) is EOF here
                    readers[reader] = len(procs)
                    procs.append((p, reader))
            finally:
                gc.unfreeze()
        if sys.stderr.isatty() if progress is None else progress:
            from canteen_ops.runner import _Progress

            bar = _Progress(len(devices), label)
        while readers:
            for reader in wait(list(readers), timeout=0.5):
                i = readers[reader]
                try:
                    for _ in range(BATCH_MAX):  # this message, and whatever else the child sent meanwhile
                        handle(i, reader.recv())
                        if not reader.poll(0):
                            break
                except (EOFError, OSError):
                    flush()
                    del readers[reader]
                    p, _ = procs[i]
                    p.join(timeout=5)
                    if i not in done:  # died without saying so (killed, out of memory)
                        done.add(i)
                        lost(feed.taken_by(i), f"worker process died (exit {p.exitcode})")
            flush()
        lost(feed.untaken(), "not checked: every worker process ended before it")
    except KeyboardInterrupt:
        outcome.interrupted = True
        for p, _ in procs:
            if p.is_alive():
                p.terminate()
        for reader in readers:  # keep what already arrived
            try:
                while reader.poll(0):
                    msg = reader.recv()
                    if msg[0] == _DEVICE:
                        emit(msg[1])
            except (EOFError, OSError):
                pass
        flush()
        raise
    finally:
        for p, reader in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
            reader.close()
        if bar:
            bar.close()
    return outcome


class _Feed:
    """The devices of a forked run, handed out one at a time through memory the children share: the next
    position in each stage's list, and which child took each device. A child takes its own stage's devices
    first, then the other stages' in order, so the children finish together however the work turns out to be
    spread (one device at a time: a static share per child left one core idle whenever the shares' costs
    differed), and the parent knows which devices a child that died had taken."""

    def __init__(self, ctx, lists: list[list["Device"]]):
        self._lists = lists
        self._offsets = [sum(len(x) for x in lists[:k]) for k in range(len(lists))]
        self._next = ctx.RawArray("l", len(lists))
        self._owner = ctx.RawArray("h", sum(len(x) for x in lists))  # child index + 1; 0 = not taken yet
        self._lock = ctx.Lock()

    LOCK_WAIT_S = 10.0

    def take(self, child: int, stage: int) -> "Device | None":
        # Held for microseconds; a child killed inside it (SIGKILL, the OOM killer) would keep it for ever, so
        # the others give up after a while instead of hanging the run: what nobody took is reported untaken.
        if not self._lock.acquire(timeout=self.LOCK_WAIT_S):
            return None
        try:
            for k in [stage] + [k for k in range(len(self._lists)) if k != stage]:
                i = self._next[k]
                if i < len(self._lists[k]):
                    self._next[k] = i + 1
                    self._owner[self._offsets[k] + i] = child + 1
                    return self._lists[k][i]
            return None
        finally:
            self._lock.release()

    def devices(self, child: int, stage: int) -> Iterator["Device"]:
        while (device := self.take(child, stage)) is not None:
            yield device

    def _with_owner(self, owner: int) -> list["Device"]:
        flat = [d for x in self._lists for d in x]
        return [d for k, d in enumerate(flat) if self._owner[k] == owner]

    def taken_by(self, child: int) -> list["Device"]:
        return self._with_owner(child + 1)

    def untaken(self) -> list["Device"]:
        return self._with_owner(0)


def _spread(processes: int, stages: int) -> list[int]:
    """Children per stage: an equal share each, the remainder to the first stages (they start working sooner);
    at least one per stage while there are children to give."""
    base, extra = divmod(processes, stages)
    return [base + (1 if k < extra else 0) for k in range(stages)]


def _roomy(conn) -> None:
    """Give a child's pipe 1 MiB (Linux; 64 KiB by default): a child forked early keeps sending results while the
    parent is still loading a later stage's WSDLs, and a full pipe would stop it."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass


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


def check_stages(devices: list["Device"], checks: list[str]) -> list[Stage]:
    """check's stages: the Hikvision/Dahua devices, whose drivers load in ~50 ms, then the ONVIF devices, whose
    WSDLs take ~0.2 s more (device management always, recording search for NVR checks, media for stream checks).
    Loaded once in the parent, the children share them instead of each loading its own; the first stage's
    children start while the parent still loads the second's (a WSDL nobody needs is not loaded at all). PyAV
    and the picture metrics are loaded for stream checks. NVRs come first in each stage: the longest work
    starts first, so no child is left with one at the end."""
    video = bool({"stream", "picture"} & set(checks))
    onvif = [d for d in devices if d.vendor == "onvif"]
    others = [d for d in devices if d.vendor != "onvif"]

    def prepare_others() -> None:
        _load(sorted({d.vendor for d in others}), video)

    def prepare_onvif() -> None:
        _load(["onvif"], video)
        from canteen_ops.drivers.onvif.transport import shared_client

        shared_client("device")
        if any(d.kind == "nvr" for d in onvif) and {"channels", "retention", "gaps"} & set(checks):
            shared_client("search")
        if video:
            shared_client("media")

    return [Stage(_nvr_first(others), prepare_others), Stage(_nvr_first(onvif), prepare_onvif)]


def _nvr_first(devices: list["Device"]) -> list["Device"]:
    return sorted(devices, key=lambda d: d.kind != "nvr")


def _load(vendors: list[str], video: bool) -> None:
    from canteen_ops.drivers.registry import driver_class

    for vendor in vendors:
        driver_class(vendor)
    if video:
        import av  # noqa: F401

        import canteen_ops.media.probe  # noqa: F401
        import canteen_ops.media.quality  # noqa: F401
