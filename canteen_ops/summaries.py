"""Check summaries (and incident titles and timeline notes) in the reader's language, translated when shown.

The log stores every summary in one stable language, English: it is synced upstream, searched with `log list
--grep`, and compared across runs, so it must not depend on the LANG of whoever ran the check. A summary is built
from our phrases with values in them ("clock 75 s ahead (> 60 s)", "disk 1: error", "retention channels 1–3: 3.0
days < 7") plus data (device ids, area names, what a device said). `translate()` rewrites our phrases, in one
place, through the gettext catalog: each entry of PHRASES is an English template whose `{placeholders}` match a
number, an id or a size; the template is also the catalog's msgid, and the Chinese msgstr uses the same names.
Anything not matched (data, a device's own words) is left as it is.
"""

from __future__ import annotations

import re
from functools import lru_cache

from canteen_ops.i18n import language, translations

_NUM = r"-?\d+(?:\.\d+)?"
_SLOTS = {
    "n": _NUM, "m": _NUM, "k": _NUM, "a": _NUM, "b": _NUM, "c": _NUM, "d": _NUM, "e": _NUM,
    "id": r"[A-Za-z0-9_.:-]+",
    "size": _NUM + r" [KMGT]?i?B", "free": _NUM + r" [KMGT]?i?B",
    "ver": r"[^\s;]+", "res": r"\d+x\d+", "want": r"\d+x\d+",
    "env": r"[A-Za-z_][A-Za-z0-9_]*", "time": r"\d\d:\d\d",
    "q": r"'[^'\n]{0,200}'", "codes": r"[a-z]+(?:/[a-z]+)*",
    "level": r"major|general", "check": r"[a-z][a-z-]*",  # shown as 重大 / 一般 and 时钟偏差 (i18n.check_word)
}
MAX_LEN = 4000  # longer text is shown as stored (each pattern is linear; this bounds the passes' cost too)

