"""Picture-quality metrics on synthetic numpy frames (no network)."""

from __future__ import annotations

import numpy as np
import pytest

from canteen_ops.inventory.model import Policy
from canteen_ops.media import quality as q
from canteen_ops.status import Status

POLICY = Policy()
RNG = np.random.default_rng(7)


def scene(h=180, w=320, seed=0) -> np.ndarray:
    """A textured, colour-balanced picture: grey gradient, coloured patches, fine noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), dtype=np.float32)
    img[:] = np.linspace(60, 200, w, dtype=np.float32)[None, :, None]
    for i, c in enumerate([(200, 40, 40), (40, 160, 60), (40, 70, 200), (220, 200, 40)]):
        img[100:150, 20 + i * 70:70 + i * 70] = c
    img[::12] -= 50  # tile lines: edges for the Laplacian
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def live_clip(n=12, **kw) -> list[np.ndarray]:
    """Frames of a live camera: same scene, fresh sensor noise each frame."""
    base = scene(**kw).astype(np.int16)
    return [np.clip(base + RNG.integers(-4, 5, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def codes(findings) -> dict[str, Status]:
    return {f.code: f.status for f in findings}


def test_laplacian_matches_a_direct_3x3_convolution():
    g = RNG.integers(0, 256, (9, 11)).astype(np.float32)
    k = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)
    ref = np.array([[(g[y - 1:y + 2, x - 1:x + 2] * k).sum() for x in range(1, 10)] for y in range(1, 8)])
    assert np.allclose(q.laplacian(g), ref)
    assert q.sharpness(np.full((50, 50), 128.0)) == 0.0
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.float32)
    assert q.sharpness(checker) > 1e5


def test_rgb_to_lab_reference_values():
    lab = q.rgb_to_lab(np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]]], dtype=np.uint8))[0]
    assert np.allclose(lab[0], [100, 0, 0], atol=0.1)
    assert np.allclose(lab[1], [0, 0, 0], atol=0.1)
    assert np.allclose(lab[2], [53.24, 80.09, 67.20], atol=0.2)
    assert np.allclose(lab[3], [32.30, 79.19, -107.86], atol=0.2)


def test_reduce_block_means_to_work_size():
    frame = RNG.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    small = q.reduce(frame)
    assert small.shape == (360, 640, 3)
    assert np.isclose(small[0, 0, 0], frame[:3, :3, 0].mean())
    tiny = np.zeros((180, 320, 3), np.uint8)
    assert q.reduce(tiny) is tiny


def test_healthy_clip_passes_everything():
    findings = q.assess(live_clip(), POLICY)
    assert [(f.status, f.code) for f in findings] == [(Status.OK, "ok")]
    m = q.measure(live_clip())
    assert m.sharpness > POLICY.blur_laplacian and m.colour_cast_k < POLICY.colour_cast_k
    assert m.frozen_run == 1 and m.uniform_pct < 50


def test_black_and_covered_are_critical_and_not_buried():
    black = [np.zeros((180, 320, 3), np.uint8)] * 12
    f = codes(q.assess(black, POLICY))
    assert f == {"black": Status.CRIT}  # no frozen/blur/contrast noise on top of the real finding
    cloth = np.zeros((180, 320, 3), np.uint8)
    cloth[:] = (62, 48, 40)
    cloth = np.clip(cloth + RNG.integers(-2, 3, cloth.shape), 0, 255).astype(np.uint8)
    f = codes(q.assess([cloth] * 12, POLICY))
    assert f == {"covered": Status.CRIT}
    blue = np.zeros((180, 320, 3), np.uint8)
    blue[:] = (0, 0, 190)  # an NVR's "no video" blue screen
    assert codes(q.assess([blue], POLICY)) == {"covered": Status.CRIT}


def test_brightness_thresholds_follow_the_policy():
    dark = [(f // 8) for f in live_clip()]
    assert codes(q.assess(dark, POLICY))["too_dark"] is Status.WARN
    bright = [np.clip(f.astype(np.int16) + 150, 0, 255).astype(np.uint8) for f in live_clip()]
    assert "overexposed" in codes(q.assess(bright, POLICY))
    normal = live_clip()
    mean = q.measure(normal).mean_luma
    assert "too_dark" in codes(q.assess(normal, Policy(dark_luma=mean + 5)))


def test_blur_absolute_and_against_the_cameras_baseline():
    sharp = live_clip()
    base = q.measure(sharp).sharpness
    # a box blur: grease on the lens
    def box(f):
        g = f.astype(np.float32)
        for axis in (0, 1):
            g = sum(np.roll(g, s, axis=axis) for s in range(-3, 4)) / 7
        return g.astype(np.uint8)
    smeared = [box(f) for f in sharp]
    m = q.measure(smeared)
    assert m.sharpness < base / 5
    f = codes(q.assess(smeared, POLICY, baseline_blur=base))
    assert f["blurred"] is Status.WARN
    # slightly soft: above the absolute threshold, yet a big drop for this camera
    mild = Policy(blur_laplacian=1.0)
    assert "blurred" not in codes(q.assess(smeared, mild))
    assert "blurred" in codes(q.assess(smeared, mild, baseline_blur=base))
    assert "blurred" not in codes(q.assess(sharp, mild, baseline_blur=base))


def test_low_contrast_haze():
    hazy = [(f.astype(np.float32) * 0.2 + 150).astype(np.uint8) for f in live_clip()]
    assert codes(q.assess(hazy, POLICY))["low_contrast"] is Status.WARN


def test_colour_cast():
    tinted = [np.clip(f * np.array([1.0, 0.75, 0.4]) + (30, 0, 0), 0, 255).astype(np.uint8) for f in live_clip()]
    m = q.measure(tinted)
    assert m.colour_cast_k > POLICY.colour_cast_k
    assert codes(q.assess(m, POLICY)) == {"colour_cast": Status.WARN}
    grey = np.full((90, 160, 3), 128, np.uint8)
    grey[..., 0] += 2  # a faint tint on a grey wall is not a cast
    assert q.colour_cast(grey) < POLICY.colour_cast_k


def _with_osd(frame: np.ndarray, n: int) -> np.ndarray:
    out = frame.copy()
    out[4:14, 4:4 + 10 * (n % 9 + 1)] = 255  # the clock's digits change every frame
    return out


def test_frozen_ignores_the_osd_clock_and_respects_the_run_length():
    still = scene()
    clip = [_with_osd(still, i) for i in range(12)]
    assert codes(q.assess(clip, POLICY))["frozen"] is Status.CRIT
    # with a strict similarity, only the mask keeps the changing clock from hiding the freeze
    strict = Policy(frozen_similarity=0.999)
    assert "frozen" in codes(q.assess(clip, strict))
    assert "frozen" not in codes(q.assess(clip, strict, osd_boxes=()))
    # live frames with a changing OSD are not frozen
    assert "frozen" not in codes(q.assess([_with_osd(f, i) for i, f in enumerate(live_clip())], POLICY))
    # 9 identical frames in a row are not enough for the default of 10
    live = live_clip(14)
    nine = live[:3] + [still] * 9 + live[3:5]
    assert q.measure(nine).frozen_run == 9
    assert "frozen" not in codes(q.assess(nine, POLICY))
    assert "frozen" in codes(q.assess(nine, Policy(frozen_frames=9)))


def test_grey_input_and_metrics_input_are_accepted():
    grey = [q.to_luma(f).astype(np.uint8) for f in live_clip()]
    m = q.measure(grey)
    assert m.colour_cast_k == 0.0
    assert q.assess(m, POLICY)[0].code == "ok"
    with pytest.raises(ValueError):
        q.measure([])


class _Probe:
    def __init__(self, **kw):
        self.ok, self.error, self.message, self.width, self.height, self.fps, self.frames = (
            True, None, "h264", 1920, 1080, 25.0, [])
        self.__dict__.update(kw)


def test_assess_stream_resolution_fps_and_errors():
    assert codes(q.assess_stream(_Probe(), POLICY)) == {"ok": Status.OK}
    assert codes(q.assess_stream(_Probe(width=1280, height=720), POLICY)) == {"low_resolution": Status.WARN}
    assert codes(q.assess_stream(_Probe(fps=8.0), POLICY)) == {"low_fps": Status.WARN}
    assert codes(q.assess_stream(_Probe(ok=False, error="no_frames"), POLICY)) == {"no_frames": Status.CRIT}
    assert codes(q.assess_stream(_Probe(ok=False, error="refused"), POLICY)) == {"refused": Status.UNKNOWN}
    both = q.assess_probe(_Probe(width=1280, height=720, frames=[np.zeros((90, 160, 3), np.uint8)] * 12), POLICY)
    assert codes(both) == {"low_resolution": Status.WARN, "black": Status.CRIT}
    assert q.overall(both) is Status.CRIT
