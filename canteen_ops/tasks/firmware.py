"""Firmware compliance: vendor version strings, the firmware catalog, and the per-device verdict.

Versions are compared the way each vendor writes them:
- Hikvision `V5.7.18 build 240826`: numeric parts, then the build date (YYMMDD);
- Dahua `2.800.0000016.0.R,build:2020-06-05`: numeric parts (the `R`/`T` release tag is not ordered), then
  the build date;
- ONVIF (any manufacturer) free-form: best effort with the same rules, else the version is unknown.

Verdicts: `vulnerable` (crit) — a catalog advisory matches; `outdated` (warn) — below the minimum acceptable;
`current` (ok) — at or above the minimum (the finding says when a newer release exists); `unknown-model`
(unknown) — the catalog has no entry for the model; `unknown` — the device's version or facts could not be read.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from canteen_ops.errors import InvalidFile, Problem
from canteen_ops.inventory.yamlpos import format_path
from canteen_ops.status import Result, Status

if TYPE_CHECKING:
    from canteen_ops.drivers.base import Driver, Facts
    from canteen_ops.inventory.model import Device, Inventory
    from canteen_ops.store.log import MaintenanceLog

CHECK = "firmware"
STATUS = {"current": Status.OK, "outdated": Status.WARN, "vulnerable": Status.CRIT,
          "unknown-model": Status.UNKNOWN, "unknown": Status.UNKNOWN}
CATALOG_VENDORS = ("hikvision", "dahua", "onvif")


# --- versions -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Version:
    raw: str
    numbers: tuple[int, ...]
    build: dt.date | None = None
    tag: str | None = None  # Dahua release tag (R = release, T = test); informative only

    def compare(self, other: "Version") -> int:
        """-1 / 0 / 1. Numeric parts first (missing parts count as 0), then build dates when both have one."""
        n = max(len(self.numbers), len(other.numbers))
        a = self.numbers + (0,) * (n - len(self.numbers))
        b = other.numbers + (0,) * (n - len(other.numbers))
        if a != b:
            return -1 if a < b else 1
        if self.build and other.build and self.build != other.build:
            return -1 if self.build < other.build else 1
        return 0

    def __lt__(self, other: "Version") -> bool:
        return self.compare(other) < 0

    def __le__(self, other: "Version") -> bool:
        return self.compare(other) <= 0

    def __str__(self) -> str:
        return self.raw


_DOTTED = re.compile(r"(?<![\d.])(\d+(?:\.\d+)+)")
# Possessive `*+`/`?+`: version strings come from devices, and `\s*[:_]?\s*` before a failing digit backtracks
# quadratically over a long run of spaces.
_HIK = re.compile(r"^\s*+V?(\d++(?:\.\d++)+)\s*+(?:[_,]?+\s*+build\s*+[:_]?+\s*+(\d{8}|\d{6})(?!\d))?", re.I)
_DAHUA = re.compile(r"^\s*+V?(\d+(?:\.\d+)+)(?:\.([A-Z]))?\s*+(?:,?+\s*+build\s*+(?:date)?\s*+[:_]?+\s*+"
                    r"(\d{4})-?(\d{2})-?(\d{2}))?", re.I)
_BUILD6 = re.compile(r"build\s*+[:_]?+\s*+(\d{6})(?!\d)", re.I)
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_BUILD8 = re.compile(r"build\s*+[:_]?+\s*+(\d{8})(?!\d)", re.I)


def _date(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def _yymmdd(s: str) -> dt.date | None:
    if len(s) == 8:
        return _date(int(s[:4]), int(s[4:6]), int(s[6:]))
    return _date(2000 + int(s[:2]), int(s[2:4]), int(s[4:]))


def _numbers(dotted: str) -> tuple[int, ...]:
    return tuple(int(p) for p in dotted.split("."))


def parse_hikvision(raw: str) -> Version | None:
    """'V5.7.18 build 240826', 'V4.62.210 build 230619', 'V5.5.0build 170725', 'V5.7.18_240826'."""
    m = _HIK.match(raw or "")
    if not m:
        return None
    build = _yymmdd(m.group(2)) if m.group(2) else None
    if build is None:
        tail = re.search(r"[_\s](\d{6})(?!\d)", raw[m.end(1):])
        build = _yymmdd(tail.group(1)) if tail else None
    return Version(raw.strip(), _numbers(m.group(1)), build)


# OEM firmware (Amcrest and other Dahua OEMs) writes a customer code where Dahua's own writes seven digits:
# '2.420.AC00.15.R' (python-amcrest#168), 'V2.400.AC01.15.R.20170328' (python-amcrest#73), with the build date
# on a second line, after a comma, or as a trailing '.YYYYMMDD'. The code names the OEM, it is not ordered: the
# numbers are major, minor, 0, revision.
_DAHUA_OEM = re.compile(r"^\s*V?(\d+)\.(\d+)\.([A-Z][A-Z0-9]*)\.(\d+)(?:\.([A-Z]))?(?:\.(\d{8})(?!\d))?", re.I)


def parse_dahua(raw: str) -> Version | None:
    """'2.800.0000016.0.R,build:2020-06-05', 'V2.820.0000000.5.R, Build Date: 2021-11-18',
    '2.420.AC00.15.R' (OEM code, see _DAHUA_OEM)."""
    oem = _DAHUA_OEM.match(raw or "")
    if oem:
        build = _yymmdd(oem.group(6)) if oem.group(6) else None
        if build is None:
            d = _ISO_DATE.search(raw)
            build = _date(*map(int, d.groups())) if d else None
        return Version(raw.strip(), (int(oem.group(1)), int(oem.group(2)), 0, int(oem.group(4))), build,
                       (oem.group(5) or "").upper() or None)
    m = _DAHUA.match(raw or "")
    if not m:
        return None
    build = _date(int(m.group(3)), int(m.group(4)), int(m.group(5))) if m.group(3) else None
    if build is None:
        d = _ISO_DATE.search(raw)
        build = _date(*map(int, d.groups())) if d else None
    return Version(raw.strip(), _numbers(m.group(1)), build, (m.group(2) or "").upper() or None)


def parse_freeform(raw: str) -> Version | None:
    """Best effort for ONVIF FirmwareVersion strings: try the vendor formats, then any dotted number plus a
    build date written either way. None when nothing comparable is in the string."""
    raw = (raw or "").strip()
    found = [v for v in (parse_hikvision(raw), parse_dahua(raw)) if v is not None]
    for v in found:  # the reading that also understood the build date wins
        if v.build is not None:
            return v
    if found:
        return found[0]
    m = _DOTTED.search(raw)
    if not m:
        return None
    build = None
    for rx, conv in ((_BUILD6, lambda g: _yymmdd(g[0])), (_BUILD8, lambda g: _yymmdd(g[0])),
                     (_ISO_DATE, lambda g: _date(*map(int, g)))):
        d = rx.search(raw)
        if d:
            build = conv(d.groups())
            break
    return Version(raw, _numbers(m.group(1)), build)


PARSERS: dict[str, Callable[[str], Version | None]] = {
    "hikvision": parse_hikvision, "dahua": parse_dahua, "onvif": parse_freeform}


def parse_version(vendor: str, raw: str | None) -> Version | None:
    if not raw:
        return None
    return PARSERS.get(vendor, parse_freeform)(raw)


def compare_versions(vendor: str, a: str, b: str) -> int:
    va, vb = parse_version(vendor, a), parse_version(vendor, b)
    if va is None or vb is None:
        raise ValueError(f"cannot compare {a!r} and {b!r} as {vendor} versions")
    return va.compare(vb)


# --- catalog --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Advisory:
    id: str
    below: Version | None = None  # every version older than this
    built_before: dt.date | None = None  # every build dated before this
    versions: tuple[Version, ...] = ()  # exactly these
    url: str | None = None
    note: str | None = None

    def matches(self, v: Version) -> bool:
        if any(v.compare(x) == 0 for x in self.versions):
            return True
        if self.below is not None and v.compare(self.below) < 0:
            return True
        return self.built_before is not None and v.build is not None and v.build < self.built_before


@dataclass(frozen=True)
class CatalogEntry:
    vendor: str
    models: tuple[str, ...]  # globs, case-insensitive
    latest: Version | None
    minimum: Version | None
    advisories: tuple[Advisory, ...] = ()
    note: str | None = None
    line: int = 0

    def matches(self, vendor: str, model: str) -> bool:
        return vendor == self.vendor and any(fnmatch.fnmatchcase(model.upper(), g.upper()) for g in self.models)


@dataclass(frozen=True)
class Catalog:
    path: str
    entries: tuple[CatalogEntry, ...]

    def find(self, vendors: list[str], model: str | None) -> CatalogEntry | None:
        """The first entry (in file order) for any of the vendors (in order) whose glob matches the model."""
        if not model:
            return None
        for vendor in vendors:
            for e in self.entries:
                if e.matches(vendor, model):
                    return e
        return None


ENTRY_KEYS = {"vendor", "models", "latest", "minimum", "vulnerable", "note"}
ADVISORY_KEYS = {"advisory", "below", "built_before", "versions", "url", "note"}


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a firmware catalog; every problem is reported with file:line:column (exit 65)."""
    from canteen_ops.inventory.yamlpos import read_input_file

    path = Path(path).expanduser()
    name = str(path)
    data, pos, problems = read_input_file(path, "firmware catalog", "start from firmware-catalog.example.yaml")

    def problem(p: tuple, message: str, on_key: bool = False, **values) -> None:
        mark = (pos.get(p + ("__key__",)) if on_key else None) or pos.at(p)
        problems.append(Problem(name, mark.line, mark.column, format_path(p), message, values))

    def mapping(value: Any, p: tuple, allowed: set[str]) -> dict:
        if not isinstance(value, dict):
            problem(p, "expected a mapping, got {kind}", kind=type(value).__name__)
            return {}
        for k in value:
            if k not in allowed:
                problem(p + (k,), "unknown key {k!r}; expected one of {allowed}", on_key=True, k=k,
                        allowed=', '.join(sorted(allowed)))
        return value

    def version(vendor: str, value: Any, p: tuple) -> Version | None:
        if value is None:
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            problem(p, "expected a version string, got {kind}", kind=type(value).__name__)
            return None
        v = parse_version(vendor, str(value))
        if v is None:
            example = {"hikvision": "'V5.7.18 build 240826'", "dahua": "'2.800.0000016.0.R,build:2020-06-05'"}
            problem(p, "cannot read {version!r} as a {vendor} version (e.g. {example})" if vendor in example
                    else "cannot read {version!r} as a {vendor} version (no version number)", version=str(value),
                    vendor=vendor, example=example.get(vendor))
        return v

    root = mapping(data if data is not None else {}, (), {"version", "entries"})
    if root.get("version", 1) != 1:
        problem(("version",), "unsupported catalog version {version!r}; this canteen-ops reads 1",
                version=root.get("version"))
    raw_entries = root.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        problem(("entries",), "expected a non-empty list of catalog entries")
        raw_entries = []
    entries = []
    for i, raw in enumerate(raw_entries):
        p = ("entries", i)
        m = mapping(raw, p, ENTRY_KEYS)
        if not m:
            continue
        vendor = m.get("vendor")
        if vendor not in CATALOG_VENDORS:
            problem(p + ("vendor",), "expected one of {catalog_vendors}, got {vendor!r}",
                    catalog_vendors=', '.join(CATALOG_VENDORS), vendor=vendor)
            vendor = None
        models = m.get("models")
        if isinstance(models, str):
            models = [models]
        if not isinstance(models, list) or not models or not all(isinstance(x, str) and x for x in models):
            problem(p + ("models",), "expected a model glob or a list of them, e.g. 'DS-2CD2*'")
            models = []
        if vendor is None:
            continue
        latest = version(vendor, m.get("latest"), p + ("latest",))
        minimum = version(vendor, m.get("minimum"), p + ("minimum",))
        if latest is None and minimum is None and "latest" not in m and "minimum" not in m:
            problem(p, "an entry needs `latest` and/or `minimum`")
        if latest and minimum and latest < minimum:
            problem(p + ("minimum",), "minimum {minimum} is newer than latest {latest}", minimum=minimum, latest=latest)
        advisories = []
        vulns = m.get("vulnerable") or []
        if not isinstance(vulns, list):
            problem(p + ("vulnerable",), "expected a list of advisories")
            vulns = []
        for j, rawv in enumerate(vulns):
            vp = p + ("vulnerable", j)
            a = mapping(rawv, vp, ADVISORY_KEYS)
            if not a:
                continue
            adv_id = a.get("advisory")
            if not isinstance(adv_id, str) or not adv_id.strip():
                problem(vp, "missing `advisory` (an advisory id such as CVE-2021-36260)")
                continue
            below = version(vendor, a.get("below"), vp + ("below",))
            built_before = a.get("built_before")
            if built_before is not None:
                if isinstance(built_before, str):
                    try:
                        built_before = dt.date.fromisoformat(built_before)
                    except ValueError:
                        built_before = None
                if not isinstance(built_before, dt.date) or isinstance(built_before, dt.datetime):
                    problem(vp + ("built_before",), "expected a date, e.g. 2021-06-28")
                    built_before = None
            exact = a.get("versions") or []
            if not isinstance(exact, list):
                problem(vp + ("versions",), "expected a list of version strings")
                exact = []
            exact_v = [version(vendor, x, vp + ("versions", k)) for k, x in enumerate(exact)]
            if not (below or built_before or any(exact_v)) and not any(k in a for k in ("below", "built_before",
                                                                                          "versions")):
                problem(vp, "an advisory needs `below`, `built_before` or `versions` to say what it affects")
            advisories.append(Advisory(adv_id.strip(), below, built_before, tuple(v for v in exact_v if v),
                                       a.get("url"), a.get("note")))
        entries.append(CatalogEntry(vendor, tuple(models), latest, minimum, tuple(advisories), m.get("note"),
                                    pos.at(p).line))
    if problems:
        raise InvalidFile(sorted(problems, key=lambda x: (x.line, x.column)))
    return Catalog(name, tuple(entries))