# Most specific first: a phrase is rewritten once, and the Chinese it becomes matches no later template.
PHRASES = (
    # an incident's title names its check: before "channels " and the like rewrite the check's name
    ": {check} critical",
    # login refusals: the device's one line (checks/device.py describe_login_failure, store/logins.py Withheld)
    "locked: the device refuses logins from us",
    "; unlocks in ~{n} min", "; unlocks in ~{n} s",
    " — not retried",
    "auth failed: wrong username or password",
    "offline (connection refused)",
    "no answer (timeout after {n} s)",
    "not tried: the device refused our login at {time}",
    "not tried: the device locked us out at {time}",
    " (during `{id}`)",
    "no credentials go to it again before {time} (its lockout window), or now with --force-login",
    "(not retried: a device locks us out after repeated failures)",
    "no usable credentials: ",
    "no credentials configured in the inventory",
    "credentials '{id}': environment variable {env} is not set",
    "credentials '{id}' has no password source",
    "credentials '{id}': cannot read password_file ",
    # what drivers say about logins (drivers/hikvision.py, dahua.py, httpauth.py, onvif/driver.py)
    "device has locked this address after failed logins",
    " for about {n} min",
    " (illegal-login lock); wait, or unlock it from the device",
    "wrong user name or password (401)",
    "; {n} attempt(s) left before the device locks this address",
    "; not retried",
    "device refuses logins from this address (login lock after failed logins; Dahua locks for LoginFailLockTime, "
    "typically 30 min); wait before trying again",
    "credentials rejected (401). On Dahua this means a wrong user name or password, or that the device's "
    "connection/user limit is exhausted",
    "credentials rejected (401)",
    "device rejects even a fresh nonce as stale",
    "401 without a Digest or Basic challenge",
    "401 without a Digest challenge",
    "malformed Digest challenge (no realm or nonce)",
    "HTTP 401 (device wants HTTP authentication)",
    "login refused by the device",
    "device locked our login: ",
    "the device asked for Basic authentication over plain HTTP; no password was sent (allow it for this device "
    "with auth: basic in the inventory)",
    # TLS (drivers/transport.py, store/tlspins.py)
    "TLS certificate changed: SHA-256 ",
    ", accepted ",
    "; nothing was sent (if the device really got a new certificate: canteen-ops device accept-cert)",
    "TLS certificate pinned on first use: SHA-256 ",
    "TLS certificate pinned accepted by {id}: SHA-256 ",
    "no TLS connection within {n} s",
    "TLS handshake failed",
    "TLS: the device showed no certificate",
    "the device showed no certificate",
    # transport and answers (drivers/transport.py, xmlsafe.py, kv.py, hikvision.py, dahua.py, onvif/)
    "no connection within {n} s",
    "no complete answer within {n} s",
    "(timed out)",
    "deadline passed before the request could be sent",
    "connection closed without an answer",
    "broken HTTP answer",
    "connection broken",
    "body of {n} bytes exceeds the {size} limit",
    "body exceeds the {size} limit",
    "unexpected Content-Encoding ",
    "malformed XML",
    "unreadable XML",
    "hostile XML refused (a DTD: possible entity bomb or external reference)",
    "empty body where XML was expected",
    "XML nested deeper than {n} levels",
    "answer is not UTF-8 text (byte {n})",
    "garbled key=value answer",
    "key=value answer has {n} lines (limit {m})",
    " is not offered by this device (HTTP {n})",
    ": the device refuses this request (HTTP 400",
    " refused (HTTP 403: no such resource or too little privilege)",
    ": refused (HTTP 403: too little privilege)",
    " answered HTTP {n}",
    "the recorder lists neither IP channels nor video inputs",
    "device fault ",
    "unexpected answer (",
    "unusable answer (",
    "answered nothing readable",
    "video loss (NO VIDEO)", "(video loss)",
    "recording status {id}",
    # a driver error's kind, where a task shows it (tasks/snapshot.py, tasks/firmware.py)
    "Offline: ", "Timeout: ", "Withheld: ", "Locked: ", "AuthFailed: ", "CredentialsUnavailable: ",
    "NoCredentials: ", "ProtocolError: ", "NotSupported: ", "Forbidden: ", "Refused: ", "BasicOverHttp: ",
    "CertChanged: ", "DriverError: ",
    # reachable, login, facts, clock, ntp (checks/device.py)
    "offline (connection refused on port {n})",
    "no answer (timeout after {n} s on port {m})",
    "port {n} open in {m} ms",
    "slow: connect took {n} ms (> {m} ms)",
    "device replaced? serial ",
    "model {id}, inventory says ",
    ", inventory says ",
    " (firmware ",
    "logged in as ",
    "device answered without identity details",
    "device did not report its time",
    "clock in sync (±0 s)",
    "clock {n} s ahead", "clock {n} s behind",
    "clock {n} min ahead", "clock {n} min behind",
    "clock {n} h ahead", "clock {n} h behind",
    "clock {n} days ahead", "clock {n} days behind",
    "clock reset: device says ",
    " UTC (power loss? set the time and check NTP)",
    "(> {n} s)",
    "NTP disabled (time set manually; it will drift)",
    "NTP enabled but no server configured",
    "device does not report its NTP settings",
    "(enabled state not reported)",
    "NTP on (this firmware does not list its NTP servers)",
    "not applicable: this firmware offers no NTP settings",
    "NTP on, server ",
    "NTP server ",
    ", serial ", ", firmware ",
    # storage, channels, retention, gaps (checks/nvr.py)
    "no disk installed: nothing is being recorded",
    "disk {id}: error", "disk {id}: unformatted", "disk {id}: absent", "disk {id}: read-only",
    "disk {id}: state not reported",
    "disk {id}: {n}% free (< {m}%)",
    "{n} disks ok, ", "{n} disk ok, ",
    "{n} SD card ok, ", "{n} NAS ok, ", "SD card {id}: ", "NAS {id}: ", "disk {id}: capacity 0",
    "no SD card or NAS on this camera (it records to its NVR)",
    " (full: the camera overwrites the oldest recordings)",
    "the recorder does not report its channels' state ({n} channels)",
    "; {n} not reported",
    "{free} free of {size}",
    "capacity not reported",
    " (full: the NVR overwrites the oldest recordings)",
    "channel {n} offline",
    "channel {n} not configured on the NVR",
    "channel {n}: state not reported",
    "{n} of {m} channels online",
    "no channels to search",
    "retention ≥ {n} days on all {m} channels", "retention {n} days on all {m} channels",
    "retention ≥ {n} days on 1 channel", "retention {n} days on 1 channel",
    "(policy ≥ {n})",
    "{n} days < {m}",
    "no recordings",
    "no gaps ≥ {n} min in the last {m} h on all {k} channels",
    "no gaps ≥ {n} min in the last {m} h on {k} channels",
    "no gaps ≥ {n} min in the last {m} h on 1 channel",
    "{n} recording gaps in the last {m} h — ", "{n} recording gap in the last {m} h — ",
    "retention channels ", "retention channel ",
    "channels ", "channel ",
    # stream and picture (checks/video.py, media/quality.py, media/probe.py, media/work.py)
    "no stream: ", "stream not checked: ",
    "resolution {res} below policy {want}",
    "frame rate {n} fps below policy {m}",
    "stream and picture ok",
    "connection refused by {id} (RTSP service down)",
    "no answer to TCP connect to {id}",
    "cannot connect to {id}: ",
    "{id} accepted the connection but sent no RTSP answer in time (device hung)",
    "{id} dropped the connection: ",
    "{id} does not answer like an RTSP server",
    "the device closed the stream ({id}) before any frame",
    "the device refused the stream request ({id})",
    "cannot open or decode the stream ({id})",
    "the stream has no video track",
    "the RTSP session was set up but no video frame arrived before the deadline",
    "stream ended early after {n} frames ({id})",
    "not an rtsp:// URL",
    "invalid port in the URL",
    "the device answers RTSP but delivered no video within the {n} s deadline",
    "the picture was not analysed within the device's deadline (every process was busy)",
    "the process analysing the picture ended abruptly",
    "no frames decoded",
    ", first frame after {n} s", ", first keyframe after {n} s",
    "worker process failed: ",
    ", first frame in {n} s",
    "no picture to assess",
    "black picture (mean luma {n}): no video signal",
    "uniform picture ({n}% one tone, mean luma {m}): lens covered or signal lost",
    "too dark: mean luma {n} < {m}",
    "overexposed: mean luma {n} > {m}",
    "low contrast (haze, grease film): luma std {n} < {m}",
    "blurred (grease or steam on the lens? clean it): ",
    "sharpness {n} < {m}",
    "{n}% below this camera's baseline {m}",
    "colour cast: K {n} > {m}",
    "frozen picture: {n} consecutive frames unchanged outside the OSD",
    "picture ok (luma {a}, contrast {b}, sharpness {c}, cast K {d}, {e} frames)",
    # coverage (checks/coverage.py)
    "no required areas in the policy",
    "{n} of {m} required areas not covered: ",
    "{n} of {m} required areas not checked yet: ",
    "all {n} required areas covered by a working camera",
    "(no working camera: ",
    "(no camera in the inventory)",
    " not checked yet (",
    # backups, firmware, config snapshots (tasks/backup*.py, tasks/firmware.py, tasks/snapshot.py)
    "no config export offered by this device; rely on its snapshot",
    "export refused (too little privilege): ", "refused: too little privilege: ",
    "no credentials: ", "login withheld: ", "device locked us out: ", "login rejected: ", "auth failed: ",
    "timed out: ", "timeout: ", "export failed: ", "offline: ",
    "export arrived after the per-device deadline; not stored", "deadline passed",
    "could not store the export: ", "cannot use the backup directory ", "backup directory: ",
    "the device returned an empty export",
    "the device answered with an error (ResponseStatus) instead of its configuration",
    "export is not valid JSON (truncated?): ",
    ": another backup of this device is running", "; skipped",
    "no config export offered; ",
    "snapshot is recent",
    "and no snapshot in the window",
    "and no snapshot",
    "no successful backup in the last {n} h",
    "never backed up",
    "no successful backup yet",
    "last attempt failed: ",
    "{n} bytes, sha256 ",
    "unchanged (sha256 {id} already stored)",
    "cannot connect",
    " is older than the minimum acceptable ",
    "; latest is ",
    " (latest)",
    "; newer release {ver} available",
    " is affected by ",
    "; upgrade to ",
    "could not read the firmware version: ",
    "firmware version not reported",
    "cannot read the firmware version ",
    " is not in the firmware catalog; firmware ",
    "unchanged since snapshot {id}",
    "snapshot {id} sha256 ",
    "could not read settings: ",
    "the device offers no settings read-out: ",
    "no snapshot taken yet (canteen-ops snapshot take)",
    "no baseline to compare with",
    " (fresh snapshot failed: ", "fresh snapshot failed: ", "; judged on the newest stored one",
    "matches the accepted baseline",
    "no accepted baseline (canteen-ops snapshot accept DEVICE)",
    "{n} setting(s) differ from the baseline: ",
    " (+{n} more)",
    "NTP is not configured (time mode {id}): recordings lose their evidential value as the clock drifts",
    "NTP setting not reported by the device (not checked)",
    " main stream is {res}, below the policy minimum ",
    "recording mode not reported by the device (24 h recording not checked)",
    "recording mode is {id}, not continuous (canteen video must be recorded 24 h)",
    "{n} file(s) intact",
    # incident titles and timeline notes (incidents.py, escalation.py)
    "{level}; inside working hours; on site within {n} h",
    "{level}; outside working hours; on site within {n} h",
    "{level}; from check result",
    "nobody on duty in the roster (值班表无人)",
    "自动恢复 recovered automatically",
    "{check} ok again: ",
    "general → major: ",
    "fault back within the hold-down period: ",
    "step {n}: {m} % of the on-site time without arrival",
    # playbook steps (playbooks/run.py)
    "drill {id}: ", "{n} incident(s), within deadline: True", "{n} incident(s), within deadline: False",
    "skipped (an earlier step failed)",
    " (expected {codes})",
    "timed out after {n} s: ",
    " failed (exit {n}): ",
    " → exit {n}",
    "waited {n} s",
    " has no default and the run is non-interactive",
    "step {q} did not run",
    "step {q} was {id}, expected {codes}",
    "no incident opened for {id} during this run",
    "{n} incident(s) without arrival before the deadline",
    "holds: ",
    "incident for ",
    "nothing to check",
    "no open incident for device ",
    # any check (checks/run.py)
    " — {n} other checks skipped", " — {n} other check skipped",
    "no answer within {n} s",
    "the device refused to tell us",
    "not applicable: this {id} device does not offer it",
    " (thermal)",
    "unusable answer from the device: ",
    "internal error: ",
    "refused: ",
    "offline (",  # the OS's reason follows; last, so "channel 2 offline (video loss)" is matched whole above
)


