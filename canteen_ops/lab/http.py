"""The lab's HTTP/1.1 server core: one listening socket per simulated device, all on one asyncio loop.

Raw asyncio protocols, no framework, because one process must serve ≥ 1,000 devices cheaply (and shares the
cores with the checks it serves: its CPU is the benchmarks' noise, not a device's). The core parses
requests, routes them to the device's protocol handler (ISAPI, Dahua CGI, ONVIF) and applies the faults that
live at the transport level, so every protocol gets them the same way:

- offline: the device's listening socket is closed and its open connections dropped (connection refused),
- blackhole: connections are accepted and requests read, but nothing is ever answered,
- slow: answers are delayed (without blocking the loop),
- malformed-xml / xml-bomb / oversized-body: a successful answer's body is corrupted, replaced by an
  entity-expansion bomb with the same root element, or padded to 64 MiB and streamed in small chunks,
- cut-head: the answer stops in the middle of its headers and the connection closes (a device rebooting or a
  flaky link mid-answer), for every request or those whose path contains the fault's value.

Handlers are plain functions `handle(state, req) -> Response`: synchronous, fast, and working only on the
DeviceState they are given.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
import time
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

from canteen_ops.lab.state import DeviceState
from canteen_ops.lab.wire import Request, Response  # the one definition of the handler interface

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 128 * 1024 * 1024  # a firmware image or config restore
IDLE_TIMEOUT_S = 75.0  # keep-alive connections idle longer than this are closed
OVERSIZED_BYTES = 64 * 1024 * 1024
CHUNK = 64 * 1024

REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}


Handler = Callable[[DeviceState, Request], Response]


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --- routing ----------------------------------------------------------------------------------------------
def _handler(module: str) -> Handler | None:
    """Protocol modules are imported on first use; a missing one (ONVIF not written yet) answers 404."""
    try:
        return importlib.import_module(module).handle
    except ImportError as exc:
        if exc.name != module:  # the module exists but is broken: that must not be hidden
            raise
        return None


def route(state: DeviceState, req: Request) -> Response:
    """Pick the protocol front-end for this device and path; unknown paths get the vendor's 404."""
    p = req.path
    module = None
    if p.startswith("/onvif/"):  # every vendor speaks ONVIF too (Hikvision and Dahua ship it enabled)
        module = "canteen_ops.lab.onvif"
    elif p.startswith("/ISAPI/") and state.vendor == "hikvision":
        module = "canteen_ops.lab.isapi"
    elif p.startswith("/cgi-bin/") and state.vendor == "dahua":
        module = "canteen_ops.lab.dahua"
    handler = _handler(module) if module else None
    if handler is not None:
        return handler(state, req)
    if state.vendor == "hikvision":
        from canteen_ops.lab import isapi

        return isapi.not_found(state, req)
    if state.vendor == "dahua":
        return Response(404, {"Content-Type": "text/plain;charset=utf-8"}, b"Error\r\nBad Request!\r\n")
    return Response(404, {"Content-Type": "text/plain"}, b"Not Found\n")


