"""Portrait matting with MODNet on the framed crop, and edge refinement (foreground colour estimation)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from engine.backend import FloatArray, InferenceBackend
from engine.framing import Rect
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
    image: FloatArray, f: FloatArray, b: FloatArray, alpha: FloatArray, r: int
) -> tuple[FloatArray, FloatArray]:
    """One blur-fusion step (Forte & Pitié, "Approximate fast foreground colour estimation", ICIP 2021).
    Arrays are h×w×3 float32 in [0, 1], ``alpha`` too (the matte repeated per channel: numpy broadcasts
    an h×w×1 operand several times slower than it combines equal shapes); written with in-place
    numpy ops because this runs per render."""
    blurred_a = _box(alpha, r)
    f_blur = _box(f * alpha, r)
    f_blur /= blurred_a + 1e-5
    b_blur = _box(b * (1 - alpha), r)
    blurred_a -= 1 + 1e-5
    b_blur /= np.negative(blurred_a, out=blurred_a)  # (1 - blurred α) + 1e-5
    # I - αF̂ - (1-α)B̂  ==  (I - B̂) - α(F̂ - B̂): one temporary fewer.
    resid = image - b_blur
    step = f_blur - b_blur
    step *= alpha
    resid -= step
    resid *= alpha
    resid += f_blur
    return np.clip(resid, 0, 1, out=resid), b_blur


def decontaminate(
    crop: RgbImage,
    alpha: AlphaMap,
    *,
    radius: int = 45,
    context: tuple[RgbImage, AlphaMap] | None = None,
    in_place: bool = False,
    rects: Sequence[Rect] | None = None,
) -> tuple[RgbImage, RgbImage]:
    """Foreground with the old background's colour removed from soft edges, and a background plate.

    Estimates I = αF + (1-α)B with blur fusion: a wide pass that carries colours in from solid regions
    and a narrow pass that sharpens. The last correction runs at full resolution but only in the edge
    band (0 < α < 1): solid person pixels pass through untouched. Without this, hair edges keep the old
    background's colour — a green or bright halo around the guest on the new background.

    ``crop`` is H×W×3 uint8, ``alpha`` H×W. ``context``: the same frame and its matte at a reduced
    scale (the matting input and MODNet's refined matte of it, h×w×3 uint8 and h×w): the estimates are
    then made at half that scale (an exact 2×2 box reduction, where a quarter of the output would need
    a fractional one) and ``crop`` need only hold real pixels where α > 0 (``engine.framing.warp_into``);
    None makes them from ``crop`` and ``alpha`` at a quarter of their size. ``in_place``: correct
    ``crop`` itself and return it as the foreground instead of a copy. ``rects``: rectangles outside
    which α is 0 (``nonzero_rects``), where the edge band is searched; None searches the whole frame.

    Returns (foreground H×W×3 uint8, plate at the estimates' size, uint8: the old background with the
    person removed, for the ``blur`` backdrop)."""
    h, w = crop.shape[:2]
    # Both passes at a quarter of the size or less: the estimates are smooth colour fields, and the final
    # full-resolution correction below restores strand-level detail from the real pixels.
    if context is None:
        source, source_alpha, quarter = crop, alpha, (max(4, w // 4), max(4, h // 4))
    else:
        source, source_alpha = context
        quarter = (max(4, source.shape[1] // 2), max(4, source.shape[0] // 2))
    img_q = cv2.resize(source, quarter, interpolation=cv2.INTER_AREA).astype(np.float32) * (1 / 255)
    a_q = np.asarray(cv2.resize(source_alpha, quarter, interpolation=cv2.INTER_AREA), dtype=np.float32)
    a_q = np.ascontiguousarray(np.repeat(a_q[..., None], 3, axis=2))
    # The wide pass reaches ``radius`` output pixels whatever the estimates' scale.
    f_q, b_q = _blur_fusion_pass(img_q, img_q, img_q, a_q, max(2, round(radius * quarter[0] / w)))
    f_q, b_q = _blur_fusion_pass(img_q, f_q, b_q, a_q, max(1, radius // 60))
    plate = np.clip(b_q * 255 + 0.5, 0, 255).astype(np.uint8)
    fg = crop if in_place else crop.copy()
    # The band 0.004 < α < 0.996 as one fused OpenCV pass per rectangle (inclusive bounds one float32
    # step inside), its pixels as coordinates: boolean-mask indexing would recompute them on every use.
    ys, xs = _band_pixels(alpha, rects)
    if ys.size:
        # The quarter-size estimates, interpolated at the band's pixels only (a bilinear lookup per band
        # pixel, at the positions a full-size INTER_LINEAR resize samples) instead of resizing both
        # fields to full size and keeping a few percent of them.
        sx = (xs.astype(np.float32) + 0.5) * (quarter[0] / w) - 0.5
        sy = (ys.astype(np.float32) + 0.5) * (quarter[1] / h) - 0.5
        f_up = _lookup(f_q, sx, sy)
        b_up = _lookup(b_q, sx, sy)
        idx = ys * w + xs
        i = np.take(crop.reshape(-1, 3), idx, axis=0).astype(np.float32)
        # α per channel: equal shapes combine several times faster than a broadcast N×1 operand.
        a = np.repeat(np.take(alpha.reshape(-1), idx)[:, None], 3, axis=1)
        # F = F̂ + α((I - B̂) - α(F̂ - B̂)), in place on the temporaries.
        i -= b_up
        b_up -= f_up  # B̂ - F̂
        b_up *= a
        i += b_up
        i *= a
        i += f_up
        i += 0.5
        fg.reshape(-1, 3)[idx] = np.clip(i, 0, 255, out=i).astype(np.uint8)
    return fg, plate


def _band_pixels(
    alpha: AlphaMap, rects: Sequence[Rect] | None
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Rows and columns of the pixels with 0.004 < α < 0.996, searched inside ``rects`` (None: all)."""
    h, w = alpha.shape
    ys: list[npt.NDArray[np.intp]] = []
    xs: list[npt.NDArray[np.intp]] = []
    for x0, y0, x1, y1 in [(0, 0, w, h)] if rects is None else rects:
        found = cv2.findNonZero(cv2.inRange(alpha[y0:y1, x0:x1], _BAND_LO, _BAND_HI))
        if found is not None:
            xy = found.reshape(-1, 2).astype(np.intp)
            xs.append(xy[:, 0] + x0)
            ys.append(xy[:, 1] + y0)
    if not ys:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    return np.concatenate(ys), np.concatenate(xs)


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


def nonzero_rects(alpha: AlphaMap, *, band: int = 16) -> list[Rect]:
    """Rectangles of ``alpha`` (H×W) outside which it is exactly 0: the column span of each band of
    ``band`` rows that has a nonzero pixel, neighbouring bands joined while that adds at most a quarter
    of a band's full width in pixels outside both (each rectangle costs a few OpenCV calls in every
    step that uses them, worth about that many pixels of work).

    A headshot's matte covers 35-45 % of the frame (head and shoulders; the air above and beside the
    head is backdrop), so the full-size steps that only matter where the guest is (the warp, tone,
    edge correction, compositing) run on little more than that share of the pixels."""
    h, w = alpha.shape
    starts = np.arange(0, h, band)
    # Column maxima per band (a reduction over whole rows, which numpy vectorises), then > 0.
    whole = h // band * band
    peaks = alpha[:whole].reshape(-1, band, w).max(axis=1)
    if whole < h:
        peaks = np.vstack([peaks, alpha[whole:].max(axis=0, keepdims=True)])
    cols = peaks > 0
    has = cols.any(axis=1)
    left = np.argmax(cols, axis=1)
    right = w - np.argmax(cols[:, ::-1], axis=1)
    budget = band * w // 4
    rects: list[Rect] = []
    for i in np.flatnonzero(has):
        r: Rect = (int(left[i]), int(starts[i]), int(right[i]), int(min(h, starts[i] + band)))
        if rects and rects[-1][3] == r[1]:
            p = rects[-1]
            joined = (min(p[0], r[0]), p[1], max(p[2], r[2]), r[3])
            if _area(joined) - _area(p) - _area(r) <= budget:
                rects[-1] = joined
                continue
        rects.append(r)
    return rects


def _area(r: Rect) -> int:
    return (r[2] - r[0]) * (r[3] - r[1])


def refine_alpha(alpha: AlphaMap) -> AlphaMap:
    """Clean up a matte upsampled from the network size: snap near-solid values so that skin and
    background are exactly opaque/transparent (no faint ghost of the old background), keep soft hair."""
    out = np.subtract(alpha, 0.02, dtype=np.float32)
    np.divide(out, 0.96, out=out)
    return np.clip(out, 0.0, 1.0, out=out)
