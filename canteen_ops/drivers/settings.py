"""The vendor-neutral settings snapshot (tasks/snapshot.py) and the coercions every vendor's normaliser uses.

Each vendor driver module maps its own `Driver.settings()` answer onto this schema (`normalize_settings`), so
the knowledge of a vendor's settings lives with the rest of its protocol; snapshots, diffs and policy rules only
ever see this schema:

    identity   vendor, model, firmware, serial, name, mac, device_type
    network    interfaces [{name, mac, ipv4 [addr/prefix], dhcp}], hostname
    time       timezone, mode (NTP | manual), ntp_enabled, ntp_servers
    streams    [{channel, main, codec, width, height, fps, bitrate_kbps}]
    recording  mode (continuous | schedule | motion | off | null = not reported), schedule
    channels   [{id, name, source, protocol}]  (NVR inputs / channel titles)
    users      [{name, level}]  (never passwords: the drivers drop them and so do the snapshots)
    ports      {http, https, rtsp, ...}
"""

from __future__ import annotations

from typing import Any

from canteen_ops.drivers.base import ProtocolError
from canteen_ops.drivers.numbers import device_float, device_int

SCHEMA = 1


# --- small coercions ---------------------------------------------------------------------------------------
def seq(value: Any) -> list[Any]:
    """A list from a list, a single item, a dict keyed by indexes, or nothing; None holes dropped."""
    if value is None:
        return []
    if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):
        return [value[k] for k in sorted(value, key=lambda k: int(k))]
    if not isinstance(value, list):
        return [value]
    return [v for v in value if v is not None]


def to_int(value: Any) -> int | None:
    """An integer from a device's value (numbers.device_int: ASCII digits, finite, in range); None otherwise."""
    try:
        return device_int(None if value is None else str(value), "setting")
    except ProtocolError:
        return None


def num(value: Any) -> float | int | None:
    """A number from a device's value as to_int reads it: an int if whole, else rounded to 3 places."""
    try:
        f = device_float(None if value is None else str(value), "setting")
    except ProtocolError:
        return None
    if f is None:
        return None
    return int(f) if f.is_integer() else round(f, 3)


def to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    s = str(value).strip().lower()
    return True if s in ("true", "1", "yes", "on", "enable", "enabled") else \
        False if s in ("false", "0", "no", "off", "disable", "disabled") else None


def to_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    s = str(value).strip()
    return s or None


def get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def codec(value: Any) -> str | None:
    s = (to_str(value) or "").upper().replace("H264", "H.264").replace("H265", "H.265")
    return {"H.264": "H.264", "H.265": "H.265", "MJPEG": "MJPEG", "JPEG": "MJPEG", "": None}.get(s, s or None)


def empty() -> dict[str, Any]:
    return {"schema": SCHEMA, "identity": {}, "network": {"interfaces": [], "hostname": None},
            "time": {"timezone": None, "mode": None, "ntp_enabled": None, "ntp_servers": []},
            "streams": [], "recording": {"mode": None, "schedule": None}, "channels": [], "users": [],
            "ports": {}}


def prefix_len(mask: str) -> int | str:
    try:
        return sum(bin(int(x)).count("1") for x in mask.split("."))
    except ValueError:
        return mask
