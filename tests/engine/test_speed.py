"""Speed at equal quality (issue 13 item 4): what the faster CPU path changes, measured against the path it
replaced. Timings themselves live in ``python -m engine.bench`` (BENCHMARKS.md), never in a test."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from engine.framing import PRESETS, padding_masks, resize_rows, soften_continuation
from engine.pipeline import HeadshotEngine, shrink
from engine.tone import _curve, _gain_lut, _toned
from tests.conftest import PORTRAITS

Rgb = npt.NDArray[np.uint8]

# The fast matte (``Preset.cpu_matte_size``, what ONNX Runtime runs) against the full one (``matte_size``,
# the path before the change and what TensorRT runs), on the final output-sized alpha of the test
# portraits in every preset. Measured (astronaut / grace_hopper, worst preset): mean |Δα| 1.2e-3 / 11.9e-3
# inside the photo and 1.2e-3 / 20.6e-3 over the whole frame; IoU of α > 0.5 0.999 / 0.980 inside the
# photo, 0.999 / 0.938 over the frame. Most of the whole-frame difference is below the photo, where the
# matte is the photo's last row carried down (``continue_alpha``): a different last row, a different
# continuation. The bounds leave a small margin over those figures.
INSIDE_MAD_MAX = 0.015
INSIDE_IOU_MIN = 0.975
FRAME_MAD_MAX = 0.025
FRAME_IOU_MIN = 0.93


def iou(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    fa, fb = a > 0.5, b > 0.5
    return float((fa & fb).sum() / max(1, (fa | fb).sum()))


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_fast_matte_matches_the_full_matte_on_the_test_portraits(
    engine: HeadshotEngine, portraits: dict[str, Rgb], name: str, preset: str
) -> None:
    rgb = portraits[name]
    face, _ = engine.find_face(rgb)
    faces = engine.detect_faces(rgb)
    p = PRESETS[preset]
    assert p.cpu_matte_size is not None
    fast = engine.cutout(rgb, face, p, others=faces)
    full = engine.cutout(rgb, face, dataclasses.replace(p, cpu_matte_size=None), others=faces)
    assert fast.warnings == full.warnings
    _, below = padding_masks((rgb.shape[1], rgb.shape[0]), full.framing, (p.width, p.height))
    inside = below == 0
    diff = np.abs(fast.alpha - full.alpha)
    assert float(diff[inside].mean()) <= INSIDE_MAD_MAX, f"mean |Δα| {diff[inside].mean():.4f} in the photo"
    assert iou(fast.alpha[inside], full.alpha[inside]) >= INSIDE_IOU_MIN
    assert float(diff.mean()) <= FRAME_MAD_MAX, f"mean |Δα| {diff.mean():.4f} over the frame"
    assert iou(fast.alpha, full.alpha) >= FRAME_IOU_MIN


def test_the_cpu_matte_is_a_real_saving() -> None:
    """MODNet's cost grows with its input's pixel count; the CPU size must stay well below the full one."""
    for p in PRESETS.values():
        assert p.cpu_matte_size is not None
        (h, w), (fh, fw) = p.cpu_matte_size, p.matte_size
        assert h % 32 == 0 and w % 32 == 0
        assert h * w <= 0.62 * fh * fw
        assert abs(h / w - fh / fw) < 0.1, "same aspect as the output, or the matte is stretched"


# -- bit-identical shortcuts ----------------------------------------------------------------------------


def soften_continuation_reference(crop: Rgb, below: npt.NDArray[np.float32]) -> Rgb:
    """``soften_continuation`` as it was before it skipped the rows above the ramp (every row blended)."""
    if not below.any():
        return crop
    h, w = crop.shape[:2]
    small = cv2.resize(crop, (max(8, w // 4), max(8, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(1.0, w / 160), sigmaY=max(1.0, h / 400))
    blurred = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    ramp = cv2.GaussianBlur(below, (0, 0), sigmaX=max(1.0, below.shape[0] / 80))
    weight = cv2.resize(ramp, (w, h), interpolation=cv2.INTER_LINEAR)
    crop[:] = cv2.blendLinear(blurred, crop, weight, np.subtract(1.0, weight, dtype=np.float32))
    return crop


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("start", [0.0, 0.3, 0.7, 0.95])
def test_continuation_below_the_photo_is_bit_identical_to_blending_every_row(
    preset: str, start: float
) -> None:
    p = PRESETS[preset]
    rng = np.random.default_rng(13)
    crop = np.asarray(
        cv2.GaussianBlur(rng.integers(0, 256, (p.height, p.width, 3), dtype=np.uint8), (0, 0), 2.0),
        dtype=np.uint8,
    )
    for mh, mw in (p.matte_size, p.cpu_matte_size or p.matte_size):
        below = np.zeros((mh, mw), dtype=np.float32)
        below[int(start * mh) :, int(0.15 * mw) : int(0.85 * mw)] = 1.0
        expected = soften_continuation_reference(crop.copy(), below)
        assert np.array_equal(soften_continuation(crop.copy(), below), expected)


@pytest.mark.parametrize(("src_h", "dst_h"), [(256, 1024), (384, 1024), (512, 1024), (337, 1350), (150, 600)])
def test_resize_rows_equals_the_rows_of_a_full_resize(src_h: int, dst_h: int) -> None:
    src = np.random.default_rng(src_h).random((src_h, 40)).astype(np.float32)
    full = cv2.resize(src, (40, dst_h), interpolation=cv2.INTER_LINEAR)
    for first in (0, 1, 17, dst_h // 2, dst_h - 3):
        assert np.array_equal(resize_rows(src, (40, dst_h), first), full[first:])


# -- approximations, bounded ----------------------------------------------------------------------------


def toned_reference(image: Rgb, gains: npt.NDArray[np.float64], pivot: float) -> Rgb:
    """Tone as it was: the curve on Y through an 8-bit YCrCb round trip."""
    balanced = cv2.LUT(image, _gain_lut(gains))
    ycc = cv2.cvtColor(balanced, cv2.COLOR_RGB2YCrCb)
    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.clip(_curve(x, pivot) * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(1, 256)
    ycc[..., 0] = cv2.LUT(ycc[..., 0], lut).reshape(ycc.shape[:2])
    return np.asarray(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB), dtype=np.uint8)


@pytest.mark.parametrize("name", PORTRAITS)
def test_tone_as_a_luma_shift_stays_within_two_code_values_of_the_round_trip(
    portraits: dict[str, Rgb], name: str
) -> None:
    rgb = portraits[name]
    for gains, pivot in (((1.03, 1.0, 0.97), 0.45), ((0.96, 1.0, 1.04), 0.62), ((1.0, 1.0, 1.0), 0.3)):
        g = np.array(gains, dtype=np.float64)
        diff = np.abs(_toned(rgb, g, pivot).astype(np.int16) - toned_reference(rgb, g, pivot))
        assert int(diff.max()) <= 2  # the round trip's own rounding of Cr/Cb
        assert float(diff.mean()) < 0.5


def test_shrink_is_the_area_filter_where_it_was_exact_and_close_elsewhere(portraits: dict[str, Rgb]) -> None:
    crop = np.ascontiguousarray(cv2.resize(portraits["astronaut.png"], (1024, 1024)))
    # 1024 -> 512: one exact 2x area step, the same pixels as before.
    assert np.array_equal(
        shrink(crop, (512, 512)), cv2.resize(crop, (512, 512), interpolation=cv2.INTER_AREA)
    )
    # 1024 -> 384: halved, then bilinear; within a few code values of the (slow) fractional area filter.
    area = cv2.resize(crop, (384, 384), interpolation=cv2.INTER_AREA).astype(np.float32)
    err = np.abs(shrink(crop, (384, 384)).astype(np.float32) - area)
    assert float(err.mean()) < 2.0
    assert math.isclose(float(shrink(crop, (384, 384)).mean()), float(area.mean()), abs_tol=0.5)


# -- the second detector run --------------------------------------------------------------------------


def test_the_crop_is_searched_again_only_when_it_is_a_closer_view(
    engine: HeadshotEngine, portraits: dict[str, Rgb]
) -> None:
    """grace_hopper.jpg: the headshot crop spans more than the photo (1.23× its height), so the whole-photo
    detections are reused. The same guest in a wide 1080p camera frame: the crop is a ~1.46× closer view,
    so it is searched once more."""
    from unittest import mock

    from engine.bench import camera_frame
    from engine.detect import FaceDetector

    real = FaceDetector.detect_view
    with mock.patch.object(FaceDetector, "detect_view", autospec=True, side_effect=real) as spy:
        engine.render_image(portraits["grace_hopper.jpg"])
        assert spy.call_count == 0
        engine.render(camera_frame(portraits["grace_hopper.jpg"]))
        assert spy.call_count == 1
