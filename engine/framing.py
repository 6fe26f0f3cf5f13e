"""Framing: crop presets, eye line, consistent head size and roll correction as one affine warp."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from engine.detect import Face
from engine.imageio import RgbImage

_Plane = TypeVar("_Plane", npt.NDArray[np.uint8], npt.NDArray[np.float32])

EYE_LINE_FROM_TOP = 0.40
"""Eye line position as a fraction of the output height (professional headshot convention: 38–42 %)."""
MAX_ROLL_CORRECTION_DEG = 30.0
EDGE_FADE = 0.07
"""Where the photo's left, right or top edge lies inside the output, the matte fades out over this
fraction of the output width before it (a body cut by the photo's edge never shows the cut)."""
BOTTOM_FADE = 0.16
"""Below the photo's bottom edge the body is continued and fades out over this fraction of the height."""


@dataclass(frozen=True)
class Preset:
    """An output format. ``face_height`` is the detector's face box height as a fraction of the output
    height: one number per preset, so every guest's head has the same size in the same preset.
    ``matte_size`` (h, w) is the matting network input: multiples of 32 (MODNet downsamples 32×),
    about 0.25 MP so a full render costs less than matting a whole photo. TensorRT plans are built for it.

    ``cpu_matte_size`` (h, w) is the smaller input used on ONNX Runtime (the CPU), where MODNet is most
    of a render's time and its cost grows with the pixel count: about 0.57× the pixels (0.15 MP), the
    matte upsampled to the output as before. The difference to the ``matte_size`` matte is measured on
    the test portraits (``tests/engine/test_speed.py``). None: use ``matte_size`` everywhere."""

    name: str
    width: int
    height: int
    face_height: float
    matte_size: tuple[int, int]
    cpu_matte_size: tuple[int, int] | None = None


PRESETS: dict[str, Preset] = {
    # LinkedIn and most profile pictures
    "square": Preset("square", 1024, 1024, 0.27, (512, 512), (384, 384)),
    # 4:5, Instagram/LinkedIn feed
    "portrait": Preset("portrait", 1080, 1350, 0.235, (576, 448), (448, 352)),
    # 3:4, ID badges
    "badge": Preset("badge", 600, 800, 0.30, (640, 480), (480, 352)),
}


@dataclass(frozen=True)
class Framing:
    """The affine map from photo pixels to output pixels and what it implies.

    ``matrix`` is 2×3 float64 (cv2 convention: dst = M @ [x, y, 1]). ``roll_deg`` is the head roll that
    was corrected (positive = the photo's eye line fell to the right). ``coverage`` is the fraction of the
    output that the photo covers (the rest is padded with background)."""

    preset: Preset
    matrix: npt.NDArray[np.float64]
    roll_deg: float
    scale: float
    coverage: float

    def map_point(self, x: float, y: float) -> tuple[float, float]:
        m = self.matrix
        return (m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2])


def frame_face(face: Face, image_size: tuple[int, int], preset: Preset) -> Framing:
    """Compute the warp that puts the eye line at ``EYE_LINE_FROM_TOP``, centres the face horizontally,
    levels the eyes and scales the face box to ``preset.face_height``. ``image_size`` is (width, height)."""
    (rx, ry), (lx, ly) = face.keypoints["right_eye"], face.keypoints["left_eye"]
    roll = math.atan2(ly - ry, lx - rx)  # the subject's right eye is on the image's left
    if abs(math.degrees(roll)) > MAX_ROLL_CORRECTION_DEG:
        roll = 0.0  # an implausible eye line (profile view, bad keypoints): frame without levelling
    ex, ey = (rx + lx) / 2, (ry + ly) / 2
    # The box height is steadier under yaw than the eye distance; the keypoint spread guards small boxes.
    eye_to_mouth = math.dist((ex, ey), face.keypoints["mouth_center"])
    face_size = max(face.height, 2.2 * eye_to_mouth)
    s = preset.face_height * preset.height / max(face_size, 1.0)
    c, si = math.cos(roll), math.sin(roll)
    # dst = s·R(-roll)·(p - eye_centre) + target
    tx, ty = preset.width / 2, EYE_LINE_FROM_TOP * preset.height
    m = np.array(
        [
            [s * c, s * si, tx - s * (c * ex + si * ey)],
            [-s * si, s * c, ty - s * (-si * ex + c * ey)],
        ],
        dtype=np.float64,
    )
    framing = Framing(preset=preset, matrix=m, roll_deg=math.degrees(roll), scale=s, coverage=1.0)
    return Framing(preset, m, framing.roll_deg, s, _coverage(framing, image_size))


