"""Encode a lab picture loop to H.264 once, split it into NAL units, and cache it.

A stream in the lab loops one short GOP (one IDR then P frames, no B frames) with rewritten RTP timestamps, so a
thousand cameras cost one encode per distinct (pattern, fault, size, fps) and nothing per frame but packet
headers. Encoded loops are kept in memory and, when a cache directory is given, on disk (encoding 1080p takes a
few seconds; a cached loop loads in milliseconds).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

CACHE_VERSION = 3  # bump when the picture or the encoder settings change
LOOP_SECONDS = 2.0


@dataclass(frozen=True)
class EncodedLoop:
    """One GOP of H.264: `frames[i]` is the list of NAL units (no start codes) of access unit i."""

    width: int
    height: int
    fps: float
    sps: bytes
    pps: bytes
    frames: tuple[tuple[bytes, ...], ...]

    @property
    def profile_level_id(self) -> str:
        return self.sps[1:4].hex().upper()

    @property
    def sprop_parameter_sets(self) -> str:
        return f"{base64.b64encode(self.sps).decode()},{base64.b64encode(self.pps).decode()}"

    @property
    def bitrate_bps(self) -> float:
        size = sum(len(n) for f in self.frames for n in f)
        return size * 8 * self.fps / max(len(self.frames), 1)


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream into NAL units (start codes of 3 or 4 bytes)."""
    nals, i, n = [], 0, len(data)
    starts = []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nal = data[s:end]
        if k + 1 < len(starts) and nal.endswith(b"\x00"):
            nal = nal[:-1]  # the next start code was 4 bytes long
        if nal:
            nals.append(nal)
    return nals


def _loop_frames(fps: float) -> int:
    n = max(2, round(fps * LOOP_SECONDS))
    return n + (n % 2)  # even, so the exposure jitter alternates across the loop seam too


def encoder_name() -> str:
    import av

    for name in ("libx264", "libopenh264", "h264"):
        if name in av.codecs_available:
            try:
                av.codec.Codec(name, "w")
                return name
            except Exception:
                continue
    raise RuntimeError("PyAV offers no H.264 encoder")


def encode_loop(width: int, height: int, fps: float, fault: str | None = None, pattern: str = "kitchen") -> EncodedLoop:
    """Render and encode one loop (CPU-heavy at 1080p: seconds). Pure function of its arguments."""
    import av

    from canteen_ops.lab import picture

    if pattern not in picture.PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}")
    if width % 2 or height % 2:
        raise ValueError("width and height must be even for yuv420p")
    count = _loop_frames(fps)
    name = encoder_name()
    ctx = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    ctx.time_base = 1 / rate
    ctx.framerate = rate
    ctx.gop_size = count
    ctx.max_b_frames = 0
    if name == "libx264":
        # One IDR per loop, no B frames (decode order = display order), SPS/PPS repeated before the IDR as
        # cameras do. Constant QP with P = I quality: a static picture is coded once and then skipped, so a frozen
        # camera's decoded frames are identical (rate control would keep "refining" them for a dozen frames).
        ctx.options = {"preset": "veryfast", "tune": "zerolatency",
                       "x264-params": f"keyint={count}:min-keyint={count}:scenecut=0:bframes=0:repeat-headers=1"
                                      ":qp=24:ipratio=1.0"}
    else:
        ctx.bit_rate = int(width * height * fps * 0.1)
    frames: list[tuple[bytes, ...]] = []
    sps = pps = b""

    def take(packets) -> None:
        nonlocal sps, pps
        for pkt in packets:
            units = []
            for nal in split_annexb(bytes(pkt)):
                kind = nal[0] & 0x1F
                if kind == 7:
                    sps = sps or nal
                elif kind == 8:
                    pps = pps or nal
                if kind in (6, 9):  # SEI (x264's banner) and access unit delimiters: not needed on the wire
                    continue
                units.append(nal)
            frames.append(tuple(units))

    for i in range(count):
        img = picture.render(width, height, i, count, fault, fps=fps)
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        take(ctx.encode(vf))
    take(ctx.encode(None))
    if not sps or not pps:
        raise RuntimeError(f"{name} produced no SPS/PPS")
    if len(frames) != count or (frames[0][0][0] & 0x1F) != 7:
        raise RuntimeError(f"{name} produced {len(frames)} access units for {count} frames or no leading IDR")
    return EncodedLoop(width, height, float(fps), sps, pps, tuple(frames))


# ---- on-disk format: magic, header length, JSON header, then the NAL units back to back ----
_MAGIC = b"CANTEENLOOP1"


def _dump(loop: EncodedLoop) -> bytes:
    sizes = [[len(n) for n in f] for f in loop.frames]
    header = json.dumps({"width": loop.width, "height": loop.height, "fps": loop.fps,
                         "sps": len(loop.sps), "pps": len(loop.pps), "sizes": sizes}).encode()
    body = b"".join([loop.sps, loop.pps] + [n for f in loop.frames for n in f])
    return _MAGIC + struct.pack(">I", len(header)) + header + body


def _load(data: bytes) -> EncodedLoop:
    if not data.startswith(_MAGIC):
        raise ValueError("not a lab loop file")
    (hlen,) = struct.unpack_from(">I", data, len(_MAGIC))
    off = len(_MAGIC) + 4
    h = json.loads(data[off:off + hlen])
    off += hlen
    sps = data[off:off + h["sps"]]; off += h["sps"]
    pps = data[off:off + h["pps"]]; off += h["pps"]
    frames = []
    for sizes in h["sizes"]:
        units = []
        for s in sizes:
            units.append(data[off:off + s]); off += s
        frames.append(tuple(units))
    if off != len(data):
        raise ValueError("truncated lab loop file")
    return EncodedLoop(h["width"], h["height"], float(h["fps"]), sps, pps, tuple(frames))


class LoopCache:
    """Thread-safe cache of encoded loops: each key is encoded once, even when many threads ask at once."""

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._loops: dict[tuple, EncodedLoop] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.encodes = 0  # how many loops this cache actually encoded (for tests and benchmarks)

    @staticmethod
    def key(pattern: str, width: int, height: int, fps: float, fault: str | None) -> tuple:
        return (pattern, int(width), int(height), float(fps), fault or "")

    def peek(self, key: tuple) -> EncodedLoop | None:
        return self._loops.get(key)

    def get(self, pattern: str, width: int, height: int, fps: float, fault: str | None = None) -> EncodedLoop:
        key = self.key(pattern, width, height, fps, fault)
        loop = self._loops.get(key)
        if loop is not None:
            return loop
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            loop = self._loops.get(key)
            if loop is None:
                loop = self._read_disk(key) or self._encode(key)
                self._loops[key] = loop
        return loop

    def _path(self, key: tuple) -> Path | None:
        if not self.cache_dir:
            return None
        digest = hashlib.sha256(repr((CACHE_VERSION, encoder_name()) + key).encode()).hexdigest()[:24]
        return self.cache_dir / f"{key[0]}-{key[1]}x{key[2]}-{key[3]:g}fps-{key[4] or 'ok'}-{digest}.h264loop"

    def _read_disk(self, key: tuple) -> EncodedLoop | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            return _load(path.read_bytes())
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache file is re-encoded and overwritten

    def _encode(self, key: tuple) -> EncodedLoop:
        pattern, w, h, fps, fault = key
        loop = encode_loop(w, h, fps, fault or None, pattern)
        self.encodes += 1
        path = self._path(key)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
                with os.fdopen(fd, "wb") as f:
                    f.write(_dump(loop))
                os.replace(tmp, path)
            except OSError:
                pass  # the disk cache is an optimisation only
        return loop
