"""Generated pictures for the lab's cameras: a kitchen-like scene with an on-screen clock, and picture faults.

Everything is numpy on RGB uint8 arrays (H, W, 3). The scene is drawn in coordinates relative to the picture
size, so every resolution shows the same kitchen. It carries what the quality metrics look for in a real camera:
- static fine texture (tiles, brushed steel, grain) so the variance of the Laplacian is healthy,
- a near-neutral average colour with some coloured objects (no colour cast),
- motion in every frame outside the OSD (a cook walking, flames, steam, and a little exposure jitter, as a real
  sensor never repeats a frame exactly), so a live stream is never mistaken for a frozen one,
- an OSD clock in the top-left band (the region quality.DEFAULT_OSD_MASK masks).

Faults are applied while rendering (before encoding), as a real camera would produce them.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np

PATTERNS = ("kitchen",)
FAULTS = ("black", "frozen", "blurred", "covered", "colour_cast", "no_stream", "low_resolution")

# The OSD clock is drawn inside this band (fractions of width/height): x0, y0, x1, y1.
OSD_BOX = (0.0, 0.0, 0.42, 0.09)

# 5x7 bitmap font for the OSD (digits and the clock's punctuation).
_FONT = {
    "0": ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    "1": ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    "2": ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    "3": ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
    "4": ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    "5": ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    "6": ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    "7": ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    "8": ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    "9": ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
    "-": ["00000", "00000", "00000", "11111", "00000", "00000", "00000"],
    ":": ["00000", "01100", "01100", "00000", "01100", "01100", "00000"],
    ".": ["00000", "00000", "00000", "00000", "00000", "01100", "01100"],
    " ": ["00000"] * 7,
}
_GLYPHS = {ch: np.array([[c == "1" for c in row] for row in rows], dtype=bool) for ch, rows in _FONT.items()}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _fill_rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour) -> None:
    h, w = img.shape[:2]
    img[int(y0 * h):max(int(y1 * h), int(y0 * h) + 1), int(x0 * w):max(int(x1 * w), int(x0 * w) + 1)] = colour


def _ellipse_mask(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> tuple[slice, slice, np.ndarray]:
    """Mask of an ellipse given in relative coordinates, returned as (rows, cols, mask) over its bounding box."""
    x0, x1 = max(int((cx - rx) * w), 0), min(int((cx + rx) * w) + 1, w)
    y0, y1 = max(int((cy - ry) * h), 0), min(int((cy + ry) * h) + 1, h)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    m = ((xx + 0.5) / w - cx) ** 2 / max(rx, 1e-6) ** 2 + ((yy + 0.5) / h - cy) ** 2 / max(ry, 1e-6) ** 2 <= 1.0
    return slice(y0, y1), slice(x0, x1), m


def _fill_ellipse(img, cx, cy, rx, ry, colour) -> None:
    h, w = img.shape[:2]
    rs, cs, m = _ellipse_mask(h, w, cx, cy, rx, ry)
    img[rs, cs][m] = colour


@lru_cache(maxsize=8)
def _background(width: int, height: int) -> np.ndarray:
    """The static part of the kitchen (computed once per size; callers must copy)."""
    h, w = height, width
    rng = _rng(20261127)
    img = np.empty((h, w, 3), dtype=np.uint8)
    # Wall: white ceramic tiles with grey grout, each tile slightly different.
    img[:] = (206, 208, 204)
    tile = max(w // 24, 4)
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    tint = rng.integers(-10, 11, size=(h // tile + 2, w // tile + 2))
    img[:] = np.clip(img.astype(np.int16) + tint[ys // tile, xs // tile][..., None], 0, 255).astype(np.uint8)
    grout = ((ys % tile) < max(tile // 12, 1)) | ((xs % tile) < max(tile // 12, 1))
    img[grout] = (150, 152, 150)
    # Floor: red-brown quarry tiles.
    floor = slice(int(0.80 * h), h)
    img[floor] = (122, 84, 70)
    ftile = max(w // 16, 4)
    fgrout = ((ys[int(0.80 * h):] % ftile) < max(ftile // 14, 1)) | ((xs % ftile) < max(ftile // 14, 1))
    img[floor][fgrout] = (70, 56, 50)
    # Extraction hood (dark steel) and its filter slats.
    _fill_rect(img, 0.08, 0.14, 0.62, 0.30, (92, 96, 100))
    for i in range(12):
        _fill_rect(img, 0.10 + i * 0.043, 0.20, 0.12 + i * 0.043, 0.28, (58, 60, 64))
    # Shelf with coloured containers (vegetables, spices).
    _fill_rect(img, 0.68, 0.22, 0.98, 0.24, (170, 172, 176))
    _fill_rect(img, 0.68, 0.40, 0.98, 0.42, (170, 172, 176))
    colours = [(196, 40, 36), (58, 140, 54), (220, 184, 40), (236, 236, 230), (40, 90, 170), (150, 80, 40)]
    for row, y in enumerate((0.12, 0.30)):
        for i in range(6):
            c = colours[(i + row * 3) % len(colours)]
            _fill_rect(img, 0.695 + i * 0.048, y, 0.73 + i * 0.048, y + 0.10, c)
    # Stainless counter with brushed (horizontal streak) texture.
    cy0, cy1 = int(0.52 * h), int(0.80 * h)
    streak = rng.normal(0, 9, size=(cy1 - cy0, 1)) + rng.normal(0, 4, size=(cy1 - cy0, w))
    steel = np.clip(172 + streak, 0, 255)
    img[cy0:cy1] = steel[..., None].astype(np.uint8)
    _fill_rect(img, 0.0, 0.52, 1.0, 0.535, (222, 224, 228))  # counter edge highlight
    # Stove top (black) with three pots and burner rings.
    _fill_rect(img, 0.10, 0.50, 0.60, 0.56, (36, 36, 38))
    for cx in (0.18, 0.35, 0.52):
        _fill_ellipse(img, cx, 0.44, 0.065, 0.085, (150, 154, 160))  # pot body
        _fill_ellipse(img, cx, 0.37, 0.065, 0.025, (210, 214, 220))  # rim
        _fill_ellipse(img, cx, 0.37, 0.055, 0.018, (60, 62, 66))     # inside
    # Cutting board with vegetables on the counter.
    _fill_rect(img, 0.66, 0.56, 0.86, 0.66, (196, 160, 110))
    for i, c in enumerate(((196, 40, 36), (58, 140, 54), (230, 120, 30))):
        _fill_ellipse(img, 0.70 + i * 0.06, 0.61, 0.02, 0.03, c)
    # Sensor-like fine grain over everything: real optics resolve fine detail, which is what the Laplacian sees.
    grain = rng.normal(0, 5, size=(h, w, 1))
    img[:] = np.clip(img + grain, 0, 255).astype(np.uint8)
    img.setflags(write=False)
    return img


def _draw_text(img: np.ndarray, text: str, x: int, y: int, scale: int) -> None:
    """White glyphs with a black outline (what camera OSDs do so the clock reads on any scene)."""
    h, w = img.shape[:2]
    for i, ch in enumerate(text):
        g = _GLYPHS.get(ch, _GLYPHS[" "])
        big = np.kron(g, np.ones((scale, scale), dtype=bool))
        gx = x + i * 6 * scale
        gh, gw = big.shape
        if gx + gw + 1 >= w or y + gh + 1 >= h:
            break
        outline = np.zeros((gh + 2, gw + 2), dtype=bool)
        for dy in range(3):
            for dx in range(3):
                outline[dy:dy + gh, dx:dx + gw] |= big
        region = img[y - 1:y + gh + 1, gx - 1:gx + gw + 1]
        region[outline[:region.shape[0], :region.shape[1]]] = (0, 0, 0)
        img[y:y + gh, gx:gx + gw][big] = (255, 255, 255)


def draw_osd(img: np.ndarray, when: dt.datetime) -> None:
    h, w = img.shape[:2]
    scale = max(1, int(h * 0.045) // 7)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    _draw_text(img, text, max(int(0.02 * w), 1), max(int(0.02 * h), 1), scale)


def _linear_indices(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For linear interpolation n_in → n_out (pixel centres aligned): low index, high index, weight of high."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(np.intp)
    return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)


def blur(img: np.ndarray, strength: float = 0.02) -> np.ndarray:
    """Heavy, smooth blur: average down to a coarse grid, then interpolate back (≈ Gaussian, cheap at 1080p)."""
    h, w = img.shape[:2]
    k = max(2, int(w * strength))
    hs, ws = max(h // k, 2), max(w // k, 2)
    small = img[: hs * k, : ws * k].reshape(hs, k, ws, k, 3).mean(axis=(1, 3), dtype=np.float32)
    lo, hi, f = _linear_indices(h, hs)
    rows = small[lo] * (1 - f)[:, None, None] + small[hi] * f[:, None, None]
    lo, hi, f = _linear_indices(w, ws)
    return rows[:, lo] * (1 - f)[None, :, None] + rows[:, hi] * f[None, :, None]


def render(width: int, height: int, index: int, count: int, fault: str | None = None,
           clock: dt.datetime | None = None, fps: float = 25.0, seed: int = 0) -> np.ndarray:
    """Frame `index` of a `count`-frame loop. Motion is periodic over the loop, so the loop is seamless."""
    h, w = height, width
    if fault == "black":
        return np.zeros((h, w, 3), dtype=np.uint8)
    clock = clock or dt.datetime(2026, 11, 27, 8, 30, 0)
    if fault == "frozen":
        index = 0  # the same picture, OSD included: the encoder is stuck
    phase = (index % count) / count
    img = _background(w, h).copy()
    # Flames under the pots flicker every frame.
    rng = _rng(seed * 7919 + index)
    for cx in (0.18, 0.35, 0.52):
        fh = 0.02 + 0.015 * rng.random()
        _fill_ellipse(img, cx, 0.51, 0.05, fh, (40 + int(40 * rng.random()), 90, 230))
        _fill_ellipse(img, cx, 0.51, 0.03, fh * 0.6, (250, 170 + int(60 * rng.random()), 60))
    # Steam rising from the pots: soft light blobs that move up over the loop.
    for j, cx in enumerate((0.18, 0.35, 0.52)):
        p = (phase + j / 3) % 1.0
        cy = 0.33 - 0.20 * p
        rs, cs, m = _ellipse_mask(h, w, cx + 0.02 * np.sin(2 * np.pi * (p + j)), cy, 0.04 + 0.03 * p, 0.035 + 0.02 * p)
        region = img[rs, cs]
        region[m] = (region[m] * 0.55 + 0.45 * 235).astype(np.uint8)
    # A cook in white walks back and forth along the counter.
    x = 0.15 + 0.6 * (0.5 - 0.5 * np.cos(2 * np.pi * phase))
    _fill_rect(img, x - 0.045, 0.34, x + 0.045, 0.80, (232, 234, 236))   # jacket
    _fill_rect(img, x - 0.045, 0.62, x + 0.045, 0.80, (52, 56, 70))      # trousers
    _fill_rect(img, x - 0.044, 0.45, x + 0.044, 0.47, (180, 182, 186))   # apron string
    _fill_ellipse(img, x, 0.28, 0.025, 0.05, (226, 184, 150))           # face
    _fill_rect(img, x - 0.028, 0.17, x + 0.028, 0.245, (248, 248, 248))  # chef's hat
    _fill_rect(img, x - 0.012, 0.30, x + 0.012, 0.315, (170, 190, 210))  # mask
    if fault != "frozen":
        # Exposure jitter alternates every frame, as the auto-exposure of a real sensor never settles exactly.
        offset = 6 if index % 2 == 0 else -6
        lut = np.clip(np.arange(256) + offset, 0, 255).astype(np.uint8)
        img = lut[img]
    if fault == "blurred":
        # Grease or steam on the lens: heavy blur plus a milky haze (the OSD is drawn after: it stays sharp).
        img = (blur(img) * 0.55 + 0.45 * 200).astype(np.uint8)
    elif fault == "covered":
        # Something dark against the lens: near-uniform brownish dark, with a faint gradient.
        yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[:] = (np.array([30, 24, 21], dtype=np.float32) + 3 * yy).astype(np.uint8)
    elif fault == "colour_cast":
        # White balance gone: strong yellow-orange tint.
        img = np.clip(img * np.array([1.0, 0.78, 0.42], dtype=np.float32) + np.array([30, 10, 0]), 0, 255)
        img = img.astype(np.uint8)
    draw_osd(img, clock + dt.timedelta(seconds=int(index / fps)))
    return np.ascontiguousarray(img)
