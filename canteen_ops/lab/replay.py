"""Replay recorded device answers over HTTP on a loopback address: the corpus of real devices
(tests/fixtures/devices/<vendor>/<model>/) and the capture files `canteen-ops device capture` writes.

A recorded device is served as that firmware behaves where the recording says nothing:
- it challenges as device.yaml says (Digest with its realm and qop=auth, or Basic), checks the answer against the
  replay credentials, and never counts or locks (a replay has no login lock);
- ONVIF answers need a WS-Security UsernameToken (PasswordDigest) except the PRE_AUTH operations
  (GetSystemDateAndTime, GetServices, GetCapabilities...), as devices do;
- a request it has no recording for gets the vendor's own "not offered" answer: Hikvision 403 with an ISAPI
  ResponseStatus (subStatusCode notSupport), Dahua 400 `Error\\r\\nBad Request!`, ONVIF a SOAP fault
  ter:ActionNotSupported. A folder may record its own error answer instead (`unrecorded:` in exchanges.yaml);
- a folder may also record what the firmware answers credentials once it has locked the account after failed logins
  (`locked:`): a server started with locked=True sends that to every request that carries credentials.

Two on-disk forms, one model (RecordedDevice):
- a model folder: device.yaml + exchanges.yaml + verbatim body files (tests/fixtures/README.md);
- a capture file: one JSON document {"format": CAPTURE_FORMAT, "device": {...}, "exchanges": [...]} with the
  bodies inline (text, or base64 for binary bodies).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape as xml_escape

from canteen_ops.capture_format import CAPTURE_FORMAT, soap_operation
from canteen_ops.lab.wire import Response

VENDORS = ("hikvision", "dahua", "onvif")
KINDS = ("camera", "nvr", "dvr")
REPLAY_USER, REPLAY_PASSWORD = "admin", "replay-password"  # what a replayed device accepts
MAX_REQUEST_BODY = 1024 * 1024

SOAP_CT = "application/soap+xml; charset=utf-8"
# The vendors' own "not offered" answers: ISAPI HTTP 403 with ResponseStatus 4 "Invalid Operation" / notSupport (what
# real recorders answered for absent resources: Key-Information-Solutions/DVRtool's discovery notes, a HiWatch NVR in
# maciej-or/hikvision_next#176; that integration's dumps record 403 for most absent paths); Dahua HTTP 400
# `Error\r\nBad Request!` (protocols.md §B); ONVIF env:Receiver ter:ActionNotSupported "Optional Action Not
# Implemented". A model folder that recorded its own gives it in `unrecorded:` and it is used instead.
_DEFAULT_CT = {"hikvision": "application/xml", "dahua": "text/plain;charset=utf-8", "onvif": SOAP_CT}
_HIK_NOT_SUPPORTED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<ResponseStatus version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">\n'
    "<requestURL>{url}</requestURL>\n<statusCode>4</statusCode>\n<statusString>Invalid Operation</statusString>\n"
    "<subStatusCode>notSupport</subStatusCode>\n</ResponseStatus>\n")
_DAHUA_BAD_REQUEST = "Error\r\nBad Request!\r\n"
_SOAP_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
              '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"'
              ' xmlns:ter="http://www.onvif.org/ver10/error"><env:Body>')
_SOAP_FAULT = ("<env:Fault><env:Code><env:Value>env:{code}</env:Value><env:Subcode><env:Value>ter:{sub}</env:Value>"
               "</env:Subcode></env:Code><env:Reason><env:Text xml:lang=\"en\">{reason}</env:Text></env:Reason>"
               "</env:Fault></env:Body></env:Envelope>")


# What ONVIF devices answer without credentials (ONVIF Core, access class PRE_AUTH).
_ONVIF_PRE_AUTH = {None, "GetSystemDateAndTime", "GetServices", "GetCapabilities", "GetWsdlUrl", "GetHostname",
                   "GetEndpointReference", "GetServiceCapabilities"}


class ReplayError(Exception):
    """A model folder or capture file that cannot be read: the message names the file and what is wrong."""


@dataclass
class Exchange:
    method: str
    target: str  # path and query as the driver sends them
    operation: str | None  # ONVIF operation (first element of the SOAP body), else None
    status: int
    headers: dict[str, str]
    body: bytes
    match: str | None = None  # a text the request body must contain (e.g. the ONVIF ProfileToken asked for)


@dataclass
class RecordedDevice:
    vendor: str
    kind: str
    model: str
    firmware: str | None = None
    auth: str = "digest"  # digest | basic
    realm: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)
    unrecorded: Exchange | None = None  # the firmware's own answer to what it does not offer, where recorded
    locked: Exchange | None = None  # its answer to credentials while it has locked the account, where recorded
    source: str = ""  # the folder or file it came from

    # --- matching -----------------------------------------------------------------------------------------
    def find(self, method: str, target: str, operation: str | None, body: bytes = b"") -> list[Exchange]:
        """The recorded answers to a request, in recorded order: same method and target (query parameters in any
        order); ONVIF by operation, on the recorded path first, then on any path (services move between paths).
        An exchange with `match` answers only a request whose body contains that text. Several answers to the
        same request (a Dahua finder paging, a search asked per channel) are served in turn."""
        path, query = _split(target)
        exact: list[Exchange] = []
        loose: list[Exchange] = []
        for ex in self.exchanges:
            if ex.method != method or (ex.match is not None and ex.match.encode() not in body):
                continue
            if self.vendor == "onvif" and ex.operation:
                if ex.operation == operation:
                    (exact if _split(ex.target)[0] == path else loose).append(ex)
            elif ex.target == target:
                exact.append(ex)
            elif _split(ex.target) == (path, query):
                loose.append(ex)
        return exact or loose


def _split(target: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = urlsplit(target)
    return parts.path, tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))


# --- loading ---------------------------------------------------------------------------------------------------
def load(path: str | os.PathLike) -> RecordedDevice:
    """A model folder or a capture file."""
    p = Path(path)
    if p.is_dir():
        return load_folder(p)
    if p.is_file():
        return load_capture(p)
    raise ReplayError(f"{p}: no such model folder or capture file")


def _yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReplayError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReplayError(f"{path}: not readable YAML: {str(exc).splitlines()[0]}") from None


def _device_meta(meta: Any, where: str) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise ReplayError(f"{where}: expected a mapping with vendor, kind, model")
    vendor, kind = meta.get("vendor"), meta.get("kind")
    if vendor not in VENDORS:
        raise ReplayError(f"{where}: vendor: expected one of {', '.join(VENDORS)}, got {vendor!r}")
    if kind not in KINDS:
        raise ReplayError(f"{where}: kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(meta.get("model"), str) or not meta["model"]:
        raise ReplayError(f"{where}: model: missing")
    auth = meta.get("auth") or {}
    if isinstance(auth, str):
        auth = {"scheme": auth}
    scheme = auth.get("scheme", "digest")
    if scheme not in ("digest", "basic"):
        raise ReplayError(f"{where}: auth.scheme: expected digest or basic, got {scheme!r}")
    expect = meta.get("expect") or {}
    if not isinstance(expect, dict):
        raise ReplayError(f"{where}: expect: expected a mapping")
    return {"vendor": vendor, "kind": kind, "model": meta["model"], "firmware": meta.get("firmware"),
            "auth": scheme, "realm": auth.get("realm"), "expect": expect}


def _parse_request(value: Any, where: str) -> tuple[str, str, str | None]:
    if not isinstance(value, str) or not value.strip():
        raise ReplayError(f"{where}: request: expected 'METHOD /path?query [Operation]'")
    words = value.split()
    if len(words) < 2 or not words[1].startswith("/"):
        raise ReplayError(f"{where}: request: expected 'METHOD /path?query [Operation]', got {value!r}")
    return words[0].upper(), words[1], (words[2] if len(words) > 2 else None)


def _exchange(entry: Any, where: str, body: bytes) -> Exchange:
    if not isinstance(entry, dict):
        raise ReplayError(f"{where}: expected a mapping with request and status")
    method, target, operation = _parse_request(entry.get("request"), where)
    status = entry.get("status")
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ReplayError(f"{where}: status: expected an HTTP status, got {status!r}")
    headers = entry.get("headers") or {}
    if not isinstance(headers, dict):
        raise ReplayError(f"{where}: headers: expected a mapping")
    match = entry.get("match")
    if match is not None and not isinstance(match, str):
        raise ReplayError(f"{where}: match: expected a text")
    return Exchange(method, target, operation, status, {str(k): str(v) for k, v in headers.items()}, body, match)


def load_folder(folder: Path) -> RecordedDevice:
    meta = _device_meta(_yaml(folder / "device.yaml"), str(folder / "device.yaml"))
    entries = _yaml(folder / "exchanges.yaml")
    if isinstance(entries, dict):  # the long form: {exchanges: [...], unrecorded: {...}, locked: {...}}
        unrecorded, locked, entries = entries.get("unrecorded"), entries.get("locked"), entries.get("exchanges")
    else:
        unrecorded = locked = None
    if not isinstance(entries, list):
        raise ReplayError(f"{folder / 'exchanges.yaml'}: expected a list of exchanges")
    dev = RecordedDevice(**meta, source=str(folder))

    def body_of(entry: Any, where: str) -> bytes:
        name = entry.get("body_file") if isinstance(entry, dict) else None
        if not name:
            return b""
        f = (folder / str(name)).resolve()
        if folder.resolve() not in f.parents:
            raise ReplayError(f"{where}: body_file: {name!r} is outside the model folder")
        try:
            return f.read_bytes()
        except OSError:
            raise ReplayError(f"{where}: body_file: {name!r} not found") from None

    for i, entry in enumerate(entries, 1):
        where = f"{folder / 'exchanges.yaml'}: entry {i}"
        dev.exchanges.append(_exchange(entry, where, body_of(entry, where)))
    for key, answer in (("unrecorded", unrecorded), ("locked", locked)):
        if answer is not None:
            where = f"{folder / 'exchanges.yaml'}: {key}"
            if isinstance(answer, dict):
                answer = {"request": "ANY /", **answer}
            setattr(dev, key, _exchange(answer, where, body_of(answer, where)))
    return dev


MAX_CAPTURE_BYTES = 64 * 1024 * 1024  # a capture of one device's check is kilobytes to a few megabytes


def load_capture(path: Path) -> RecordedDevice:
    try:
        if path.stat().st_size > MAX_CAPTURE_BYTES:
            raise ReplayError(f"{path}: larger than {MAX_CAPTURE_BYTES // (1024 * 1024)} MiB: not a capture file")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReplayError(f"{path}: not a capture file (JSON): {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or doc.get("format") != CAPTURE_FORMAT:
        raise ReplayError(f"{path}: not a capture file (format is not {CAPTURE_FORMAT!r})")
    dev = RecordedDevice(**_device_meta(doc.get("device"), f"{path}: device"), source=str(path))
    entries = doc.get("exchanges")
    if not isinstance(entries, list):
        raise ReplayError(f"{path}: exchanges: expected a list")
    for i, entry in enumerate(entries, 1):
        where = f"{path}: exchange {i}"
        body = b""
        if isinstance(entry, dict):
            if isinstance(entry.get("body_base64"), str):
                try:
                    body = base64.b64decode(entry["body_base64"], validate=True)
                except ValueError:
                    raise ReplayError(f"{where}: body_base64: not base64") from None
            elif isinstance(entry.get("body"), str):
                body = entry["body"].encode("utf-8")
        dev.exchanges.append(_exchange(entry, where, body))
    return dev


def corpus_folders(root: str | os.PathLike) -> list[Path]:
    """Every model folder (a folder holding device.yaml) under root, sorted."""
    return sorted(p.parent for p in Path(root).glob("*/*/device.yaml"))


# --- answering ---------------------------------------------------------------------------------------------------
class Replayer:
    """Decides the answer to one request (no sockets here: the server below and tests use it)."""

    def __init__(self, device: RecordedDevice, username: str = REPLAY_USER, password: str = REPLAY_PASSWORD,
                 locked: bool = False):
        if locked and (device.locked is None or device.vendor == "onvif"):
            raise ReplayError(f"{device.source}: no recorded answer of a locked {device.vendor} device (`locked:`)")
        self.device = device
        self.username, self.password = username, password
        self.locked = locked  # answer every request with credentials as the locked firmware did
        self.realm = device.realm or _default_realm(device)
        self._nonces: set[str] = set()
        self._turns: dict[int, int] = {}  # how often each request was answered (repeated requests, in turn)
        self._lock = threading.Lock()
        self.served: list[str] = []  # requests answered from the recording, in order
        self.unanswered: list[str] = []  # requests it had no recording for
        self.refused: list[str] = []  # requests whose recorded answer is an error status (>= 400)

    # --- HTTP authentication (Hikvision, Dahua) -------------------------------------------------------
    def _challenge(self) -> str:
        if self.device.auth == "basic":
            return f'Basic realm="{self.realm}"'
        nonce = os.urandom(16).hex()
        with self._lock:
            if len(self._nonces) > 10_000:
                self._nonces.clear()
            self._nonces.add(nonce)
        opaque = hashlib.md5(self.realm.encode()).hexdigest()
        if self.device.vendor == "hikvision":
            return f'Digest qop="auth", realm="{self.realm}", nonce="{nonce}", stale="FALSE"'
        return f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", opaque="{opaque}"'

    def _authorized(self, method: str, target: str, authorization: str | None) -> bool:
        from canteen_ops.lab.digest import _h, parse_params

        if not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "basic" and self.device.auth == "basic":
            try:
                user, _, pw = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except ValueError:
                return False
            return hmac.compare_digest(f"{user}:{pw}".encode(), f"{self.username}:{self.password}".encode())
        if scheme.lower() != "digest" or self.device.auth != "digest":
            return False
        p = parse_params(value)
        if any(k not in p for k in ("username", "realm", "nonce", "uri", "response")):
            return False
        with self._lock:
            known = p["nonce"] in self._nonces
        if not known or p["username"] != self.username or p["realm"] != self.realm or p["uri"] != target:
            return False
        ha1, ha2 = _h(f"{self.username}:{self.realm}:{self.password}"), _h(f"{method}:{p['uri']}")
        if p.get("qop"):
            expected = _h(f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p['qop']}:{ha2}")
        else:
            expected = _h(f"{ha1}:{p['nonce']}:{ha2}")
        return hmac.compare_digest(expected, p["response"].lower())

    # --- ONVIF WS-Security ---------------------------------------------------------------------------------
    def _onvif_authorized(self, body: bytes) -> bool:
        from lxml import etree

        from canteen_ops.lab.onvif import password_digest

        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            root = etree.fromstring(body, parser)
        except (etree.XMLSyntaxError, ValueError):  # not a readable envelope: no token
            return False
        wsse = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}"
        wsu = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}"
        token = next(root.iter(f"{wsse}UsernameToken"), None)
        if token is None:
            return False
        user, pw = token.findtext(f"{wsse}Username"), token.find(f"{wsse}Password")
        nonce, created = token.findtext(f"{wsse}Nonce"), token.findtext(f"{wsu}Created")
        if user != self.username or pw is None or not nonce or not created:
            return False
        try:
            expected = password_digest(base64.b64decode(nonce), created, self.password)
        except ValueError:
            return False
        return hmac.compare_digest(expected, (pw.text or "").strip())

    # --- the answer -----------------------------------------------------------------------------------------
    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        dev = self.device
        operation = soap_operation(body) if dev.vendor == "onvif" and method == "POST" else None
        if dev.vendor == "onvif":
            if operation not in _ONVIF_PRE_AUTH and not self._onvif_authorized(body):
                return self._soap_fault("Sender", "NotAuthorized", "Sender not authorized", 400)
        elif self.locked and headers.get("authorization") and dev.locked:
            # Locked: right or wrong, credentials get the lock answer (nothing is served, nothing checked).
            self.refused.append(" ".join((method, target.partition("?")[0])))
            return Response(dev.locked.status, dict(dev.locked.headers), dev.locked.body)
        elif not self._authorized(method, target, headers.get("authorization")):
            ct = _DEFAULT_CT[dev.vendor]
            text = (_HIK_UNAUTHORIZED.format(url=xml_escape(target)) if dev.vendor == "hikvision"
                    else "Error\r\nInvalid Authority!\r\n")  # Dahua: as a DH-NVR608H refused a wrong password
            return Response(401, {"WWW-Authenticate": self._challenge(), "Content-Type": ct}, text.encode())
        found = dev.find(method, target, operation, body)
        request = " ".join(filter(None, (method, target.partition("?")[0], operation)))
        ex = None
        if found:
            with self._lock:
                turn = self._turns.get(id(found[0]), 0)
                self._turns[id(found[0])] = turn + 1
            ex = found[min(turn, len(found) - 1)]
        if ex is None:
            self.unanswered.append(request)
            return self._unrecorded(target, operation)
        self.served.append(request)
        if ex.status >= 400:
            self.refused.append(request)
        out = dict(ex.headers)
        out.setdefault("Content-Type", _DEFAULT_CT[dev.vendor])
        return Response(ex.status, out, ex.body)

    def _unrecorded(self, target: str, operation: str | None) -> Response:
        dev = self.device
        if dev.unrecorded is not None:
            return Response(dev.unrecorded.status, dict(dev.unrecorded.headers), dev.unrecorded.body)
        if dev.vendor == "hikvision":
            return Response(403, {"Content-Type": "application/xml"},
                            _HIK_NOT_SUPPORTED.format(url=xml_escape(target.partition("?")[0])).encode())
        if dev.vendor == "dahua":
            return Response(400, {"Content-Type": "text/plain;charset=utf-8"}, _DAHUA_BAD_REQUEST.encode())
        return self._soap_fault("Receiver", "ActionNotSupported",
                                f"Optional Action Not Implemented: {operation or 'unknown'}", 500)

    @staticmethod
    def _soap_fault(code: str, sub: str, reason: str, status: int) -> Response:
        text = _SOAP_HEAD + _SOAP_FAULT.format(code=code, sub=sub, reason=xml_escape(reason))
        return Response(status, {"Content-Type": SOAP_CT}, text.encode())


_HIK_UNAUTHORIZED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<ResponseStatus version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">\n'
    "<requestURL>{url}</requestURL>\n<statusCode>4</statusCode>\n<statusString>Invalid Operation</statusString>\n"
    "<subStatusCode>notAuthenticated</subStatusCode>\n</ResponseStatus>\n")


def _default_realm(device: RecordedDevice) -> str:
    if device.vendor == "hikvision":
        return "DS-" + hashlib.sha1(device.model.encode()).hexdigest()[:8]  # the DS-<8 hex> shape of ISAPI realms
    if device.auth == "basic":
        return "Device_CGI"
    return "Login to replay"


# --- the server ---------------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "replay"
    sys_version = ""
    timeout = 30  # an idle or stalled client does not keep its thread for ever

    def log_message(self, format: str, *args: Any) -> None:  # no console noise
        pass

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BODY:
            self.send_error(413 if length > 0 else 400)
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        ans = self.server.replayer.answer(self.command, self.path, headers, body)  # type: ignore[attr-defined]
        self.send_response(ans.status)
        for k, v in ans.headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(ans.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(ans.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve


class ReplayServer:
    """One recorded device on host:port (port 0: any free port), served from a background thread."""

    def __init__(self, device: RecordedDevice, host: str = "127.0.0.1", port: int = 0,
                 username: str = REPLAY_USER, password: str = REPLAY_PASSWORD, locked: bool = False):
        if not host.startswith("127.") and host not in ("localhost", "::1"):
            raise ReplayError(f"{host}: a replay server listens on loopback only")
        self.device = device
        self.replayer = Replayer(device, username, password, locked=locked)
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.replayer = self.replayer  # type: ignore[attr-defined]
        self.host, self.port = self._httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    def start(self) -> "ReplayServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"replay-{self.device.model}",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "ReplayServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --- next to the simulated fleet (`canteen-ops lab up --replay FILE[,FILE...]`) -------------------------------------
def load_all(paths: list[str]) -> list[RecordedDevice]:
    """Every model folder or capture file, all read before anything starts (the first bad one is the error)."""
    return [load(p) for p in paths]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "device"


def start_all(devices: list[RecordedDevice], first_address: str, port: int) -> list[tuple[str, ReplayServer]]:
    """One replay server per recorded device on the loopback addresses from first_address (skipping .0 and .255):
    [(device id, server)]."""
    import ipaddress

    servers: list[tuple[str, ReplayServer]] = []
    addr = ipaddress.IPv4Address(first_address)
    try:
        for i, rec in enumerate(devices, 1):
            while addr.packed[3] in (0, 255):  # as the fleet: no .0 or .255 host addresses
                addr += 1
            host, addr = str(addr), addr + 1
            servers.append((f"replay{i:02d}-{rec.vendor}-{_slug(rec.model)}", ReplayServer(rec, host, port).start()))
    except OSError as exc:
        for _, s in servers:
            s.stop()
        raise ReplayError(f"cannot listen on {host}:{port} for {rec.source}: {exc.strerror or exc}") from None
    return servers


def add_to_inventory(inventory: Path, servers: list[tuple[str, ReplayServer]]) -> None:
    """Add the replayed devices to the lab's inventory: a school `replay`, a credential set `replay` whose password
    file sits with the lab's (mode 600)."""
    import yaml

    from canteen_ops.store.files import atomic_write

    doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    secret = inventory.parent / "secrets" / "replay.password"
    secret.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(REPLAY_PASSWORD + "\n")
    doc["credentials"]["replay"] = {"username": REPLAY_USER, "password_file": str(secret.resolve())}
    devices = [{"id": dev_id, "kind": "camera" if s.device.kind == "camera" else "nvr", "vendor": s.device.vendor,
                "host": s.host, "port": s.port, "credentials": "replay", "name": s.device.model,
                "model": s.device.model, "tags": ["lab", "replay"],
                **({"auth": "basic"} if s.device.auth == "basic" else {})}  # Basic over plain HTTP, as recorded
               for dev_id, s in servers]
    doc["schools"].append({"id": "replay", "name": "Recorded devices (replay)", "devices": devices})
    head = "".join(line + "\n" for line in inventory.read_text(encoding="utf-8").splitlines()
                   if line.startswith("#"))
    atomic_write(inventory, (head + "# School `replay`: recorded devices (lab up --replay).\n" + yaml.safe_dump(
        doc, allow_unicode=True, sort_keys=False, width=120)).encode("utf-8"))
