"""Picture-quality metrics on decoded frames (pure numpy) and the findings they lead to.

Thresholds come from canteen_ops.inventory.model.Policy (defaults from domain.md §0 / §3.2):

    metric                       how                                                   finding (status)
    mean luma 0..255             BT.601 luma, OSD masked                               < dark_luma too dark (warn),
                                                                                       > bright_luma overexposed (warn)
    contrast                     std-dev of luma                                       < low_contrast (warn)
    sharpness                    variance of the 3×3 Laplacian [[0,1,0],[1,-4,1],      < blur_laplacian, or a drop of
                                 [0,1,0]] (OpenCV's ksize=1) on the working-size luma   > blur_drop_pct vs baseline (warn)
    colour cast K                CIE Lab (sRGB, D65) of 4×4-block means: D = |mean(a,b)|, > colour_cast_k (warn)
                                 M = mean absolute deviation of (a,b), K = D / max(M, 5)
    uniform %                    share of 4×4-block means within ±2 hue bins (of 180;   ≥ covered_uniform_pct: black
                                 grey is its own bin) of the peak hue AND within ±10   picture (crit) when mean luma
                                 of the peak luma                                      < 16, else covered/lost (crit)
    frozen run                   consecutive frames whose luma differs by ≤ 2 levels   ≥ frozen_frames frames each
                                 on more than frozen_similarity of the masked pixels   > frozen_similarity (crit)

Choices worth knowing:
- The OSD (on-screen clock, channel name) is masked out of every metric: it is drawn digitally, so it stays sharp
  on a greasy lens and it changes on a frozen picture. Default mask: the top-left band where cameras draw the clock
  (`DEFAULT_OSD_BOXES`, fractions of width and height); pass `osd_boxes=` for other layouts.
- Frames are reduced to a working size (width ≤ 640, by averaging blocks) before measuring, so absolute numbers
  (the Laplacian in particular) mean the same at 720p and 4K, and a 1080p frame costs a few milliseconds.
- The frozen test counts pixels that did not change at all (≤ 2 levels, i.e. codec rounding): a live camera's
  sensor noise and exposure changes every pixel a little from one frame to the next, a stuck encoder repeats it.
- K uses a floor of 5 Lab units for M, so a nearly grey scene with a faint tint is not called a colour cast.
- When the picture is black or uniform, blur, contrast, colour and frozen findings are not reported: they follow
  from the uniform picture and would only bury the real finding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from canteen_ops.status import Status, worst

WORK_WIDTH = 640
DEFAULT_OSD_BOXES: tuple[tuple[float, float, float, float], ...] = ((0.0, 0.0, 0.45, 0.10),)  # x0, y0, x1, y1
BLACK_LUMA = 16.0  # video black level: below it, a uniform picture is "black", not "covered"
FROZEN_TOLERANCE = 2  # luma levels of difference still counted as "unchanged" (codec rounding)
CAST_M_FLOOR = 5.0
HUE_BINS = 180
UNIFORM_BLOCK = 4  # block size (working-size pixels) for the uniform-picture test
STATIC_SAMPLES = 3  # frames (spread over the clip) measured for the per-picture metrics; the median is kept


@dataclass(frozen=True)
class Finding:
    """One conclusion about the picture or the stream. `code` is stable (for tests, reports, playbooks)."""

    status: Status
    code: str  # ok, black, covered, too_dark, overexposed, low_contrast, blurred, colour_cast, frozen, ...
    message: str
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "code": self.code, "message": self.message, "value": self.value}


@dataclass
class PictureMetrics:
    frames: int
    width: int  # working size the metrics were computed at
    height: int
    mean_luma: float
    contrast: float
    sharpness: float  # variance of the Laplacian
    colour_cast_k: float
    uniform_pct: float
    frozen_run: int  # longest run of consecutive frames that did not change (1 = every frame changed)
    min_similarity: float | None  # over consecutive pairs (None with a single frame)
    max_similarity: float | None
    per_frame: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_frame")
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


# ---------------------------------------------------------------- basic conversions
def to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma (float32, 0..255) of an RGB uint8 frame; a 2-D frame is taken as luma already."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    if rgb.dtype == np.uint8:  # integer weights (×256) are exact enough and several times faster
        y = rgb[..., 0] * np.uint16(77) + rgb[..., 1] * np.uint16(150) + rgb[..., 2] * np.uint16(29)
        return y.astype(np.float32) * np.float32(1 / 256)
    f = rgb.astype(np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k×k blocks (float32), as k + k strided additions (numpy's reductions over short strided axes
    are an order of magnitude slower)."""
    h, w = a.shape[:2]
    hh, ww = h // k, w // k
    a = a[: hh * k, : ww * k]
    cols = a[:, 0::k].astype(np.float32)
    for i in range(1, k):
        cols += a[:, i::k]
    out = cols[0::k].copy()
    for i in range(1, k):
        out += cols[i::k]
    return out * np.float32(1 / (k * k))


