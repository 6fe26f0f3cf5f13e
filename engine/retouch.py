"""Face regions in the framed output, and light skin smoothing that touches skin only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from engine.detect import Face
from engine.framing import Framing
from engine.imageio import RgbImage
from engine.matting import AlphaMap

SMOOTHING_STRENGTH = 0.45  # blend of the smoothed skin; texture stays visible (no "plastic" look)


@dataclass(frozen=True)
class FaceGeometry:
    """Keypoints mapped into output pixels."""

    right_eye: tuple[float, float]
    left_eye: tuple[float, float]
    mouth: tuple[float, float]
    nose: tuple[float, float]
    bbox: tuple[float, float, float, float]  # axis-aligned box of the mapped face box corners

    @property
    def eye_distance(self) -> float:
        return math.dist(self.right_eye, self.left_eye)

    @property
    def eye_centre(self) -> tuple[float, float]:
        return ((self.right_eye[0] + self.left_eye[0]) / 2, (self.right_eye[1] + self.left_eye[1]) / 2)


def map_face(face: Face, framing: Framing) -> FaceGeometry:
    kp = {k: framing.map_point(*v) for k, v in face.keypoints.items()}
    x0, y0, x1, y1 = face.bbox
    corners = [framing.map_point(x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return FaceGeometry(
        kp["right_eye"],
        kp["left_eye"],
        kp["mouth_center"],
        kp["nose_tip"],
        (min(xs), min(ys), max(xs), max(ys)),
    )


def face_window(geom: FaceGeometry, size: tuple[int, int], pad: float = 0.25) -> tuple[int, int, int, int]:
    """The face's box grown by ``pad`` of its width on each side, clipped to a frame of ``size`` (w, h):
    (x0, y0, x1, y1) in output pixels, half-open. The cheek patch and the retouch stay inside it."""
    w, h = size
    x0, y0, x1, y1 = geom.bbox
    p = pad * (x1 - x0)
    return max(0, int(x0 - p)), max(0, int(y0 - p)), min(w, int(x1 + p)), min(h, int(y1 + p))


def skin_patch_mask(
    geom: FaceGeometry,
    shape: tuple[int, int],
    alpha: AlphaMap | None = None,
    *,
    origin: tuple[int, int] = (0, 0),
) -> npt.NDArray[np.bool_]:
    """Cheeks and nose: an ellipse between the eyes and the mouth (no eyes, brows, lips or hair), where the
    face's skin lightness is measured. ``shape`` is (h, w); ``origin`` (x, y) places that window in the
    output frame (the mask of a region of it, e.g. the face's; ``alpha`` is then the window's matte)."""
    ex, ey = geom.eye_centre
    mx, my = geom.mouth
    cx, cy = (ex + mx) / 2 - origin[0], (ey + my) / 2 - origin[1]
    em = max(math.dist((ex, ey), (mx, my)), 1.0)
    angle = math.degrees(math.atan2(my - ey, mx - ex)) - 90.0
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.ellipse(
        mask,
        (round(cx), round(cy)),
        (max(1, round(0.75 * geom.eye_distance)), max(1, round(0.42 * em))),
        angle,
        0,
        360,
        1,
        thickness=-1,
    )
    out = mask.astype(bool)
    if alpha is not None:
        out &= alpha > 0.9
    return out


def guided_smooth(image: RgbImage, *, radius: int, eps: float, subsample: int = 1) -> npt.NDArray[np.float32]:
    """Self-guided filter (He, Sun & Tang, "Guided Image Filtering", 2013), per channel: smooths fine
    texture whose variance is below ``eps`` (in [0, 1]² units) and keeps stronger edges. O(1) per pixel
    (box filters only), unlike a bilateral filter whose cost grows with the face size. Returns H×W×3
    float32 in [0, 255].

    ``subsample`` > 1 is the fast guided filter (He & Sun, 2015): the local statistics and the linear
    coefficients are computed at 1/``subsample`` of the size (``radius`` scaled alike) and upsampled; only
    the final ``a·I + b`` runs at full size, on the full-size pixels, so texture edges stay sharp."""
    h, w = image.shape[:2]
    a, b = guided_coefficients(image, radius=radius, eps=eps, subsample=subsample)
    if a.shape[:2] != (h, w):
        a = np.asarray(cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        b = np.asarray(cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    a *= image  # a·I + b on the full-size pixels, in place
    a += b
    return a


def guided_coefficients(
    image: RgbImage, *, radius: int, eps: float, subsample: int = 1
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The self-guided filter's linear coefficients (a, b) of ``guided_smooth``, at 1/``subsample`` of the
    size ((h // s) × (w // s) × 3 float32; ``b`` in 0..255): the filtered image is a·I + b."""
    h, w = image.shape[:2]
    s = max(1, subsample)
    low_u8 = (
        image if s == 1 else cv2.resize(image, (max(1, w // s), max(1, h // s)), interpolation=cv2.INTER_AREA)
    )
    low = np.asarray(low_u8, dtype=np.float32) * (1 / 255)
    r = max(1, round(radius / s))
    k = (2 * r + 1, 2 * r + 1)
    mean = np.asarray(cv2.blur(low, k), dtype=np.float32)
    var = np.asarray(cv2.blur(low * low, k), dtype=np.float32)
    var -= mean * mean
    a = np.asarray(var / (var + eps), dtype=np.float32)
    b = np.asarray(mean - a * mean, dtype=np.float32)
    a = np.asarray(cv2.blur(a, k), dtype=np.float32)
    b = np.asarray(cv2.blur(b, k), dtype=np.float32) * 255  # the output is in 0..255, like ``image``
    return a, b


def smooth_skin(image: RgbImage, geom: FaceGeometry, alpha: AlphaMap, *, in_place: bool = False) -> RgbImage:
    """Edge-preserving smoothing of facial skin only, blended at ``SMOOTHING_STRENGTH``. Returns a new
    array, or ``image`` itself, modified, when ``in_place``.

    Skin is found by the face's *own* chroma (median Cr/Cb of the cheek patch, then pixels near it),
    not by a fixed "skin colour" range, so it works the same for every skin tone. Eyes, brows and lips
    are excluded by discs around the keypoints; nothing is reshaped. Everything runs on the face's box,
    and what is smooth anyway at half its size: the skin weight map (it is blurred before use), the
    chroma statistics (every 4th cheek pixel: medians and a percentile, to well within a code value) and
    the guided filter's statistics (``guided_smooth(subsample=2)``)."""
    h, w = image.shape[:2]
    d = geom.eye_distance
    if d < 12:
        return image  # face too small in the output for retouching to matter
    rx0, ry0, rx1, ry1 = face_window(geom, (w, h))
    # Even sides: the half-size maps then upsample by exactly 2, also block by block (below).
    rx1, ry1 = rx0 + (rx1 - rx0) // 2 * 2, ry0 + (ry1 - ry0) // 2 * 2
    if rx1 - rx0 < 8 or ry1 - ry0 < 8:
        return image
    roi = image[ry0:ry1, rx0:rx1]
    a_roi = alpha[ry0:ry1, rx0:rx1]
    patch = skin_patch_mask(geom, (ry1 - ry0, rx1 - rx0), a_roi, origin=(rx0, ry0))
    if patch.sum() < 50:
        return image
    cheek = np.ascontiguousarray(roi.reshape(-1, 3)[np.flatnonzero(patch)[::4]].reshape(-1, 1, 3))
    chroma = cv2.cvtColor(cheek, cv2.COLOR_RGB2YCrCb).reshape(-1, 3)[:, 1:].astype(np.float32)
    ref = np.median(chroma, axis=0)
    spread = np.maximum(np.percentile(np.abs(chroma - ref), 90, axis=0), 4.0)
    # The weight map at half size: skin-likeness by chroma, solid matte only, holes for eyes and mouth.
    hh, hw = max(1, (ry1 - ry0) // 2), max(1, (rx1 - rx0) // 2)
    fy, fx = hh / (ry1 - ry0), hw / (rx1 - rx0)
    low = cv2.resize(roi, (hw, hh), interpolation=cv2.INTER_AREA)
    ycc = cv2.cvtColor(low, cv2.COLOR_RGB2YCrCb)
    # Distance to the face's chroma, in units of its spread, per code value: two 256-entry tables looked
    # up per pixel (the same sums as computing the differences per pixel, without the float images).
    codes = np.arange(256, dtype=np.float32)
    d_cr = np.square((codes - np.float32(ref[0])) * np.float32(1.0 / (2.0 * spread[0])))
    d_cb = np.square((codes - np.float32(ref[1])) * np.float32(1.0 / (2.0 * spread[1])))
    dist = np.sqrt(d_cr[ycc[..., 1]] + d_cb[ycc[..., 2]])
    skin = np.clip(1.5 - dist, 0, 1)
    a_low = np.asarray(cv2.resize(a_roi, (hw, hh), interpolation=cv2.INTER_AREA), dtype=np.float32)
    skin *= np.clip((a_low - 0.5) * 2, 0, 1)
    for (px, py), r in ((geom.right_eye, 0.32 * d), (geom.left_eye, 0.32 * d), (geom.mouth, 0.42 * d)):
        centre = (round((px - rx0) * fx), round((py - ry0) * fy))
        cv2.circle(skin, centre, max(1, round(r * fx)), 0.0, thickness=-1)
    skin = cv2.GaussianBlur(skin, (0, 0), sigmaX=max(0.5, d * 0.04 * fx))
    skin *= SMOOTHING_STRENGTH
    # The blend weight·(a·I + b) + (1 - weight)·I  ==  I·(1 + weight·(a - 1)) + weight·b, with the
    # weight folded into the guided filter's coefficients at half size: two upsampled fields and one
    # multiply-add at full size (the weight, the filtered face and the blend were three full-size passes).
    # Only the block where the weight can move a pixel by half a code value or more (weight·255 ≥ 0.5)
    # is upsampled and applied, with a half-size pixel of margin for the bilinear taps: elsewhere the
    # result would round back to the pixel itself (the face window is mostly hair, ears and backdrop).
    busy = skin >= 1.0 / 512
    out = image if in_place else image.copy()
    if not busy.any():
        return out
    rows, cols = np.flatnonzero(busy.any(axis=1)), np.flatnonzero(busy.any(axis=0))
    r0, r1 = max(0, int(rows[0]) - 1), min(hh, int(rows[-1]) + 2)
    c0, c1 = max(0, int(cols[0]) - 1), min(hw, int(cols[-1]) + 2)
    ga, gb = guided_coefficients(roi, radius=max(2, round(d * 0.06)), eps=(0.035**2), subsample=2)
    weight = np.repeat(np.asarray(skin[r0:r1, c0:c1], dtype=np.float32)[..., None], 3, axis=2)
    gain_low = ga[r0:r1, c0:c1] - 1.0
    gain_low *= weight
    gain_low += 1.0
    offset_low = gb[r0:r1, c0:c1] * weight
    size = (2 * (c1 - c0), 2 * (r1 - r0))
    gain = np.asarray(cv2.resize(gain_low, size, interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    offset = np.asarray(cv2.resize(offset_low, size, interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    block = (slice(ry0 + 2 * r0, ry0 + 2 * r1), slice(rx0 + 2 * c0, rx0 + 2 * c1))
    gain *= image[block]
    gain += offset
    out[block] = cv2.convertScaleAbs(gain)
    return out