def catalog_path_for(inventory: "Inventory | None", explicit: str | Path | None) -> Path | None:
    if explicit:
        return Path(explicit).expanduser()
    if inventory is not None and inventory.settings.firmware_catalog:
        p = Path(inventory.settings.firmware_catalog).expanduser()
        return p if p.is_absolute() else Path(inventory.path).resolve().parent / p
    return None


# --- verdicts ---------------------------------------------------------------------------------------------------
@dataclass
class Finding:
    device_id: str
    school_id: str | None
    vendor: str
    model: str | None
    version: str | None
    status: str  # current | outdated | vulnerable | unknown-model | unknown
    summary: str
    latest: str | None = None
    minimum: str | None = None
    advisories: list[dict[str, Any]] = field(default_factory=list)
    update_available: bool = False

    def to_result(self) -> Result:
        return Result(self.device_id, CHECK, STATUS[self.status], self.summary, school_id=self.school_id,
                      data={"firmware_status": self.status, "vendor": self.vendor, "model": self.model,
                            "version": self.version, "latest": self.latest, "minimum": self.minimum,
                            "advisories": self.advisories, "update_available": self.update_available})


_MANUFACTURERS = {"hikvision": "hikvision", "hik": "hikvision", "dahua": "dahua", "amcrest": "dahua"}


