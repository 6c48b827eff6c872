"""The ONVIF driver's SOAP plumbing: zeep with the WSDLs shipped by onvif-zeep, parsed once per process and shared
by every device, posting through the device's httpx connection, with a WS-Security token per device.

Why not `onvif.ONVIFCamera` per device: it parses the WSDLs again for every device (~150 ms CPU each), calls
CreatePullPointSubscription behind our back, skips the Search/Recording XAddrs (protocols.md C.3) and configures
the root logger on import. Here each WSDL becomes one zeep Client per process (built lazily under a lock); a
device gets shallow copies of those clients carrying its own WS-Security token and transport, bound to its
XAddrs with `create_service(binding, xaddr)` (driver.py).

Hostile answers: the transport caps the body size and parses every answer with xmlsafe.parse (no DTD, entity
or external load; not recovering) before zeep sees it (zeep's non-strict mode would otherwise "recover" a
truncated document into partial data); zeep itself parses with the same things forbidden.

zeep is imported inside the functions that use it: importing this module does not load it.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from canteen_ops.drivers import recorder
from canteen_ops.drivers.base import DriverError, NotSupported, ProtocolError
from canteen_ops.drivers.onvif.parsers import MAX_BODY, NS_DEVICE, NS_MEDIA, NS_SEARCH, check_wellformed
from canteen_ops.drivers.transport import DeviceTransport, TlsPolicy, device_client, read_body

# service name → (WSDL file in onvif-zeep's wsdl/, binding QName, namespace used in GetServices)
SERVICES = {
    "device": ("devicemgmt.wsdl", f"{{{NS_DEVICE}}}DeviceBinding", NS_DEVICE),
    "media": ("media.wsdl", f"{{{NS_MEDIA}}}MediaBinding", NS_MEDIA),
    "search": ("search.wsdl", f"{{{NS_SEARCH}}}SearchBinding", NS_SEARCH),
}


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
