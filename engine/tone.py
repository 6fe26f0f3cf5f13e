"""Tone: white balance and contrast that keep the guest's skin as it is.

AI headshot services are criticised for lightening skin. Here every adjustment is built around the
measured face: white-balance gains are renormalised so the face's luminance does not move, and the
contrast curve pivots on the face's own mean, so skin lightness is a fixed point (tested as ΔL* on the
face region, including on darkened and colour-cast variants of the test portraits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from engine.framing import Rect
from engine.imageio import RgbImage

BoolMask = npt.NDArray[np.bool_]
MAX_GAIN_DEVIATION = 0.04  # white balance may move a channel by at most ±4 %
WB_DEAD_ZONE = 0.02
WB_STRENGTH = 0.5  # correct half of the estimated cast: full correction of a warm room looks clinical
MAX_SKIN_SHIFT_AB = 2.0  # the most white balance may move the face's mean colour (ΔE in a*b*)
CONTRAST = 1.08  # slope at the pivot; 1.0 = no change

_CODED = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_CODED <= 0.04045, _CODED / 12.92, ((_CODED + 0.055) / 1.055) ** 2.4)
_LINEAR32 = _LINEAR.astype(np.float32)
_LINEAR32_POW6 = _LINEAR32**6
_LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 / sRGB luminance weights, linear light


def _encode(lin: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lin = np.clip(lin, 0.0, 1.0)
    return np.asarray(
        np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055), dtype=np.float64
    )


@dataclass(frozen=True)
class ToneResult:
    image: RgbImage
    gains: tuple[float, float, float]
    pivot: float


def estimate_gains(sample: RgbImage, mask: BoolMask | None = None) -> npt.NDArray[np.float64]:
    """White-balance gains from a shades-of-grey estimate (Minkowski p = 6) of ``sample`` where ``mask``
    is set, applied at ``WB_STRENGTH``, with a dead zone of ±``WB_DEAD_ZONE`` and clamped to
    ±``MAX_GAIN_DEVIATION``.

    The kiosk passes the *background* of the crop: a guest's orange jacket or their skin must not be
    mistaken for the colour of the light (that is exactly how skin tone gets "corrected" away). Clipped
    and near-black pixels are left out too: a blown-out highlight says nothing about the light's colour."""
    # A stride of 7 is plenty for a global estimate, at a seventh of the work of masking every pixel.
    px = sample.reshape(-1, 3)[::7]
    if mask is not None:
        px = px[mask.reshape(-1)[::7]]
    # Per-channel extremes column by column: numpy reduces a 3-wide inner axis slowly.
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    usable = (np.maximum(np.maximum(r, g), b) < 250) & (np.minimum(np.minimum(r, g), b) > 8)
    if np.count_nonzero(usable) < 500:
        return np.ones(3, dtype=np.float64)
    # lin⁶ per code value from a table (the same float32 values as raising each pixel to the 6th power).
    illum = np.power(np.mean(_LINEAR32_POW6[px[usable]], axis=0, dtype=np.float64), 1 / 6) + 1e-6
    dev = (illum.mean() / illum) ** WB_STRENGTH - 1.0
    # Small deviations are the scene's own colour (a beige wall), not a cast: leave them alone.
    dev = np.sign(dev) * np.maximum(np.abs(dev) - WB_DEAD_ZONE, 0.0)
    return np.asarray(1.0 + np.clip(dev, -MAX_GAIN_DEVIATION, MAX_GAIN_DEVIATION), dtype=np.float64)


def _curve(x: npt.NDArray[np.float64], pivot: float) -> npt.NDArray[np.float64]:
    """Monotonic contrast curve on [0, 1] with f(0)=0, f(1)=1, f(pivot)=pivot and slope CONTRAST there."""
    p = min(max(pivot, 0.05), 0.95)
    lo = p * (x / p) ** CONTRAST
    hi = p + (1 - p) * (1 - ((1 - x) / (1 - p)) ** CONTRAST)
    return np.asarray(np.where(x <= p, lo, hi), dtype=np.float64)


