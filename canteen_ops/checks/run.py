"""Run the selected checks across devices: one CheckContext per device, the runner's threads (and worker
processes for the CPU-bound part of big runs), then the per-school coverage check over what the run found."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from canteen_ops.checks import CHECK_NAMES, DEVICE_CHECK_NAMES
from canteen_ops.checks.context import CheckContext, DriverFactory, History, NoCredentials
from canteen_ops.drivers.base import (
    AuthFailed,
    DriverError,
    Forbidden,
    NotSupported,
    Offline,
    ProtocolError,
    Refused,
    Timeout,
)
from canteen_ops.drivers.transport import CertChanged
from canteen_ops.runner import RunOutcome, run_devices
from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    import datetime as dt

    from canteen_ops.inventory.model import Device, Inventory
    from canteen_ops.store.log import MaintenanceLog

DEFAULT_DEADLINE_S = 90.0


@dataclass(frozen=True)
class Check:
    name: str
    fn: Callable[[CheckContext], list[Result]]
    kinds: tuple[str, ...] = ("camera", "nvr")


def _registry() -> dict[str, Check]:
    from canteen_ops.checks import device, nvr, video

    both, nvr_only, cam_only = ("camera", "nvr"), ("nvr",), ("camera",)
    checks = [
        Check("reachable", device.reachable, both),
        Check("login", device.login, both),
        Check("facts", device.facts, both),
        Check("clock", device.clock, both),
        Check("ntp", device.ntp, both),
        Check("storage", nvr.storage, both),
        Check("channels", nvr.channels, nvr_only),
        Check("retention", nvr.retention, nvr_only),
        Check("gaps", nvr.gaps, nvr_only),
        Check("stream", video.stream, cam_only),
        Check("picture", video.picture, cam_only),
    ]
    assert tuple(c.name for c in checks) == DEVICE_CHECK_NAMES
    return {c.name: c for c in checks}


def check_device(ctx: CheckContext, names: list[str], checks: dict[str, Check] | None = None) -> list[Result]:
    """Run the device's applicable checks in order. A device that is not there or refuses our login gets one
    clear line (the check that found out) and the rest are skipped: no further login is attempted."""
    checks = checks or _registry()
    todo = [n for n in names if n in checks and ctx.device.kind in checks[n].kinds
            and n not in ctx.policy.skip_checks]
    results: list[Result] = []
    try:
        for i, name in enumerate(todo):
            t0 = time.monotonic()
            rest = todo[i + 1:]
            out, stop = _run_one(ctx, checks[name], rest)
            for r in out:
                r.duration_ms = round((time.monotonic() - t0) * 1000, 1)
            results.extend(out)
            if stop or ctx.skip_reason:
                if rest and out and "skipped" not in out[-1].data:
                    out[-1].summary += f" — {len(rest)} other check{'s' if len(rest) != 1 else ''} skipped"
                    out[-1].data["skipped"] = rest
                break
        results.extend(_first_use_pin(ctx))
    finally:
        ctx.close()
    return results


def _run_one(ctx: CheckContext, check: Check, rest: list[str]) -> tuple[list[Result], bool]:
    """(results, stop): exceptions become results here so each check's failure names the check."""
    from canteen_ops.checks.device import describe_login_failure, result

    name = check.name
    try:
        return check.fn(ctx), False
    except Forbidden as exc:
        return [result(ctx, name, Status.UNKNOWN, f"the device refused to tell us ({exc})",
                       error="Forbidden")], False
    except NotSupported as exc:
        # Not a finding about the device: what this check reads is not offered by its firmware (n/a, not counted).
        return [result(ctx, name, Status.NA, f"not applicable: this {ctx.device.vendor} device does not offer it "
                       f"({exc})", error="NotSupported")], False
    except (Offline, AuthFailed, NoCredentials) as exc:
        stop_status = Status.UNKNOWN if isinstance(exc, NoCredentials) else Status.CRIT
        return [result(ctx, name, stop_status, describe_login_failure(exc, ctx.device.timeout),
                       error=type(exc).__name__, **_lock_data(exc))], True
    except Timeout as exc:
        if not ctx.answered:  # never answered: a black hole; waiting on every other check would waste minutes
            return [result(ctx, name, Status.CRIT, describe_login_failure(exc, ctx.device.timeout),
                           error="Timeout")], True
        return [result(ctx, name, Status.UNKNOWN, f"no answer within {ctx.device.timeout:g} s ({exc})",
                       error="Timeout")], False
    except CertChanged as exc:  # a CRIT `tls` result until `device accept-cert`; nothing was sent
        from canteen_ops.store.tlspins import changed

        return [changed(ctx.device, exc.fingerprint, ctx.tls_pins.get(ctx.device.id, ""), str(exc))], True
    except Refused as exc:  # Basic over plain HTTP: no password was sent
        return [result(ctx, name, Status.CRIT, f"refused: {exc}", error=type(exc).__name__)], True
    except ProtocolError as exc:
        return [result(ctx, name, Status.UNKNOWN, f"unusable answer from the device: {exc}",
                       error="ProtocolError")], False
    except DriverError as exc:
        return [result(ctx, name, Status.UNKNOWN, f"{type(exc).__name__}: {exc}", error=type(exc).__name__)], False
    except Exception as exc:  # a bug in a check must not cost the device its other results
        return [result(ctx, name, Status.UNKNOWN, f"internal error: {type(exc).__name__}: {exc}",
                       error="internal")], False


