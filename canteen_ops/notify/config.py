"""Notification targets (`settings.notify` in the inventory): where alerts go, and which ones.

    settings:
      notify:
        - name: district-dingtalk
          url_env: CANTEEN_OPS_DINGTALK_URL     # an apprise URL: dingtalk://…, wecombot://…, feishu://…,
                                                # mailtos://…, json://host/path (a plain webhook) …
          levels: [major, general]              # optional: incident levels to send (default both)
          events: [opened, escalated, resolved] # optional (default all): opened, reopened, escalated, resolved,
                                                # drill, job-failed
          quiet_hours: "22:00-07:00"            # optional: general-level messages wait until it ends
          max_per_hour: 20                      # optional rate limit (default 30)

An apprise URL carries the secret (a bot token, a password), so like device passwords it comes from an
environment variable (`url_env`) or a file (`url_file`); a plaintext `url` is allowed and warned about. The URL is
read when a message is sent and registered for redaction, so neither it nor its token shows in output, errors or
the log; everywhere else the target is called by its name.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any

from canteen_ops.errors import CanteenOpsError

EVENTS = ("opened", "reopened", "escalated", "resolved", "drill", "job-failed")
LEVELS = ("major", "general")
TARGET_KEYS = {"name", "url_env", "url_file", "url", "levels", "events", "quiet_hours", "max_per_hour"}
DEFAULT_MAX_PER_HOUR = 30
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
QUIET_RE = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


class NotifyUrlUnavailable(CanteenOpsError):
    """A target's URL could not be read (env var unset, file missing)."""


@dataclass(frozen=True)
class NotifyTarget:
    name: str
    url_env: str | None = None
    url_file: str | None = None
    url: str | None = field(default=None, repr=False)  # plaintext: allowed, warned about
    levels: tuple[str, ...] = LEVELS
    events: tuple[str, ...] = EVENTS
    quiet_hours: tuple[dt.time, dt.time] | None = None
    max_per_hour: int = DEFAULT_MAX_PER_HOUR

    def wants(self, event: str, level: str | None) -> bool:
        return event in self.events and (level is None or level in self.levels)

    def in_quiet_hours(self, t: dt.datetime, timezone: str) -> bool:
        if not self.quiet_hours:
            return False
        from zoneinfo import ZoneInfo

        clock = t.astimezone(ZoneInfo(timezone)).time().replace(tzinfo=None)
        start, end = self.quiet_hours
        return start <= clock < end if start < end else (clock >= start or clock < end)

    def resolve_url(self) -> str:
        """The apprise URL (registered for redaction with its secret parts). Never print the result."""
        if self.url_env:
            value = os.environ.get(self.url_env)
            if not value:
                raise NotifyUrlUnavailable("notify target {name!r}: environment variable {url_env} is not set",
                                           name=self.name, url_env=self.url_env)
        elif self.url_file:
            from canteen_ops.secretfile import SecretFileError, read_secret_file

            try:  # not read_text: a FIFO would hang the caller, /dev/zero never ends, a decode error quotes bytes
                value = read_secret_file(self.url_file).strip()
            except SecretFileError as exc:
                raise NotifyUrlUnavailable("notify target {name!r}: cannot read url_file {url_file}: {strerror}",
                                           name=self.name, url_file=self.url_file, strerror=str(exc)) from None
        else:
            value = self.url or ""
        remember_url(value)
        return value


