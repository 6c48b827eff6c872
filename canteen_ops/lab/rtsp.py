"""A real RTSP server for the lab (RFC 2326), streaming H.264 over RTP (RFC 3550 / RFC 6184) on loopback.

One asyncio server process serves many cameras: one listening socket per (host, port) — every lab device has its
own 127.x.y.z address — and one stream per (host, port, path), so each camera and each NVR channel has its own URL
(`/Streaming/Channels/101`, `/cam/realmonitor?channel=1&subtype=0`, ...).

Protocol scope:
- OPTIONS, DESCRIBE (SDP with sprop-parameter-sets and a=control per track), SETUP, PLAY, PAUSE, TEARDOWN,
  GET_PARAMETER / SET_PARAMETER (keepalive). Anything else: 501.
- Transport: RTP over the RTSP TCP connection (interleaved, `RTP/AVP/TCP`). A UDP transport request is answered
  461 Unsupported Transport, as cameras restricted to TCP do; FFmpeg then falls back to TCP by itself.
- Auth: Digest (RFC 2617, MD5, qop=auth, and the RFC 2069 form without qop) or Basic, per stream. OPTIONS is open,
  as on most cameras; every other request on a protected stream needs credentials. Wrong credentials → 401 and the
  stream's `auth_failures` counter goes up (tests use it to prove clients never retry a rejected login).
- Unknown path → 404 Not Found (no credentials needed to learn that, as on Hikvision and Dahua).
- H.264 packetization per RFC 6184: single NAL unit packets up to MAX_PAYLOAD, FU-A fragments above; marker bit on
  the last packet of each access unit; 90 kHz timestamps advancing by 90000/fps; paced at the stream's fps on an
  absolute schedule (no drift).

Stream faults (`set_fault(host, port, path, fault)`, at start or while running; they take effect at the next
frame, starting with an IDR): black, frozen, blurred, covered, colour_cast (the picture), low_resolution (the
stream switches to 1280x720, or half size below 1920 wide; SDP and SPS advertise what is streamed), and
no_stream: DESCRIBE, SETUP and PLAY succeed but no RTP is ever sent (an encoder that died behind a live RTSP
service — the case a check must report as "no frames", not as "offline").
Listener faults (`set_listener_fault(host, port, fault)`): offline (the socket is closed: connections are refused)
and black_hole (connections are accepted and read, but nothing is ever answered).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import secrets
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

from canteen_ops.lab.video import EncodedLoop, LoopCache

log = logging.getLogger(__name__)

MAX_PAYLOAD = 1400  # bytes of RTP payload, as on a camera with a 1500-byte MTU
PAYLOAD_TYPE = 96
CLOCK_RATE = 90000
MAX_REQUEST = 16384  # bytes of request head + body; larger requests close the connection
SESSION_TIMEOUT = 60
NONCE_TTL = 300.0
STREAM_FAULTS = ("black", "frozen", "blurred", "covered", "colour_cast", "no_stream", "low_resolution")
LISTENER_FAULTS = ("offline", "black_hole")
PICTURE_FAULTS = ("black", "frozen", "blurred", "covered", "colour_cast")
SERVER = "canteen-ops-lab RTSP/1.0"

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           454: "Session Not Found", 455: "Method Not Valid in This State", 459: "Aggregate Operation Not Allowed",
           461: "Unsupported Transport", 501: "Not Implemented", 503: "Service Unavailable"}
METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER")


def packetize(nal: bytes, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RTP payloads for one NAL unit (RFC 6184 §5.6 single NAL unit, §5.8 FU-A)."""
    if len(nal) <= max_payload:
        return [nal]
    header, body = nal[0], nal[1:]
    indicator = bytes([(header & 0xE0) | 28])  # F and NRI from the NAL, type 28 = FU-A
    kind = header & 0x1F
    chunk = max_payload - 2
    out = []
    for off in range(0, len(body), chunk):
        start = 0x80 if off == 0 else 0
        end = 0x40 if off + chunk >= len(body) else 0
        out.append(indicator + bytes([start | end | kind]) + body[off:off + chunk])
    return out