@lru_cache(maxsize=1)
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in PHRASES:
        parts = re.split(r"\{(\w+)\}", template)
        rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_SLOTS[p]})" for i, p in enumerate(parts))
        if not parts[0]:
            # a template that starts with a value: try it only where a value can start, so a long run of digits
            # or letters costs one attempt, not one per character (linear, not quadratic)
            rx = r"(?<![\w.:-])" + rx
        out.append((re.compile(rx), template))
    return out


def _words(values: dict[str, str], gettext) -> dict[str, str]:
    if "level" in values:
        values["level"] = gettext(values["level"])
    if "check" in values:
        key = f"check:{values['check']}"
        values["check"] = values["check"] if gettext(key) == key else gettext(key)
    return values


def translate(summary: str | None, lang: str | None = None) -> str | None:
    """The summary in the reader's language, or in `lang` (alerts are written in Chinese whatever the LANG of the
    host that sends them); unchanged in English; None stays None."""
    lang = lang or language()
    if not summary or lang == "en" or len(summary) > MAX_LEN:
        return summary
    gettext = translations(lang).gettext
    text = summary
    for rx, target in _targets(lang):
        text = rx.sub(lambda m, t=target: t.format(**_words(m.groupdict(), gettext)), text)
    return text.replace("; ", "；")


@lru_cache(maxsize=None)
def _targets(lang: str) -> list[tuple[re.Pattern[str], str]]:
    """The phrases that `lang` words differently, with their wording: a language's catalog does not change
    within a process, and looking every phrase up again cost half of translate's time (per row of a table)."""
    gettext = translations(lang).gettext
    return [(rx, target) for rx, template in _compiled() if (target := gettext(template)) != template]
