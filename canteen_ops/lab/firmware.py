"""Lab firmware images: what tests and drills upload to a simulated device's firmware-upgrade endpoint.

A real image is an opaque vendor file; the lab's is a header naming the target (vendor, model, new version)
followed by filler, so a device can refuse an image for another model (Hikvision `badDevType`).
"""

from __future__ import annotations

import hashlib
import json

FIRMWARE_MAGIC = b"LABFW1\n"  # magic, then one JSON line {"vendor", "model", "version"}, then the payload


def firmware_image(vendor: str, model: str, version: str, size: int = 4096) -> bytes:
    head = FIRMWARE_MAGIC + json.dumps({"vendor": vendor, "model": model, "version": version}).encode() + b"\n"
    return head + hashlib.sha256(version.encode()).digest() * (size // 32)


def parse_firmware_image(data: bytes) -> dict | None:
    """The header of a lab image found anywhere in `data` (raw body or a multipart upload), or None."""
    at = data.find(FIRMWARE_MAGIC)
    if at < 0:
        return None
    line = data[at + len(FIRMWARE_MAGIC):].split(b"\n", 1)[0]
    try:
        meta = json.loads(line)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and {"vendor", "model", "version"} <= meta.keys() else None