@dataclass(frozen=True)
class PacketizedLoop:
    """An encoded loop, cut into RTP payloads once: frames[i] = payloads of access unit i."""

    loop: EncodedLoop
    frames: tuple[tuple[bytes, ...], ...]

    @classmethod
    def of(cls, loop: EncodedLoop) -> "PacketizedLoop":
        return cls(loop, tuple(tuple(p for nal in f for p in packetize(nal)) for f in loop.frames))


@dataclass
class Stream:
    host: str
    port: int
    path: str  # path plus query, e.g. "/cam/realmonitor?channel=1&subtype=0"
    width: int = 1920
    height: int = 1080
    fps: float = 25.0
    pattern: str = "kitchen"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth: str = "digest"  # "digest" | "basic"
    fault: str | None = None
    # Live hooks for a fleet whose device state lives elsewhere (lab/state.py): when set, they win over the
    # fields above. fault_source() -> fault name or None; credentials_source() -> (username, password) or None
    # (None = open stream); on_login(ok) is told about every request that carried credentials.
    fault_source: Callable[[], str | None] | None = field(default=None, repr=False)
    credentials_source: Callable[[], tuple[str, str] | None] | None = field(default=None, repr=False)
    on_login: Callable[[bool], None] | None = field(default=None, repr=False)
    # counters (read by tests and `lab status`)
    auth_failures: int = 0
    sessions: int = 0
    playing: int = 0
    frames_sent: int = 0

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    def current_fault(self) -> str | None:
        if self.fault_source is not None:
            try:
                fault = normalize_fault(self.fault_source())
            except Exception:  # a broken hook must not kill the stream
                return self.fault
            return fault if fault in STREAM_FAULTS else None
        return self.fault

    def current_credentials(self) -> tuple[str | None, str | None]:
        if self.credentials_source is not None:
            creds = self.credentials_source()
            return (creds[0], creds[1]) if creds else (None, None)
        return self.username, self.password

    def geometry(self, fault: str | None = None) -> tuple[int, int]:
        """The resolution actually streamed (low_resolution changes it)."""
        if (fault if fault is not None else self.current_fault()) != "low_resolution":
            return self.width, self.height
        if self.width >= 1920:
            return 1280, 720
        return max(2, self.width // 4 * 2), max(2, self.height // 4 * 2)

    def loop_key(self) -> tuple:
        return self.loop_key_for(self.current_fault())

    def loop_key_for(self, fault: str | None) -> tuple:
        """The encoded loop this stream shows under `fault` (None = healthy)."""
        w, h = self.geometry(fault or "")
        return LoopCache.key(self.pattern, w, h, self.fps, fault if fault in PICTURE_FAULTS else None)


class _Request:
    __slots__ = ("method", "url", "version", "headers", "body")

    def __init__(self, method: str, url: str, version: str, headers: dict[str, str], body: bytes):
        self.method, self.url, self.version, self.headers, self.body = method, url, version, headers, body

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


def _parse_auth_params(value: str) -> dict[str, str]:
    """Parse `k=v, k="v"` pairs of a Digest Authorization header (quoted strings may hold commas)."""
    out, i, n = {}, 0, len(value)
    while i < n:
        while i < n and value[i] in " ,\t":
            i += 1
        eq = value.find("=", i)
        if eq < 0:
            break
        key = value[i:eq].strip().lower()
        i = eq + 1
        if i < n and value[i] == '"':
            j = i + 1
            buf = []
            while j < n and value[j] != '"':
                if value[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(value[j])
                j += 1
            out[key] = "".join(buf)
            i = j + 1
        else:
            j = value.find(",", i)
            j = n if j < 0 else j
            out[key] = value[i:j].strip()
            i = j
    return out


def _md5(s: str) -> str:
    return hashlib.md5(s.encode("utf-8")).hexdigest()


class RtspServer:
    """The lab's RTSP server. Use from an asyncio loop (`await add_stream(...)`) or via `RtspServerThread`."""

    def __init__(self, cache: LoopCache | None = None, *, cache_dir: str | os.PathLike | None = None,
                 realm: str = "canteen-lab"):
        self.cache = cache or LoopCache(cache_dir)
        self.realm = realm
        self.streams: dict[tuple[str, int, str], Stream] = {}
        self._listeners: dict[tuple[str, int], asyncio.AbstractServer | None] = {}
        self._listener_faults: dict[tuple[str, int], str] = {}
        self._packetized: dict[tuple, PacketizedLoop] = {}
        self._pending: dict[tuple, asyncio.Future] = {}
        self._nonces: dict[str, float] = {}
        self._conns: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.requests = 0

    # ---------- registry ----------
    async def add_stream(self, host: str, port: int, path: str, width: int = 1920, height: int = 1080,
                         fps: float = 25.0, pattern: str = "kitchen",
                         credentials: tuple[str, str] | None = None, *, auth: str = "digest",
                         fault: str | None = None, warm: bool = False,
                         fault_source: Callable[[], str | None] | None = None,
                         credentials_source: Callable[[], tuple[str, str] | None] | None = None,
                         on_login: Callable[[bool], None] | None = None) -> Stream:
        """Register a stream (binding its (host, port) listener if new). `warm=True` encodes its loop now.

        Port 0 binds an ephemeral port (see the returned Stream.port). The *_source/on_login hooks let a fleet
        drive faults and credentials from its own device state (see Stream).
        """
        if auth not in ("digest", "basic"):
            raise ValueError("auth must be 'digest' or 'basic'")
        fault = _check_fault(fault, STREAM_FAULTS)
        _check_loopback(host)
        path = _norm_path(path)
        user, pw = credentials if credentials else (None, None)
        port = await self._ensure_listener(host, int(port))  # port 0: an ephemeral port, chosen here
        stream = Stream(host, port, path, int(width), int(height), float(fps), pattern, user, pw, auth, fault,
                        fault_source, credentials_source, on_login)
        self.streams[(host, port, path)] = stream
        if warm:
            await self._loop_for(stream.loop_key())
        return stream

    def remove_stream(self, host: str, port: int, path: str) -> None:
        self.streams.pop((host, int(port), _norm_path(path)), None)

    def stream(self, host: str, port: int, path: str) -> Stream:
        return self.streams[(host, int(port), _norm_path(path))]

    def set_fault(self, host: str, port: int, path: str, fault: str | None) -> None:
        self.stream(host, port, path).fault = _check_fault(fault, STREAM_FAULTS)

    async def set_listener_fault(self, host: str, port: int, fault: str | None) -> None:
        fault = _check_fault(fault, LISTENER_FAULTS)
        key = (host, int(port))
        if fault:
            self._listener_faults[key] = fault
        else:
            self._listener_faults.pop(key, None)
        server = self._listeners.get(key)
        if fault == "offline" and server is not None:
            server.close()
            await server.wait_closed()
            self._listeners[key] = None
        elif fault != "offline" and key in self._listeners and server is None:
            await self._ensure_listener(*key)

    async def _ensure_listener(self, host: str, port: int) -> int:
        """Bind (host, port) unless bound (or offline); returns the port (the real one when asked for 0)."""
        key = (host, port)
        if self._listeners.get(key) is not None or self._listener_faults.get(key) == "offline":
            self._listeners.setdefault(key, None)
            return port
        holder: list[tuple[str, int]] = []
        server = await asyncio.start_server(lambda r, w: self._on_connect(r, w, holder[0]), host, port,
                                            reuse_address=True, limit=MAX_REQUEST)
        port = server.sockets[0].getsockname()[1]
        holder.append((host, port))
        self._listeners[(host, port)] = server
        return port

    async def close(self) -> None:
        for server in self._listeners.values():
            if server is not None:
                server.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._conns):
            t.cancel()
        for server in self._listeners.values():
            if server is not None:
                await server.wait_closed()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        self._listeners.clear()

    # ---------- encoded loops ----------
    async def _loop_for(self, key: tuple) -> PacketizedLoop:
        ready = self._packetized.get(key)
        if ready is not None:
            return ready
        fut = self._pending.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._pending[key] = fut

            async def build() -> None:
                try:
                    loop = await asyncio.to_thread(self.cache.get, *key[:4], key[4] or None)
                    p = await asyncio.to_thread(PacketizedLoop.of, loop)
                    self._packetized[key] = p
                    fut.set_result(p)
                except BaseException as exc:  # the waiters see the failure; a later call retries
                    fut.set_exception(exc)
                    fut.exception()
                finally:
                    self._pending.pop(key, None)

            asyncio.get_running_loop().create_task(build())
        return await asyncio.shield(fut)

    # ---------- connections ----------
    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        self._writers.add(writer)
        try:
            if self._listener_faults.get(key) == "black_hole":
                while await reader.read(65536):  # swallow everything, answer nothing
                    pass
                return
            await _Connection(self, reader, writer, key).serve()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:  # a hostile or broken client costs its own connection, nothing more
            log.debug("RTSP connection on %s:%s failed", *key, exc_info=True)
        finally:
            self._conns.discard(task)
            self._writers.discard(writer)
            writer.close()

    # ---------- auth ----------
    def new_nonce(self) -> str:
        now = time.monotonic()
        if len(self._nonces) > 10000:
            self._nonces = {n: t for n, t in self._nonces.items() if now - t < NONCE_TTL}
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = now
        return nonce

    def challenge(self, stream: Stream, stale: bool = False) -> str:
        if stream.auth == "basic":
            return f'Basic realm="{self.realm}"'
        return (f'Digest realm="{self.realm}", nonce="{self.new_nonce()}", algorithm=MD5, qop="auth"'
                + (", stale=TRUE" if stale else ""))

    def check_auth(self, stream: Stream, req: _Request) -> tuple[bool, bool]:
        """(authorised, stale). Counts a failure only when credentials were sent and were wrong."""
        username, password = stream.current_credentials()
        if username is None:
            return True, False
        value = req.header("authorization")
        if not value:
            return False, False
        scheme, _, rest = value.partition(" ")
        ok = False
        if scheme.lower() == "basic" and stream.auth == "basic":
            try:
                user, _, pw = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")
                ok = secrets.compare_digest(user, username) and secrets.compare_digest(pw, password or "")
            except (ValueError, UnicodeDecodeError):
                ok = False
        elif scheme.lower() == "digest" and stream.auth == "digest":
            p = _parse_auth_params(rest)
            ha1 = _md5(f"{username}:{self.realm}:{password or ''}")
            if p.get("algorithm", "MD5").upper() == "MD5-SESS":
                ha1 = _md5(f"{ha1}:{p.get('nonce', '')}:{p.get('cnonce', '')}")
            ha2 = _md5(f"{req.method}:{p.get('uri', '')}")
            if p.get("qop"):
                expected = _md5(f"{ha1}:{p.get('nonce', '')}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p['qop']}:{ha2}")
            else:
                expected = _md5(f"{ha1}:{p.get('nonce', '')}:{ha2}")
            ok = (p.get("username") == username and p.get("realm") == self.realm
                  and p.get("qop", "auth") == "auth" and secrets.compare_digest(p.get("response", ""), expected))
            issued = self._nonces.get(p.get("nonce", ""))
            if ok and (issued is None or time.monotonic() - issued > NONCE_TTL):
                return False, True  # right password, old nonce: ask again with stale=TRUE, not a failure
        if not ok:
            stream.auth_failures += 1
        if stream.on_login is not None:
            stream.on_login(ok)
        return ok, False


class _Connection:
    """One client's RTSP connection (and, once playing, its interleaved RTP)."""

    def __init__(self, server: RtspServer, reader, writer, key):
        self.server, self.reader, self.writer, self.key = server, reader, writer, key
        self.session: str | None = None
        self.stream: Stream | None = None
        self.channel = 0
        self.sender: asyncio.Task | None = None
        self.ssrc = struct.unpack(">I", os.urandom(4))[0]
        self.seq = struct.unpack(">H", os.urandom(2))[0]
        self.rtp_base = struct.unpack(">I", os.urandom(4))[0]
        self.frames_played = 0
        self.write_lock = asyncio.Lock()

    async def serve(self) -> None:
        try:
            while True:
                req = await self._read_request()
                if req is None:
                    return
                self.server.requests += 1
                if not await self._handle(req):
                    return
        finally:
            if self.sender:
                self.sender.cancel()
                await asyncio.gather(self.sender, return_exceptions=True)

    async def _read_request(self) -> _Request | None:
        r = self.reader
        while True:
            first = await r.read(1)
            if not first:
                return None
            if first == b"$":  # interleaved data from the client (RTCP receiver reports): skip it
                hdr = await r.readexactly(3)
                await r.readexactly(struct.unpack(">H", hdr[1:])[0])
                continue
            if first in b"\r\n":
                continue
            try:
                head = first + await r.readuntil(b"\r\n\r\n")
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
                return None
            break
        lines = head.decode("utf-8", "replace").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("RTSP/"):
            await self._reply(400, {}, cseq=None)
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST:
            await self._reply(400, {}, cseq=headers.get("cseq"))
            return None
        body = await r.readexactly(length) if length else b""
        return _Request(parts[0].upper(), parts[1], parts[2], headers, body)

    async def _reply(self, code: int, headers: dict[str, str], body: bytes = b"", *, cseq: str | None) -> None:
        lines = [f"RTSP/1.0 {code} {REASONS.get(code, 'Error')}"]
        if cseq is not None:
            lines.append(f"CSeq: {cseq}")
        lines.append(f"Server: {SERVER}")
        lines.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
        for k, v in headers.items():
            lines.append(f"{k}: {v}")
        if body:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        async with self.write_lock:
            self.writer.write(data)
            await self.writer.drain()

    def _locate(self, url: str) -> tuple[Stream | None, str | None]:
        """Map a request URL to (stream, track control) — control is None for the aggregate URL."""
        parsed = urllib.parse.urlsplit(url)
        path = parsed.path or "/"
        if parsed.query:
            path += "?" + parsed.query
        streams = self.server.streams
        host, port = self.key
        s = streams.get((host, port, _norm_path(path)))
        if s is not None:
            return s, None
        head, _, tail = path.rstrip("/").rpartition("/")
        if tail.startswith("trackID="):
            return streams.get((host, port, _norm_path(head))), tail
        return None, None

    async def _handle(self, req: _Request) -> bool:
        cseq = req.header("cseq")
        if req.method not in METHODS:
            await self._reply(501, {"Public": ", ".join(METHODS)}, cseq=cseq)
            return True
        if req.method == "OPTIONS":
            await self._reply(200, {"Public": ", ".join(METHODS)}, cseq=cseq)
            return True
        stream, track = (self.stream, None) if req.url == "*" else self._locate(req.url)
        if stream is None:
            await self._reply(404, {}, cseq=cseq)
            return True
        ok, stale = self.server.check_auth(stream, req)
        if not ok:
            await self._reply(401, {"WWW-Authenticate": self.server.challenge(stream, stale)}, cseq=cseq)
            return True
        handler = getattr(self, "_" + req.method.lower())
        return await handler(req, stream, track, cseq)

    async def _describe(self, req, stream: Stream, track, cseq) -> bool:
        try:
            loop = (await self.server._loop_for(stream.loop_key())).loop
        except Exception:
            await self._reply(503, {}, cseq=cseq)
            return True
        host = self.key[0]
        sdp = "\r\n".join([
            "v=0",
            f"o=- {int(time.time())} 1 IN IP4 {host}",
            "s=canteen-ops lab camera",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "a=range:npt=0-",
            f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
            f"a=rtpmap:{PAYLOAD_TYPE} H264/{CLOCK_RATE}",
            f"a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={loop.profile_level_id};"
            f"sprop-parameter-sets={loop.sprop_parameter_sets}",
            f"a=framerate:{loop.fps:g}",
            f"a=x-dimensions:{loop.width},{loop.height}",
            "a=control:trackID=1",
            "",
        ]).encode()
        base = f"rtsp://{host}:{self.key[1]}{stream.path}/"
        await self._reply(200, {"Content-Type": "application/sdp", "Content-Base": base}, sdp, cseq=cseq)
        return True

    async def _setup(self, req, stream: Stream, track, cseq) -> bool:
        if track not in (None, "trackID=1"):
            await self._reply(404, {}, cseq=cseq)
            return True
        transport = req.header("transport", "")
        chosen = None
        for spec in transport.split(","):
            params = [p.strip() for p in spec.split(";")]
            if params and params[0].upper() == "RTP/AVP/TCP":
                chosen = params
                break
        if chosen is None:
            await self._reply(461, {}, cseq=cseq)
            return True
        channel = 0
        for p in chosen:
            if p.startswith("interleaved="):
                try:
                    channel = int(p.split("=", 1)[1].split("-")[0])
                except ValueError:
                    await self._reply(400, {}, cseq=cseq)
                    return True
        if not 0 <= channel <= 254:
            await self._reply(400, {}, cseq=cseq)
            return True
        if self.session is None:
            self.session = secrets.token_hex(8)
            stream.sessions += 1
        self.stream, self.channel = stream, channel
        await self._reply(200, {
            "Transport": f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1};ssrc={self.ssrc:08X}",
            "Session": f"{self.session};timeout={SESSION_TIMEOUT}"}, cseq=cseq)
        return True

    def _session_ok(self, req) -> bool:
        sid = (req.header("session") or "").split(";")[0].strip()
        return self.session is not None and sid == self.session

    async def _play(self, req, stream: Stream, track, cseq) -> bool:
        if not self._session_ok(req) or stream is not self.stream:
            await self._reply(454, {}, cseq=cseq)
            return True
        seq, rtptime = self.seq, self._timestamp(self.frames_played)
        await self._reply(200, {
            "Session": self.session,
            "Range": "npt=0.000-",
            "RTP-Info": f"url=rtsp://{self.key[0]}:{self.key[1]}{stream.path}/trackID=1;seq={seq};rtptime={rtptime}",
        }, cseq=cseq)
        if self.sender is None or self.sender.done():
            self.sender = asyncio.get_running_loop().create_task(self._send_loop(stream))
        return True

    async def _pause(self, req, stream, track, cseq) -> bool:
        if not self._session_ok(req):
            await self._reply(454, {}, cseq=cseq)
            return True
        if self.sender:
            self.sender.cancel()
            await asyncio.gather(self.sender, return_exceptions=True)
            self.sender = None
        await self._reply(200, {"Session": self.session}, cseq=cseq)
        return True

    async def _teardown(self, req, stream, track, cseq) -> bool:
        if self.sender:
            self.sender.cancel()
            await asyncio.gather(self.sender, return_exceptions=True)
            self.sender = None
        await self._reply(200, {}, cseq=cseq)
        self.session = None
        return False  # close the connection, as cameras do after TEARDOWN

    async def _get_parameter(self, req, stream, track, cseq) -> bool:
        headers = {"Session": self.session} if self.session else {}
        await self._reply(200, headers, cseq=cseq)
        return True

    _set_parameter = _get_parameter

    def _timestamp(self, frame_no: int) -> int:
        fps = self.stream.fps if self.stream else 25.0
        return (self.rtp_base + round(frame_no * CLOCK_RATE / fps)) & 0xFFFFFFFF

    async def _send_loop(self, stream: Stream) -> None:
        """Send access units at the stream's fps on an absolute schedule; a fault change switches at an IDR."""
        loop = asyncio.get_running_loop()
        key = stream.loop_key()
        current = await self.server._loop_for(key)
        index = 0  # position inside the current loop
        period = 1.0 / stream.fps
        start = loop.time()
        requested = key
        stream.playing += 1
        try:
            while True:
                want = stream.loop_key()
                if want != key:
                    ready = self.server._packetized.get(want)
                    if ready is not None:
                        key, current, index = want, ready, 0
                    elif want != requested:  # encode in the background; keep streaming the old picture
                        requested = want
                        loop.create_task(_swallow(self.server._loop_for(want)))
                if stream.current_fault() != "no_stream":
                    await self._send_frame(current.frames[index], self._timestamp(self.frames_played))
                    stream.frames_sent += 1
                index = (index + 1) % len(current.frames)
                self.frames_played += 1
                delay = start + self.frames_played * period - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -1.0:  # far behind (a stalled reader): skip ahead instead of bursting
                    start = loop.time() - self.frames_played * period
        finally:
            stream.playing -= 1

    async def _send_frame(self, payloads: tuple[bytes, ...], timestamp: int) -> None:
        parts = []
        last = len(payloads) - 1
        ch = self.channel
        for i, payload in enumerate(payloads):
            marker = 0x80 if i == last else 0
            rtp = struct.pack(">BBHII", 0x80, marker | PAYLOAD_TYPE, self.seq, timestamp, self.ssrc)
            self.seq = (self.seq + 1) & 0xFFFF
            parts.append(struct.pack(">cBH", b"$", ch, len(rtp) + len(payload)))
            parts.append(rtp)
            parts.append(payload)
        async with self.write_lock:
            self.writer.write(b"".join(parts))
            await self.writer.drain()


