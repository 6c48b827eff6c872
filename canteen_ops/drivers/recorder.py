"""Recording what devices answer (`canteen-ops device capture`): the one hook the drivers' transports call.

DeviceHTTP.request (Hikvision ISAPI, Dahua CGI) and the ONVIF zeep transport's post hand every answer they got to
`note(device_id, ...)`. While no capture is running that is one dict lookup; `recording(device_id)` turns it on for
one device. What is kept: method, request target, the ONVIF operation and the token it asked for, status, the
headers that matter and the body. Never the request's headers (Authorization) or an ONVIF request body (its
WS-Security token): masking what is kept is capture.py's job.

Not the same hook as drivers/wirelog.py (`--debug`): that one sits in the transport and shows every exchange on
the wire, 401 probes and retries included, with capped bodies, as it happens; this one sits where a driver gets
its answer, per device id, whole bodies and the ONVIF operation, in the corpus format a replay serves.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from canteen_ops.capture_format import SOAP_SCAN, soap_operation

KEPT_HEADERS = ("content-type", "www-authenticate")
_TOKEN = re.compile(rb"<(?:[\w.-]+:)?(ProfileToken|ConfigurationToken|RecordingToken|VideoSourceToken)>([^<]{1,64})<")


@dataclass
class Recorded:
    method: str
    target: str
    status: int
    headers: dict[str, str]
    body: bytes
    operation: str | None = None
    match: str | None = None  # e.g. "ProfileToken>1</": which of several same-operation answers this is


@dataclass
class Recorder:
    exchanges: list[Recorded] = field(default_factory=list)
    challenges: list[str] = field(default_factory=list)  # the WWW-Authenticate headers of the first 401

    def add(self, method: str, target: str, status: int, headers: dict[str, str], body: bytes,
            soap_request: bytes | None = None) -> None:
        operation = match = None
        if soap_request is not None:
            operation = soap_operation(soap_request)
            t = _TOKEN.search(soap_request[:SOAP_SCAN])
            if t:
                match = f"{t.group(1).decode()}>{t.group(2).decode('utf-8', 'replace')}</"
        kept = {k: str(v) for k, v in headers.items() if k.lower() in KEPT_HEADERS}
        self.exchanges.append(Recorded(method, target, status, kept, bytes(body), operation, match))


_active: dict[str, Recorder] = {}
_lock = threading.Lock()


def note(device_id: str, method: str, target: str, status: int, headers, body: bytes,
         soap_request: bytes | None = None) -> None:
    """Called by the transports for every answer. Cheap when nothing records."""
    if not _active:
        return
    rec = _active.get(device_id)
    if rec is not None:
        with _lock:
            rec.add(method, target, status, dict(headers.items()), body, soap_request)


def note_challenge(device_id: str, challenges: list[str]) -> None:
    """The 401 that told DeviceHTTP which scheme (and realm) the device wants: a replay challenges the same way."""
    rec = _active.get(device_id) if _active else None
    if rec is not None and not rec.challenges:
        rec.challenges = list(challenges)


@contextlib.contextmanager
def recording(device_id: str) -> Iterator[Recorder]:
    rec = Recorder()
    with _lock:
        _active[device_id] = rec
    try:
        yield rec
    finally:
        with _lock:
            _active.pop(device_id, None)
