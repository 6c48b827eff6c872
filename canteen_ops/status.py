"""Statuses and results: the one currency every task returns (Nornir-style)."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Iterable


class Status(str, enum.Enum):
    """Monitoring-plugin statuses. Their exit codes are 0/1/2/3; `worst` orders crit > warn > unknown > ok.

    NA ("n/a"): the check does not apply to this device (the firmware does not offer what it reads). It is shown
    and logged like any result but never counted: it does not change the worst status nor the exit code. UNKNOWN
    stays for "we could not find out" (timeouts, unreadable answers)."""

    OK = "ok"
    WARN = "warn"
    CRIT = "crit"
    UNKNOWN = "unknown"
    NA = "n/a"

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "warn": 1, "crit": 2, "unknown": 3, "n/a": 0}[self.value]

    @property
    def severity(self) -> int:
        # unknown ranks between ok and warn for "worst": a crit must never be hidden by an unknown,
        # but the exit code for a run whose worst is unknown is still 3. n/a ranks below ok: never the worst.
        return {"n/a": -1, "ok": 0, "unknown": 1, "warn": 2, "crit": 3}[self.value]

    @property
    def counted(self) -> bool:
        """Whether this status counts in tallies, rates and the exit status (n/a does not)."""
        return self is not Status.NA


def worst(statuses: Iterable[Status]) -> Status:
    result = Status.OK
    for s in statuses:
        if s.severity > result.severity:
            result = s
    return result


@dataclass
class Result:
    """One finding about one device (or school) from one check or task."""

    device_id: str | None
    check: str
    status: Status
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    school_id: str | None = None
    duration_ms: float | None = None
    started_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "school_id": self.school_id,
            "device_id": self.device_id,
            "check": self.check,
            "status": self.status.value,
            "summary": self.summary,
            "data": self.data,
            "duration_ms": self.duration_ms,
        }