def _first_use_pin(ctx: CheckContext) -> list[Result]:
    """tls: pin and no certificate accepted yet: the one this run met is pinned (a `tls` result in the log)."""
    transport = getattr(ctx._driver, "device_transport", None)
    if transport is None or not transport.first_use or not transport.fingerprint:
        return []
    from canteen_ops.store.tlspins import pinned

    return [pinned(ctx.device, transport.fingerprint, "on first use")]


def _lock_data(exc: Exception) -> dict:
    unlock = getattr(exc, "unlock_in_s", None)
    return {"unlock_in_s": unlock} if unlock else {}


def select_checks(only: list[str] | None = None, skip: list[str] | None = None) -> list[str]:
    """Validate --only/--skip (comma lists allowed) and return the checks to run, in the standard order."""
    from canteen_ops.errors import UsageError

    def parse(values: list[str] | None, flag: str) -> set[str]:
        names = {n.strip() for v in values or () for n in v.split(",") if n.strip()}
        bad = sorted(names - set(CHECK_NAMES))
        if bad:
            raise UsageError("{flag}: unknown check {bad}; known: {check_names}", flag=flag, bad=', '.join(bad),
                             check_names=', '.join(CHECK_NAMES))
        return names

    chosen = parse(only, "--only") or set(CHECK_NAMES)
    chosen -= parse(skip, "--skip")
    if not chosen:
        raise UsageError("no checks left to run after --only/--skip")
    return [n for n in CHECK_NAMES if n in chosen]


BIG_FLEET = 200  # devices from which protocol checks are shared out between worker processes by default


def default_processes(devices: list["Device"], checks: list[str] | tuple[str, ...] = ()) -> int:
    """Worker processes `check` uses when not told (docs/benchmarks.md, the 2-core reference machine):

    - protocol checks on BIG_FLEET devices or more: one per core (at most 8). Parsing a big fleet's answers
      (httpx, XML, zeep) is more than one core's work: 1,000 lab devices took 1.25× as long in one process as
      shared out between two (checks/shards.py), each worker's start-up (imports, WSDLs) included;
    - else 1 (everything in this process), stream and picture checks included: 50 cameras already use both
      cores from one process (PyAV decodes without the GIL), and computing their picture metrics in two worker
      processes was 1.23× slower."""
    import os

    if {"stream", "picture"} & set(checks) or len(devices) < BIG_FLEET:
        return 1
    return min(os.cpu_count() or 1, 8)


