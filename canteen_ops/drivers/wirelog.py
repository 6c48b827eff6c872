"""Wire debug log: every device request and answer (head, and the first WIRELOG_BODY bytes of the body) written
to a stream or file, secrets masked — for a technician chasing what a device really said.

Off unless enable() is called (the CLI's --debug is where it belongs). Written by drivers/transport.py for every
exchange, so Hikvision, Dahua and ONVIF (zeep posts through the same transport) all appear, each line prefixed
with the device's address. Masked: Authorization (Digest response= and cnonce=, Basic credentials),
Cookie/Set-Cookie values, and in bodies password elements, keys and WS-Security password digests and nonces.
Only the logged excerpt is searched, so masking costs at most linear time in WIRELOG_BODY.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path
from typing import IO

from canteen_ops.redact import redact_text

WIRELOG_BODY = 2048  # body bytes shown per message
MASK = "***"

_lock = threading.Lock()
_stream: IO[str] | None = None
_owned = False  # we opened the file and close it on disable()

# Digest fields that prove knowledge of the password; Basic's whole token is the password.
_DIGEST_SECRET = re.compile(r'\b(response|cnonce)=("[^"]*"|[^,\s]*)', re.IGNORECASE)
_SECRET_HEADERS = {"cookie", "set-cookie", "proxy-authorization"}
# In bodies: <password>…</password>, <wsse:Password …>…</wsse:Password>, <wsse:Nonce …>…, "password": "…",
# password=… and pwd=… (Dahua key=value bodies and queries), with any prefix such as "oldPassword".
_BODY_SECRETS = [
    re.compile(r"(<(?:[\w.-]+:)?(?:\w*password\w*|nonce)\b[^<>]{0,200}>)[^<]{0,4096}(</)", re.IGNORECASE),
    re.compile(r'("\w{0,40}password\w{0,40}"\s{0,20}:\s{0,20}")[^"]{0,4096}(")', re.IGNORECASE),
    re.compile(r"(\b(?:\w{0,40}password\w{0,40}|pwd\w{0,10})=)[^&\s]{0,4096}()", re.IGNORECASE),
]


def enable(target: IO[str] | str | Path) -> None:
    """Log every device exchange to `target`: an open text stream, or a file path (appended to)."""
    global _stream, _owned
    disable()
    with _lock:
        if isinstance(target, (str, Path)):
            _stream, _owned = open(target, "a", encoding="utf-8", errors="replace"), True
        else:
            _stream, _owned = target, False


def disable() -> None:
    global _stream, _owned
    with _lock:
        if _stream is not None and _owned:
            _stream.close()
        _stream, _owned = None, False


def enabled() -> bool:
    return _stream is not None


def mask_header(name: str, value: str) -> str:
    key = name.lower()
    if key in _SECRET_HEADERS:
        return MASK
    if key == "authorization":
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "digest":
            return f"{scheme} {_DIGEST_SECRET.sub(lambda m: f'{m.group(1)}={MASK}', rest)}"
        return f"{scheme} {MASK}"
    return value


def mask_body(text: str) -> str:
    for pattern in _BODY_SECRETS:
        text = pattern.sub(lambda m: f"{m.group(1)}{MASK}{m.group(2)}", text)
    return text


def _visible(text: str, keep: str = "") -> str:
    """Device text on a terminal: control characters (ESC of an escape sequence, C1 CSI) shown as \\xNN."""
    return "".join(c if c.isprintable() or c in keep else f"\\x{ord(c):02x}" for c in text)


def _excerpt(body: bytes, total: int | None = None) -> str:
    shown = _visible(mask_body(body[:WIRELOG_BODY].decode("utf-8", errors="replace")), keep="\n\t")
    size = len(body) if total is None else total
    return shown + (f"\n… ({size} bytes in all)" if size > WIRELOG_BODY else "")


def _write(lines: list[str]) -> None:
    with _lock:
        if _stream is None:
            return
        _stream.write(redact_text("\n".join(lines)) + "\n\n")  # and any password the run knows, wherever it is
        _stream.flush()


def log_request(peer: str, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    lines = [f"{stamp} {peer} >> {method} {mask_body(target[:WIRELOG_BODY])}"]
    lines += [f"{peer} >> {k.decode('latin-1')}: {mask_header(k.decode('latin-1'), v.decode('latin-1'))}"
              for k, v in headers]
    if body:
        lines.append(_excerpt(body))
    _write(lines)


def log_response(peer: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes, total: int) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    lines = [f"{stamp} {peer} << {status}"]
    lines += [f"{peer} << {_visible(k.decode('latin-1'))}: "
              f"{_visible(mask_header(k.decode('latin-1'), v.decode('latin-1')))}" for k, v in headers]
    if total:
        lines.append(_excerpt(body, total))
    _write(lines)


__all__ = ["disable", "enable", "enabled", "mask_body", "mask_header"]
