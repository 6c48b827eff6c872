"""`canteen-ops device capture`: run a device's check while recording every answer, mask what identifies the site,
and write a capture file that `lab up --replay FILE` (canteen_ops/lab/replay.py) serves again.

The capture file is one JSON document (format canteen-ops-capture/1, described in tests/fixtures/README.md):
    {"format": ..., "captured": ISO time, "tool": "canteen-ops X.Y",
     "device": {vendor, kind, model, firmware, auth: {scheme, realm}},
     "exchanges": [{"request": "GET /ISAPI/System/deviceInfo", "status": 200, "headers": {...},
                    "body": "..." | "body_base64": "...", "match": "..."?}, ...],
     "masked": {"serial": n, "mac": n, ...}}   # how many distinct values of each kind were masked

Masking is consistent across the file (the same value gets the same mask everywhere) and happens in two passes:
values read from the fields that hold them (XML elements and Dahua keys named like serialNumber, macAddress,
deviceName/channelName/Name, SSID, userName, password...) are masked there and then wherever else they occur as a
whole word (names shorter than 4 characters only in their own fields); IPv4, MAC and e-mail addresses are masked
wherever they match, the inventory's address, user name and password too.
Passwords never get into the file in the first place: request headers and ONVIF request bodies are not recorded.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from canteen_ops.capture_format import CAPTURE_FORMAT
from canteen_ops.drivers.httpauth import parse_challenges, pick_scheme
from canteen_ops.drivers.recorder import Recorder

if TYPE_CHECKING:
    from canteen_ops.inventory.model import Device, Inventory


# Field names (lower case, without namespace prefix or Dahua table path) → what their value is.
_FIELDS = {
    "serial": ("serialnumber", "subserialnumber", "serialno", "serial", "deviceid", "sn", "hardwareid"),
    "mac": ("macaddress", "physicaladdress", "hwaddress", "mac"),
    "name": ("devicename", "channelname", "name", "machinename", "devicelocation", "systemcontact", "title",
             "devicedescription", "hostname", "description", "content", "ssid", "domainname"),
    "user": ("username", "user", "loginname"),
}
_SECRET_FIELD = re.compile(r"(password|passwd|pwd|secret|passphrase|psk|community|authkey|privkey)", re.I)
_XML_FIELD = re.compile(r"<((?:[\w.-]+:)?([A-Za-z][\w.-]*))(\s[^<>]*)?>([^<>]{1,256})</\1>")
_KV_LINE = re.compile(r"^([\w.\[\]-]+)=([^\r\n]{1,256})(?=\r?$)", re.M)
_IPV4 = re.compile(r"(?<![\w.])((?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})"
                   r"(?![\w.])")
_MAC = re.compile(r"(?<![\w:-])([0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\2){4}[0-9A-Fa-f]{2})(?![\w:-])")
_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8})(?![\w-])")
_KEEP_IPS = re.compile(r"^(0\.0\.0\.0|255\.)")  # netmasks and the wildcard say nothing about the site


def _category(field_name: str) -> str | None:
    key = re.sub(r"\[\d+\]", "", field_name).rsplit(".", 1)[-1].lower()
    if _SECRET_FIELD.search(key):
        return "secret"
    for cat, names in _FIELDS.items():
        if key in names:
            return cat
    return None


@dataclass
class Masker:
    """Same value → same mask, across one capture file."""

    masks: dict[str, str] = field(default_factory=dict)  # value → mask
    counts: dict[str, int] = field(default_factory=dict)
    local: set[str] = field(default_factory=set)  # values masked only in their own fields (names: "NVR", "1")
    keep: set[str] = field(default_factory=set)  # never masked: what identifies the product (model, firmware)

    def mask(self, category: str, value: str) -> str:
        value = value.strip()
        if not value or value in self.masks.values() or value in self.keep:
            return value
        if value not in self.masks:
            if category == "name" and len(value) < 4:
                self.local.add(value)
            n = self.counts[category] = self.counts.get(category, 0) + 1
            self.masks[value] = {
                "ip": f"192.0.2.{n}" if n < 255 else f"198.51.100.{n % 254 + 1}",
                "mac": f"02:00:00:00:{n >> 8 & 255:02x}:{n & 255:02x}",
                "secret": f"MASKED-SECRET-{n}",
                "email": f"masked-{n}@example.invalid",
            }.get(category, f"MASKED-{category.upper()}-{n}")
        return self.masks[value]

    def collect(self, text: str) -> None:
        """Learn the values held in known fields, and every IPv4/MAC address."""
        for m in _XML_FIELD.finditer(text):
            cat = _category(m.group(2))
            if cat:
                self.mask(cat, m.group(4))
        for m in _KV_LINE.finditer(text):
            cat = _category(m.group(1))
            if cat:
                self.mask(cat, m.group(2))
        for m in _IPV4.finditer(text):
            if not _KEEP_IPS.match(m.group(1)):
                self.mask("ip", m.group(1))
        for m in _MAC.finditer(text):
            if m.group(1).replace(m.group(2), "").strip("0"):  # 00:00:00:00:00:00 is no address
                self.mask("mac", m.group(1))
        for m in _EMAIL.finditer(text):
            self.mask("email", m.group(1))

    def apply(self, text: str) -> str:
        # Whole words only, longest first: a short value never eats into a longer one or into another word.
        values = sorted((v for v in self.masks if len(v) >= 2 and v not in self.local), key=len, reverse=True)
        if values:
            pattern = re.compile("|".join(rf"(?<![\w-]){re.escape(v)}(?![\w-])" for v in values))
            text = pattern.sub(lambda m: self.masks[m.group(0)], text)
        # Short names ("NVR") only where they are names: elsewhere the same word may be a device type.
        text = _XML_FIELD.sub(self._xml_field, text)
        return _KV_LINE.sub(self._kv_line, text)

    def _xml_field(self, m: re.Match) -> str:
        cat = _category(m.group(2))
        if not cat:
            return m.group(0)
        return m.group(0).replace(f">{m.group(4)}<", f">{self.mask(cat, m.group(4))}<")

    def _kv_line(self, m: re.Match) -> str:
        cat = _category(m.group(1))
        return f"{m.group(1)}={self.mask(cat, m.group(2))}" if cat else m.group(0)


def _text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def build(device: "Device", recorder: Recorder, *, model: str | None, firmware: str | None,
          password: str | None) -> dict[str, Any]:
    """The capture document, masked."""
    masker = Masker()
    username = device.credentials.username if device.credentials else None
    if username:
        masker.mask("user", username)
    masker.mask("ip", device.host)
    if device.serial:
        masker.mask("serial", device.serial)
    if device.name:
        masker.mask("name", device.name)
    texts = [_text(ex.body) for ex in recorder.exchanges]
    for t in texts:
        if t:
            masker.collect(t)
    for ch in recorder.challenges:
        masker.collect(ch)
    for v in [model, firmware]:  # what identifies the product is not a secret of the site, in any field (a
        if v:                      # Dahua NVR's hostname may be its model too)
            masker.keep.add(v)
            masker.masks.pop(v, None)

    def clean(text: str) -> str:
        if password:  # first: masking a user name, address or serial inside the password would hide it
            text = text.replace(password, "MASKED-PASSWORD")
        return masker.apply(text)

    exchanges = []
    for ex, text in zip(recorder.exchanges, texts):
        entry: dict[str, Any] = {"request": " ".join(filter(None, (ex.method, clean(ex.target), ex.operation))),
                                 "status": ex.status, "headers": {k: clean(v) for k, v in ex.headers.items()}}
        if ex.match:
            entry["match"] = clean(ex.match)  # a token masked in the answers is masked in the match too
        if text is not None:
            entry["body"] = clean(text)
        elif ex.body:
            entry["body_base64"] = base64.b64encode(ex.body).decode("ascii")  # binary: kept as sent, see docs
        exchanges.append(entry)
    scheme = pick_scheme(recorder.challenges) or "digest"  # as DeviceHTTP chose: Digest wins over Basic
    params = next((p for s, p in parse_challenges(recorder.challenges) if s == scheme), {})
    realm = clean(params["realm"]) if "realm" in params else None
    from canteen_ops import __version__

    return {
        "format": CAPTURE_FORMAT,
        "captured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": f"canteen-ops {__version__}",
        "device": {"vendor": device.vendor, "kind": device.kind, "model": model or device.model or "unknown",
                   "firmware": firmware, "auth": {"scheme": scheme, "realm": realm}},
        "exchanges": exchanges,
        "masked": dict(sorted(masker.counts.items())),
    }


def capture(device: "Device", inventory: "Inventory", names: list[str], *,
            deadline_s: float | None = 90.0) -> tuple[dict[str, Any], list]:
    """Check one device exactly as `check` does (same checks, same drivers) while recording; returns the capture
    document and the check's results. Nothing is written to the maintenance log."""
    from canteen_ops.checks.run import run_checks
    from canteen_ops.drivers import recorder

    with recorder.recording(device.id) as rec:
        outcome = run_checks([device], inventory, names, deadline_s=deadline_s, progress=False, processes=1)
    facts = next((r for r in outcome.results if r.check == "facts" and r.device_id == device.id), None)
    data = (facts.data or {}) if facts is not None else {}
    password = None
    if device.credentials is not None:
        try:
            password = device.credentials.resolve()
        except Exception:  # no password: nothing of it can be in the answers either
            password = None
    doc = build(device, rec, model=data.get("model"), firmware=data.get("firmware"), password=password)
    return doc, outcome.results


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