def _coverage(framing: Framing, image_size: tuple[int, int]) -> float:
    """Fraction of output pixels that map inside the photo (sampled on a coarse grid)."""
    w, h = image_size
    inv = cv2.invertAffineTransform(framing.matrix)
    pw, ph = framing.preset.width, framing.preset.height
    corners = (
        np.array([[0, 0, 1], [pw - 1, 0, 1], [0, ph - 1, 1], [pw - 1, ph - 1, 1]], dtype=np.float64) @ inv.T
    )
    if (
        (corners[:, 0] >= 0).all()
        and (corners[:, 0] <= w - 1).all()
        and (corners[:, 1] >= 0).all()
        and (corners[:, 1] <= h - 1).all()
    ):
        return 1.0  # the photo is convex: all four corners inside means the whole output is
    ys, xs = np.mgrid[0 : framing.preset.height : 16, 0 : framing.preset.width : 16]
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    return float(inside.mean())


Rect = tuple[int, int, int, int]
"""x0, y0, x1, y1: a half-open rectangle of output pixels."""


def warp(rgb: RgbImage, framing: Framing) -> RgbImage:
    """Resample the photo into the output frame (H×W×3 uint8, a new array owned by the caller).

    Only the region of the photo that lands in the output is touched (a face crop from a 1080p frame is
    a fraction of it). Edges are replicated, not black: the matting network then sees a plausible
    continuation instead of a hard border, and ``valid_mask`` decides what is padding."""
    w, h = framing.preset.width, framing.preset.height
    out = np.empty((h, w, 3), dtype=np.uint8)
    warp_into(out, rgb, framing, [(0, 0, w, h)])
    return out