async def _swallow(aw) -> None:
    try:
        await aw
    except Exception:
        pass


def _norm_path(path: str) -> str:
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > 1:
        path = path.rstrip("/")
    return path


# The fleet's fault names (lab/state.py, `lab fault`) are hyphenated; both spellings are accepted.
FAULT_ALIASES = {"colour-cast": "colour_cast", "color_cast": "colour_cast", "color-cast": "colour_cast",
                 "no-stream": "no_stream", "low-res": "low_resolution", "low_res": "low_resolution",
                 "low-resolution": "low_resolution", "blackhole": "black_hole", "black-hole": "black_hole"}


def normalize_fault(fault: str | None) -> str | None:
    return FAULT_ALIASES.get(fault, fault) if fault else None


def _check_fault(fault: str | None, allowed: tuple[str, ...]) -> str | None:
    fault = normalize_fault(fault)
    if fault is not None and fault not in allowed:
        raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(allowed)}")
    return fault


def _check_loopback(host: str) -> None:
    # The lab never listens anywhere but loopback (a safety rule of the project).
    import ipaddress

    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the lab listens on loopback only, not {host}")


class RtspServerThread:
    """Run an RtspServer on its own event loop thread, with blocking methods (tests, benchmarks, demos).

    with RtspServerThread() as lab:
        lab.add_stream("127.0.1.5", 8554, "/Streaming/Channels/101", 320, 180, 25, credentials=("admin", "pw"))
    """

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self.server: RtspServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="rtsp-lab", daemon=True)

    def start(self) -> "RtspServerThread":
        self._thread.start()
        self.server = self._call(self._make())
        return self

    async def _make(self) -> RtspServer:
        return RtspServer(**self._kwargs)

    def _call(self, coro, timeout: float = 120.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add_stream(self, *args, **kwargs) -> Stream:
        return self._call(self.server.add_stream(*args, **kwargs))

    def set_fault(self, host: str, port: int, path: str, fault: str | None) -> None:
        async def run():
            self.server.set_fault(host, port, path, fault)
        self._call(run())

    def set_listener_fault(self, host: str, port: int, fault: str | None) -> None:
        self._call(self.server.set_listener_fault(host, port, fault))

    def stream(self, host: str, port: int, path: str) -> Stream:
        return self.server.stream(host, port, path)

    def stop(self) -> None:
        if self.server is not None and self._thread.is_alive():
            self._call(self.server.close(), timeout=10)
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()

    def __enter__(self) -> "RtspServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m canteen_ops.lab.rtsp`: serve N identical cameras on consecutive loopback addresses.

    For benchmarks and manual tests (the fleet's `lab up` registers streams itself). The password comes from the
    environment variable named by --password-env, never from the command line.
    """
    import argparse
    import ipaddress
    import signal

    ap = argparse.ArgumentParser(prog="python -m canteen_ops.lab.rtsp", description=main.__doc__)
    ap.add_argument("--first-host", default="127.0.2.1")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--path", default="/Streaming/Channels/101")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--sub-path", default=None, help="also serve a sub-stream on each camera, e.g. /Streaming/Channels/102")
    ap.add_argument("--sub-size", default="640x360")
    ap.add_argument("--fault", default=None)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password-env", default="LAB_RTSP_PASSWORD")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args(argv)
    width, height = (int(x) for x in args.size.lower().split("x"))
    password = os.environ.get(args.password_env)
    creds = (args.user, password) if password else None
    first = ipaddress.ip_address(args.first_host)

    async def serve() -> None:
        server = RtspServer(cache_dir=args.cache_dir)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_reader(0, lambda: stop.set() if not os.read(0, 4096) else None)  # stdin closed: stop
        sub_w, sub_h = (int(x) for x in args.sub_size.lower().split("x"))
        for i in range(args.count):
            await server.add_stream(str(first + i), args.port, args.path, width, height, args.fps,
                                    credentials=creds, fault=args.fault, warm=(i == 0))
            if args.sub_path:
                await server.add_stream(str(first + i), args.port, args.sub_path, sub_w, sub_h, args.fps,
                                        credentials=creds, fault=args.fault, warm=(i == 0))
        print(f"ready {args.count} streams rtsp://{first}:{args.port}{args.path} .. "
              f"rtsp://{first + args.count - 1}:{args.port}{args.path}", flush=True)
        await stop.wait()
        await server.close()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
