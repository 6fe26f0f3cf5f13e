"""Portrait matting with MODNet on the framed crop, and edge refinement (foreground colour estimation)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from engine.backend import FloatArray, InferenceBackend
from engine.imageio import RgbImage

AlphaMap = npt.NDArray[np.float32]
"""H×W float32 in [0, 1]; 1 = person."""


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
    f8 = np.clip(f_q * 255 + 0.5, 0, 255).astype(np.uint8)
    plate = np.clip(b_q * 255 + 0.5, 0, 255).astype(np.uint8)
    fg = crop.copy()
    # Flat indices once: boolean-mask indexing recomputes the mask's nonzeros on every use.
    idx = np.flatnonzero((alpha > 0.004) & (alpha < 0.996))
    if idx.size:
        f_up = cv2.resize(f8, (w, h), interpolation=cv2.INTER_LINEAR).reshape(-1, 3)[idx].astype(np.float32)
        b_up = (
            cv2.resize(plate, (w, h), interpolation=cv2.INTER_LINEAR).reshape(-1, 3)[idx].astype(np.float32)
        )
        i = crop.reshape(-1, 3)[idx].astype(np.float32)
        a = alpha.reshape(-1)[idx][:, None]
        corrected = f_up + a * ((i - b_up) - a * (f_up - b_up))
        fg.reshape(-1, 3)[idx] = np.clip(corrected + 0.5, 0, 255).astype(np.uint8)
    return fg, plate


def refine_alpha(alpha: AlphaMap) -> AlphaMap:
    """Clean up a matte upsampled from the network size: snap near-solid values so that skin and
    background are exactly opaque/transparent (no faint ghost of the old background), keep soft hair."""
    out = (alpha - 0.02) / 0.96
    return np.clip(out, 0.0, 1.0, out=out)
