"""Checks every device gets: reachable, login, facts, clock, ntp."""

from __future__ import annotations

import datetime as dt
import socket
import time
from typing import TYPE_CHECKING

from canteen_ops.drivers.base import Locked
from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.checks.context import CheckContext


def result(ctx: "CheckContext", check: str, status: Status, summary: str, **data) -> Result:
    return Result(ctx.device.id, check, status, summary, data=data, school_id=ctx.device.school_id)


def reachable(ctx: "CheckContext") -> list[Result]:
    """TCP connect to the device's management port; a device that is not there stops the other checks."""
    d = ctx.device
    t0 = time.monotonic()
    try:
        sock = socket.create_connection((d.host, d.port), timeout=d.timeout)
        latency = (time.monotonic() - t0) * 1000
        ctx.keep_connection(sock)  # the driver's first request goes over it: one connection per device
    except ConnectionRefusedError:
        ctx.skip_reason = "offline"
        return [result(ctx, "reachable", Status.CRIT, f"offline (connection refused on port {d.port})",
                       reason="refused", port=d.port)]
    except (socket.timeout, TimeoutError):
        ctx.skip_reason = "no answer"
        return [result(ctx, "reachable", Status.CRIT, f"no answer (timeout after {d.timeout:g} s on port {d.port})",
                       reason="timeout", port=d.port)]
    except OSError as exc:
        ctx.skip_reason = "offline"
        why = exc.strerror or type(exc).__name__
        return [result(ctx, "reachable", Status.CRIT, f"offline ({why.lower()})", reason="unreachable",
                       port=d.port)]
    latency = round(latency, 1)
    if latency > ctx.policy.latency_warn_ms:
        return [result(ctx, "reachable", Status.WARN,
                       f"slow: connect took {latency:.0f} ms (> {ctx.policy.latency_warn_ms:g} ms)",
                       latency_ms=latency, port=d.port)]
    return [result(ctx, "reachable", Status.OK, f"port {d.port} open in {latency:.0f} ms", latency_ms=latency,
                   port=d.port)]


def login(ctx: "CheckContext") -> list[Result]:
    """One authenticated request. Failures (offline, auth failed, locked) are turned into the device's one
    clear line by the device runner, which then skips the remaining checks: a refused login is never retried."""
    ctx.get("login")
    user = ctx.device.credentials.username if ctx.device.credentials else "?"
    return [result(ctx, "login", Status.OK, f"logged in as {user}", username=user)]


def facts(ctx: "CheckContext") -> list[Result]:
    f = ctx.get("facts")
    d = ctx.device
    data = {"model": f.model, "serial": f.serial, "firmware": f.firmware, "device_type": f.device_type,
            "mac": f.mac}
    desc = ", ".join(x for x in (f.model, f"serial {f.serial}" if f.serial else None,
                                 f"firmware {f.firmware}" if f.firmware else None) if x)
    if d.serial and f.serial and _norm(f.serial) != _norm(d.serial):
        return [result(ctx, "facts", Status.CRIT, f"device replaced? serial {f.serial}, inventory says {d.serial}",
                       **data)]
    if d.model and f.model and _norm(f.model) != _norm(d.model):
        from canteen_ops.drivers.registry import driver_class

        base = driver_class(d.vendor).base_model
        if base(f.model) != base(d.model):  # a variant of the same model (DS-7608NXI-I2/8P/S) is that model
            return [result(ctx, "facts", Status.WARN, f"model {f.model}, inventory says {d.model}"
                           + (f" (firmware {f.firmware})" if f.firmware else ""), **data)]
    return [result(ctx, "facts", Status.OK, desc or "device answered without identity details", **data)]


def _norm(s: str) -> str:
    return s.strip().upper()


# A device whose RTC battery died boots at its epoch (1970-01-01 or 2000-01-01) and counts from there.
_RESET_BEFORE = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)