def reduce(frame: np.ndarray, max_width: int = WORK_WIDTH) -> np.ndarray:
    """Downscale by an integer factor (block mean) so width ≤ max_width (frames already small are returned as is)."""
    h, w = frame.shape[:2]
    k = -(-w // max_width)
    if k <= 1:
        return frame
    return block_mean(frame, k)


def valid_mask(shape: tuple[int, int], osd_boxes: Iterable[Sequence[float]] = DEFAULT_OSD_BOXES) -> np.ndarray:
    """True where a pixel counts (outside every OSD box)."""
    h, w = shape
    m = np.ones((h, w), dtype=bool)
    for x0, y0, x1, y1 in osd_boxes or ():
        m[int(y0 * h):int(np.ceil(y1 * h)), int(x0 * w):int(np.ceil(x1 * w))] = False
    return m


def laplacian(gray: np.ndarray) -> np.ndarray:
    """3×3 Laplacian [[0,1,0],[1,-4,1],[0,1,0]] on the interior (output is 2 pixels smaller each way)."""
    g = gray.astype(np.float32)
    return g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]


def sharpness(gray: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Variance of the Laplacian over pixels whose whole 3×3 neighbourhood is valid."""
    lap = laplacian(gray)
    if mask is None:
        return float(lap.var())
    # a Laplacian value is valid only if its 3×3 neighbourhood is (erode the mask by one pixel)
    m = mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:] & mask[1:-1, 1:-1]
    vals = lap[m]
    return float(vals.var()) if vals.size else 0.0


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (uint8 or 0..255 float) → CIE L*a*b* (D65), float32 (..., 3)."""
    c = rgb.astype(np.float32) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]], dtype=np.float32)
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def colour_cast(rgb: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Equivalent-circle colour cast factor K = D / M in the (a, b) plane (see the module doc)."""
    if rgb.ndim != 3:
        return 0.0
    lab = rgb_to_lab(rgb)
    ab = lab[..., 1:].reshape(-1, 2)
    if mask is not None:
        ab = ab[mask.reshape(-1)]
    if not len(ab):
        return 0.0
    mean = ab.mean(axis=0)
    d = float(np.hypot(*mean))
    dev = np.abs(ab - mean).mean(axis=0)
    m = float(np.hypot(*dev))
    return d / max(m, CAST_M_FLOOR)


def hue_bins(rgb: np.ndarray) -> np.ndarray:
    """Hue in HUE_BINS bins (OpenCV's 0..179 scale); unsaturated or very dark pixels get bin HUE_BINS ("grey")."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    delta = mx - np.minimum(np.minimum(r, g), b)
    safe = np.where(delta == 0, 1.0, delta)
    h = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4))
    bins = (h * (HUE_BINS / 6)).astype(np.int32) % HUE_BINS
    # Hue means nothing for nearly grey or dark pixels (codec rounding swings it wildly): call them "grey".
    grey = (delta < np.maximum(12.0, 0.1 * mx)) | (mx < 32)
    return np.where(grey, HUE_BINS, bins)