def device_task(inventory: "Inventory", names: list[str], *, history: History | None = None,
                driver_factory: DriverFactory | None = None, now: "dt.datetime", deadline_s: float | None,
                media=None, tls_pins: dict[str, str] | None = None) -> Callable[["Device"], list[Result]]:
    """The runner's task: a device's applicable checks among `names`, in order, with a context of its own."""
    schools = {s.id: s for s in inventory.schools}
    checks = _registry()
    device_names = [n for n in names if n in DEVICE_CHECK_NAMES]
    history = history or History()
    pins = tls_pins or {}

    def task(device: "Device") -> list[Result]:
        ctx = CheckContext(device, schools[device.school_id], inventory, history=history,
                           driver_factory=driver_factory, now=now, deadline_s=deadline_s, media=media,
                           tls_pins=pins)
        return check_device(ctx, device_names, checks)

    return task


def heaviest_first(devices: list["Device"]) -> list["Device"]:
    """NVRs first (tens of requests each against a camera's few): the longest work starts first, so the run
    does not end waiting on an NVR started last."""
    return sorted(devices, key=lambda d: d.kind != "nvr")


def run_checks(devices: list["Device"], inventory: "Inventory", names: list[str], *,
               log: "MaintenanceLog | None" = None, workers: int | None = None,
               deadline_s: float | None = DEFAULT_DEADLINE_S,
               on_results: Callable[[list[Result]], None] | None = None,
               progress: bool | None = None, driver_factory: DriverFactory | None = None,
               processes: int = 1) -> RunOutcome:
    """Check `devices`, then coverage of their schools. Results reach `on_results` in the calling thread as they
    finish, a device's (or a school's coverage) together — several devices' at once when they arrived together
    from worker processes — so a caller can record them in one transaction; Ctrl-C propagates
    (KeyboardInterrupt) after every finished device's results were delivered.

    processes > 1: that many worker processes for the CPU-bound part (default_processes): the picture
    analysis when stream/picture checks run, else a share of the fleet each. A driver_factory must then
    be picklable (a top-level function) to reach a worker process."""
    import datetime as dt

    from canteen_ops.checks.coverage import SchoolContext, coverage

    device_names = [n for n in names if n in DEVICE_CHECK_NAMES]
    history = History.load(log, [d.id for d in devices if d.kind == "camera"]) if "picture" in names else History()
    now = dt.datetime.now(dt.timezone.utc)
    pins: dict[str, str] = {}
    if log is not None and any(d.https and d.tls == "pin" for d in devices):
        from canteen_ops.drivers.base import tls_pins

        # The command's log (context.py), read once for this run and for the drivers it opens; passed on
        # explicitly too, since worker processes get them pickled. Without a command context: this log.
        refreshed = tls_pins.refresh()
        if refreshed is None:
            from canteen_ops.store.tlspins import accepted_pins

            refreshed = accepted_pins(log)
        pins = refreshed
    processes = max(1, min(processes, len(devices)))
    media_work = bool({"stream", "picture"} & set(device_names))
    ordered = heaviest_first(devices)
    if device_names and processes > 1 and not media_work:
        from canteen_ops.checks.shards import run_sharded

        outcome = run_sharded(ordered, inventory, device_names, processes=processes, workers=workers,
                              deadline_s=deadline_s, on_results=on_results, progress=progress,
                              driver_factory=driver_factory, now=now, tls_pins=pins)
    elif device_names:
        from contextlib import nullcontext

        from canteen_ops.procpool import WorkerProcesses

        with WorkerProcesses(processes) if media_work and processes > 1 else nullcontext() as media:
            task = device_task(inventory, device_names, history=history, driver_factory=driver_factory, now=now,
                               deadline_s=deadline_s, media=media, tls_pins=pins)
            outcome = run_devices(ordered, task, workers=workers, deadline_s=deadline_s, progress=progress,
                                  on_device=(lambda _device, results: on_results(results)) if on_results else None,
                                  label="checking")
    else:
        outcome = RunOutcome()
    if "coverage" in names:
        by_device: dict[str, list[Result]] = {}
        for r in outcome.results:
            if r.device_id:
                by_device.setdefault(r.device_id, []).append(r)
        seen = []
        schools = {s.id: s for s in inventory.schools}
        for d in devices:
            if d.school_id not in seen:
                seen.append(d.school_id)
        for sid in seen:
            found = coverage(SchoolContext(schools[sid], inventory, by_device, log))
            outcome.results.extend(found)
            if on_results and found:
                on_results(found)
    return outcome
