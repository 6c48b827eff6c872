"""ONVIF driver: zeep with the WSDLs shipped by onvif-zeep, parsed once per process and shared by every device.

Why not `onvif.ONVIFCamera` per device: it parses the WSDLs again for every device (~150 ms CPU each), calls
CreatePullPointSubscription behind our back, skips the Search/Recording XAddrs (protocols.md C.3) and configures
the root logger on import. Here each WSDL becomes one zeep Client per process (built lazily under a lock); a
device gets shallow copies of those clients carrying its own WS-Security token and transport, bound to its
XAddrs with `create_service(binding, xaddr)`.

Per device:
- the first authenticated call is preceded by one unauthenticated GetSystemDateAndTime; the device-minus-host
  offset shifts the UsernameToken `Created` (as onvif-zeep's adjust_time), so a drifted device still accepts us;
- XAddrs come from GetServices (GetCapabilities as fallback) and are re-pointed at the inventory's host:port,
  so a device behind NAT, or one that names another address, is still reached only where the inventory says;
- faults map to the driver errors: NotAuthorized → AuthFailed (recorded in auth_guard, never retried),
  ActionNotSupported → NotSupported, refused → Offline, no answer → Timeout, bad XML/bodies → ProtocolError.

Hostile answers: the transport caps the body size and parses every answer with xmlsafe.parse (no DTD, entity
or external load; not recovering) before zeep sees it (zeep's non-strict mode would otherwise "recover" a
truncated document into partial data); zeep itself parses with the same things forbidden.

The answers of the check path are the exception to "zeep reads the answers": the recording and event search
answers (the biggest of a fleet check, a third of an NVR check's CPU in zeep for five fields each) and
GetDeviceInformation, GetSystemDateAndTime and GetNTP (asked of every device, a third of a camera's). They are
read from the document the transport already parsed, by local name with the xmlsafe lookups the Hikvision
parsers use; faults and HTTP errors still go through zeep, so they raise the same errors.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import email.parser
import email.policy
import functools
import importlib.util
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from canteen_ops.drivers import recorder
from canteen_ops.drivers.base import (
    AuthFailed,
    Channel,
    Clock,
    ConfigExport,
    Driver,
    DriverError,
    Facts,
    Locked,
    NotSupported,
    ProtocolError,
    RecordingSpan,
    StreamInfo,
    Timeout,
    auth_guard,
    reason,
)
from canteen_ops.drivers import settings as S
from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.transport import DeviceTransport, TlsPolicy, device_client, read_body
from canteen_ops.drivers.spans import clipped
from canteen_ops.timeutil import parse_xs_datetime

NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA = "http://www.onvif.org/ver10/media/wsdl"
NS_SEARCH = "http://www.onvif.org/ver10/search/wsdl"
NS_SCHEMA = "http://www.onvif.org/ver10/schema"
XOP_NS = "http://www.w3.org/2004/08/xop/include"

# service name → (WSDL file in onvif-zeep's wsdl/, binding QName, namespace used in GetServices)
SERVICES = {
    "device": ("devicemgmt.wsdl", f"{{{NS_DEVICE}}}DeviceBinding", NS_DEVICE),
    "media": ("media.wsdl", f"{{{NS_MEDIA}}}MediaBinding", NS_MEDIA),
    "search": ("search.wsdl", f"{{{NS_SEARCH}}}SearchBinding", NS_SEARCH),
}

MAX_BODY = 8 * 1024 * 1024  # the biggest honest ONVIF answer (a system backup) is far below this
PRE_AUTH = frozenset({"GetSystemDateAndTime", "GetServices", "GetCapabilities"})
OFFSET_MAX_AGE_S = 2.0  # a clock reading this fresh is reused by clock() instead of asking again
MAX_RESULT_PAGES = 100  # GetRecordingSearchResults / GetEventSearchResults loop bound


# --- process-wide shared pieces -------------------------------------------------------------------------------
def wsdl_dir() -> str:
    """onvif-zeep's bundled WSDL directory, found without importing `onvif` (whose import configures logging)."""
    spec = importlib.util.find_spec("onvif")
    if spec is None or spec.origin is None:  # pragma: no cover - a dependency of the project
        raise NotSupported("onvif-zeep is not installed")
    return os.path.join(os.path.dirname(os.path.dirname(spec.origin)), "wsdl")


