"""Portrait matting with MODNet on the framed crop, and edge refinement (foreground colour estimation)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from engine.backend import FloatArray, InferenceBackend
from engine.imageio import RgbImage

AlphaMap = npt.NDArray[np.float32]
"""H×W float32 in [0, 1]; 1 = person."""

_BAND_LO = np.nextafter(np.float32(0.004), np.float32(1)).reshape(1)
_BAND_HI = np.nextafter(np.float32(0.996), np.float32(0)).reshape(1)


class Matter:
    """MODNet on a backend. Does not own the backend.

    MODNet's input is RGB normalised to [-1, 1] (mean 0.5, std 0.5), N×3×H×W with H and W multiples of
    32; its output is the alpha matte N×1×H×W in [0, 1]."""

    def __init__(self, backend: InferenceBackend) -> None:
        self._backend = backend
        (self._input,) = backend.input_shapes
        self._output = backend.output_names[0]

    def matte(self, crop: RgbImage) -> AlphaMap:
        """Alpha for a crop already resized to the network size (h, w multiples of 32)."""
        h, w = crop.shape[:2]
        if h % 32 or w % 32:
            raise ValueError(f"matting input must be a multiple of 32, got {w}×{h}")
        x = crop.astype(np.float32)
        x *= 2.0 / 255.0
        x -= 1.0
        tensor = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        out = self._backend.infer({self._input: tensor})[self._output]
        return np.ascontiguousarray(np.clip(out[0, 0], 0.0, 1.0), dtype=np.float32)


def _box(img: FloatArray, r: int) -> FloatArray:
    return np.asarray(cv2.blur(img, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT), dtype=np.float32)


def _blur_fusion_pass(
    image: FloatArray, f: FloatArray, b: FloatArray, alpha: AlphaMap, r: int
) -> tuple[FloatArray, FloatArray]:
    """One blur-fusion step (Forte & Pitié, "Approximate fast foreground colour estimation", ICIP 2021).
    Arrays are h×w×3 float32 in [0, 1]; written with in-place numpy ops because this runs per render."""
    a = alpha[..., None]
    blurred_a = _box(alpha, r)[..., None]
    f_blur = _box(f * a, r)
    f_blur /= blurred_a + 1e-5
    b_blur = _box(b * (1 - a), r)
    b_blur /= (1 - blurred_a) + 1e-5
    # I - αF̂ - (1-α)B̂  ==  (I - B̂) - α(F̂ - B̂): one temporary fewer.
    resid = image - b_blur
    resid -= a * (f_blur - b_blur)
    resid *= a
    resid += f_blur
    return np.clip(resid, 0, 1, out=resid), b_blur


def decontaminate(crop: RgbImage, alpha: AlphaMap, *, radius: int = 45) -> tuple[RgbImage, RgbImage]:
    """Foreground with the old background's colour removed from soft edges, and a background plate.

    Estimates I = αF + (1-α)B with blur fusion: a wide pass that carries colours in from solid regions
    and a narrow pass that sharpens. The last
    correction runs at full resolution but only in the edge band (0 < α < 1): solid person pixels pass
    through untouched. Without this, hair edges keep the old background's colour — a green or bright
    halo around the guest on the new background.

    ``crop`` is H×W×3 uint8, ``alpha`` H×W. Returns (foreground H×W×3 uint8, plate at quarter size uint8:
    the old background with the person removed, for the ``blur`` backdrop)."""
    h, w = crop.shape[:2]
    # Both passes at quarter size: the estimates are smooth colour fields, and the final full-resolution
    # correction below restores strand-level detail from the real pixels.
    quarter = (max(4, w // 4), max(4, h // 4))
    img_q = cv2.resize(crop, quarter, interpolation=cv2.INTER_AREA).astype(np.float32) * (1 / 255)
    a_q = np.asarray(cv2.resize(alpha, quarter, interpolation=cv2.INTER_AREA), dtype=np.float32)
    f_q, b_q = _blur_fusion_pass(img_q, img_q, img_q, a_q, max(2, radius // 4))
    f_q, b_q = _blur_fusion_pass(img_q, f_q, b_q, a_q, max(1, radius // 60))
    plate = np.clip(b_q * 255 + 0.5, 0, 255).astype(np.uint8)
    fg = crop.copy()
    # Flat indices once: boolean-mask indexing recomputes the mask's nonzeros on every use. The band
    # 0.004 < α < 0.996 as one fused OpenCV pass (inclusive bounds one float32 step inside).
    idx = np.flatnonzero(cv2.inRange(alpha, _BAND_LO, _BAND_HI))
    if idx.size:
        # The quarter-size estimates, interpolated at the band's pixels only (a bilinear lookup per band
        # pixel, at the positions a full-size INTER_LINEAR resize samples) instead of resizing both
        # fields to full size and keeping a few percent of them.
        ys, xs = np.divmod(idx, w)
        sx = (xs.astype(np.float32) + 0.5) * (quarter[0] / w) - 0.5
        sy = (ys.astype(np.float32) + 0.5) * (quarter[1] / h) - 0.5
        f_up = _lookup(f_q, sx, sy)
        b_up = _lookup(b_q, sx, sy)
        i = crop.reshape(-1, 3)[idx].astype(np.float32)
        a = alpha.reshape(-1)[idx][:, None]
        corrected = f_up + a * ((i - b_up) - a * (f_up - b_up))
        fg.reshape(-1, 3)[idx] = np.clip(corrected + 0.5, 0, 255).astype(np.uint8)
    return fg, plate


def _lookup(field: FloatArray, sx: FloatArray, sy: FloatArray) -> FloatArray:
    """Bilinear samples (N×3, 0..255) of an h×w×3 [0, 1] field at N positions (float32 each)."""
    n = sx.size
    cols = 1024  # cv2.remap wants maps shorter than 32767 per side: lay the N positions out in rows
    rows = -(-n // cols)
    mx = np.zeros(rows * cols, dtype=np.float32)
    my = np.zeros(rows * cols, dtype=np.float32)
    mx[:n], my[:n] = sx, sy
    out = cv2.remap(
        field,
        mx.reshape(rows, cols),
        my.reshape(rows, cols),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(out, dtype=np.float32).reshape(-1, 3)[:n] * 255


def refine_alpha(alpha: AlphaMap) -> AlphaMap:
    """Clean up a matte upsampled from the network size: snap near-solid values so that skin and
    background are exactly opaque/transparent (no faint ghost of the old background), keep soft hair."""
    out = np.subtract(alpha, 0.02, dtype=np.float32)
    np.divide(out, 0.96, out=out)
    return np.clip(out, 0.0, 1.0, out=out)