def assess(device: "Device", facts: "Facts", catalog: Catalog) -> Finding:
    """The verdict for one device from its facts (model and firmware as the device reports them)."""
    model = facts.model or device.model
    raw = facts.firmware
    vendors = [device.vendor]
    maker = (facts.vendor or "").strip().lower()
    for k, v in _MANUFACTURERS.items():  # an ONVIF camera made by Hikvision/Dahua: use that vendor's entries too
        if maker.startswith(k) and v not in vendors:
            vendors.append(v)
    base = dict(device_id=device.id, school_id=device.school_id, vendor=device.vendor, model=model, version=raw)
    entry = catalog.find(vendors, model)
    if entry is None:
        return Finding(**base, status="unknown-model",
                       summary=f"model {model or '(not reported)'} is not in the firmware catalog; "
                               f"firmware {raw or '(not reported)'}")
    latest = str(entry.latest) if entry.latest else None
    minimum = str(entry.minimum) if entry.minimum else None
    base.update(latest=latest, minimum=minimum)
    v = parse_version(entry.vendor, raw)
    if v is None:
        return Finding(**base, status="unknown",
                       summary=f"cannot read the firmware version {raw!r}" if raw else "firmware version not reported")
    hits = [a for a in entry.advisories if a.matches(v)]
    newer = entry.latest is not None and v < entry.latest
    if hits:
        adv = [{"id": a.id, "url": a.url, "note": a.note} for a in hits]
        return Finding(**base, status="vulnerable", advisories=adv, update_available=newer,
                       summary=f"{raw} is affected by {', '.join(a.id for a in hits)}"
                               + (f"; upgrade to {latest}" if latest else ""))
    if entry.minimum is not None and v < entry.minimum:
        return Finding(**base, status="outdated", update_available=newer,
                       summary=f"{raw} is older than the minimum acceptable {minimum}"
                               + (f"; latest is {latest}" if latest else ""))
    return Finding(**base, status="current", update_available=newer,
                   summary=f"{raw}" + (f"; newer release {latest} available" if newer else " (latest)"
                                       if entry.latest else ""))