def import_onvif_quietly():
    """Import onvif-zeep and undo the logging.basicConfig(level=INFO) it runs on import (protocols.md C.3)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import onvif  # noqa: F401

    root.handlers[:] = handlers
    root.setLevel(level)
    return onvif


def zeep_settings():
    from zeep import Settings

    # strict=False tolerates firmware that adds or omits elements; well-formedness is checked in the transport.
    return Settings(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True, forbid_external=True)


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def shared_client(service: str):
    """The process-wide zeep Client of one ONVIF WSDL (parsed on first use, then reused by every device)."""
    client = _clients.get(service)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(service)
        if client is None:
            from zeep import Client

            path = os.path.join(wsdl_dir(), SERVICES[service][0])
            client = Client(path, settings=zeep_settings())
            _clients[service] = client
    return client


# --- transport -------------------------------------------------------------------------------------------------
@dataclass
class _Reply:
    """What zeep reads from a transport response."""

    status_code: int
    content: bytes
    headers: Any
    encoding: str | None = None
    root: Any = None  # the parsed document, kept from the well-formedness check for answers read with lxml


def check_wellformed(content: bytes):
    """The root element of `content`; ProtocolError unless it is one well-formed XML document without a DTD."""
    return X.parse(content, max_bytes=MAX_BODY, what="XML answer")


class _Transport:
    """zeep transport: the device's httpx client on its transport (drivers/transport.py: one keep-alive
    connection, the timeout and deadline bounding each answer, a body cap, the device's TLS policy).

    Duck-types zeep.transports.Transport (post_xml/post/load): zeep's own builds a requests.Session per
    device and follows its settings; this one posts through httpx and refuses to load anything.
    """

    def __init__(self, base_url: str, timeout: float, max_body: int = MAX_BODY, tls: TlsPolicy | None = None):
        self.timeout = timeout
        self.max_body = max_body
        self.last_reply: _Reply | None = None
        self.host = urlsplit(base_url).hostname
        self.https = base_url.startswith("https:")
        self.transport = DeviceTransport(timeout, tls, https=self.https)
        self.client = device_client(self.transport, base_url)
        self.device_id = ""  # for the capture hook (drivers/recorder.py)

    @property
    def requests(self) -> int:  # authenticated or not, every POST this device received from us
        return self.transport.requests

    def close(self) -> None:
        self.client.close()

    def adopt(self, sock) -> bool:
        return self.transport.adopt(sock, self.https)

    def set_deadline(self, seconds: float | None) -> None:
        self.transport.set_deadline(seconds)

    def load(self, url):  # zeep would fetch imported schemas; devices never get to make us load anything
        raise ProtocolError(f"refusing to load external resource {url!r}")

    def post_xml(self, address, envelope, headers):
        from lxml import etree

        return self.post(address, etree.tostring(envelope, encoding="utf-8", xml_declaration=True), headers)

    def post(self, address, message, headers):
        parts = urlsplit(address)
        if parts.hostname != self.host:  # XAddrs are re-pointed already; this is the last line of defence
            raise ProtocolError(f"refusing to post to {parts.hostname!r}: not the inventory host")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        request = self.client.build_request("POST", target, content=message, headers=headers,
                                            extensions={"max_bytes": self.max_body})
        response = self.client.send(request, stream=True)
        reply = _Reply(response.status_code, read_body(response), response.headers, None)
        ctype = reply.headers.get("content-type", "")
        if reply.content and "multipart/" not in ctype:
            reply.root = check_wellformed(reply.content)
        self.last_reply = reply
        recorder.note(self.device_id, "POST", target, reply.status_code, reply.headers, reply.content,
                      soap_request=message)
        return reply


class _WantsAuth(DriverError):
    """An unauthenticated call was refused: the device wants credentials for it (not a refused login)."""


def _is_not_authorized(fault) -> bool:
    subs = [getattr(q, "localname", str(q)) for q in (fault.subcodes or [])]
    return "NotAuthorized" in subs or "not authorized" in (fault.message or "").lower()


class _Token:
    """WS-Security UsernameToken (PasswordDigest) whose Created follows the device clock offset."""

    def __init__(self, username: str, password: str):
        from zeep.wsse.username import UsernameToken

        self._token = UsernameToken(username, password, use_digest=True, zulu_timestamp=True)
        self.offset = dt.timedelta(0)

    def apply(self, envelope, headers):
        self._token.created = dt.datetime.now(dt.timezone.utc) + self.offset
        try:
            return self._token.apply(envelope, headers)
        finally:
            self._token.created = None

    def verify(self, envelope):
        pass


# --- helpers used by the getters (pure, unit-tested) -----------------------------------------------------------
def posix_tz_offset(tz: str | None) -> dt.timedelta | None:
    """UTC offset of a POSIX TZ string ('CST-8:00:00' → +8 h: the sign is inverted); None if unparseable."""
    if not tz:
        return None
    m = re.match(r"^\s*(?:<[^>]+>|[A-Za-z]{3,})([+-]?)(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?", tz)
    if not m:
        return None
    sign = 1 if m.group(1) == "-" else -1
    return sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0), seconds=int(m.group(4) or 0))


def onvif_datetime(value) -> dt.datetime | None:
    """tt:DateTime {Date{Year,Month,Day}, Time{Hour,Minute,Second}} → naive datetime, None when absent/invalid."""
    if value is None or X.find(value, "Date") is None or X.find(value, "Time") is None:
        return None
    try:
        return dt.datetime(*(int(X.text(value, f"Date/{k}", "")) for k in ("Year", "Month", "Day")),
                           *(int(X.text(value, f"Time/{k}") or 0) for k in ("Hour", "Minute", "Second")))
    except (TypeError, ValueError):
        return None


@dataclass
class SystemDateAndTime:
    """GetSystemDateAndTime, read: the time mode, the POSIX TZ and the device's UTC (None when unreadable)."""

    kind: str | None  # DateTimeType: "NTP" or "Manual"
    tz: str | None
    utc: dt.datetime | None


def parse_system_date_and_time(answer) -> SystemDateAndTime:
    """The device's UTC is UTCDateTime, else LocalDateTime minus the TZ offset."""
    sdt = X.find(answer, "SystemDateAndTime")
    tz = X.text(sdt, "TimeZone/TZ")
    utc = onvif_datetime(X.find(sdt, "UTCDateTime"))
    if utc is None:
        local, offset = onvif_datetime(X.find(sdt, "LocalDateTime")), posix_tz_offset(tz)
        utc = None if local is None or offset is None else local - offset
    return SystemDateAndTime(kind=X.text(sdt, "DateTimeType"), tz=tz,
                             utc=None if utc is None else utc.replace(tzinfo=dt.timezone.utc))