def _gain_lut(gains: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Per-channel 8-bit LUT applying ``gains`` in linear light."""
    out = np.empty((1, 256, 3), dtype=np.uint8)
    for c in range(3):
        out[0, :, c] = np.clip(_encode(_LINEAR * gains[c]) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _curve_delta_lut(pivot: float) -> npt.NDArray[np.uint8]:
    """How far the contrast curve moves each luma code value, plus 128 (an 8-bit LUT: the curve moves a
    code value by far less than 128 either way)."""
    x = np.arange(256, dtype=np.float64)
    curved = np.clip(_curve(x / 255.0, pivot) * 255.0 + 0.5, 0, 255).astype(np.int16)
    delta = curved - x.astype(np.int16)
    return np.clip(delta + 128, 0, 255).astype(np.uint8).reshape(1, 256)


def _toned(image: RgbImage, gains: npt.NDArray[np.float64], pivot: float) -> RgbImage:
    """White balance per channel, then the contrast curve on luma only (Y of YCrCb): the chroma offsets
    stay as they are, so contrast does not saturate or desaturate skin, as a per-channel curve would.

    With Cr and Cb fixed, moving Y by d moves R, G and B by exactly d (the YCrCb -> RGB rows all have Y
    weight 1), so the curve is applied as that shift, added to the balanced pixels with saturation: no
    round trip through 8-bit Cr/Cb (which rounds every pixel by up to a code value) and all steps are
    8-bit LUTs, a grey conversion and one saturating add that OpenCV vectorises (a few ms at 1024²)."""
    balanced = cv2.LUT(image, _gain_lut(gains))
    luma = cv2.cvtColor(balanced, cv2.COLOR_RGB2GRAY)  # the same Y (BT.601 weights) as RGB2YCrCb
    shift = cv2.cvtColor(cv2.LUT(luma, _curve_delta_lut(pivot)), cv2.COLOR_GRAY2RGB)
    # balanced + (shift - 128), saturated to 0..255: exact for these integers.
    return np.asarray(cv2.addWeighted(balanced, 1.0, shift, 1.0, -128.0, dtype=cv2.CV_8U), dtype=np.uint8)


def _keep_face_luminance(
    face_px: RgbImage, gains: npt.NDArray[np.float64], pivot: float, before: float
) -> npt.NDArray[np.float64]:
    """Scale ``gains`` so the face's mean luminance stays at ``before``; a few rounds absorb the
    nonlinearity of the curve and of 8-bit rounding."""
    for _ in range(3):
        after = float((_LINEAR[_toned(face_px, gains, pivot).reshape(-1, 3)] @ _LUMA).mean())
        if after <= 0 or abs(before / after - 1.0) < 1e-4:
            break  # converged: a further round would move the gains by less than 0.01 %
        gains = gains * (before / after)
    return gains


def _ab_shift(a: RgbImage, b: RgbImage) -> float:
    """Distance between the mean CIE a*b* of two same-shaped pixel sets."""
    la = cv2.cvtColor(a.astype(np.float32) * (1 / 255), cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(0)
    lb = cv2.cvtColor(b.astype(np.float32) * (1 / 255), cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(0)
    return float(np.hypot(la[1] - lb[1], la[2] - lb[2]))


def measure_tone(
    face_px: RgbImage, sample: RgbImage, sample_mask: BoolMask | None = None
) -> tuple[npt.NDArray[np.float64], float]:
    """The white-balance gains and the contrast pivot for a headshot: ``face_px`` are skin pixels of the
    face (N×3 or N×1×3 uint8; every 3rd cheek pixel is plenty), ``sample``/``sample_mask`` where the
    light's colour is estimated (``estimate_gains``). The gains keep the face's mean luminance and move
    its mean colour by at most ``MAX_SKIN_SHIFT_AB``; the pivot is the face's mean luma in [0, 1]."""
    face_px = np.ascontiguousarray(face_px.reshape(-1, 1, 3))
    gains = estimate_gains(sample, sample_mask)
    before = float((_LINEAR[face_px.reshape(-1, 3)] @ _LUMA).mean())
    pivot = float(cv2.cvtColor(face_px, cv2.COLOR_RGB2GRAY).mean()) / 255.0
    gains = _keep_face_luminance(face_px, gains, pivot, before)
    # Hard cap on how far the face's colour may move: scale the white balance back until the skin's
    # mean shifts by at most MAX_SKIN_SHIFT_AB (CIE a*b*). Casts are still reduced, never overcorrected.
    shift = _ab_shift(face_px, _toned(face_px, gains, pivot))
    if shift > MAX_SKIN_SHIFT_AB:
        gains = 1.0 + (gains / gains.mean() - 1.0) * (MAX_SKIN_SHIFT_AB / shift)
        gains = _keep_face_luminance(face_px, gains, pivot, before)
    return gains, pivot


def tone_rects(image: RgbImage, gains: npt.NDArray[np.float64], pivot: float, rects: Sequence[Rect]) -> None:
    """Apply the tone (``measure_tone``'s gains and pivot) in place, inside ``rects`` of ``image`` only:
    the pipeline tones the pixels its matte keeps, not the backdrop-to-be."""
    for x0, y0, x1, y1 in rects:
        image[y0:y1, x0:x1] = _toned(image[y0:y1, x0:x1], gains, pivot)


def apply_tone(
    image: RgbImage,
    face_mask: BoolMask,
    *,
    estimate_from: RgbImage | None = None,
    estimate_mask: BoolMask | None = None,
) -> ToneResult:
    """Return the toned image (a new array). ``face_mask`` (H×W bool) marks skin pixels of the face;
    the white balance is estimated on ``estimate_from`` (default: ``image``) where ``estimate_mask``
    (same size as ``estimate_from``) is set."""
    if not face_mask.any():
        return ToneResult(image, (1.0, 1.0, 1.0), 0.5)
    # Face statistics are means: every 3rd skin pixel gives them to well within the tone tests' tolerances,
    # for a third of the work.
    face_px = image.reshape(-1, 3)[np.flatnonzero(face_mask)[::3]]
    gains, pivot = measure_tone(face_px, estimate_from if estimate_from is not None else image, estimate_mask)
    out = _toned(image, gains, pivot)
    return ToneResult(out, (float(gains[0]), float(gains[1]), float(gains[2])), pivot)