def clock(ctx: "CheckContext") -> list[Result]:
    c = ctx.get("clock")
    p = ctx.policy
    if c.device_utc is None:
        return [result(ctx, "clock", Status.UNKNOWN, "device did not report its time", timezone=c.timezone)]
    drift = c.drift_s
    data = {"drift_s": round(drift, 1), "device_utc": c.device_utc.isoformat(), "timezone": c.timezone}
    if c.device_utc < _RESET_BEFORE:
        return [result(ctx, "clock", Status.CRIT,
                       f"clock reset: device says {c.device_utc:%Y-%m-%d %H:%M} UTC (power loss? set the time "
                       "and check NTP)", **data)]
    text = _human_drift(drift)
    if abs(drift) > p.clock_crit_s:
        return [result(ctx, "clock", Status.CRIT, f"clock {text} (> {p.clock_crit_s:g} s)", **data)]
    if abs(drift) > p.clock_warn_s:
        return [result(ctx, "clock", Status.WARN, f"clock {text} (> {p.clock_warn_s:g} s)", **data)]
    return [result(ctx, "clock", Status.OK, f"clock {text}", **data)]


def _human_drift(drift: float) -> str:
    if abs(drift) < 0.5:
        return "in sync (±0 s)"
    way = "ahead" if drift > 0 else "behind"
    a = abs(drift)
    if a < 120:
        return f"{a:.0f} s {way}"
    if a < 7200:
        return f"{a / 60:.0f} min {way}"
    if a < 3 * 86400:
        return f"{a / 3600:.1f} h {way}"
    return f"{a / 86400:.0f} days {way}"


def ntp(ctx: "CheckContext") -> list[Result]:
    c = ctx.get("clock")
    servers = [s for s in c.ntp_servers if s]
    data = {"ntp_enabled": c.ntp_enabled, "ntp_servers": servers, "mode": c.mode}
    enabled = c.ntp_enabled if c.ntp_enabled is not None else (c.mode == "NTP" if c.mode else None)
    if enabled is False:
        return [result(ctx, "ntp", Status.WARN, "NTP disabled (time set manually; it will drift)", **data)]
    if not servers:
        if enabled and not getattr(c, "ntp_servers_offered", True):
            # The firmware offers no server list (404/notSupport): nothing says the server is missing.
            return [result(ctx, "ntp", Status.OK, "NTP on (this firmware does not list its NTP servers)", **data)]
        if enabled:
            return [result(ctx, "ntp", Status.WARN, "NTP enabled but no server configured", **data)]
        if not getattr(c, "ntp_servers_offered", True):  # e.g. Dahua firmware without the NTP table
            return [result(ctx, "ntp", Status.NA, "not applicable: this firmware offers no NTP settings", **data)]
        return [result(ctx, "ntp", Status.UNKNOWN, "device does not report its NTP settings", **data)]
    if enabled is None:
        return [result(ctx, "ntp", Status.OK, f"NTP server {', '.join(servers)} (enabled state not reported)",
                       **data)]
    return [result(ctx, "ntp", Status.OK, f"NTP on, server {', '.join(servers)}", **data)]


def describe_login_failure(exc: Exception, timeout: float) -> str:
    """Wording for the one line a device gets when it cannot be logged into."""
    from canteen_ops.checks.context import NoCredentials
    from canteen_ops.drivers.base import AuthFailed, Offline, Timeout, Withheld

    if isinstance(exc, Withheld):  # nothing was sent: say why and until when
        return str(exc).split(": ", 1)[-1]
    if isinstance(exc, Locked):
        when = f"; unlocks in ~{_human_wait(exc.unlock_in_s)}" if exc.unlock_in_s else ""
        return f"locked: the device refuses logins from us{when} — not retried"
    if isinstance(exc, NoCredentials):
        return f"no usable credentials: {exc}"
    if isinstance(exc, AuthFailed):
        return "auth failed: wrong username or password — not retried"
    if isinstance(exc, Offline):
        return "offline (connection refused)"
    if isinstance(exc, Timeout):
        return f"no answer (timeout after {timeout:g} s)"
    return str(exc)


def _human_wait(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