def warp_into(out: RgbImage, rgb: RgbImage, framing: Framing, rects: Sequence[Rect]) -> RgbImage:
    """``warp``, computed only inside ``rects`` of ``out`` (the output frame, H×W×3 uint8, modified in
    place and returned; pixels outside the rectangles are left as they are). The pipeline warps at full
    size only where the guest's matte is nonzero: the rest of the output is backdrop, and the matting
    input comes from ``warp_reduced``. Each rectangle is the same warp with the origin moved, so its
    pixels are those of the whole-frame warp (to within OpenCV's 1/1024-pixel fixed-point rounding)."""
    h, w = out.shape[:2]
    m = framing.matrix
    ph, pw = rgb.shape[:2]
    x0, y0, x1, y1 = _source_box(m, (w, h), (pw, ph), margin=2)
    roi = rgb[y0:y1, x0:x1]
    m = m @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
    if framing.scale < 0.5:
        # warpAffine has no area filter: shrink the region first so fine detail does not alias.
        f = framing.scale
        roi = np.asarray(cv2.resize(roi, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        m = m @ np.array([[1 / f, 0, 0], [0, 1 / f, 0], [0, 0, 1]], dtype=np.float64)
    for rx0, ry0, rx1, ry1 in rects:
        if rx1 <= rx0 or ry1 <= ry0:
            continue
        shifted = m.copy()
        shifted[0, 2] -= rx0
        shifted[1, 2] -= ry0
        view = out[ry0:ry1, rx0:rx1]
        res = cv2.warpAffine(
            roi,
            shifted,
            (rx1 - rx0, ry1 - ry0),
            dst=view,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        if not np.may_share_memory(res, out):  # OpenCV wrote a new array instead of the view
            view[:] = res
    return out


REDUCED_MIN_SCALE = 0.97
"""``warp_reduced`` halves the photo (2×2 box averages) until the bilinear warp that remains scales by at
least this much: bilinear sampling then (almost) only enlarges. Far below 1 it skips pixels and aliases
fine detail; a scale just under 1 (0.98) is warped as it is rather than halved and enlarged 1.96×,
which would only blur. At 0.6 MODNet's full-size matte of a white hat against a pale wall lost a patch
that the CPU-size one kept (tests/engine/test_speed.py's bound); from 0.97 the two agree better than
before the change."""


def warp_reduced(rgb: RgbImage, framing: Framing, size: tuple[int, int]) -> RgbImage:
    """The output frame at a reduced ``size`` (w, h), straight from the photo (h×w×3 uint8, a new array):
    the matting input, without warping the full-size frame first. Pixel centres map as ``cv2.resize`` of
    the full frame would map them (so the matte upsampled with ``cv2.resize`` lands where it belongs).

    Antialiasing: the photo region is first halved with exact 2×2 box averages (OpenCV's fast INTER_AREA
    path, a fraction of a millisecond; a fractional area filter costs ~10× more) while the warp that
    remains would shrink by more than ``REDUCED_MIN_SCALE``, then warped bilinearly. Edges replicate,
    as in ``warp``."""
    w, h = size
    k = w / framing.preset.width, h / framing.preset.height
    # Full-frame pixel x lands at (x + 0.5)·k - 0.5 in the reduced frame (cv2.resize's convention).
    m = np.array([[k[0], 0, 0.5 * k[0] - 0.5], [0, k[1], 0.5 * k[1] - 0.5]], dtype=np.float64) @ np.vstack(
        [framing.matrix, [0.0, 0.0, 1.0]]
    )
    scale = framing.scale * min(k)
    halvings = 0
    while scale * 2**halvings < REDUCED_MIN_SCALE:
        halvings += 1
    ph, pw = rgb.shape[:2]
    x0, y0, x1, y1 = _source_box(m, (w, h), (pw, ph), margin=2 + 2 ** (halvings + 1))
    roi = rgb[y0:y1, x0:x1]
    m = m @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
    for _ in range(halvings):
        rh, rw = roi.shape[0] // 2, roi.shape[1] // 2
        if rh < 2 or rw < 2:
            break
        # Even sides: the exact 2× box path. Reduced pixel i averages source pixels 2i and 2i+1.
        roi = np.asarray(
            cv2.resize(roi[: 2 * rh, : 2 * rw], (rw, rh), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        m = m @ np.array([[2, 0, 0.5], [0, 2, 0.5], [0, 0, 1]], dtype=np.float64)
    out = cv2.warpAffine(roi, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def _source_box(
    m: npt.NDArray[np.float64], size: tuple[int, int], photo: tuple[int, int], *, margin: int
) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1, half-open) of the photo pixels that an output of ``size`` (w, h)
    under the forward map ``m`` (2×3 photo -> output) samples, plus ``margin`` pixels for the filter
    taps, clipped to the photo (``photo`` = (w, h)); never empty."""
    w, h = size
    pw, ph = photo
    inv = cv2.invertAffineTransform(np.asarray(m[:2], dtype=np.float64))
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64) @ inv.T
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - margin, 0, pw - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - margin, 0, ph - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + margin + 1, x0 + 1, pw))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + margin + 1, y0 + 1, ph))
    return x0, y0, x1, y1


def padding_masks(
    image_size: tuple[int, int], framing: Framing, size: tuple[int, int]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Two h×w float32 masks in [0, 1] at ``size`` = (w, h), a scaled copy of the output frame:

    ``valid`` multiplies the matte: 1 where the output shows the photo away from its edges, 0 past them.
    A person cut by the photo's edge must not show the cut (a straight line floating in the studio
    backdrop, tilted after roll correction), so the matte fades out towards the photo's left, right and
    top edges over ``EDGE_FADE`` of the output width (smoothstep in the distance to the edge, which is
    measured along the photo's own axes, so a rolled edge fades along its own slant). Below the photo's
    bottom edge the body is continued (``continue_alpha``; padding there with background would leave
    the shoulders floating) and fades out over ``BOTTOM_FADE`` of the output height.
    ``below`` is 1 in that continued region, which ``soften_continuation`` smooths."""
    w, h = size
    pw, ph = image_size
    m = _scaled(framing.matrix, w / framing.preset.width, h / framing.preset.height)
    inv = cv2.invertAffineTransform(m)
    # Photo pixels -> mask pixels, so the fade widths are fractions of the output whatever the zoom.
    px = framing.scale * w / framing.preset.width
    k_side = px / max(1.0, EDGE_FADE * w)
    k_bottom = px / max(1.0, BOTTOM_FADE * h)
    # The photo coordinates (sx, sy) of a mask pixel are affine in it, so their extremes over the frame
    # are at its corners: a fade whose ramp does not reach into the frame is exactly 1 everywhere and is
    # skipped (usually only one edge of the photo shows).
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], dtype=np.float64) @ inv.T
    csx, csy = corners[:, 0], corners[:, 1]
    need_x = min(csx.min() + 0.5, pw - 0.5 - csx.max()) * k_side < 1.0
    need_top = (csy.min() + 0.5) * k_side < 1.0
    need_below = csy.max() > ph - 1.5  # ``below`` > 0 somewhere (and the bottom fade starts at ph - 1)
    # A row of x and a column of y, broadcast in float32: the same values as a full grid, fewer passes.
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    sx = np.float32(inv[0, 0]) * xs + np.float32(inv[0, 1]) * ys + np.float32(inv[0, 2])
    sy = np.float32(inv[1, 0]) * xs + np.float32(inv[1, 1]) * ys + np.float32(inv[1, 2])
    valid = np.ones((h, w), dtype=np.float32)
    below = np.zeros((h, w), dtype=np.float32)
    if need_x or need_below:
        to_side = np.minimum(sx + 0.5, pw - 0.5 - sx)  # photo pixels to the nearer side edge
        if need_x:
            valid *= _smoothstep(to_side * k_side)
        if need_below:
            np.multiply(np.clip(sy - (ph - 1.5), 0, 1), np.clip(to_side, 0, 1), out=below)
    if need_top:
        valid *= _smoothstep((sy + 0.5) * k_side)
    if need_below:
        valid *= 1.0 - _smoothstep((sy - (ph - 1.0)) * k_bottom)
    return valid, below


def _smoothstep(t: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    t = np.clip(t, 0.0, 1.0, dtype=np.float32)
    return np.asarray(t * t * (3.0 - 2.0 * t), dtype=np.float32)


def continuation_fill(image: RgbImage, size: tuple[int, int]) -> RgbImage:
    """What clothing continues as below the photo: ``image`` (the output frame at any scale) reduced to an
    eighth of ``size`` (w, h) and blurred, mostly sideways (σ = w/40 across, h/100 down, in output
    pixels): h/8 × w/8 × 3 uint8, a new array. A field this smooth loses nothing at an eighth of the size
    (a quarter cost four times as much for the same look). One fill serves every scale of the frame
    (``soften_continuation``'s ``fill``)."""
    w, h = size
    small = cv2.resize(image, (max(8, w // 8), max(8, h // 8)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(1.0, w / 320), sigmaY=max(0.5, h / 800))
    return np.asarray(small, dtype=np.uint8)


def soften_continuation(
    crop: RgbImage,
    below: npt.NDArray[np.float32],
    *,
    fill: RgbImage | None = None,
    rects: Sequence[Rect] | None = None,
) -> RgbImage:
    """Where the output extends below the photo, replicated edge pixels make vertical streaks. Blend
    them into a horizontally blurred version so clothing simply continues. ``below`` may be at any
    scale of the output; ``crop`` is modified in place and returned.

    ``fill``: the blurred version (``continuation_fill``), when the caller made it from a complete copy of
    the frame; None makes it from ``crop``. ``rects``: blend only inside these rectangles of ``crop``
    (the pixels a matte keeps); None blends every column."""
    if not below.any():
        return crop
    h, w = crop.shape[:2]
    # Ramp in over a few percent of the height so the photo's last row does not show as a seam
    # (blurred at the mask's own, smaller scale: same look, a fraction of the cost).
    ramp = _ramp(below)
    # Rows above the ramp keep the photo exactly (weight 0), so only the rows from the first one the
    # ramp reaches are resized and blended: the same pixels as doing all of them, at a fraction of the cost.
    rows = np.flatnonzero(ramp.any(axis=1))
    first = max(0, int((int(rows[0]) - 1) * h / ramp.shape[0]) - 2) if rows.size else h
    if first >= h:
        return crop
    if fill is None:
        fill = continuation_fill(crop, (w, h))
    blurred = resize_rows(np.asarray(fill, dtype=np.uint8), (w, h), first)
    weight = resize_rows(ramp, (w, h), first)
    for x0, top, x1, y1 in [(0, first, w, h)] if rects is None else rects:
        y0 = max(top, first)
        if y1 <= y0 or x1 <= x0:
            continue
        part = crop[y0:y1, x0:x1]
        r0, r1 = y0 - first, y1 - first
        wt = weight[r0:r1, x0:x1]
        part[:] = cv2.blendLinear(blurred[r0:r1, x0:x1], part, wt, np.subtract(1.0, wt, dtype=np.float32))
    return crop


def _ramp(below: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``below`` Gaussian-blurred (σ = its height / 80), computed only from a kernel radius above its first
    nonzero row: the rows above are zeros in and out, so the result is the same as blurring all of it."""
    sigma = max(1.0, below.shape[0] / 80)
    rows = np.flatnonzero(below.any(axis=1))
    out = np.zeros_like(below, dtype=np.float32)
    if rows.size == 0:
        return out
    # OpenCV's float Gaussian kernel reaches 4σ; two rows more keep the reflected border inside zeros.
    top = max(0, int(rows[0]) - math.ceil(4 * sigma) - 2)
    out[top:] = cv2.GaussianBlur(below[top:], (0, 0), sigmaX=sigma)
    return out


def resize_rows(src: _Plane, size: tuple[int, int], first: int) -> _Plane:
    """Rows ``first:`` of ``cv2.resize(src, size, interpolation=cv2.INTER_LINEAR)``, bit for bit, computing
    only those rows when the vertical scale allows it: a dyadic ratio (2×, 4×, 8/3×: the sampling
    positions of a block resized on its own are then exactly those of the whole), else the whole
    image is resized and sliced. ``size`` is (w, h) as for cv2."""
    w, h = size
    hs = src.shape[0]
    g = math.gcd(h, hs)
    dst_step, src_step = h // g, hs // g
    k = first // dst_step - 2  # two source rows of margin: no clamping at the block's top edge
    # OpenCV samples destination row y at (y + 0.5) * scale - 0.5 with scale = 1 / (h / hs) in double
    # precision: exact for every row only when that scale is a dyadic fraction.
    exact = dst_step & (dst_step - 1) == 0 and 1.0 / (h / hs) == src_step / dst_step
    if k <= 0 or not exact:
        return np.asarray(cv2.resize(src, size, interpolation=cv2.INTER_LINEAR)[first:], dtype=src.dtype)
    out = cv2.resize(src[k * src_step :], (w, h - k * dst_step), interpolation=cv2.INTER_LINEAR)
    return np.asarray(out[first - k * dst_step :], dtype=src.dtype)


def continue_alpha(alpha: npt.NDArray[np.float32], below: npt.NDArray[np.float32]) -> None:
    """In place: below the photo, carry each column's last real alpha value straight down, so the
    matte of a body cut by the photo edge continues as the body does (same size arrays)."""
    inside = below < 0.5
    h = alpha.shape[0]
    # First row of the continued region per column (h where there is none).
    first = np.where(inside.all(axis=0), h, np.argmin(inside, axis=0))
    cols = np.nonzero(first < h)[0]
    if cols.size == 0:
        return
    # The span of those columns, from the first continued row down: nothing above or beside it moves
    # (a column without continuation has first = h, so its rows are never filled).
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    span = first[c0:c1]
    top = int(span.min())
    last_real = alpha[np.minimum(np.maximum(span - 1, 0), h - 1), np.arange(c0, c1)]
    block = alpha[top:, c0:c1]
    fill = np.arange(top, h)[:, None] >= span[None, :]
    np.copyto(block, np.broadcast_to(last_real[None, :], block.shape), where=fill)


def _scaled(m: npt.NDArray[np.float64], fx: float, fy: float) -> npt.NDArray[np.float64]:
    return np.asarray(np.diag([fx, fy]) @ m, dtype=np.float64)
