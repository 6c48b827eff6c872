"""Load and validate an inventory file: every problem reported with file:line:column and field path.

Validation is strict (unknown keys, wrong types, duplicates, dangling references are errors) and complete
(all problems are collected before failing). Values inherit defaults → group → school → device.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from canteen_ops.checks import DEVICE_CHECK_NAMES
from canteen_ops.errors import InvalidFile, Problem
from canteen_ops.secretfile import open_to_others
from canteen_ops.inventory.model import (
    KINDS,
    POLICY_FIELDS,
    VENDORS,
    WEEKDAYS,
    Contact,
    Credentials,
    Device,
    Inventory,
    Policy,
    School,
    Settings,
    WorkingHours,
)
from canteen_ops.inventory.yamlpos import (
    PositionMap,
    Sexagesimal,
    format_path,
    parse_input_text,
    read_input_file,
)

SUPPORTED_VERSIONS = (1,)
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")

# Settings that may appear at defaults, group, school and device level and are inherited downwards.
INHERITED = {"credentials", "port", "rtsp_port", "https", "timeout", "policy", "tags", "auth", "tls", "tls_ca",
             "tls_legacy"}
AUTH_CHOICES = ("digest", "basic")  # basic: Basic authentication may go out over plain HTTP to these devices
TLS_CHOICES = ("insecure", "verify", "pin")
SCHOOL_INHERITED = INHERITED | {"working_hours"}
TOP_KEYS = {"version", "settings", "defaults", "credentials", "groups", "schools", "roster"}
SETTINGS_KEYS = {f.name for f in fields(Settings)}
CRED_KEYS = {"username", "password_env", "password_file", "password"}
GROUP_KEYS = SCHOOL_INHERITED | {"description"}
SCHOOL_KEYS = SCHOOL_INHERITED | {"id", "name", "district", "address", "contacts", "group", "devices"}
DEVICE_KEYS = INHERITED | {
    "id", "kind", "vendor", "host", "name", "area", "nvr", "nvr_channel", "model", "serial",
    "installed", "warranty_until",
}
CONTACT_KEYS = {"name", "role", "phone", "email"}
WH_KEYS = {"days", "start", "end", "timezone", "closed", "open_days", "statutory_holidays"}
CLOSURE_KEYS = {"from", "to", "reason"}
MAX_NUMBER = 1e9  # any count, size, duration or threshold in an inventory; beyond it a typo that overflows later


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping",
            type(None): "null", dt.date: "date", dt.datetime: "timestamp"}.get(type(value), type(value).__name__)


class _Validator:
    """Collects problems while walking the raw YAML data."""

    def __init__(self, file: str, positions: PositionMap):
        self.file = file
        self.positions = positions
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def problem(self, path: tuple, message: str, *, on_key: bool = False, **values) -> None:
        """`message` is an English template filled with `values` (errors.Problem: shown translated)."""
        mark = self.positions.get(path + ("__key__",)) if on_key else None
        mark = mark or self.positions.at(path)
        self.problems.append(Problem(self.file, mark.line, mark.column, format_path(path), message, values))

    def where(self, path: tuple) -> str:
        m = self.positions.at(path)
        return f"{self.file}:{m.line}:{m.column}"

    # --- generic shape checks -------------------------------------------------------------------------
    def mapping(self, value: Any, path: tuple, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            from canteen_ops.i18n import word

            self.problem(path, "expected a mapping, got {type}", type=word("type:" + _type_name(value)))
            return {}
        for key in value:
            if key not in allowed:
                hint = _suggest(str(key), allowed)
                self.problem(path + (key,), "unknown key {key!r} (did you mean {hint!r}?)" if hint
                             else "unknown key {key!r}", on_key=True, key=key, hint=hint)
        for key in required:
            if key not in value or value[key] is None:
                self.problem(path, "missing required key {key!r}", key=key)
        return value

    def typed(self, value: Any, path: tuple, kind: type | tuple, what: str, *, secret: bool = False) -> Any:
        ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in _as_tuple(kind))
        if not ok:
            shown = "" if secret or isinstance(value, (dict, list)) else f" {value!r}"
            from canteen_ops.errors import Word

            # our words for the kinds: English in str(), the reader's language when shown
            self.problem(path, "expected {what}, got {type}{shown}", what=Word(what),
                         type=Word(_type_name(value), "type"), shown=shown)
            return None
        return value

    def string(self, m: dict, key: str, path: tuple, *, secret: bool = False) -> str | None:
        if m.get(key) is None:
            return None
        v = m[key]
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not secret:
            return str(v)  # phone numbers, serials written without quotes
        return self.typed(v, path + (key,), str, "a string", secret=secret)

    def ident(self, m: dict, key: str, path: tuple) -> str | None:
        v = self.string(m, key, path)
        if v is not None and not ID_RE.match(v):
            self.problem(path + (key,), "invalid id {v!r}: use letters, digits, '-', '_' and '.'", v=v)
            return None
        return v

    def port(self, v: Any, path: tuple) -> int | None:
        if self.typed(v, path, int, "a port number (integer)") is None:
            return None
        if not 1 <= v <= 65535:
            self.problem(path, "port {v} out of range 1-65535", v=v)
            return None
        return v

    def positive(self, v: Any, path: tuple, limit: float = MAX_NUMBER) -> float | None:
        if self.typed(v, path, (int, float), "a number") is None or not self.in_range(v, path, limit):
            return None
        if v <= 0:
            self.problem(path, "must be greater than 0, got {v}", v=v)
            return None
        return float(v)

    def in_range(self, v: float, path: tuple, limit: float = MAX_NUMBER) -> bool:
        """A finite number of at most `limit`: YAML reads .inf, .nan and 1.0e+999, and they overflow later."""
        if v != v or abs(v) > limit:
            self.problem(path, "out of range: {v} (at most {limit:g})", v=v, limit=limit)
            return False
        return True

    def boolean(self, v: Any, path: tuple) -> bool | None:
        return self.typed(v, path, bool, "true or false")

    def date(self, m: dict, key: str, path: tuple) -> dt.date | None:
        v = m.get(key)
        return None if v is None else self.date_value(v, path + (key,))

    def date_value(self, v: Any, path: tuple) -> dt.date | None:
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return v
        if isinstance(v, str):
            try:
                return dt.date.fromisoformat(v.strip())
            except ValueError:
                pass
        self.problem(path, "expected a date (YYYY-MM-DD), got {v!r}", v=v)
        return None

    def str_list(self, v: Any, path: tuple) -> tuple[str, ...] | None:
        if isinstance(v, str):
            return (v,)
        if self.typed(v, path, list, "a list of strings") is None:
            return None
        out = []
        for i, item in enumerate(v):
            if self.typed(item, path + (i,), str, "a string") is not None:
                out.append(item)
        return tuple(out)

    def host(self, v: Any, path: tuple) -> str | None:
        if self.typed(v, path, str, "a host name or IP address") is None:
            return None
        hint = _host_hint(v)
        if hint:
            self.problem(path, hint[0], **hint[1])
            return None
        try:
            ipaddress.ip_address(v)
            return v
        except ValueError:
            pass
        if re.fullmatch(r"[0-9.]+", v) or not HOSTNAME_RE.match(v):
            self.problem(path, "invalid host {v!r}: expected an IPv4/IPv6 address or a DNS name", v=v)
            return None
        return v

    # --- domain pieces ----------------------------------------------------------------------------------
    def settings_layer(self, m: dict, path: tuple, cred_names: set[str]) -> dict:
        """Validate the inheritable settings present in a mapping; return the clean ones."""
        out: dict[str, Any] = {}
        for key in ("port", "rtsp_port"):
            if m.get(key) is not None and (v := self.port(m[key], path + (key,))) is not None:
                out[key] = v
        if m.get("https") is not None and (v := self.boolean(m["https"], path + ("https",))) is not None:
            out["https"] = v
        if m.get("timeout") is not None and (v := self.positive(m["timeout"], path + ("timeout",), 86_400)) is not None:
            out["timeout"] = v
        if m.get("credentials") is not None:
            c = self.string(m, "credentials", path)
            if c is not None:
                if c not in cred_names:
                    self.problem(path + ("credentials",), "unknown credentials {name!r} (defined: {defined})"
                                 if cred_names else "unknown credentials {name!r}", name=c,
                                 defined=", ".join(sorted(cred_names)))
                else:
                    out["credentials"] = c
        if m.get("tags") is not None and (v := self.str_list(m["tags"], path + ("tags",))) is not None:
            out["tags"] = v
        for key, choices in (("auth", AUTH_CHOICES), ("tls", TLS_CHOICES)):
            if m.get(key) is not None and (v := self.string(m, key, path)) is not None:
                if v not in choices:
                    self.problem(path + (key,), "{key} must be one of {choices}, got {v!r}", key=key,
                                 choices=', '.join(choices), v=v)
                else:
                    out[key] = v
        if m.get("tls_legacy") is not None and (v := self.boolean(m["tls_legacy"], path + ("tls_legacy",))) \
                is not None:
            out["tls_legacy"] = v
        if m.get("tls_ca") is not None and (v := self.string(m, "tls_ca", path)) is not None:
            ca = os.path.join(os.path.dirname(os.path.abspath(self.file)), os.path.expanduser(v))
            if not os.path.isfile(ca):
                self.problem(path + ("tls_ca",), "CA bundle {v!r} not found (a path relative to the inventory file, "
                                                 "or absolute)", v=v)
            else:
                out["tls_ca"] = ca
        if m.get("policy") is not None:
            out["policy"] = self.policy(m["policy"], path + ("policy",))
        if m.get("working_hours") is not None:
            out["working_hours"] = self.working_hours(m["working_hours"], path + ("working_hours",))
        return out

    def policy(self, v: Any, path: tuple) -> dict:
        m = self.mapping(v, path, set(POLICY_FIELDS))
        out: dict[str, Any] = {}
        for key, value in m.items():
            if key not in POLICY_FIELDS:
                continue
            p = path + (key,)
            default = POLICY_FIELDS[key].default
            if isinstance(default, tuple):
                if (lst := self.str_list(value, p)) is not None:
                    if key == "skip_checks" and (bad := [n for n in lst if n not in DEVICE_CHECK_NAMES]):
                        self.problem(p, "unknown device check {bad}; known: {device_check_names}",
                                     bad=', '.join(map(repr, bad)), device_check_names=', '.join(DEVICE_CHECK_NAMES))
                    else:
                        out[key] = lst
            elif isinstance(default, str):
                if self.typed(value, p, str, "a string") is not None:
                    if key in ("min_resolution", "thermal_min_resolution") and not re.fullmatch(r"\d+[xX]\d+", value):
                        self.problem(p, "expected WIDTHxHEIGHT such as 1920x1080, got {value!r}", value=value)
                    else:
                        out[key] = value
            elif isinstance(default, int) and not isinstance(default, bool) and not isinstance(default, float):
                if self.typed(value, p, int, "an integer") is not None and self.in_range(value, p):
                    if value < 1:
                        self.problem(p, "must be at least 1, got {value}", value=value)
                    else:
                        out[key] = int(value)
            else:
                if self.typed(value, p, (int, float), "a number") is not None and self.in_range(value, p,
                                                                                        _policy_limit(key)):
                    if value < 0:
                        self.problem(p, "must not be negative, got {value}", value=value)
                    elif key.startswith("incident_") and value == 0:
                        self.problem(p, "an incident deadline must be greater than 0 hours")
                    else:
                        out[key] = float(value)
        return out

    def working_hours(self, v: Any, path: tuple) -> dict:
        m = self.mapping(v, path, WH_KEYS)
        out: dict[str, Any] = {}
        if "days" in m:
            days = self.str_list(m["days"], path + ("days",))
            if days is not None:
                bad = [d for d in days if _weekday(d) is None]
                if bad:
                    self.problem(path + ("days",), "unknown weekday(s) {bad}: use mon..sun", bad=', '.join(bad))
                else:
                    out["days"] = tuple(sorted({_weekday(d) for d in days}))
        for key in ("start", "end"):
            if key in m:
                t = _parse_time(m[key])
                if t is None:
                    hint = " (write hours as HH:MM, e.g. \"08:00\")" if type(m[key]) is int else ""
                    self.problem(path + (key,), "expected a time HH:MM, got {m!r}{hint}", m=m[key], hint=hint)
                else:
                    out[key] = t
        if "start" in out and "end" in out and out["end"] <= out["start"]:
            self.problem(path + ("end",), "end {end:%H:%M} must be after start {start:%H:%M}", end=out['end'],
                         start=out['start'])
            del out["end"]
        if "timezone" in m and self.typed(m["timezone"], path + ("timezone",), str, "a time zone name"):
            if _valid_tz(m["timezone"]):
                out["timezone"] = m["timezone"]
            else:
                self.problem(path + ("timezone",), "unknown time zone {timezone!r} (e.g. Asia/Shanghai)",
                             timezone=m['timezone'])
        if m.get("closed") is not None and self.typed(m["closed"], path + ("closed",), list, "a list") is not None:
            entries = [self.closure(v, path + ("closed", i)) for i, v in enumerate(m["closed"])]
            if all(e is not None for e in entries):
                out["closed"] = tuple(r for r, _ in entries)
                out["closed_reasons"] = tuple(reason for _, reason in entries)
        if "statutory_holidays" in m and self.typed(m["statutory_holidays"], path + ("statutory_holidays",), bool,
                                                    "true or false") is not None:
            out["statutory"] = m["statutory_holidays"]
        if m.get("open_days") is not None and self.typed(m["open_days"], path + ("open_days",), list,
                                                         "a list of dates") is not None:
            days = [self.date_value(v, path + ("open_days", i)) for i, v in enumerate(m["open_days"])]
            if all(d is not None for d in days):
                out["open_days"] = tuple(days)
        return out

    def closure(self, v: Any, path: tuple) -> tuple[tuple[dt.date, dt.date], str | None] | None:
        """A closed day or range, or {from, to, reason} (to defaults to from)."""
        if not isinstance(v, dict):
            r = self.date_range(v, path)
            return None if r is None else (r, None)
        m = self.mapping(v, path, CLOSURE_KEYS, required=("from",))
        first = self.date_value(m["from"], path + ("from",)) if "from" in m else None
        last = self.date_value(m["to"], path + ("to",)) if m.get("to") is not None else first
        reason = self.string(m, "reason", path)
        if first is None or last is None:
            return None
        if last < first:
            self.problem(path + ("to",), "range ends ({last}) before it starts ({first})", last=last, first=first)
            return None
        return (first, last), reason

    def date_range(self, v: Any, path: tuple) -> tuple[dt.date, dt.date] | None:
        """A day (2026-10-01) or an inclusive range of days ("2026-10-01..2026-10-07")."""
        if isinstance(v, str) and ".." in v:
            first, _, last = v.partition("..")
            a, b = self.date_value(first, path), self.date_value(last, path)
            if a is None or b is None:
                return None
            if b < a:
                self.problem(path, "range ends ({b}) before it starts ({a})", b=b, a=a)
                return None
            return a, b
        day = self.date_value(v, path)
        return None if day is None else (day, day)


def _host_hint(v: str) -> tuple[str, dict] | None:
    """A `host` written as a URL, with a port, or with credentials: name the likely cause (a message template and
    its values). Credentials are never echoed (the password is remembered as a secret, so no later message shows
    it either)."""
    rest = v.strip()
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]{0,15})://", rest)
    if scheme:
        rest = rest[scheme.end():]
    rest = rest.split("/", 1)[0]
    if "@" in rest:
        from canteen_ops.redact import remember_secret

        userinfo, _, rest = rest.rpartition("@")
        if ":" in userinfo:
            remember_secret(userinfo.split(":", 1)[1])
        return ("host contains a user name or password (user:password@…; not shown): write the address only, "
                "and give credentials by name (credentials: password_env / password_file)", {})
    port = None
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):(\d{1,5})", rest)
    if m:
        rest, port = m.group(1).strip("[]"), m.group(2)
    if not scheme and port is None:
        return None
    fix = [f"host: {rest}"] + ([f"port: {port}"] if port else [])
    if scheme and scheme.group(1).lower() == "https":
        fix.append("https: true")
    if scheme:
        return ("host {host!r} contains a URL: the host is the address only; use `port:` for the port ({fix})",
                {"host": v, "fix": ", ".join(fix)})
    return ("host {host!r} contains a port: the host is the address only; use `port:` for the port ({fix})",
            {"host": v, "fix": ", ".join(fix)})


def _as_tuple(kind: type | tuple) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _suggest(key: str, allowed: set[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    return match[0] if match else None


def _weekday(name: str) -> int | None:
    n = name.strip().lower()
    for i, day in enumerate(WEEKDAYS):
        if n == day or n == _WEEKDAY_NAMES[i]:
            return i
    return None


_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


# Durations in the policy at most a century, by unit suffix: a window or deadline beyond that is a typo, and date
# arithmetic with it overflows.
_CENTURY_IN = {"_days": 36_525, "_hours": 876_600, "_h": 876_600, "_minutes": 52_596_000, "_s": 3_155_760_000}


def _policy_limit(key: str) -> float:
    return next((limit for suffix, limit in _CENTURY_IN.items() if key.endswith(suffix)), MAX_NUMBER)


def _parse_time(v: Any) -> dt.time | None:
    # YAML 1.1 reads an unquoted 18:00 as the base-60 integer 1080; accept that, but not a bare 18.
    if isinstance(v, Sexagesimal) and 0 <= v < 24 * 60:
        return dt.time(v // 60, v % 60)
    if isinstance(v, str) and (m := TIME_RE.match(v.strip())):
        return dt.time(int(m.group(1)), int(m.group(2)))
    return None


def _valid_tz(name: str) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
        return True
    except (KeyError, ValueError, OSError):
        return False


def _merge(*layers: dict) -> dict:
    """Inherit settings: later layers override; policy merges per key; tags accumulate."""
    out: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    wh: dict[str, Any] = {}
    tags: list[str] = []
    for layer in layers:
        for key, value in layer.items():
            if key == "policy":
                policy.update(value)
            elif key == "working_hours":
                wh.update(value)
            elif key == "tags":
                tags.extend(t for t in value if t not in tags)
            else:
                out[key] = value
    out["policy"], out["working_hours"], out["tags"] = policy, wh, tuple(tags)
    return out


def load_inventory(path: str | Path) -> Inventory:
    """Read, validate and resolve an inventory. Raises InvalidFile listing every problem."""
    data, positions, problems = read_input_file(path, "inventory file", "use --inventory or CANTEEN_OPS_INVENTORY")
    return _validated(str(path), data, positions, problems)


def parse_inventory(text: str, file: str = "<inventory>") -> Inventory:
    return _validated(file, *parse_input_text(text, file))


def _validated(file: str, data: Any, positions: PositionMap, problems: list[Problem]) -> Inventory:
    v = _Validator(file, positions)
    v.problems.extend(problems)
    inv = _build(v, data if data is not None else {})
    if v.problems:
        unique = list(dict.fromkeys(v.problems))  # dedupe, keeping the order found for equal positions
        raise InvalidFile(sorted(unique, key=lambda p: (p.line, p.column, p.path)))
    return inv


def _build(v: _Validator, data: Any) -> Inventory | None:
    root = v.mapping(data, (), TOP_KEYS, required=("version", "schools"))
    version = root.get("version")
    if version is not None and (type(version) is not int or version not in SUPPORTED_VERSIONS):
        v.problem(("version",), "unsupported inventory version {version!r} (supported: 1)", version=version)

    # settings
    sraw = v.mapping(root.get("settings") or {}, ("settings",), SETTINGS_KEYS)
    from canteen_ops.notify.config import parse_targets
    from canteen_ops.roster import parse_roster

    settings = Settings(**{k: v.string(sraw, k, ("settings",)) for k in SETTINGS_KEYS - {"notify"}
                           if sraw.get(k) is not None}, notify=parse_targets(v, sraw.get("notify"), ("settings", "notify")))
    if sraw.get("timezone") and not _valid_tz(str(sraw["timezone"])):
        v.problem(("settings", "timezone"), "unknown time zone {timezone!r}", timezone=sraw['timezone'])

    # credentials
    creds: dict[str, Credentials] = {}
    craw = root.get("credentials") or {}
    if v.typed(craw, ("credentials",), dict, "a mapping of named credential sets") is None:
        craw = {}
    for name, c in craw.items():
        p = ("credentials", name)
        m = v.mapping(c, p, CRED_KEYS, required=("username",))
        sources = [k for k in ("password_env", "password_file", "password") if m.get(k) is not None]
        misspelt = any(k not in CRED_KEYS for k in m)  # already reported as an unknown key: say it once
        if len(sources) > 1 or (not sources and not misspelt):
            v.problem(p, "give exactly one of password_env, password_file or password (found {found})" if sources
                      else "give exactly one of password_env, password_file or password", found=", ".join(sources))
        if "password" in m:
            v.warnings.append(f"{v.where(p + ('password',))}: credentials {name!r} has a plaintext password; "
                              "use password_env or password_file instead")
        username = v.string(m, "username", p)
        if username is not None and not username.isprintable():
            # It goes into Authorization headers and WS-Security tokens: a line break would end the header.
            v.problem(p + ("username",), "the user name contains a line break or another control character")
            username = None
        password_env = v.string(m, "password_env", p, secret=True)
        if password_env is not None and not ENV_NAME_RE.match(password_env):
            # Not echoed: people sometimes paste the password itself here.
            v.problem(p + ("password_env",), "expected the name of an environment variable (letters, digits, _), "
                                             "not a password")
        password_file = v.string(m, "password_file", p)
        if password_file and open_to_others(password_file):
            v.warnings.append(f"{v.where(p + ('password_file',))}: password file {password_file} is readable by "
                              "other users; chmod 600 it")
        creds[str(name)] = Credentials(
            name=str(name), username=username or "",
            password_env=password_env, password_file=password_file,
            password=v.string(m, "password", p, secret=True),
        )
    cred_names = set(creds)

    defaults = v.settings_layer(v.mapping(root.get("defaults") or {}, ("defaults",), SCHOOL_INHERITED),
                                ("defaults",), cred_names)

    groups: dict[str, dict] = {}
    graw = root.get("groups") or {}
    if v.typed(graw, ("groups",), dict, "a mapping of named groups") is None:
        graw = {}
    for name, g in graw.items():
        p = ("groups", name)
        groups[str(name)] = v.settings_layer(v.mapping(g, p, GROUP_KEYS), p, cred_names)

    schools_raw = root.get("schools")
    if schools_raw is not None and v.typed(schools_raw, ("schools",), list, "a list of schools") is None:
        schools_raw = []
    schools_raw = schools_raw or []

    school_ids: dict[str, tuple] = {}
    device_ids: dict[str, tuple] = {}
    pending: list[tuple[dict, tuple, list[tuple[dict, tuple, dict]]]] = []
    for si, s in enumerate(schools_raw):
        sp = ("schools", si)
        sm = v.mapping(s, sp, SCHOOL_KEYS, required=("id", "name", "devices"))
        sid = v.ident(sm, "id", sp)
        if sid is not None:
            if sid in school_ids:
                v.problem(sp + ("id",), "duplicate school id {sid!r} (first defined at {where})", sid=sid,
                          where=v.where(school_ids[sid]))
            else:
                school_ids[sid] = sp + ("id",)
        for key in ("name", "district", "address"):
            v.string(sm, key, sp)
        group = v.string(sm, "group", sp)
        if group is not None and group not in groups:
            v.problem(sp + ("group",), "unknown group {group!r} (defined: {defined})" if groups
                      else "unknown group {group!r}", group=group, defined=", ".join(sorted(groups)))
            group = None
        slayer = v.settings_layer(sm, sp, cred_names)
        devices_raw = sm.get("devices")
        if devices_raw is not None and v.typed(devices_raw, sp + ("devices",), list, "a list of devices") is None:
            devices_raw = []
        devs = []
        for di, d in enumerate(devices_raw or []):
            dp = sp + ("devices", di)
            dm = v.mapping(d, dp, DEVICE_KEYS, required=("id", "kind", "vendor", "host"))
            did = v.ident(dm, "id", dp)
            if did is not None:
                if did in device_ids:
                    v.problem(dp + ("id",), "duplicate device id {did!r} (first defined at {where})", did=did,
                              where=v.where(device_ids[did]))
                else:
                    device_ids[did] = dp + ("id",)
            for key, choices in (("kind", KINDS), ("vendor", VENDORS)):
                val = dm.get(key)
                if val is not None and val not in choices:
                    v.problem(dp + (key,), "invalid {key} {val!r}: expected one of {choices}", key=key, val=val,
                              choices=', '.join(choices))
            if dm.get("host") is not None:
                v.host(dm["host"], dp + ("host",))
            if dm.get("nvr_channel") is not None:
                ch = v.typed(dm["nvr_channel"], dp + ("nvr_channel",), int, "a channel number (integer)")
                if ch is not None and ch < 1:
                    v.problem(dp + ("nvr_channel",), "channel numbers start at 1, got {ch}", ch=ch)
            for key in ("name", "area", "model", "serial", "nvr"):
                v.string(dm, key, dp)
            for key in ("installed", "warranty_until"):
                v.date(dm, key, dp)
            devs.append((dm, dp, v.settings_layer(dm, dp, cred_names)))
        contacts = []
        craw_list = sm.get("contacts") or []
        if v.typed(craw_list, sp + ("contacts",), list, "a list of contacts") is None:
            craw_list = []
        for ci, c in enumerate(craw_list):
            cp = sp + ("contacts", ci)
            cm = v.mapping(c, cp, CONTACT_KEYS, required=("name",))
            contacts.append(Contact(**{k: v.string(cm, k, cp) for k in CONTACT_KEYS if cm.get(k) is not None}))
        pending.append((sm, sp, devs, group, slayer, sid, tuple(contacts)))

    # Cross references need every device id first.
    kinds = {}
    for sm, sp, devs, *_ in pending:
        for dm, dp, _layer in devs:
            if isinstance(dm.get("id"), str):
                kinds[dm["id"]] = (dm.get("kind"), sp)
    channels: dict[tuple[str, int], tuple] = {}
    for sm, sp, devs, *_ in pending:
        for dm, dp, _layer in devs:
            nvr = dm.get("nvr")
            if nvr is not None and isinstance(nvr, str):
                if nvr not in kinds:
                    v.problem(dp + ("nvr",), "unknown nvr {nvr!r}", nvr=nvr)
                elif kinds[nvr][0] != "nvr":
                    v.problem(dp + ("nvr",), "device {nvr!r} is a {kinds}, not an nvr", nvr=nvr, kinds=kinds[nvr][0])
                elif kinds[nvr][1] != sp:
                    v.problem(dp + ("nvr",), "nvr {nvr!r} belongs to another school", nvr=nvr)
                if dm.get("kind") == "nvr":
                    v.problem(dp + ("nvr",), "an nvr cannot itself be attached to an nvr")
                ch = dm.get("nvr_channel")
                if isinstance(ch, int):
                    if (nvr, ch) in channels:
                        v.problem(dp + ("nvr_channel",), "channel {ch} of {nvr!r} is already used at {where}", ch=ch,
                                  nvr=nvr, where=v.where(channels[(nvr, ch)]))
                    else:
                        channels[(nvr, ch)] = dp + ("nvr_channel",)
            elif dm.get("nvr_channel") is not None:
                v.problem(dp + ("nvr_channel",), "nvr_channel needs nvr")

    roster = None
    scope = {"schools": set(school_ids), "groups": set(groups),
             "districts": {sm.get("district") for sm, *_ in pending if isinstance(sm.get("district"), str)}}
    if root.get("roster") is not None:
        if settings.roster_file:
            v.problem(("roster",), "the roster is in settings.roster_file already: keep one of them")
        roster = parse_roster(v, root["roster"], ("roster",), settings.timezone,
                              [t.name for t in settings.notify], scope)

    if v.problems:
        return None

    default_policy = Policy(**defaults.get("policy", {}))
    schools = []
    for sm, sp, devs, group, slayer, sid, contacts in pending:
        school_settings = _merge(defaults, groups.get(group, {}) if group else {}, slayer)
        wh = WorkingHours(**school_settings["working_hours"])
        if wh.end <= wh.start:  # each layer was fine alone, but e.g. a school's start is after the default end
            v.problem(sp + ("working_hours",), "working hours end {end:%H:%M} must be after start {start:%H:%M} "
                                               "(after inheriting from defaults/group)", end=wh.end, start=wh.start)
        devices = []
        for dm, dp, dlayer in devs:
            eff = _merge(defaults, groups.get(group, {}) if group else {}, slayer, dlayer)
            https = eff.get("https", False)
            cred = eff.get("credentials")
            devices.append(Device(
                id=dm["id"], kind=dm["kind"], vendor=dm["vendor"], host=dm["host"],
                port=eff.get("port", 443 if https else 80), rtsp_port=eff.get("rtsp_port", 554), https=https,
                school_id=sid, credentials=creds[cred] if cred else None, timeout=eff.get("timeout", 5.0),
                policy=Policy(**eff["policy"]), name=_s(dm.get("name")), area=_s(dm.get("area")),
                nvr=dm.get("nvr"), nvr_channel=dm.get("nvr_channel"), model=_s(dm.get("model")),
                serial=_s(dm.get("serial")), installed=v.date(dm, "installed", dp),
                warranty_until=v.date(dm, "warranty_until", dp), tags=eff["tags"],
                line=v.positions.at(dp).line, auth=eff.get("auth"), tls=eff.get("tls", "insecure"),
                tls_ca=eff.get("tls_ca"), tls_legacy=eff.get("tls_legacy", False),
            ))
        schools.append(School(
            id=sid, name=str(sm["name"]), district=_s(sm.get("district")), address=_s(sm.get("address")),
            contacts=contacts, working_hours=wh, policy=Policy(**school_settings["policy"]),
            devices=tuple(devices), group=group, tags=school_settings["tags"],
        ))
    insecure = [d.id for s in schools for d in s.devices if d.https and d.tls == "insecure"]
    if insecure:  # today's default, said once per run: an impostor with any certificate would be believed
        v.warnings.append(f"{len(insecure)} HTTPS device(s) accept any TLS certificate (tls: insecure): "
                          f"{', '.join(insecure[:3])}{', …' if len(insecure) > 3 else ''}; set tls: pin or "
                          f"tls: verify (docs/inventory.md)")
    if any(s.working_hours.statutory for s in schools):
        from canteen_ops.cncalendar import knows_year

        year = dt.date.today().year
        if not knows_year(year):
            v.warnings.append(f"{v.file}: the installed chinese-calendar has no statutory holidays for {year}: "
                              "incident working hours use the weekdays and working_hours.closed / open_days only "
                              "(upgrade chinesecalendar, or declare this year's holidays as closed days)")
    return Inventory(
        path=v.file, version=version, settings=settings, policy=default_policy, credentials=creds,
        groups=tuple(groups), schools=tuple(schools), warnings=tuple(v.warnings),
        roster=roster if roster is not None else _roster_file(v.file, settings, scope),
    )


def _roster_file(inventory_file: str, settings: Settings, scope: dict):
    """settings.roster_file, relative to the inventory's directory; its problems carry its own file:line."""
    if not settings.roster_file:
        return None
    from canteen_ops.roster import load_roster_file

    path = Path(settings.roster_file).expanduser()
    if not path.is_absolute() and not inventory_file.startswith("<"):
        path = Path(inventory_file).parent / path
    return load_roster_file(str(path), settings.timezone, [t.name for t in settings.notify], scope)


def _s(value: Any) -> str | None:
    return None if value is None else str(value)

