"""Which knowledge-base entry a check result points at: the one place that maps check name + failure class to
a kb id. `failure_class` reads what the checks put in a result (its status, the exception name a device failure
left in data["error"], a finding code, a disk state); `kb_for` maps the class to an entry of entries.yaml."""

from __future__ import annotations

from typing import Any, Mapping

# (check, failure class) → kb id. A check of "*" matches any check (a device failure stops whichever check
# met it first).
KB_IDS: dict[tuple[str, str], str] = {
    ("*", "offline"): "KB-OFFLINE",
    ("*", "locked"): "KB-LOGIN-LOCKED",
    ("*", "auth_failed"): "KB-LOGIN-REFUSED",
    ("*", "no_credentials"): "KB-CREDENTIALS-MISSING",
    ("reachable", "slow"): "KB-NETWORK-SLOW",
    ("facts", "replaced"): "KB-DEVICE-REPLACED",
    ("facts", "model_mismatch"): "KB-DEVICE-REPLACED",
    ("clock", "clock_reset"): "KB-CLOCK-RESET",
    ("clock", "drift"): "KB-CLOCK-DRIFT",
    ("ntp", "ntp_off"): "KB-NTP-OFF",
    ("storage", "hdd_absent"): "KB-HDD-ABSENT",
    ("storage", "hdd_error"): "KB-HDD-ERROR",
    ("storage", "hdd_unformatted"): "KB-HDD-UNFORMATTED",
    ("storage", "hdd_full"): "KB-HDD-FULL",
    ("channels", "video_loss"): "KB-CHANNEL-VIDEO-LOSS",
    ("channels", "not_configured"): "KB-CHANNEL-NOT-CONFIGURED",
    ("retention", "retention_short"): "KB-RETENTION-SHORT",
    ("gaps", "gaps"): "KB-RECORDING-GAPS",
    ("stream", "no_stream"): "KB-NO-STREAM",
    ("stream", "low_resolution"): "KB-LOW-RESOLUTION",
    ("stream", "low_fps"): "KB-LOW-RESOLUTION",
    ("picture", "black"): "KB-PICTURE-BLACK",
    ("picture", "frozen"): "KB-PICTURE-FROZEN",
    ("picture", "blurred"): "KB-PICTURE-BLURRED",
    ("picture", "covered"): "KB-PICTURE-COVERED",
    ("picture", "colour_cast"): "KB-PICTURE-COLOUR-CAST",
    ("picture", "too_dark"): "KB-PICTURE-EXPOSURE",
    ("picture", "overexposed"): "KB-PICTURE-EXPOSURE",
    ("picture", "low_contrast"): "KB-PICTURE-EXPOSURE",
    ("coverage", "area_missing"): "KB-COVERAGE-MISSING",
    ("firmware", "outdated"): "KB-FIRMWARE-OUTDATED",
    ("firmware", "vulnerable"): "KB-FIRMWARE-VULNERABLE",
    ("backup", "stale"): "KB-BACKUP-STALE",
}

_DEVICE_ERRORS = {"Locked": "locked", "AuthFailed": "auth_failed", "NoCredentials": "no_credentials",
                  "Offline": "offline"}
# Picture findings by how much they say about the cause: a black picture explains a low contrast, not the reverse.
_PICTURE_ORDER = ("black", "covered", "frozen", "blurred", "colour_cast", "low_contrast", "too_dark", "overexposed")


def failure_class(check: str, status: str, summary: str, data: Mapping[str, Any] | None) -> str | None:
    """The failure class of a result, or None (ok, n/a, or a failure we have no entry for)."""
    data = data or {}
    if status in ("ok", "n/a"):
        return None
    error = data.get("error")
    if error in _DEVICE_ERRORS:
        return _DEVICE_ERRORS[error]
    if error == "Timeout" and status == "crit":  # never answered: a black hole
        return "offline"
    if status == "unknown":
        return None  # we could not find out: nothing to repair yet
    text = summary or ""
    if check == "reachable":
        return "slow" if status == "warn" else "offline"
    if check == "facts":
        return "replaced" if status == "crit" else "model_mismatch"
    if check == "clock":
        return "clock_reset" if text.startswith("clock reset") else "drift"
    if check == "ntp":
        return "ntp_off"
    if check == "storage":
        return _storage_class(text, data)
    if check == "channels":
        return "video_loss" if status == "crit" else "not_configured"
    if check in ("retention", "gaps"):
        return "retention_short" if check == "retention" else "gaps"
    if check == "stream":
        codes = data.get("findings") or []
        if status == "crit" or text.startswith("no stream"):
            return "no_stream"
        return next((c for c in ("low_resolution", "low_fps") if c in codes), None)
    if check == "picture":
        codes = data.get("findings") or []
        return next((c for c in _PICTURE_ORDER if c in codes), None)
    if check == "coverage":
        return "area_missing"
    if check == "firmware":
        return "vulnerable" if status == "crit" else "outdated"
    if check == "backup":  # `backup list --stale`: no successful backup in the window
        return "stale"
    return None


def _storage_class(text: str, data: Mapping[str, Any]) -> str:
    disks = data.get("disks") or []
    states = {d.get("status") for d in disks if isinstance(d, dict)}
    if not disks or "absent" in states:
        return "hdd_absent"
    if "error" in states or any(isinstance(d, dict) and d.get("read_only") for d in disks):
        return "hdd_error"
    if "unformatted" in states:
        return "hdd_unformatted"
    return "hdd_full"


def kb_for(check: str, status: str, summary: str = "", data: Mapping[str, Any] | None = None) -> str | None:
    cls = failure_class(check, status, summary, data)
    if cls is None:
        return None
    return KB_IDS.get((check, cls)) or KB_IDS.get(("*", cls))


def kb_for_result(result: Any) -> str | None:
    """kb_for of a status.Result or of a results row from the log (check_name, status, summary, data)."""
    if isinstance(result, Mapping):
        return kb_for(result.get("check_name") or result.get("check") or "", str(result.get("status") or ""),
                      result.get("summary") or "", result.get("data") if isinstance(result.get("data"), Mapping)
                      else None)
    return kb_for(result.check, result.status.value, result.summary, result.data)