# --- request parsing ----------------------------------------------------------------------------------------
async def read_request(reader: asyncio.StreamReader, client_ip: str) -> Request | None:
    """One request from a keep-alive stream (the lab's control API); None when the client closed it cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest(400, "incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request head too large") from None
    method, target, version, headers, length = parse_head(head)
    body = await reader.readexactly(length) if length else b""
    return make_request(method, target, version, headers, body, client_ip)


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str], int]:
    """A request head (up to and including the blank line) → method, target, version, headers (lower-case
    names) and the body's length. BadRequest for anything a device would refuse."""
    try:
        text = head.decode("iso-8859-1")
        request_line, *header_lines = text[:-4].split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise BadRequest(400, "bad request line") from None
    if not version.startswith("HTTP/1.") or not method.isalpha():
        raise BadRequest(400, "unsupported protocol")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequest(501, "chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "bad Content-Length") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise BadRequest(413, "body too large")
    return method, target, version, headers, length


def make_request(method: str, target: str, version: str, headers: dict[str, str], body: bytes,
                 client_ip: str) -> Request:
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    headers["x-http-version"] = version  # lets the core honour HTTP/1.0 semantics
    return Request(method.upper(), parts.path or "/", query, headers, body, client_ip)


# --- hostile bodies ---------------------------------------------------------------------------------------
_ROOT = re.compile(rb"<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)(\s[^>]*?)?/?>")


def _root_element(body: bytes) -> tuple[str, str]:
    """Name and attributes of the document element (skipping the XML declaration and comments)."""
    for m in _ROOT.finditer(body):
        name = (m.group(1) or b"") + m.group(2)
        return name.decode(), (m.group(3) or b"").decode()
    return "root", ""


def xml_bomb(body: bytes) -> bytes:
    """A billion-laughs document whose root element matches the real answer's (so only DTD checks catch it)."""
    name, attrs = _root_element(body)
    ents = ['<!ENTITY lol "lol">']
    for i in range(1, 10):
        prev = "lol" if i == 1 else f"lol{i - 1}"
        ents.append(f'<!ENTITY lol{i} "' + f"&{prev};" * 10 + '">')
    doc = (f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE {name} [\n  ' + "\n  ".join(ents) + "\n]>\n"
           f"<{name}{attrs}>&lol9;</{name}>\n")
    return doc.encode()


def malformed(body: bytes, ctype: str) -> bytes:
    """Truncate the body mid-way and leave it broken, as flaky firmware does."""
    cut = body[: max(1, len(body) // 2)]
    if "xml" in ctype:
        return cut + b'<broken attr="&'
    if "json" in ctype:
        return cut + b'{"'
    return cut + b"\xff\xfe\x00 garbled line without separator"


def _kind(ctype: str) -> str:
    c = ctype.lower()
    if "xml" in c or "soap" in c:
        return "xml"
    if "json" in c:
        return "json"
    if c.startswith("text/"):
        return "text"
    return "binary"


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)))
    return _date_cache[1]


# --- the server -------------------------------------------------------------------------------------------
class Endpoint:
    """One device's HTTP listener and its open connections."""

    def __init__(self, state: DeviceState):
        self.state = state
        self.server: asyncio.AbstractServer | None = None
        self.conns: set[_Connection] = set()


class LabHTTP:
    """Serves many devices, each on its own host:port, from one event loop (created by the caller)."""

    def __init__(self, router: Callable[[DeviceState, Request], Response] = route):
        self.router = router
        self.endpoints: dict[str, Endpoint] = {}
        self.requests = 0  # answered requests, for benchmarks
        # Idle connections are closed by one sweeper, not by a timer per connection or request: arming and
        # cancelling a timer per request was ~7 % of the lab's CPU on a 1,000-device check (py-spy).
        self._last_active: dict[_Connection, float] = {}
        self._sweeper: asyncio.Task | None = None

    async def _sweep_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(5.0, IDLE_TIMEOUT_S / 3))
            cutoff = loop.time() - IDLE_TIMEOUT_S
            for conn, last in list(self._last_active.items()):
                if last < cutoff:
                    conn.transport.abort()  # connection_lost cleans up

    async def add(self, state: DeviceState) -> None:
        import ipaddress

        if not ipaddress.ip_address(state.host).is_loopback:  # a safety rule of the project
            raise ValueError(f"{state.id}: the lab listens on loopback only, not {state.host}")
        ep = Endpoint(state)
        self.endpoints[state.id] = ep
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle())
        await self.sync(state.id)

    async def sync(self, device_id: str) -> None:
        """Open or close the device's listening socket to match its `offline` fault."""
        ep = self.endpoints[device_id]
        if ep.state.has("offline"):
            if ep.server is not None:
                ep.server.close()
                ep.server = None
            for c in list(ep.conns):  # a powered-off device drops its connections too
                c.transport.abort()
            ep.conns.clear()
        elif ep.server is None:
            loop = asyncio.get_running_loop()
            for attempt in range(5):  # a socket closed a moment ago can take a little while to let go
                try:
                    ep.server = await loop.create_server(lambda ep=ep: _Connection(self, ep), ep.state.host,
                                                         ep.state.http_port, reuse_address=True, backlog=64)
                    break
                except OSError as exc:
                    if attempt == 4 or ep.state.has("offline"):
                        raise OSError(exc.errno, f"{ep.state.id}: cannot listen on "
                                                 f"{ep.state.host}:{ep.state.http_port}: {exc.strerror}") from None
                    await asyncio.sleep(0.05 * (attempt + 1))

    async def remove(self, device_id: str) -> None:
        ep = self.endpoints.pop(device_id, None)
        if ep is None:
            return
        if ep.server is not None:
            ep.server.close()
        for c in list(ep.conns):
            c.transport.abort()

    async def close(self) -> None:
        for device_id in list(self.endpoints):
            await self.remove(device_id)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None