def uniform_pct(rgb: np.ndarray, luma: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Share (%) of pixels near both the dominant hue (±2 bins) and the dominant luma (±10 levels)."""
    y = luma if mask is None else luma[mask]
    if not y.size:
        return 0.0
    ypeak = int(np.bincount(np.clip(np.rint(y), 0, 255).astype(np.int32), minlength=256).argmax())
    near_y = np.abs(y - ypeak) <= 10.5
    if rgb.ndim == 3:
        hb = hue_bins(rgb) if mask is None else hue_bins(rgb)[mask]
        hh = np.bincount(hb.reshape(-1), minlength=HUE_BINS + 1)
        peak = int(hh.argmax())
        if peak == HUE_BINS:
            near_h = hb == HUE_BINS
        else:
            dist = np.abs(hb - peak)
            near_h = (hb != HUE_BINS) & (np.minimum(dist, HUE_BINS - dist) <= 2)
        near = near_y & near_h.reshape(near_y.shape)
    else:
        near = near_y
    return float(near.mean() * 100.0)


def similarity(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None,
               tolerance: float = FROZEN_TOLERANCE) -> float:
    """Share (0..1) of valid pixels whose luma changed by at most `tolerance` levels."""
    same = np.abs(a - b) <= tolerance + 0.5  # block means are fractional: allow rounding
    return float(same[mask].mean() if mask is not None else same.mean())


def _coarse(rgb: np.ndarray, luma: np.ndarray, mask: np.ndarray, k: int = UNIFORM_BLOCK):
    """Block means (k×k) for the uniformity test: averaging removes the sensor noise that would otherwise swing
    the hue of a dull colour (a cloth over the lens) by more than the ±2 bins the test allows."""
    h, w = luma.shape
    hh, ww = h // k, w // k
    if hh < 2 or ww < 2:
        return rgb, luma, mask
    c_rgb = block_mean(rgb, k) if rgb.ndim == 3 else rgb
    return c_rgb, block_mean(luma, k), block_mean(mask, k) > 0.999


# ---------------------------------------------------------------- metrics and findings
def measure(frames: Sequence[np.ndarray], *, osd_boxes: Iterable[Sequence[float]] = DEFAULT_OSD_BOXES,
            frozen_similarity: float = 0.95) -> PictureMetrics:
    """Metrics for a clip of frames (RGB uint8 (H, W, 3), or grey (H, W)). At least one frame."""
    if not len(frames):
        raise ValueError("no frames to measure")
    small = [reduce(f) for f in frames]
    h, w = small[0].shape[:2]
    mask = valid_mask((h, w), osd_boxes)
    # per-picture metrics on a few frames spread over the clip; the median resists one odd frame
    picks = sorted({round(i * (len(small) - 1) / max(STATIC_SAMPLES - 1, 1)) for i in range(STATIC_SAMPLES)})
    per: dict[str, list[float]] = {"mean_luma": [], "contrast": [], "sharpness": [], "colour_cast_k": [],
                                   "uniform_pct": []}
    for i in picks:
        y = to_luma(small[i])
        vals = y[mask]
        per["mean_luma"].append(float(vals.mean()))
        per["contrast"].append(float(vals.std()))
        per["sharpness"].append(sharpness(y, mask))
        c_rgb, c_y, c_mask = _coarse(small[i], y, mask)  # colour statistics need no full resolution
        per["colour_cast_k"].append(colour_cast(c_rgb, c_mask))
        per["uniform_pct"].append(uniform_pct(c_rgb, c_y, c_mask))
    # Frozen: every frame, on every other pixel (plenty to tell sensor noise from a repeated picture).
    lumas = [to_luma(s[::2, ::2]) for s in small]
    sims = [similarity(a, b, mask[::2, ::2]) for a, b in zip(lumas, lumas[1:])]
    run = best = 1
    for s in sims:
        run = run + 1 if s > frozen_similarity else 1
        best = max(best, run)
    per["similarity"] = sims
    med = {k: float(np.median(v)) for k, v in per.items() if k != "similarity"}
    return PictureMetrics(
        frames=len(frames), width=w, height=h, mean_luma=med["mean_luma"], contrast=med["contrast"],
        sharpness=med["sharpness"], colour_cast_k=med["colour_cast_k"], uniform_pct=med["uniform_pct"],
        frozen_run=best, min_similarity=min(sims) if sims else None, max_similarity=max(sims) if sims else None,
        per_frame=per)


def assess(frames_or_metrics, policy, baseline_blur: float | None = None, *,
           osd_boxes: Iterable[Sequence[float]] = DEFAULT_OSD_BOXES) -> list[Finding]:
    """Findings for a clip (frames) or for metrics already measured. Never empty: all good → one `ok` finding.

    `policy` is a canteen_ops.inventory.model.Policy (or anything with its threshold attributes).
    `baseline_blur` is the camera's own sharpness when it was known clean (e.g. from the log's history).
    """
    if isinstance(frames_or_metrics, PictureMetrics):
        m = frames_or_metrics
    else:
        m = measure(frames_or_metrics, osd_boxes=osd_boxes, frozen_similarity=policy.frozen_similarity)
    out: list[Finding] = []
    uniform = m.uniform_pct >= policy.covered_uniform_pct
    if uniform and m.mean_luma < BLACK_LUMA:
        out.append(Finding(Status.CRIT, "black", f"black picture (mean luma {m.mean_luma:.0f}): no video signal",
                           m.mean_luma))
    elif uniform:
        out.append(Finding(Status.CRIT, "covered",
                           f"uniform picture ({m.uniform_pct:.1f}% one tone, mean luma {m.mean_luma:.0f}): "
                           "lens covered or signal lost", m.uniform_pct))
    if not uniform:
        if m.mean_luma < policy.dark_luma:
            out.append(Finding(Status.WARN, "too_dark",
                               f"too dark: mean luma {m.mean_luma:.0f} < {policy.dark_luma:g}", m.mean_luma))
        elif m.mean_luma > policy.bright_luma:
            out.append(Finding(Status.WARN, "overexposed",
                               f"overexposed: mean luma {m.mean_luma:.0f} > {policy.bright_luma:g}", m.mean_luma))
        if m.contrast < policy.low_contrast:
            out.append(Finding(Status.WARN, "low_contrast",
                               f"low contrast (haze, grease film): luma std {m.contrast:.1f} < {policy.low_contrast:g}",
                               m.contrast))
        reasons = []
        if m.sharpness < policy.blur_laplacian:
            reasons.append(f"sharpness {m.sharpness:.0f} < {policy.blur_laplacian:g}")
        if baseline_blur and baseline_blur > 0:
            drop = (1 - m.sharpness / baseline_blur) * 100
            if drop > policy.blur_drop_pct:
                reasons.append(f"{drop:.0f}% below this camera's baseline {baseline_blur:.0f}")
        if reasons:
            out.append(Finding(Status.WARN, "blurred",
                               "blurred (grease or steam on the lens? clean it): " + "; ".join(reasons), m.sharpness))
        if m.colour_cast_k > policy.colour_cast_k:
            out.append(Finding(Status.WARN, "colour_cast",
                               f"colour cast: K {m.colour_cast_k:.2f} > {policy.colour_cast_k:g}", m.colour_cast_k))
        if m.frozen_run >= policy.frozen_frames:
            out.append(Finding(Status.CRIT, "frozen",
                               f"frozen picture: {m.frozen_run} consecutive frames unchanged outside the OSD",
                               float(m.frozen_run)))
    if not out:
        out.append(Finding(Status.OK, "ok",
                           f"picture ok (luma {m.mean_luma:.0f}, contrast {m.contrast:.0f}, sharpness "
                           f"{m.sharpness:.0f}, cast K {m.colour_cast_k:.2f}, {m.frames} frames)"))
    return out


# Stream-level failures: a device that cannot be reached is "unknown" here (the reachability and login checks
# own that verdict); a device that is up but shows no video is critical.
PROBE_ERROR_STATUS = {"refused": Status.UNKNOWN, "unreachable": Status.UNKNOWN, "timeout": Status.UNKNOWN,
                      "unauthorized": Status.UNKNOWN, "not_found": Status.CRIT, "no_frames": Status.CRIT,
                      "protocol": Status.CRIT}


def assess_stream(probe, policy) -> list[Finding]:
    """Findings about the stream itself (a StreamProbe): failure, resolution and fps against the policy."""
    if not probe.ok:
        return [Finding(PROBE_ERROR_STATUS.get(probe.error, Status.UNKNOWN), probe.error or "error", probe.message)]
    out: list[Finding] = []
    min_w, min_h = policy.min_width_height
    if probe.width and probe.height and (probe.width < min_w or probe.height < min_h):
        out.append(Finding(Status.WARN, "low_resolution",
                           f"resolution {probe.width}x{probe.height} below policy {policy.min_resolution}",
                           float(probe.width * probe.height)))
    if probe.fps and probe.fps < policy.min_fps - 0.5:
        out.append(Finding(Status.WARN, "low_fps", f"frame rate {probe.fps:g} fps below policy {policy.min_fps:g}",
                           probe.fps))
    if not out:
        out.append(Finding(Status.OK, "ok", probe.message))
    return out


def assess_probe(probe, policy, baseline_blur: float | None = None, *,
                 osd_boxes: Iterable[Sequence[float]] = DEFAULT_OSD_BOXES) -> list[Finding]:
    """Stream findings plus picture findings (when frames were decoded), problems only unless all is well."""
    findings = [f for f in assess_stream(probe, policy) if f.status is not Status.OK]
    if probe.frames:
        findings += [f for f in assess(probe.frames, policy, baseline_blur, osd_boxes=osd_boxes)
                     if f.status is not Status.OK]
    return findings or [Finding(Status.OK, "ok", probe.message or "stream and picture ok")]


def overall(findings: Iterable[Finding]) -> Status:
    return worst(f.status for f in findings)
