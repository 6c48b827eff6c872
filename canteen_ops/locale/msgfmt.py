"""Compile the gettext catalogs (.po → .mo) with the standard library: `python -m canteen_ops.locale.msgfmt`.

What CPython's Tools/i18n/msgfmt.py does, for the subset our catalog uses (msgid, msgid_plural, msgstr[n],
multi-line strings, comments). Kept here instead of depending on babel or GNU gettext being installed: the
compiled .mo files are committed and shipped as package data, and a test checks they match their .po.
"""

from __future__ import annotations

import ast
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_po(text: str) -> dict[str, str]:
    """Catalog entries: msgid (with `\\0`msgid_plural) → msgstr (plural forms joined by `\\0`)."""
    entries: dict[str, str] = {}
    cur: dict[str, list[str]] = {}
    field = None

    def flush() -> None:
        if "msgid" in cur:
            key = "".join(cur["msgid"])
            if "msgid_plural" in cur:
                key += "\0" + "".join(cur["msgid_plural"])
                forms = sorted(k for k in cur if k.startswith("msgstr["))
                value = "\0".join("".join(cur[k]) for k in forms)
            else:
                value = "".join(cur.get("msgstr", []))
            if value.replace("\0", ""):  # untranslated entries fall back to English
                entries[key] = value
        cur.clear()

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith('"'):
            if field is None:
                raise ValueError(f"line {lineno}: string without a keyword")
            cur[field].append(ast.literal_eval(line))
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "msgid" and "msgid" in cur and ("msgstr" in cur or any(k.startswith("msgstr[") for k in cur)):
            flush()
        if keyword not in ("msgid", "msgid_plural", "msgstr", "msgctxt") and not keyword.startswith("msgstr["):
            raise ValueError(f"line {lineno}: unexpected {keyword!r}")
        field = keyword
        cur[field] = [ast.literal_eval(rest)]
    flush()
    return entries


def mo_bytes(entries: dict[str, str]) -> bytes:
    """The GNU .mo format (little-endian, no hash table), as gettext.GNUTranslations reads it."""
    keys = sorted(entries)
    ids = [k.encode("utf-8") for k in keys]
    strs = [entries[k].encode("utf-8") for k in keys]
    n = len(keys)
    key_start = 7 * 4 + 16 * n
    offsets_ids, offsets_strs, blob_ids, blob_strs = [], [], b"", b""
    for i in ids:
        offsets_ids.append((len(i), key_start + len(blob_ids)))
        blob_ids += i + b"\0"
    value_start = key_start + len(blob_ids)
    for s in strs:
        offsets_strs.append((len(s), value_start + len(blob_strs)))
        blob_strs += s + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, n, 7 * 4, 7 * 4 + 8 * n, 0, 0)
    for length, off in offsets_ids + offsets_strs:
        out += struct.pack("<2I", length, off)
    return out + blob_ids + blob_strs


def catalogs() -> list[Path]:
    return sorted(HERE.glob("*/LC_MESSAGES/*.po"))


def main() -> int:
    for po in catalogs():
        mo = po.with_suffix(".mo")
        mo.write_bytes(mo_bytes(parse_po(po.read_text(encoding="utf-8"))))
        print(f"{po} → {mo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