@dataclass
class DeviceInformation:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware: str | None


def parse_device_information(answer) -> DeviceInformation:
    def field(name: str) -> str | None:
        return _clean(X.text(answer, name))

    return DeviceInformation(manufacturer=field("Manufacturer"), model=field("Model"),
                             firmware=field("FirmwareVersion"), serial=field("SerialNumber"),
                             hardware=field("HardwareId"))


def parse_ntp_servers(answer) -> list[str]:
    """GetNTP → the NTP servers in use: the manual ones, and those from DHCP when FromDHCP is set."""
    info = X.find(answer, "NTPInformation")
    hosts = X.findall(info, "NTPManual")
    if _truthy(X.text(info, "FromDHCP")):
        hosts += X.findall(info, "NTPFromDHCP")
    servers = []
    for h in hosts:
        addr = X.text(h, "IPv4Address") or X.text(h, "IPv6Address") or X.text(h, "DNSname")
        if addr and addr.strip():
            servers.append(addr.strip())
    return servers


def channel_number(token: str | None, position: int) -> int:
    """Channel number from a source/recording token ('VideoSource_3' → 3), else the 1-based position."""
    m = re.search(r"(?<!\d)(\d++)\D*+$", token or "")  # starts only where a digit run does: linear
    return int(m.group(1)) if m and len(m.group(1)) <= 6 and int(m.group(1)) > 0 else position


def strip_credentials(uri: str) -> str:
    """Remove user:password@ from a URI (devices sometimes embed them)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def repoint(uri: str, host: str, port: int | None) -> str:
    """Point a device-reported URI at the inventory host (and port if given), keeping scheme and path."""
    parts = urlsplit(uri)
    h = f"[{host}]" if ":" in host else host
    p = port if port is not None else parts.port
    return urlunsplit((parts.scheme, h + (f":{p}" if p else ""), parts.path, parts.query, parts.fragment))


def codec_name(encoding: str | None) -> str | None:
    if not encoding:
        return None
    return {"H264": "H.264", "H265": "H.265", "JPEG": "MJPEG", "MPEG4": "MPEG-4"}.get(str(encoding), str(encoding))


def spans_from_events(events: list[tuple[dt.datetime, bool]], start: dt.datetime, end: dt.datetime,
                      latest: dt.datetime | None) -> list[tuple[dt.datetime, dt.datetime]]:
    """Recorded spans from IsDataPresent flips (time, present), clipped to [start, end] and the latest data."""
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    open_at: dt.datetime | None = None
    for when, present in sorted(events, key=lambda e: e[0]):
        if present and open_at is None:
            open_at = max(when, start)
        elif not present and open_at is not None:
            if when > open_at:
                spans.append((open_at, min(when, end)))
            open_at = None
    if open_at is not None:
        stop = min(end, latest) if latest is not None else end
        if stop > open_at:
            spans.append((open_at, stop))
    return [(s, e) for s, e in spans if e > start and s < end]


def _attr(obj: Any, name: str) -> Any:
    """Attribute of a zeep object or XML attribute/child text of an lxml element (xs:any content)."""
    if obj is None:
        return None
    if hasattr(obj, "tag") and hasattr(obj, "get"):  # lxml element
        if obj.get(name) is not None:
            return obj.get(name)
        for child in obj:
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == name:
                return child if len(child) else child.text
        return None
    try:
        return getattr(obj, name)
    except AttributeError:
        return None


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1")


def _getter(func):
    """Contain surprises in a device's answer: anything that is not a DriverError becomes a ProtocolError."""

    @functools.wraps(func)
    def wrapped(self, *args, **kwargs):
        try:
            return func(self, *args, **kwargs)
        except DriverError:
            raise
        except Exception as exc:  # a device answered something the getter cannot use
            raise ProtocolError(f"{func.__name__}: unexpected answer ({type(exc).__name__}: {reason(exc)})") \
                from None

    return wrapped