def _default_factory(device: "Device") -> "Driver":
    from canteen_ops.drivers.registry import open_driver

    return open_driver(device)


def check_device(device: "Device", catalog: Catalog, factory: Callable[["Device"], "Driver"] | None = None
                 ) -> Finding:
    from canteen_ops.drivers.base import DriverError

    try:
        with (factory or _default_factory)(device) as driver:
            facts = driver.facts()
    except DriverError as exc:
        return Finding(device.id, device.school_id, device.vendor, device.model, None, "unknown",
                       f"could not read the firmware version: {type(exc).__name__}: {exc}")
    return assess(device, facts, catalog)


def record_finding(log: "MaintenanceLog", f: Finding, run_id: str | None) -> str:
    return log.insert("firmware_findings", {
        "run_id": run_id, "school_id": f.school_id, "device_id": f.device_id, "vendor": f.vendor,
        "model": f.model, "version": f.version, "status": f.status, "latest": f.latest, "minimum": f.minimum,
        "advisories": f.advisories, "summary": f.summary})


def run_firmware_check(log: "MaintenanceLog", devices: list["Device"], catalog: Catalog, *,
                       run_id: str | None = None, driver_factory: Callable[["Device"], "Driver"] | None = None,
                       workers: int | None = None, deadline_s: float | None = 60.0, progress: bool | None = False
                       ) -> list[Finding]:
    """Check every device concurrently; one firmware_findings row per device, written from this thread."""
    from canteen_ops.runner import run_devices

    findings: list[Finding] = []

    def task(device: "Device") -> list[Result]:
        f = check_device(device, catalog, driver_factory)
        r = f.to_result()
        r.data["_finding"] = f
        return [r]

    by_id = {d.id: d for d in devices}

    def emit(r: Result) -> None:
        f = r.data.pop("_finding", None)
        if f is None:  # the runner's deadline / internal-error result
            d = by_id.get(r.device_id)
            f = Finding(r.device_id, r.school_id, d.vendor if d else "", d.model if d else None, None, "unknown",
                        r.summary)
        findings.append(f)
        record_finding(log, f, run_id)

    run_devices(devices, task, workers=workers, deadline_s=deadline_s, on_result=emit, progress=progress,
                label="firmware")
    return findings
