"""Hardened XML for device answers: no DTDs or entities, a size cap, and lookups by local name.

Devices are untrusted: a hostile or broken firmware can send an entity bomb, an external entity, a truncated
document or a 64 MiB body. Everything here fails with ProtocolError, which is contained to that one device.

Hikvision changes the default namespace by firmware (hikvision.com/ver20, isapi.org/ver20, psialliance-org,
and ver10 nested inside ver20), so every lookup matches the local name and ignores the namespace.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from canteen_ops.drivers.base import ProtocolError

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 8 * MIB  # far above any real ISAPI answer, far below what would hurt memory


def parse(body: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "answer") -> ET.Element:
    """Parse a device's XML with DTDs, entities and external references forbidden."""
    if len(body) > max_bytes:
        raise ProtocolError(f"{what}: body of {len(body)} bytes exceeds the {max_bytes // MIB} MiB limit")
    if isinstance(body, bytes):
        stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    else:
        stripped = body.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise ProtocolError(f"{what}: empty body where XML was expected")
    try:
        return fromstring(stripped, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ProtocolError(f"{what}: hostile XML refused ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise ProtocolError(f"{what}: malformed XML ({exc})") from None
    except (ValueError, RecursionError) as exc:  # e.g. encoding declarations that do not match the bytes
        raise ProtocolError(f"{what}: unreadable XML ({type(exc).__name__})") from None


def looks_like_xml(body: bytes) -> bool:
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def local(tag: Any) -> str:
    """'{http://www.hikvision.com/ver20/XMLSchema}DeviceInfo' → 'DeviceInfo'."""
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rsplit("}", 1)[-1]


def _named(tag: Any, name: str, suffix: str) -> bool:
    """local(tag) == name, without splitting every tag of a large answer (suffix is '}' + name)."""
    return isinstance(tag, str) and (tag == name or tag.endswith(suffix))


def children(el: ET.Element, name: str) -> list[ET.Element]:
    """Direct children with this local name."""
    suffix = "}" + name
    return [c for c in el if _named(c.tag, name, suffix)]


def iter_local(el: ET.Element, name: str) -> Iterator[ET.Element]:
    """Descendants (and el itself) with this local name, in document order."""
    suffix = "}" + name
    for node in el.iter():
        if _named(node.tag, name, suffix):
            yield node


def find(el: ET.Element | None, path: str) -> ET.Element | None:
    """Follow a slash-separated path of local names ('Video/videoCodecType'); '//name' searches anywhere."""
    if el is None:
        return None
    if path.startswith("//"):
        return next(iter_local(el, path[2:]), None)
    node: ET.Element | None = el
    for part in path.split("/"):
        if node is None:
            return None
        suffix = "}" + part
        node = next((c for c in node if _named(c.tag, part, suffix)), None)
    return node


def findall(el: ET.Element | None, path: str) -> list[ET.Element]:
    """All elements at a slash-separated local-name path ('hddList/hdd'); '//name' searches anywhere."""
    if el is None:
        return []
    if path.startswith("//"):
        return list(iter_local(el, path[2:]))
    nodes = [el]
    for part in path.split("/"):
        suffix = "}" + part
        nodes = [c for n in nodes for c in n if _named(c.tag, part, suffix)]
    return nodes


def text(el: ET.Element | None, path: str | None = None, default: str | None = None) -> str | None:
    """Stripped text at a path, or default when absent or empty."""
    node = find(el, path) if path else el
    if node is None or node.text is None:
        return default
    value = node.text.strip()
    return value if value else default


def integer(el: ET.Element | None, path: str | None = None, default: int | None = None) -> int | None:
    value = text(el, path)
    if value is None:
        return default
    try:
        return int(float(value))
    except ValueError:
        return default


def number(el: ET.Element | None, path: str, default: float | None = None) -> float | None:
    value = text(el, path)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        return default


def boolean(el: ET.Element | None, path: str, default: bool | None = None) -> bool | None:
    value = text(el, path)
    if value is None:
        return default
    low = value.lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    return default


SECRET_NAMES = ("password", "passwd", "pwd", "secret")
MAX_DEPTH = 64


def to_dict(el: ET.Element, _depth: int = 0) -> Any:
    """Element → plain data by local name: leaves become strings, repeated names become lists.

    Elements whose names look like secrets (password, secret...) are dropped: settings snapshots must never carry
    them, and we never need them.
    """
    if _depth > MAX_DEPTH:
        raise ProtocolError(f"XML nested deeper than {MAX_DEPTH} levels")
    kids = [c for c in el if local(c.tag)]
    if not kids:
        return (el.text or "").strip()
    grouped: dict[str, list[Any]] = {}
    for c in kids:
        name = local(c.tag)
        if any(s in name.lower() for s in SECRET_NAMES):
            continue
        grouped.setdefault(name, []).append(to_dict(c, _depth + 1))
    return {k: v[0] if len(v) == 1 else v for k, v in grouped.items()}
