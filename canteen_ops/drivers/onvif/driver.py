"""The ONVIF driver (OnvifDriver): the getters of drivers/base.py over ONVIF device management, media and search,
on the shared zeep clients and the per-device transport and token of transport.py, reading answers with parsers.py.

Per device:
- the first authenticated call is preceded by one unauthenticated GetSystemDateAndTime; the device-minus-host
  offset shifts the UsernameToken `Created` (as onvif-zeep's adjust_time), so a drifted device still accepts us;
- XAddrs come from GetServices (GetCapabilities as fallback) and are re-pointed at the inventory's host:port,
  so a device behind NAT, or one that names another address, is still reached only where the inventory says;
- faults map to the driver errors: NotAuthorized → AuthFailed (recorded in auth_guard, never retried),
  ActionNotSupported → NotSupported, refused → Offline, no answer → Timeout, bad XML/bodies → ProtocolError.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

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
    auth_guard,
    reason,
)
from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.onvif.parsers import (
    NS_MEDIA,
    NS_SCHEMA,
    NS_SEARCH,
    DeviceInformation,
    RecordingInfo,
    SystemDateAndTime,
    _attr,
    _clean,
    _truthy,
    channel_numbers,
    check_wellformed,
    codec_name,
    decode_backup,
    normalize_settings,
    parse_device_information,
    parse_event_results,
    parse_ntp_servers,
    parse_recording_results,
    parse_system_date_and_time,
    repoint,
    spans_from_events,
    strip_credentials,
)
from canteen_ops.drivers.onvif.transport import (
    SERVICES,
    _is_not_authorized,
    _Token,
    _Transport,
    _WantsAuth,
    shared_client,
)
from canteen_ops.drivers.spans import clipped
from canteen_ops.drivers.transport import DeviceTransport, TlsPolicy

PRE_AUTH = frozenset({"GetSystemDateAndTime", "GetServices", "GetCapabilities"})
OFFSET_MAX_AGE_S = 2.0  # a clock reading this fresh is reused by clock() instead of asking again
MAX_RESULT_PAGES = 100  # GetRecordingSearchResults / GetEventSearchResults loop bound


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
        return normalize_settings(raw)  # parsers.normalize_settings: settings() → the neutral snapshot

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
        if {"ActionNotSupported", "NoSuchService", "InvalidOperation"} & set(subs) or _GSOAP_UNKNOWN.search(message):
            # gSOAP firmware answers an operation it lacks with a bare Sender fault "Method 'X' not implemented:
            # method name or namespace not recognized" (corpus onvif/IPD-H4K8M05-BS)
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
            try:
                self._read_clock()
            except NotSupported:
                # Some firmware has no GetSystemDateAndTime at all (a HiKam A7 in agsh/onvif#65): the WS-Security
                # token is then built on this machine's clock, and the device's answer to it decides.
                self._token.offset = dt.timedelta(0)
                self._offset_known = True

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
        profiles = self._get_profiles()
        sources = [p.VideoSourceConfiguration.SourceToken if p.VideoSourceConfiguration is not None else None
                   for p in profiles]
        out, seen = [], set()
        for ch, p in zip(channel_numbers(sources), profiles):
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
        for ch, info in zip(channel_numbers([info.source_id or info.token for info in infos]), infos):
            out.setdefault(ch, info)
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


_GSOAP_UNKNOWN = re.compile(r"\bnot implemented: method name or namespace not recognized")


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
