"""Framing: crop presets, eye line, consistent head size and roll correction as one affine warp."""

from __future__ import annotations

import math
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


def warp(rgb: RgbImage, framing: Framing) -> RgbImage:
    """Resample the photo into the output frame (H×W×3 uint8, a new array owned by the caller).

    Only the region of the photo that lands in the output is touched (a face crop from a 1080p frame is
    a fraction of it). Edges are replicated, not black: the matting network then sees a plausible
    continuation instead of a hard border, and ``valid_mask`` decides what is padding."""
    w, h = framing.preset.width, framing.preset.height
    m = framing.matrix
    ph, pw = rgb.shape[:2]
    # Bounding box of the output rectangle in photo coordinates, plus a margin for the filter taps.
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64) @ inv.T
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, pw - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, ph - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 3, x0 + 1, pw))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 3, y0 + 1, ph))
    roi = rgb[y0:y1, x0:x1]
    shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
    m = m @ shift
    if framing.scale < 0.5:
        # warpAffine has no area filter: shrink the region first so fine detail does not alias.
        f = framing.scale
        roi = np.asarray(cv2.resize(roi, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        m = m @ np.array([[1 / f, 0, 0], [0, 1 / f, 0], [0, 0, 1]], dtype=np.float64)
    out = cv2.warpAffine(roi, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


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
    # A row of x and a column of y, broadcast: the same float32 values as a full grid, fewer passes.
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    # Photo pixels -> mask pixels, so the fade widths are fractions of the output whatever the zoom.
    px = framing.scale * w / framing.preset.width
    side = max(1.0, EDGE_FADE * w)
    fade_x = _smoothstep(np.minimum(sx + 0.5, pw - 0.5 - sx) * (px / side))
    fade_top = _smoothstep((sy + 0.5) * (px / side))
    fade_below = 1.0 - _smoothstep((sy - (ph - 1.0)) * (px / max(1.0, BOTTOM_FADE * h)))
    inside_x = np.clip(np.minimum(sx + 0.5, pw - 0.5 - sx), 0, 1)
    below = np.clip(sy - (ph - 1.5), 0, 1) * inside_x
    valid = fade_x * fade_top * fade_below
    return np.asarray(valid, dtype=np.float32), np.asarray(below, dtype=np.float32)


def _smoothstep(t: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    t = np.clip(t, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), dtype=np.float32)


def soften_continuation(crop: RgbImage, below: npt.NDArray[np.float32]) -> RgbImage:
    """Where the output extends below the photo, replicated edge pixels make vertical streaks. Blend
    them into a horizontally blurred version so clothing simply continues. ``below`` may be at any
    scale of the output; ``crop`` is modified in place and returned."""
    if not below.any():
        return crop
    h, w = crop.shape[:2]
    # Ramp in over a few percent of the height so the photo's last row does not show as a seam
    # (blurred at the mask's own, smaller scale: same look, a fraction of the cost).
    ramp = np.asarray(cv2.GaussianBlur(below, (0, 0), sigmaX=max(1.0, below.shape[0] / 80)), dtype=np.float32)
    # Rows above the ramp keep the photo exactly (weight 0), so only the rows from the first one the
    # ramp reaches are resized and blended: the same pixels as doing all of them, at a fraction of the cost.
    rows = np.flatnonzero(ramp.any(axis=1))
    first = max(0, int((int(rows[0]) - 1) * h / ramp.shape[0]) - 2) if rows.size else h
    if first >= h:
        return crop
    small = cv2.resize(crop, (max(8, w // 4), max(8, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(1.0, w / 160), sigmaY=max(1.0, h / 400))
    blurred = resize_rows(np.asarray(small, dtype=np.uint8), (w, h), first)
    weight = resize_rows(ramp, (w, h), first)
    part = crop[first:]
    part[:] = cv2.blendLinear(blurred, part, weight, np.subtract(1.0, weight, dtype=np.float32))
    return crop


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
    src_rows = np.maximum(first[cols] - 1, 0)
    rows = np.arange(h)[:, None]
    fill = rows >= first[cols][None, :]
    block = alpha[:, cols]
    alpha[:, cols] = np.where(fill, alpha[src_rows, cols][None, :], block)


def _scaled(m: npt.NDArray[np.float64], fx: float, fy: float) -> npt.NDArray[np.float64]:
    return np.asarray(np.diag([fx, fy]) @ m, dtype=np.float64)
