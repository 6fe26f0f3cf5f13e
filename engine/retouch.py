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


def skin_patch_mask(
    geom: FaceGeometry, shape: tuple[int, int], alpha: AlphaMap | None = None
) -> npt.NDArray[np.bool_]:
    """Cheeks and nose: an ellipse between the eyes and the mouth (no eyes, brows, lips or hair), where the
    face's skin lightness is measured. ``shape`` is (h, w)."""
    ex, ey = geom.eye_centre
    mx, my = geom.mouth
    cx, cy = (ex + mx) / 2, (ey + my) / 2
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


def guided_smooth(image: RgbImage, *, radius: int, eps: float) -> npt.NDArray[np.float32]:
    """Self-guided filter (He, Sun & Tang, "Guided Image Filtering", 2013), per channel: smooths fine
    texture whose variance is below ``eps`` (in [0, 1]² units) and keeps stronger edges. O(1) per pixel
    (box filters only), unlike a bilateral filter whose cost grows with the face size."""
    i = image.astype(np.float32) * (1 / 255)
    k = (2 * radius + 1, 2 * radius + 1)
    mean = np.asarray(cv2.blur(i, k), dtype=np.float32)
    var = np.asarray(cv2.blur(i * i, k), dtype=np.float32)
    var -= mean * mean
    a = var / (var + eps)
    b = mean - a * mean
    out = np.asarray(cv2.blur(a, k), dtype=np.float32) * i + np.asarray(cv2.blur(b, k), dtype=np.float32)
    out *= 255
    return np.asarray(out, dtype=np.float32)


def smooth_skin(image: RgbImage, geom: FaceGeometry, alpha: AlphaMap) -> RgbImage:
    """Edge-preserving smoothing of facial skin only, blended at ``SMOOTHING_STRENGTH``.

    Skin is found by the face's *own* chroma (median Cr/Cb of the cheek patch, then pixels near it),
    not by a fixed "skin colour" range, so it works the same for every skin tone. Eyes, brows and lips
    are excluded by discs around the keypoints; nothing is reshaped."""
    h, w = image.shape[:2]
    d = geom.eye_distance
    if d < 12:
        return image  # face too small in the output for retouching to matter
    x0, y0, x1, y1 = geom.bbox
    pad = 0.25 * (x1 - x0)
    rx0, ry0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    rx1, ry1 = min(w, int(x1 + pad)), min(h, int(y1 + pad))
    if rx1 - rx0 < 8 or ry1 - ry0 < 8:
        return image
    roi = image[ry0:ry1, rx0:rx1]
    patch = skin_patch_mask(geom, (h, w), alpha)[ry0:ry1, rx0:rx1]
    if patch.sum() < 50:
        return image
    ycc = cv2.cvtColor(roi, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ref = np.median(ycc[patch][:, 1:], axis=0)
    spread = np.maximum(np.percentile(np.abs(ycc[patch][:, 1:] - ref), 90, axis=0), 4.0)
    diff = (ycc[..., 1:] - ref.astype(np.float32)) * (1.0 / (2.0 * spread)).astype(np.float32)
    dist = cv2.magnitude(diff[..., 0], diff[..., 1])
    skin = np.clip(1.5 - dist, 0, 1)
    skin *= np.clip((alpha[ry0:ry1, rx0:rx1] - 0.5) * 2, 0, 1)
    holes = np.ones_like(skin)
    for (px, py), r in ((geom.right_eye, 0.32 * d), (geom.left_eye, 0.32 * d), (geom.mouth, 0.42 * d)):
        cv2.circle(holes, (round(px - rx0), round(py - ry0)), max(1, round(r)), 0.0, thickness=-1)
    skin *= holes
    skin = cv2.GaussianBlur(skin, (0, 0), sigmaX=max(1.0, d * 0.04))
    smoothed = guided_smooth(roi, radius=max(2, round(d * 0.06)), eps=(0.035**2))
    weight = np.asarray(skin * SMOOTHING_STRENGTH, dtype=np.float32)
    out = image.copy()
    smoothed8 = np.clip(smoothed + 0.5, 0, 255).astype(np.uint8)
    out[ry0:ry1, rx0:rx1] = cv2.blendLinear(
        smoothed8, roi, weight, np.subtract(1.0, weight, dtype=np.float32)
    )
    return out