# --- the driver ---------------------------------------------------------------------------------------------
class OnvifDriver(Driver):
    vendor = "onvif"

    @staticmethod
    def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
        return normalize_settings(raw)  # the module's function below: settings() → the neutral snapshot

    def __init__(self, device, password: str, *, timeout: float | None = None, tls_pin: str | None = None):
        super().__init__(device, password, timeout=timeout)
        user = device.credentials.username if device.credentials is not None else ""
        self._transport = _Transport(device.base_url, self.timeout, tls=TlsPolicy.of(device, tls_pin))
        self._transport.device_id = device.id
        self._token = _Token(user, password)
        self._services: dict[str, Any] = {}  # (service, authenticated) → bound ServiceProxy
        self._offset_known = False
        self._last_sdt: tuple[SystemDateAndTime, dt.datetime, float] | None = None  # (answer, host utc, monotonic)
        self._xaddrs: dict[str, str] | None = None
        self._system_backup: bool | None = None
        self._device_info: DeviceInformation | None = None
        self._recordings: dict[int, Any] | None = None
        self._events: dict[tuple[dt.datetime, dt.datetime], Any] = {}  # window → events by token, or the error
        self._profiles = None

    def close(self) -> None:
        self._transport.close()

    def adopt_connection(self, sock) -> bool:
        return self._transport.adopt(sock)

    @property
    def device_transport(self) -> DeviceTransport:
        """The device's connection (its request count, the TLS certificate it showed)."""
        return self._transport.transport

    def set_deadline(self, seconds: float | None) -> None:
        super().set_deadline(seconds)
        self._transport.set_deadline(seconds)

    # -- plumbing ----------------------------------------------------------------------------------------------
    @property
    def requests_sent(self) -> int:
        return self._transport.requests

    def _service(self, name: str, auth: bool = True):
        key = (name, auth)
        svc = self._services.get(key)
        if svc is None:
            base = shared_client(name)
            client = copy.copy(base)  # shares the parsed WSDL and settings (thread-local overrides); wsse and
            client.wsse = self._token if auth else None  # transport are this device's
            client.transport = self._transport
            xaddr = self._xaddr(name)
            svc = self._services[key] = client.create_service(SERVICES[name][1], xaddr)
        return svc

    def _xaddr(self, name: str) -> str:
        if name == "device":
            return f"{self.device.base_url}/onvif/device_service"
        xaddrs = self._discover()
        ns = SERVICES[name][2]
        if ns not in xaddrs:
            raise NotSupported(f"device offers no ONVIF {name} service")
        return xaddrs[ns]

    def _call(self, service: str, operation: str, *, raw: bool = False, auth: bool | None = None, **kwargs):
        """One SOAP call → zeep's objects; raw=True → the answer element itself (lxml), read by our parse_*
        functions: for the search answers, whose deserializing by zeep cost ~20 times our own reading of the few
        fields we use (a third of an NVR check's CPU), and for the three answers of every device's check
        (GetDeviceInformation, GetSystemDateAndTime, GetNTP: a third of a camera's). Faults and errors raise the
        same either way."""
        from zeep.exceptions import Error as ZeepError, Fault, TransportError

        if auth is None:
            if operation in PRE_AUTH:
                try:
                    return self._call(service, operation, raw=raw, auth=False, **kwargs)
                except _WantsAuth:  # this device wants credentials even for this: send them
                    self._ensure_offset()
                    return self._call(service, operation, raw=raw, auth=True, **kwargs)
            auth = True
            auth_guard.check(self.device.id)  # before the clock reading: a refused device gets nothing more
            self._ensure_offset()
        if auth:
            auth_guard.check(self.device.id)
        svc = self._service(service, auth)
        try:
            if not raw:
                return getattr(svc, operation)(**kwargs)
            client = shared_client(service)  # its settings (thread-local overrides) are every copy's settings
            with client.settings(raw_response=True):
                reply = getattr(svc, operation)(**kwargs)
            return _answer_element(client, service, operation, reply)
        except Fault as fault:
            if not auth and _is_not_authorized(fault):
                raise _WantsAuth(operation) from None  # no credentials were sent: not a refused login
            raise self._fault(operation, fault) from None
        except TransportError as exc:
            if exc.status_code == 401 and not auth:
                raise _WantsAuth(operation) from None
            if exc.status_code == 401:
                err = AuthFailed(f"{operation}: HTTP 401 (device wants HTTP authentication)")
                auth_guard.record(self.device.id, err)
                raise err from None
            raise ProtocolError(f"{operation}: {reason(exc)}") from None
        except ZeepError as exc:  # XMLSyntaxError, XMLParseError, EntitiesForbidden, DTDForbidden, ...
            raise ProtocolError(f"{operation}: unusable answer ({type(exc).__name__}: {reason(exc)})") from None

    def _fault(self, operation: str, fault) -> DriverError:
        subs = [getattr(q, "localname", str(q)) for q in (fault.subcodes or [])]
        message = (fault.message or "").strip()
        if _is_not_authorized(fault):
            if "lock" in message.lower():
                m = re.search(r"(?<!\d)(\d++)\s*+s\b", message)
                err: AuthFailed = Locked(f"{operation}: device locked our login: {message}",
                                         min(float(m.group(1)[:9]), 86_400.0) if m else None)
            else:
                err = AuthFailed(f"{operation}: login refused by the device ({message or 'NotAuthorized'})")
            auth_guard.record(self.device.id, err)
            return err
        if {"ActionNotSupported", "NoSuchService", "InvalidOperation"} & set(subs):
            return NotSupported(f"{operation}: not supported by the device")
        return ProtocolError(f"{operation}: device fault {'/'.join(subs) or fault.code}: {message}")

    def _read_clock(self) -> tuple[SystemDateAndTime, dt.datetime]:
        """One unauthenticated GetSystemDateAndTime; also sets the WS-Security time offset.

        Some devices refuse it without credentials (401, or a `Sender not authorized` fault: agsh/onvif#178,
        #301). Nothing was refused then, since nothing was sent: ask once more with a WS-Security token built on
        this machine's clock (offset 0), and only that answer decides (a refusal of it is the AuthFailed)."""
        t0 = time.time()
        try:
            answer = self._call("device", "GetSystemDateAndTime", raw=True, auth=False)
        except _WantsAuth:
            self._token.offset = dt.timedelta(0)
            t0 = time.time()
            answer = self._call("device", "GetSystemDateAndTime", raw=True, auth=True)
        sdt = parse_system_date_and_time(answer)
        t1 = time.time()
        host = dt.datetime.fromtimestamp((t0 + t1) / 2, dt.timezone.utc)
        if sdt.utc is not None:
            self._token.offset = sdt.utc - host
        self._offset_known = True
        self._last_sdt = (sdt, host, time.monotonic())
        return sdt, host

    def _ensure_offset(self) -> None:
        if not self._offset_known:
            self._read_clock()

    def _discover(self) -> dict[str, str]:
        """Service XAddrs by namespace (GetServices; GetCapabilities on older firmware), re-pointed at the
        inventory host:port."""
        if self._xaddrs is not None:
            return self._xaddrs
        xaddrs: dict[str, str] = {}
        try:
            # Without the capabilities: a much smaller answer to parse, on every device of every run. The one
            # capability we need (SystemBackup) is asked for only by export_config/settings.
            for svc in self._call("device", "GetServices", IncludeCapability=False) or []:
                if svc.Namespace and svc.XAddr:
                    xaddrs[svc.Namespace] = svc.XAddr
        except NotSupported:
            caps = self._call("device", "GetCapabilities", Category="All")
            if caps.Media is not None:
                xaddrs[NS_MEDIA] = caps.Media.XAddr
            ext = caps.Extension
            search = _attr(ext, "Search")
            if search is None:  # zeep leaves the Extension children in _value_1 (xs:any ##other first)
                search = next((e for e in (_attr(ext, "_value_1") or []) if hasattr(e, "tag")
                               and e.tag == f"{{{NS_SCHEMA}}}Search"), None)
            if search is not None and _attr(search, "XAddr"):
                xaddrs[NS_SEARCH] = str(_attr(search, "XAddr")).strip()
            system = caps.Device.System if caps.Device is not None else None
            self._system_backup = bool(system is not None and system.SystemBackup)
        port = self.device.port
        self._xaddrs = {ns: repoint(x.strip(), self.device.host, port) for ns, x in xaddrs.items()}
        return self._xaddrs

    # -- getters ---------------------------------------------------------------------------------------------
    @_getter
    def login(self) -> None:
        self._info()

    def _info(self) -> DeviceInformation:
        if self._device_info is None:
            self._device_info = parse_device_information(self._call("device", "GetDeviceInformation", raw=True))
        return self._device_info

    @_getter
    def facts(self) -> Facts:
        info = self._info()
        return Facts(vendor=self.vendor, model=info.model, serial=info.serial, firmware=info.firmware,
                     hardware=info.hardware, name=info.manufacturer)

    @_getter
    def clock(self) -> Clock:
        if self._last_sdt is not None and time.monotonic() - self._last_sdt[2] < OFFSET_MAX_AGE_S:
            sdt, host = self._last_sdt[0], self._last_sdt[1]
        else:
            sdt, host = self._read_clock()
        mode = {"NTP": "NTP", "Manual": "manual"}.get((sdt.kind or "").strip(), None)
        servers: list[str] = []
        ntp_enabled: bool | None = None if mode is None else mode == "NTP"
        try:
            servers = parse_ntp_servers(self._call("device", "GetNTP", raw=True))
            ntp_enabled = mode == "NTP" and bool(servers)
        except NotSupported:
            pass
        return Clock(device_utc=sdt.utc, host_utc=host, timezone=sdt.tz, mode=mode, ntp_servers=servers,
                     ntp_enabled=ntp_enabled)

    def _get_profiles(self):
        if self._profiles is None:
            self._profiles = list(self._call("media", "GetProfiles") or [])
        return self._profiles

    def _profile_channels(self) -> list[tuple[int, Any, bool]]:
        """(channel, profile, main) for every media profile; the first profile of a source is its main one."""
        out, seen = [], set()
        for pos, p in enumerate(self._get_profiles(), 1):
            vsc = p.VideoSourceConfiguration
            source = vsc.SourceToken if vsc is not None else None
            ch = channel_number(source, pos)
            out.append((ch, p, ch not in seen))
            seen.add(ch)
        return out

    def _search_recordings(self) -> dict[int, "RecordingInfo"]:
        """RecordingInformation by channel (FindRecordings → GetRecordingSearchResults → EndSearch)."""
        if self._recordings is not None:
            return self._recordings
        token = self._call("search", "FindRecordings", Scope={}, KeepAliveTime=dt.timedelta(seconds=10))
        infos: list[RecordingInfo] = []
        for _ in range(MAX_RESULT_PAGES):
            state, page = parse_recording_results(
                self._call("search", "GetRecordingSearchResults", raw=True, SearchToken=token,
                           WaitTime=dt.timedelta(seconds=1)))
            infos += page
            if state == "Completed":
                break
        else:
            raise ProtocolError(f"recording search did not complete after {MAX_RESULT_PAGES} pages")
        self._end_search(token)
        out: dict[int, RecordingInfo] = {}
        for pos, info in enumerate(infos, 1):
            out.setdefault(channel_number(info.source_id or info.token, pos), info)
        self._recordings = dict(sorted(out.items()))
        return self._recordings

    def _end_search(self, token: str) -> None:
        try:
            self._call("search", "EndSearch", SearchToken=token)
        except (NotSupported, ProtocolError):  # the search ends by itself after KeepAliveTime
            pass

    @_getter
    def channels(self) -> list[Channel]:
        if self.device.kind == "nvr" and NS_SEARCH in self._discover():
            chans = []
            for ch, info in self._search_recordings().items():
                status = info.status
                online = True if status == "Recording" else (None if status in ("", "Unknown") else False)
                chans.append(Channel(id=ch, online=online, name=info.name,
                                     detail=None if online else f"recording status {status or 'unknown'}"))
            return chans
        chans, seen = [], set()
        for ch, p, _main in self._profile_channels():
            if ch not in seen:
                seen.add(ch)
                chans.append(Channel(id=ch, online=None, name=_clean(p.Name)))
        return chans

    @_getter
    def recordings(self, channel: int, start: dt.datetime, end: dt.datetime) -> list[RecordingSpan]:
        if NS_SEARCH not in self._discover():
            raise NotSupported("device offers no ONVIF recording search")
        info = self._search_recordings().get(channel)
        if info is None:
            return []
        earliest, latest = info.earliest, info.latest
        if earliest is None or latest is None:
            return []
        # The device stamps recordings with its own clock: ask in device time, answer in host time, so a
        # drifted NVR shows neither a phantom gap at "now" nor shifted gaps.
        off = self._token.offset
        dstart, dend = start + off, end + off
        try:
            events = self._recording_events(dstart, dend).get(info.token, [])
        except NotSupported:  # no event search: one span from the earliest to the latest data
            events = [(earliest, True)]
        spans = spans_from_events(events, dstart, dend, latest)
        return clipped(channel, [(max(s, earliest) - off, e - off) for s, e in spans if e > earliest], start, end)

    def _recording_events(self, start: dt.datetime, end: dt.datetime) -> dict[str, list[tuple[dt.datetime, bool]]]:
        """IsDataPresent flips of every recording in [start, end], by recording token: one FindEvents for the
        whole NVR (the checks ask each channel for the same window), kept for the other channels."""
        key = (start, end)
        cached = self._events.get(key)
        if cached is None:
            try:
                cached = self._search_events(start, end)
            except DriverError as exc:
                cached = exc
            self._events[key] = cached
        if isinstance(cached, DriverError):
            raise cached
        return cached

    def _search_events(self, start: dt.datetime, end: dt.datetime) -> dict[str, list[tuple[dt.datetime, bool]]]:
        tokens = [info.token for info in self._search_recordings().values()]
        search = self._call("search", "FindEvents", StartPoint=start, EndPoint=end,
                            Scope={"IncludedRecordings": tokens}, SearchFilter={}, IncludeStartState=True,
                            KeepAliveTime=dt.timedelta(seconds=10))
        wanted = set(tokens)
        events: dict[str, list[tuple[dt.datetime, bool]]] = {}
        pages = MAX_RESULT_PAGES * max(1, len(tokens))  # a device pages per its own limit; more channels, more
        for _ in range(pages):
            state, page = parse_event_results(
                self._call("search", "GetEventSearchResults", raw=True, SearchToken=search,
                           WaitTime=dt.timedelta(seconds=1)))
            for token, when, present in page:
                if token in wanted:
                    events.setdefault(token, []).append((when, present))
            if state == "Completed":
                break
        else:
            raise ProtocolError(f"event search did not complete after {pages} pages")
        self._end_search(search)
        return events

    @_getter
    def streams(self) -> list[StreamInfo]:
        out = []
        for ch, p, main in self._profile_channels():
            enc = p.VideoEncoderConfiguration
            res = enc.Resolution if enc is not None else None
            rc = enc.RateControl if enc is not None else None
            out.append(StreamInfo(
                channel=ch, name=_clean(p.Name), uri=self._stream_uri(p.token),
                codec=codec_name(enc.Encoding) if enc is not None else None,
                width=res.Width if res is not None else None, height=res.Height if res is not None else None,
                fps=float(rc.FrameRateLimit) if rc is not None and rc.FrameRateLimit else None,
                bitrate_kbps=float(rc.BitrateLimit) if rc is not None and rc.BitrateLimit else None, main=main))
        return out

    def _stream_uri(self, profile_token: str) -> str:
        media_uri = self._call("media", "GetStreamUri", ProfileToken=profile_token,
                               StreamSetup={"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}})
        uri = strip_credentials(str(media_uri.Uri).strip())
        if urlsplit(uri).hostname != self.device.host:  # NAT or a hostile device: only the inventory host
            uri = repoint(uri, self.device.host, None)
        return uri

    @_getter
    def stream_uri(self, channel: int = 1, main: bool = True) -> str:
        for ch, p, is_main in self._profile_channels():
            if ch == channel and is_main == main:
                return self._stream_uri(p.token)
        raise NotSupported(f"no {'main' if main else 'sub'} stream profile for channel {channel}")

    def _backup_supported(self) -> bool:
        """Capabilities.Device.System.SystemBackup (protocols.md C.4: rarely true; never call blindly)."""
        if self._system_backup is None:
            caps = self._call("device", "GetCapabilities", Category="Device")
            system = caps.Device.System if caps is not None and caps.Device is not None else None
            self._system_backup = bool(system is not None and _truthy(system.SystemBackup))
        return self._system_backup

    @_getter
    def export_config(self) -> ConfigExport:
        if not self._backup_supported():
            raise NotSupported("device offers no config export")
        result = self._call("device", "GetSystemBackup")
        reply = self._transport.last_reply
        files = decode_backup(reply.content, reply.headers.get("content-type", "")) if reply else []
        if not files:
            names = [getattr(f, "Name", None) for f in (result or [])]
            raise ProtocolError(f"GetSystemBackup returned no data (files: {names})")
        name, ctype, data = files[0]
        ext = os.path.splitext(name or "")[1] or (".json" if "json" in ctype else ".bin")
        return ConfigExport(content=data, content_type=ctype or "application/octet-stream",
                            method="onvif-GetSystemBackup", extension=ext)

    @_getter
    def settings(self) -> dict[str, Any]:
        info = self._info()
        out: dict[str, Any] = {
            "identity": {"manufacturer": info.manufacturer, "model": info.model, "firmware": info.firmware,
                         "serial": info.serial, "hardware_id": info.hardware},
        }
        out["network"] = self._optional(self._settings_network)
        clock = self.clock()
        out["time"] = {"timezone": clock.timezone, "mode": clock.mode, "ntp_servers": clock.ntp_servers,
                       "ntp_enabled": clock.ntp_enabled}
        out["streams"] = self._optional(self._settings_streams)
        out["users"] = self._optional(lambda: [{"name": u.Username, "level": str(u.UserLevel)}
                                               for u in self._call("device", "GetUsers") or []])
        xaddrs = self._discover()
        out["services"] = sorted(xaddrs)
        out["system_backup"] = self._optional(self._backup_supported)
        out["ports"] = {"http": self.device.port}
        return out

    def _optional(self, fetch):
        try:
            return fetch()
        except NotSupported:
            return None

    def _settings_network(self) -> list[dict[str, Any]]:
        nics = []
        for n in self._call("device", "GetNetworkInterfaces") or []:
            ipv4 = n.IPv4
            cfg = ipv4.Config if ipv4 is not None else None
            nics.append({
                "token": n.token, "enabled": bool(n.Enabled),
                "name": n.Info.Name if n.Info is not None else None,
                "mac": n.Info.HwAddress if n.Info is not None else None,
                "mtu": n.Info.MTU if n.Info is not None else None,
                "ipv4": [f"{a.Address}/{a.PrefixLength}" for a in (cfg.Manual or [])] if cfg is not None else [],
                "dhcp": bool(cfg.DHCP) if cfg is not None else None,
            })
        return nics

    def _settings_streams(self) -> list[dict[str, Any]]:
        out = []
        for c in self._call("media", "GetVideoEncoderConfigurations") or []:
            rc, res = c.RateControl, c.Resolution
            out.append({
                "token": c.token, "name": _clean(c.Name), "codec": codec_name(c.Encoding),
                "width": res.Width if res is not None else None, "height": res.Height if res is not None else None,
                "fps": rc.FrameRateLimit if rc is not None else None,
                "bitrate_kbps": rc.BitrateLimit if rc is not None else None,
                "gov_length": c.H264.GovLength if c.H264 is not None else None,
                "quality": c.Quality,
            })
        return out


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class RecordingInfo:
    """The fields of a tt:RecordingInformation the driver uses."""

    token: str
    source_id: str | None
    name: str | None
    earliest: dt.datetime | None
    latest: dt.datetime | None
    status: str


def _answer_element(client, service: str, operation: str, reply):
    """The answer element inside the SOAP Body of a raw reply. A fault or an HTTP error goes through zeep's own
    reply handling, so it raises exactly what the zeep path raises."""
    if reply.status_code == 200 and reply.content:
        root = reply.root if reply.root is not None else check_wellformed(reply.content)
        body = root.find("{*}Body")
        answer = next((c for c in body if X.local(c.tag)), None) if body is not None else None
        if answer is None:
            raise ProtocolError(f"{operation}: answer without a SOAP body")
        if X.local(answer.tag) != "Fault":
            return answer
    binding = client.wsdl.bindings[SERVICES[service][1]]
    binding.process_reply(client, binding.get(operation), reply)
    raise ProtocolError(f"{operation}: HTTP {reply.status_code} without a SOAP fault")


def _xs_time(text: str | None) -> dt.datetime | None:
    try:
        return parse_xs_datetime(text) if text else None
    except ValueError:
        return None


def _result_list(answer):
    result_list = X.find(answer, "ResultList")
    if result_list is None:
        raise ProtocolError(f"{X.local(answer.tag)} without a ResultList")
    return result_list, X.text(result_list, "SearchState", "")


def parse_recording_results(answer) -> tuple[str, list[RecordingInfo]]:
    """GetRecordingSearchResultsResponse → (SearchState, its RecordingInformation)."""
    result_list, state = _result_list(answer)
    infos = []
    for info in X.children(result_list, "RecordingInformation"):
        infos.append(RecordingInfo(
            token=X.text(info, "RecordingToken", ""), source_id=X.text(info, "Source/SourceId"),
            name=X.text(info, "Source/Name"), earliest=_xs_time(X.text(info, "EarliestRecording")),
            latest=_xs_time(X.text(info, "LatestRecording")), status=X.text(info, "RecordingStatus", "")))
    return state, infos


def parse_event_results(answer) -> tuple[str, list[tuple[str, dt.datetime, bool]]]:
    """GetEventSearchResultsResponse → (SearchState, (recording token, time, IsDataPresent) of every
    tns1:RecordingHistory/Track/State result); results of other events are left out."""
    result_list, state = _result_list(answer)
    out = []
    for result in X.children(result_list, "Result"):
        when, token = _xs_time(X.text(result, "Time")), X.text(result, "RecordingToken")
        present = None
        for data in X.iter_local(result, "Data"):  # Event/Message/Message/Data
            for item in X.children(data, "SimpleItem"):
                if item.get("Name") == "IsDataPresent":
                    present = _truthy(item.get("Value"))
        if when is not None and token and present is not None:
            out.append((token, when, present))
    return state, out


def decode_backup(content: bytes, content_type: str) -> list[tuple[str | None, str, bytes]]:
    """(name, content type, bytes) of each file in a GetSystemBackup answer: MTOM/XOP multipart as devices
    send it, or base64 inline in tt:Data as some firmware does."""
    parts: dict[str, tuple[str, bytes]] = {}
    root_xml = content
    if "multipart/" in content_type.lower():
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + content)
        payloads = [p for p in msg.iter_parts()]
        if not payloads:
            raise ProtocolError("empty multipart backup answer")
        root_xml = payloads[0].get_payload(decode=True) or b""
        for p in payloads[1:]:
            cid = (p.get("Content-ID") or "").strip().strip("<>")
            parts[cid] = (p.get_content_type(), p.get_payload(decode=True) or b"")
    root = check_wellformed(root_xml)
    out = []
    for bf in root.iter(f"{{{NS_DEVICE}}}BackupFiles"):
        name = bf.findtext(f"{{{NS_SCHEMA}}}Name")
        data_el = bf.find(f"{{{NS_SCHEMA}}}Data")
        if data_el is None:
            continue
        ctype = data_el.get("{http://www.w3.org/2005/05/xmlmime}contentType") or ""
        inc = data_el.find(f"{{{XOP_NS}}}Include")
        if inc is not None:
            href = (inc.get("href") or "")
            cid = href[4:] if href.startswith("cid:") else href
            from urllib.parse import unquote

            part = parts.get(unquote(cid))
            if part is None:
                raise ProtocolError(f"backup part {href!r} missing from the multipart answer")
            out.append((name, ctype or part[0], part[1]))
        elif data_el.text and data_el.text.strip():
            try:
                out.append((name, ctype, base64.b64decode(data_el.text.strip(), validate=True)))
            except ValueError:
                raise ProtocolError("backup data is neither an XOP include nor base64") from None
    return out


# --- settings snapshot (tasks/snapshot.py) ------------------------------------------------------------------------------------------------------
def normalize_settings(raw: dict[str, Any]) -> dict[str, Any]:
    out = S.empty()
    ident = raw.get("identity") or {}
    out["identity"] = {"vendor": "onvif", "manufacturer": S.to_str(ident.get("manufacturer")),
                       "model": S.to_str(ident.get("model")), "serial": S.to_str(ident.get("serial")),
                       "firmware": S.to_str(ident.get("firmware")), "name": None, "mac": None,
                       "device_type": None}
    t = raw.get("time") or {}
    out["time"] = {"timezone": S.to_str(t.get("timezone")), "mode": S.to_str(t.get("mode")),
                   "ntp_enabled": t.get("ntp_enabled"), "ntp_servers": [s for s in (t.get("ntp_servers") or []) if s]}
    streams = []
    if raw.get("stream_info"):  # the driver's own profile → channel mapping (Driver.streams())
        for s in raw["stream_info"]:
            streams.append({"channel": S.to_int(s.get("channel")) or 1, "main": bool(s.get("main")),
                            "codec": S.codec(s.get("codec")), "width": S.to_int(s.get("width")),
                            "height": S.to_int(s.get("height")), "fps": S.num(s.get("fps")),
                            "bitrate_kbps": S.num(s.get("bitrate_kbps"))})
    else:  # encoder configurations only: best effort from names and tokens
        for s in raw.get("streams") or []:
            name = (S.to_str(s.get("name")) or "") + " " + (S.to_str(s.get("token")) or "")
            main = not re.search(r"sub|second|minor|extra", name, re.I)
            streams.append({"channel": 1, "main": main, "codec": S.codec(s.get("codec")),
                            "width": S.to_int(s.get("width")), "height": S.to_int(s.get("height")),
                            "fps": S.num(s.get("fps")), "bitrate_kbps": S.num(s.get("bitrate_kbps")),
                            "token": S.to_str(s.get("token"))})
    out["streams"] = streams
    out["users"] = [{"name": S.to_str(u.get("name")), "level": S.to_str(u.get("level"))}
                    for u in raw.get("users") or [] if S.to_str(u.get("name"))]
    nics = []
    for n in raw.get("network") or []:
        nics.append({"name": S.to_str(n.get("name")) or S.to_str(n.get("token")), "mac": (S.to_str(n.get("mac")) or "").lower()
                     or None, "ipv4": list(n.get("ipv4") or []), "dhcp": n.get("dhcp")})
    out["network"] = {"interfaces": nics, "hostname": None}
    out["ports"] = {k: S.to_int(v) for k, v in (raw.get("ports") or {}).items() if S.to_int(v)}
    if raw.get("recording"):
        out["recording"] = {"mode": S.to_str(S.get(raw, "recording", "mode")), "schedule": None}
    if out["identity"]["mac"] is None and nics:
        out["identity"]["mac"] = nics[0]["mac"]
    return out
