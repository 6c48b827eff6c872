"""Open an RTSP stream with PyAV under a hard deadline, describe it, and decode a few frames for quality checks.

`probe_stream(url, username=..., password=..., timeout=..., frames=...)` never raises for a device problem: it
returns a StreamProbe whose `error` tells what went wrong, one of

    refused       TCP connection refused (nothing listens on the RTSP port: device or service down)
    unreachable   no route / host down (connect failed other than refused or timed out)
    timeout       no RTSP answer within the deadline (TCP accepted or not answered at all: a hung device)
    unauthorized  the device rejected the credentials (401/403). Never retried: one failed login per probe.
    not_found     the device answers RTSP but knows no such stream (404)
    no_frames     the RTSP session was set up but no video frame was decoded before the deadline
    protocol      the peer does not speak RTSP, or the stream cannot be decoded

How it is bounded: one OPTIONS request on a raw socket first (no credentials, so it never counts as a login) tells
"refused", "unreachable" and "hung" apart from "answers RTSP". PyAV then opens the stream with
`rtsp_transport=tcp`, FFmpeg's socket I/O timeout option (`timeout`, in µs, on FFmpeg ≥ 5 — the installed
PyAV bundles FFmpeg 8; FFmpeg 4.x called it `stimeout`, see `socket_timeout_option()`), and PyAV's own
`timeout=` which installs an interrupt callback. All of that runs in a worker thread that the caller waits for
only until the overall deadline: even if FFmpeg blocked somewhere uninterruptible, `probe_stream` returns on time
(the worker then ends by itself within its own timeouts).

Passwords: the URL handed to FFmpeg carries the credentials; nothing this module returns or raises does
(`StreamProbe.url` is redacted, messages are built from our own words and FFmpeg's error class, never from
FFmpeg's message text, which can quote the URL).
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from canteen_ops.redact import redact_text

ERRORS = ("refused", "unreachable", "timeout", "unauthorized", "not_found", "no_frames", "protocol")
DEFAULT_MAX_WIDTH = 640  # frames are scaled down to this width for the quality metrics (keeps memory small)


@dataclass
class StreamProbe:
    url: str  # redacted: never holds the password
    ok: bool = False
    error: str | None = None  # one of ERRORS when not ok
    message: str = ""
    codec: str | None = None
    profile: str | None = None
    width: int | None = None  # as streamed (decoded frame size), not as scaled for the metrics
    height: int | None = None
    fps: float | None = None  # measured from frame timestamps when possible, else the stream's rate
    bitrate_bps: float | None = None  # estimate over the frames read (includes the IDR, so biased high)
    connect_s: float | None = None  # TCP connect latency
    open_s: float | None = None  # until the stream was set up and described (DESCRIBE/SETUP/PLAY + probe)
    time_to_first_frame_s: float | None = None  # from the start of the probe
    elapsed_s: float = 0.0
    frames: list[Any] = field(default_factory=list, repr=False)  # RGB uint8 numpy arrays (H, W, 3), scaled
    frame_times: list[float] = field(default_factory=list, repr=False)  # seconds (stream timestamps)

    @property
    def resolution(self) -> str | None:
        return f"{self.width}x{self.height}" if self.width and self.height else None

    def to_dict(self) -> dict[str, Any]:
        """Facts for results and the log (no frames, no secrets)."""
        return {k: getattr(self, k) for k in (
            "url", "ok", "error", "message", "codec", "profile", "width", "height", "fps", "bitrate_bps",
            "connect_s", "open_s", "time_to_first_frame_s", "elapsed_s")} | {"frames_decoded": len(self.frames)}


def socket_timeout_option() -> str:
    """Name of FFmpeg's RTSP socket I/O timeout option for the FFmpeg inside PyAV (µs in both cases)."""
    import av

    major = av.library_versions.get("libavformat", (59,))[0]
    return "timeout" if major >= 59 else "stimeout"  # libavformat 59 = FFmpeg 5.0


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """Put URL-quoted credentials into an rtsp:// URL (replacing any userinfo already there)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if username is not None:
        userinfo = urllib.parse.quote(username, safe="")
        if password is not None:
            userinfo += ":" + urllib.parse.quote(password, safe="")
        netloc = f"{userinfo}@{netloc}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _public_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _preflight(host: str, port: int, deadline: float, result: StreamProbe) -> bool:
    """TCP connect + an unauthenticated OPTIONS. Fills result.error and returns False when the device fails."""
    t0 = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=max(deadline - t0, 0.001))
    except ConnectionRefusedError:
        result.error, result.message = "refused", f"connection refused by {host}:{port} (RTSP service down)"
        return False
    except (socket.timeout, TimeoutError):
        result.error, result.message = "timeout", f"no answer to TCP connect to {host}:{port}"
        return False
    except OSError as exc:
        result.error = "unreachable"
        result.message = f"cannot connect to {host}:{port}: {exc.strerror or type(exc).__name__}"
        return False
    result.connect_s = round(time.monotonic() - t0, 4)
    try:
        with sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(f"OPTIONS rtsp://{host}:{port}/ RTSP/1.0\r\nCSeq: 1\r\n"
                         f"User-Agent: canteen-ops\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
    except (socket.timeout, TimeoutError):
        result.error = "timeout"
        result.message = f"{host}:{port} accepted the connection but sent no RTSP answer in time (device hung)"
        return False
    except OSError as exc:
        result.error = "protocol"
        result.message = f"{host}:{port} dropped the connection: {exc.strerror or type(exc).__name__}"
        return False
    if not head.startswith(b"RTSP/1."):
        result.error = "protocol"
        result.message = f"{host}:{port} does not answer like an RTSP server"
        return False
    return True


def _classify(exc: BaseException) -> tuple[str, str]:
    import av.error as e

    if isinstance(exc, (e.HTTPUnauthorizedError, e.HTTPForbiddenError)):
        return "unauthorized", "the device rejected the credentials (401 Unauthorized); not retried"
    if isinstance(exc, e.HTTPNotFoundError):
        return "not_found", "the device has no such stream (404 Not Found)"
    if isinstance(exc, (e.ExitError, e.TimeoutError, TimeoutError)):
        return "no_frames", "the device answers RTSP but delivered no video before the deadline"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused when opening the stream"
    if isinstance(exc, (ConnectionError, EOFError, e.EOFError)):
        return "no_frames", f"the device closed the stream ({type(exc).__name__}) before any frame"
    if isinstance(exc, e.HTTPClientError):
        return "protocol", f"the device refused the stream request ({type(exc).__name__})"
    return "protocol", f"cannot open or decode the stream ({type(exc).__name__})"


def _open_and_decode(ff_url: str, result: StreamProbe, start: float, deadline: float, frames: int,
                     sample: int, max_width: int | None) -> None:
    import av

    remaining = max(deadline - time.monotonic(), 0.05)
    options = {"rtsp_transport": "tcp", socket_timeout_option(): str(int(remaining * 1e6)),
               # No stream analysis at open: the facts are read from the decoded frames below. It saves a
               # duplicate decode of the first frames (the costliest, the IDR) and ~0.1-0.2 s to the first frame.
               "analyzeduration": "0", "probesize": "32"}
    try:
        # skip_frame=all for the codec contexts of the open-time stream analysis: it decodes the first picture
        # otherwise (the IDR: ~20 ms of CPU at 1080p, a frame we decode ourselves or not at all), while the size,
        # rate and codec come from the SDP and the SPS anyway. Our own decoder (the stream's codec context) is
        # not affected. Several entries: the video track is not always the first.
        container = av.open(ff_url, options=options, timeout=(remaining, remaining),
                            stream_options=[{"skip_frame": "all"}] * 4)
    except Exception as exc:  # noqa: BLE001 (classified; never re-raised with FFmpeg's text)
        result.error, result.message = _classify(exc)
        return
    try:
        result.open_s = round(time.monotonic() - start, 4)
        if not container.streams.video:
            result.error, result.message = "protocol", "the stream has no video track"
            return
        vs = container.streams.video[0]
        cc = vs.codec_context
        cc.thread_count = 1  # many probes run in parallel: one decoder thread each scales best
        result.codec = cc.name
        result.profile = cc.profile
        rate = vs.average_rate or vs.guessed_rate
        result.fps = float(rate) if rate else None
        tb = float(vs.time_base) if vs.time_base else 1 / 90000
        nbytes, pts_first, pts_last = 0, None, None
        packet_times: list[float] = []
        packets = 0
        # frames=0: facts only. The SPS (from the SDP's sprop-parameter-sets or in-band) gives the size; nothing
        # is decoded unless the size is still unknown.
        sps_size = (cc.width, cc.height) if cc.width and cc.height else None
        keyframe_at = None
        for packet in container.demux(vs):
            if time.monotonic() > deadline:
                break
            if packet.size:
                packets += 1
                nbytes += packet.size
                if packet.is_keyframe and keyframe_at is None:
                    keyframe_at = round(time.monotonic() - start, 4)
                if packet.pts is not None:
                    pts_first = packet.pts if pts_first is None else min(pts_first, packet.pts)
                    pts_last = packet.pts if pts_last is None else max(pts_last, packet.pts)
                    packet_times.append(packet.pts * tb)
            if frames == 0 and sps_size:
                if packets >= sample and keyframe_at is not None:
                    break
                continue
            if frames and len(result.frames) >= frames:
                # enough pictures: keep reading (not decoding) packets for the fps and bitrate estimates
                if packets >= sample:
                    break
                continue
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                continue  # a damaged packet: keep going, as players do
            for frame in decoded:
                if frames == 0:  # the size was not in the SPS we had: one decoded frame tells it
                    sps_size = (frame.width, frame.height)
                    continue
                if result.time_to_first_frame_s is None:
                    result.time_to_first_frame_s = round(time.monotonic() - start, 4)
                result.width, result.height = frame.width, frame.height  # as streamed, before scaling
                result.frame_times.append(frame.pts * tb if frame.pts is not None else float("nan"))
                if max_width and frame.width > max_width:
                    # Scale in YUV first (area filter), convert the small picture to RGB: ~6x cheaper than
                    # asking swscale for scaled RGB in one step.
                    h = max(2, round(frame.height * max_width / frame.width / 2) * 2)
                    frame = frame.reformat(width=max_width, height=h, format="yuv420p", interpolation="AREA")
                result.frames.append(frame.to_ndarray(format="rgb24"))
            if frames and len(result.frames) >= frames and packets >= sample:
                break
        if frames == 0 and sps_size and keyframe_at is not None:
            result.width, result.height = sps_size
            result.time_to_first_frame_s = keyframe_at  # first keyframe received (nothing decoded)
        elif not result.frames:
            result.error = "no_frames"
            result.message = "the RTSP session was set up but no video frame arrived before the deadline"
            return
        times = sorted(set(packet_times)) if len(set(packet_times)) >= 3 else [
            t for t in result.frame_times if t == t]
        if len(times) >= 3 and times[-1] > times[0]:
            result.fps = round((len(times) - 1) / (times[-1] - times[0]), 2)
        if pts_first is not None and pts_last is not None and result.fps:
            span = (pts_last - pts_first) * tb + 1 / result.fps
            result.bitrate_bps = round(nbytes * 8 / span) if span > 0 else None
        result.ok = True
        rate = f"{result.fps:g} fps" if result.fps else "fps unknown"
        first = "first frame" if result.frames else "first keyframe"
        result.message = (f"{result.codec} {result.width}x{result.height} @ {rate}, "
                          f"{first} after {result.time_to_first_frame_s:.2f} s")
    except Exception as exc:  # noqa: BLE001
        if not result.frames:
            result.error, result.message = _classify(exc)
        else:  # frames arrived, then the stream broke: report what we have
            result.ok = True
            result.message = f"stream ended early after {len(result.frames)} frames ({type(exc).__name__})"
    finally:
        container.close()


def probe_stream(url: str, *, username: str | None = None, password: str | None = None,
                 timeout: float = 10.0, frames: int = 12, sample: int | None = None,
                 max_width: int | None = DEFAULT_MAX_WIDTH) -> StreamProbe:
    """Open `url` (rtsp://host[:port]/path) and decode `frames` frames, all within `timeout` seconds.

    `sample` packets (default: as many as `frames`, at least 12) are read for the fps and bitrate estimates;
    packets past the first `frames` are not decoded. `frames=0` is the cheap "stream facts" probe of a main
    stream: size from the SPS, fps and bitrate from the packets, nothing decoded (decoding is most of the cost at
    1080p: see docs/media.md); use `frames >= policy.frozen_frames` for picture checks.
    """
    frames = max(0, int(frames))
    sample = max(frames, 12) if sample is None else max(frames, int(sample), 1)
    start = time.monotonic()
    deadline = start + timeout
    parts = urllib.parse.urlsplit(url)
    if username is None and parts.username is not None:
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password) if parts.password is not None else password
    secrets = tuple(s for s in (password,) if s)
    public = redact_text(_public_url(url), secrets)
    result = StreamProbe(url=public)
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        result.error, result.message = "protocol", "not an rtsp:// URL"
        return result
    try:
        port = parts.port or 554
    except ValueError:
        result.error, result.message = "protocol", "invalid port in the URL"
        return result

    if _preflight(parts.hostname, port, deadline, result):
        worker_result = StreamProbe(url=public, connect_s=result.connect_s)
        ff_url = with_credentials(url, username, password)
        worker = threading.Thread(
            target=_open_and_decode, args=(ff_url, worker_result, start, deadline, frames, sample, max_width),
            name="stream-probe", daemon=True)
        worker.start()
        worker.join(max(deadline - time.monotonic(), 0) + 0.25)
        if worker.is_alive():
            # FFmpeg did not give up in time: report the timeout now; the worker finishes on its own timeouts.
            # The device did answer OPTIONS, so it is alive: what it did not deliver in time is video.
            result.error = "no_frames"
            result.message = f"the device answers RTSP but delivered no video within the {timeout:g} s deadline"
        else:
            result = worker_result
    result.elapsed_s = round(time.monotonic() - start, 4)
    result.message = redact_text(result.message, secrets)
    return result