class _Connection(asyncio.Protocol):
    """One client connection to one simulated device: keep-alive requests cut from the receive buffer and
    answered in order, inside data_received. An answer that has to wait (the slow fault, an oversized body
    streamed with back-pressure) runs as a task while reading is paused.

    Protocol callbacks rather than asyncio streams: with streams every request cost a task wake-up, futures and
    several turns of the loop (a minimal streams server needs ~90 us of CPU a request on the reference machine,
    a protocol one ~65 us), and the lab shares the cores with the checks it serves."""

    def __init__(self, http: LabHTTP, ep: Endpoint):
        self.http, self.ep = http, ep
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made
        self.peer = "?"
        self.buf = bytearray()
        self.waiting: asyncio.Task | None = None  # an answer being delayed or streamed
        self.swallow = False  # blackhole: read and discard until the client gives up
        self.eof = False
        self._writable: asyncio.Future | None = None  # pending while the transport's buffer is full

    # --- asyncio callbacks ----------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        self.ep.conns.add(self)
        self.http._last_active[self] = asyncio.get_running_loop().time()

    def connection_lost(self, exc) -> None:
        self.ep.conns.discard(self)
        self.http._last_active.pop(self, None)
        if self.waiting is not None:
            self.waiting.cancel()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def data_received(self, data: bytes) -> None:
        if self.swallow:
            return
        self.buf += data
        if self.waiting is None:
            self._answer_buffered()

    def eof_received(self) -> bool:
        self.eof = True
        if self.waiting is not None:
            return True  # the delayed answer still goes out; its task closes the connection
        if self.buf.strip() and not self.swallow:
            part = "body" if b"\r\n\r\n" in self.buf else "head"
            self._refuse(BadRequest(400, f"incomplete request {part}"))
        return False  # close

    # --- requests -------------------------------------------------------------------------------------------
    def _answer_buffered(self) -> None:
        while self.waiting is None and not self.transport.is_closing():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0 or end + 4 > MAX_HEADER_BYTES:
                if end >= 0 or len(self.buf) > MAX_HEADER_BYTES:
                    self._refuse(BadRequest(431, "request head too large"))
                return
            try:
                method, target, version, headers, length = parse_head(bytes(self.buf[:end + 4]))
            except BadRequest as exc:
                self._refuse(exc)
                return
            if len(self.buf) < end + 4 + length:
                return  # the body is still coming
            body = bytes(self.buf[end + 4:end + 4 + length])
            del self.buf[:end + 4 + length]
            req = make_request(method, target, version, headers, body, self.peer)
            state = self.ep.state
            if state.has("blackhole"):
                self.swallow = True
                self.buf.clear()
                return
            if state.has("slow"):
                self._later(self._slow(state, req))
                return
            if not self._answer(state, req):
                return

    def _answer(self, state: DeviceState, req: Request) -> bool:
        """Route and write one answer; False when the connection ends or the answer is still being streamed."""
        if _cut_head(state, req):
            return self._cut(state, req)
        head, body, pad, kind, keep = self._prepare(state, req)
        if pad:
            self._later(self._stream(head, body, pad, kind, keep, state))
            return False
        self.transport.write(head + body)  # one send: a separate head wakes the client twice per answer
        return self._after(keep, state)

    def _prepare(self, state: DeviceState, req: Request) -> tuple[bytes, bytes, int, str, bool]:
        resp = self._route(state, req)
        keep = (req.headers.get("connection", "").lower() != "close"
                and req.headers.get("x-http-version") != "HTTP/1.0"
                and resp.headers.get("Connection", "").lower() != "close")
        self.http.requests += 1
        return (*_render(state, resp, keep, hostile=True), keep)

    def _cut(self, state: DeviceState, req: Request) -> bool:
        """cut-head: the status line and half of the header lines, then the connection closes."""
        head = self._prepare(state, req)[0]
        status_end = head.index(b"\r\n") + 2
        self.transport.write(head[:status_end + (len(head) - status_end) // 2])
        self.transport.close()
        return False

    def _after(self, keep: bool, state: DeviceState) -> bool:
        if not keep or state.has("offline") or self.eof:
            self.transport.close()
            return False
        self.http._last_active[self] = asyncio.get_running_loop().time()
        return True

    def _route(self, state: DeviceState, req: Request) -> Response:
        try:
            return self.http.router(state, req)
        except Exception:  # a handler bug must not kill the server; it is a 500 like on a device
            log.exception("handler failed for %s %s on %s", req.method, req.path, state.id)
            return Response(500, {"Content-Type": "text/plain"}, b"internal error\n")

    def _refuse(self, exc: BadRequest) -> None:
        head, body, _, _ = _render(self.ep.state, Response(exc.status, {"Content-Type": "text/plain"},
                                                           f"{exc}\n".encode()), False, hostile=False)
        self.transport.write(head + body)
        self.transport.close()

    # --- answers that wait ----------------------------------------------------------------------------------
    def _later(self, work) -> None:
        self.transport.pause_reading()
        self.waiting = asyncio.get_running_loop().create_task(self._finish(work))

    async def _finish(self, work) -> None:
        try:
            keep_going = await work
        except (ConnectionError, asyncio.CancelledError):
            self.transport.abort()
            return
        self.waiting = None
        if keep_going and not self.transport.is_closing():
            self.transport.resume_reading()
            self._answer_buffered()

    async def _slow(self, state: DeviceState, req: Request) -> bool:
        await asyncio.sleep(state.fault_value("slow", 2000.0) / 1000.0)
        if _cut_head(state, req):
            return self._cut(state, req)
        head, body, pad, kind, keep = self._prepare(state, req)
        if pad:
            return await self._stream(head, body, pad, kind, keep, state)
        self.transport.write(head + body)
        return self._after(keep, state)

    async def _stream(self, head: bytes, body: bytes, pad: int, kind: str, keep: bool, state: DeviceState) -> bool:
        """Oversized body: the real answer with ~64 MiB of filler inside it, streamed without buffering."""
        if kind == "xml":  # filler as a comment right after the root's start tag: still well-formed
            name, _ = _root_element(body)
            at = body.find(b">", body.find(b"<" + name.encode())) + 1 if name != "root" else 0
            prefix, suffix, fill_open, fill_close = body[:at], body[at:], b"<!--", b"-->"
        elif kind == "json":
            prefix, suffix, fill_open, fill_close = b"", body, b"", b""  # leading whitespace is valid JSON
        else:
            prefix, suffix, fill_open, fill_close = body, b"", b"", b""
        filler_byte = b"x" if kind == "xml" else (b" " if kind == "json" else b"\0" if kind == "binary" else b"#")
        n = pad - len(fill_open) - len(fill_close)
        self.transport.write(head + prefix + fill_open)
        chunk = filler_byte * CHUNK
        while n > 0:
            self.transport.write(chunk[: min(n, CHUNK)])
            n -= CHUNK
            if self._writable is not None:  # back-pressure: a client that stops reading stops us too
                await self._writable
        self.transport.write(fill_close + suffix)
        return self._after(keep, state)


def _cut_head(state: DeviceState, req: Request) -> bool:
    if not state.has("cut-head"):
        return False
    only = state.faults.get("cut-head")
    return not only or only in req.path


def _render(state: DeviceState, resp: Response, keep: bool, hostile: bool) -> tuple[bytes, bytes, int, str]:
    """(head, body, filler bytes to stream inside the body, body kind) of an answer, with the device's
    body faults applied to successful answers when `hostile`."""
    headers = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-length", "connection")}
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    body, pad = resp.body, 0
    if hostile and resp.status == 200:
        kind = _kind(ctype)
        if state.has("xml-bomb") and kind == "xml":
            body = xml_bomb(body)
        elif state.has("malformed-xml") and kind != "binary":
            body = malformed(body, kind)
        if state.has("oversized-body"):
            pad = max(0, OVERSIZED_BYTES - len(body))
    head = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}", f"Date: {_http_date()}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head += [f"Content-Length: {len(body) + pad}", f"Connection: {'keep-alive' if keep else 'close'}", "", ""]
    return "\r\n".join(head).encode("latin-1", "replace"), body, pad, _kind(ctype)