def remember_url(url: str) -> None:
    """Register a notification URL and the parts of it that carry secrets (password, path tokens, query
    values) for redaction: apprise's own errors quote pieces of the URL."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    from canteen_ops.redact import remember_secret

    remember_secret(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:  # the user name is not a secret (and a short one would mask common words)
        remember_secret(unquote(parts.password))
    host = parts.hostname or ""
    for seg in [host if not _is_plain_host(host) else "", *parts.path.split("/")]:
        if len(seg) >= 8:
            remember_secret(unquote(seg))
    for key, value in parse_qsl(parts.query):
        if len(value) >= 8 and key not in ("method", "overflow", "format"):
            remember_secret(value)


def _is_plain_host(host: str) -> bool:
    """An address or dotted DNS name is where the message goes, not a secret; apprise URLs whose "host" is a
    token (dingtalk://TOKEN/, wecombot://KEY) are the other case."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return "." in host or host in ("", "localhost")


# --- validation (called by the inventory loader with its validator, so problems carry file:line) ---------
def parse_targets(v, raw: Any, path: tuple) -> tuple[NotifyTarget, ...]:
    from canteen_ops.inventory.loader import ENV_NAME_RE
    from canteen_ops.secretfile import open_to_others

    if raw is None or v.typed(raw, path, list, "a list of notification targets") is None:
        return ()
    out: list[NotifyTarget] = []
    seen: dict[str, tuple] = {}
    for i, item in enumerate(raw):
        p = path + (i,)
        m = v.mapping(item, p, TARGET_KEYS, required=("name",))
        name = v.string(m, "name", p)
        if name is not None and not NAME_RE.match(name):
            v.problem(p + ("name",), "invalid target name {name!r}: use letters, digits, '-', '_' and '.'", name=name)
            name = None
        if name is not None:
            if name in seen:
                v.problem(p + ("name",), "duplicate notify target {name!r} (first defined at {where})", name=name,
                          where=v.where(seen[name]))
            seen[name] = p + ("name",)
        sources = [k for k in ("url_env", "url_file", "url") if m.get(k) is not None]
        if len(sources) != 1:
            v.problem(p, "give exactly one of url_env, url_file or url (found {found})" if sources
                      else "give exactly one of url_env, url_file or url", found=", ".join(sources))
        url_env = v.string(m, "url_env", p, secret=True)
        if url_env is not None and not ENV_NAME_RE.match(url_env):
            v.problem(p + ("url_env",), "expected the name of an environment variable (letters, digits, _), "
                                        "not the URL itself")
            url_env = None
        url = v.string(m, "url", p, secret=True)
        if url is not None:
            remember_url(url)
            if "://" not in url:
                v.problem(p + ("url",), "expected an apprise URL such as json://host/path or dingtalk://token")
            v.warnings.append(f"{v.where(p + ('url',))}: notify target {name!r} has its URL (and its token) in "
                              "plaintext; use url_env or url_file instead")
        kw: dict[str, Any] = {}
        for key, choices in (("levels", LEVELS), ("events", EVENTS)):
            if m.get(key) is not None:
                values = v.str_list(m[key], p + (key,))
                if values is not None:
                    bad = [x for x in values if x not in choices]
                    if bad:
                        v.problem(p + (key,), "unknown {key}(s) {bad}: expected {choices}", key=key[:-1],
                                  bad=', '.join(bad), choices=', '.join(choices))
                    else:
                        kw[key] = tuple(values)
        if m.get("quiet_hours") is not None:
            q = m["quiet_hours"]
            match = QUIET_RE.match(q) if isinstance(q, str) else None
            if not match:
                v.problem(p + ("quiet_hours",), "expected a time range HH:MM-HH:MM (e.g. \"22:00-07:00\"), got {q!r}",
                          q=q)
            else:
                a, b = dt.time(int(match[1]), int(match[2])), dt.time(int(match[3]), int(match[4]))
                if a == b:
                    v.problem(p + ("quiet_hours",), "quiet hours start and end at the same time")
                else:
                    kw["quiet_hours"] = (a, b)
        if m.get("max_per_hour") is not None:
            n = v.typed(m["max_per_hour"], p + ("max_per_hour",), int, "a whole number")
            if n is not None and n < 1:
                v.problem(p + ("max_per_hour",), "must be at least 1, got {n}", n=n)
            elif n is not None:
                kw["max_per_hour"] = n
        url_file = v.string(m, "url_file", p)
        if url_file and open_to_others(url_file):
            v.warnings.append(f"{v.where(p + ('url_file',))}: notify URL file {url_file} is readable by other users; "
                              "chmod 600 it")
        if name is not None:
            out.append(NotifyTarget(name=name, url_env=url_env, url_file=url_file, url=url, **kw))
    return tuple(out)
