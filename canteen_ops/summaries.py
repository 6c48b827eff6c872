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
    "size": _NUM + r" [KMGT]?B", "free": _NUM + r" [KMGT]?B",
    "ver": r"[^\s;]+", "res": r"\d+x\d+",
    "level": r"major|general", "check": r"[a-z][a-z-]*",  # shown as 重大 / 一般 and 时钟偏差 (i18n.check_word)
}
MAX_LEN = 4000  # longer text is shown as stored (each pattern is linear; this bounds the passes' cost too)

# Most specific first: a phrase is rewritten once, and the Chinese it becomes matches no later template.
PHRASES = (
    # reachable, login, facts, clock, ntp (checks/device.py)
    "offline (connection refused on port {n})",
    "no answer (timeout after {n} s on port {m})",
    "port {n} open in {m} ms",
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
    # stream and picture (checks/video.py, media/quality.py)
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
    ": {check} critical",
    "{level}; inside working hours; on site within {n} h",
    "{level}; outside working hours; on site within {n} h",
    "{level}; from check result",
    "nobody on duty in the roster (值班表无人)",
    "自动恢复 recovered automatically",
    "{check} ok again: ",
    "general → major: ",
    "fault back within the hold-down period: ",
    "step {n}: {m} % of the on-site time without arrival",
    # any check (checks/run.py)
    " — {n} other checks skipped", " — {n} other check skipped",
    "no answer within {n} s",
    "the device refused to tell us",
    "not applicable: this {id} device does not offer it",
    " (thermal)",
    "unusable answer from the device: ",
    "internal error: ",
    "refused: ",
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
    for rx, template in _compiled():
        target = gettext(template)
        if target == template:
            continue
        text = rx.sub(lambda m, t=target: t.format(**_words(m.groupdict(), gettext)), text)
    return text.replace("; ", "；")
