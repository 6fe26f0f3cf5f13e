"""Backgrounds and compositing: studio grey, white, a brand colour, the original background blurred, or
the event's own backdrop image (``backdrop``: event data the caller loads once and passes in)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from engine.framing import Rect
from engine.imageio import RgbImage
from engine.matting import AlphaMap

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
NAMED_BACKGROUNDS = ("studio-grey", "white", "blur")
BACKDROP = "backdrop"  # the event's backdrop image: a background choice only where one is loaded


@dataclass(frozen=True)
class Background:
    """A parsed background choice: ``kind`` is ``studio-grey``, ``white``, ``blur``, ``colour`` or
    ``image`` (the event's backdrop; ``image`` holds its H×W×3 uint8 pixels, read-only, any size)."""

    kind: str
    rgb: tuple[int, int, int] = (0, 0, 0)
    image: RgbImage | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        r, g, b = self.rgb
        if self.kind == "image":
            return BACKDROP
        return f"#{r:02X}{g:02X}{b:02X}" if self.kind == "colour" else self.kind


def parse_background(spec: str, *, backdrop: RgbImage | None = None) -> Background:
    """``studio-grey`` | ``white`` | ``blur`` | ``#RRGGBB`` | ``backdrop`` (only with ``backdrop``, the
    event's image as H×W×3 uint8); raises ValueError naming the valid choices."""
    if spec in NAMED_BACKGROUNDS:
        return Background(spec, (255, 255, 255) if spec == "white" else (0, 0, 0))
    if _HEX.fullmatch(spec):
        return Background("colour", (int(spec[1:3], 16), int(spec[3:5], 16), int(spec[5:7], 16)))
    if spec == BACKDROP and backdrop is not None:
        if backdrop.ndim != 3 or backdrop.shape[2] != 3 or backdrop.dtype != np.uint8:
            raise ValueError("the backdrop image must be H×W×3 uint8")
        return Background("image", image=backdrop)
    if spec == BACKDROP:
        raise ValueError("the backdrop background needs the event's backdrop image, and none is loaded")
    raise ValueError(f"unknown background {spec!r}; use studio-grey, white, blur or a colour like #1F4E79")


def cover(image: RgbImage, width: int, height: int) -> RgbImage:
    """``image`` scaled to cover ``width``×``height`` and centre-cropped to it (as CSS ``object-fit:
    cover``): no border, no distortion. A new C-contiguous H×W×3 uint8 array."""
    ih, iw = image.shape[:2]
    scale = max(width / iw, height / ih)
    sw, sh = max(width, round(iw * scale)), max(height, round(ih * scale))
    # INTER_AREA when shrinking (no aliasing in a patterned backdrop), linear when enlarging.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = np.asarray(cv2.resize(image, (sw, sh), interpolation=interpolation), dtype=np.uint8)
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])


@lru_cache(maxsize=8)
def studio_grey(width: int, height: int) -> RgbImage:
    """A portrait-studio backdrop: a soft pool of light behind the head (upper centre) falling off to a
    darker, very slightly cool grey at the edges, plus a gentle vignette. Deterministic; cached per size
    (read-only, callers must not modify it)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    # Elliptical distance from the light's centre, which sits a little above the eye line.
    dx = (xs - width * 0.5) / (width * 0.75)
    dy = (ys - height * 0.33) / (height * 0.85)
    d = np.sqrt(dx * dx + dy * dy)
    light = np.clip(1.0 - d, 0.0, 1.0) ** 1.6
    vignette = 1.0 - 0.18 * np.clip(
        np.sqrt(((xs / width - 0.5) * 2) ** 2 + ((ys / height - 0.5) * 2) ** 2) - 0.6, 0, 1
    )
    edge = np.array([74.0, 77.0, 82.0], dtype=np.float32)
    centre = np.array([168.0, 170.0, 172.0], dtype=np.float32)
    img = (edge + (centre - edge) * light[..., None]) * vignette[..., None]
    # A whisper of noise (seeded) so the smooth gradient does not band in 8-bit JPEG.
    rng = np.random.default_rng(20260101)
    img += rng.normal(0.0, 0.6, size=img.shape).astype(np.float32)
    out: RgbImage = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def background_image(bg: Background, width: int, height: int, plate: RgbImage | None) -> RgbImage:
    """The backdrop as H×W×3 uint8. ``plate`` (the estimated original background without the person)
    is needed for ``blur`` only; ``image`` is scaled and cropped to cover the frame."""
    if bg.kind == "studio-grey":
        return studio_grey(width, height)
    if bg.kind == "blur":
        if plate is None:
            raise ValueError("the blur background needs the background plate")
        # Blur at quarter size: a wide Gaussian is 16× cheaper there and looks the same after upscaling.
        small = cv2.resize(plate, (max(8, width // 4), max(8, height // 4)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(2.0, width / 160))
        return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
    if bg.kind == "image":
        if bg.image is None:
            raise ValueError("the backdrop background has no image")
        return cover(bg.image, width, height)
    return np.full((height, width, 3), bg.rgb, dtype=np.uint8)


def composite(
    foreground: RgbImage, backdrop: RgbImage, alpha: AlphaMap, rects: Sequence[Rect] | None = None
) -> RgbImage:
    """α·F + (1-α)·B, all H×W; uint8 in and out (cv2.blendLinear runs vectorised on uint8), a new array.
    ``rects``: rectangles outside which α is 0 (``engine.matting.nonzero_rects``): the backdrop is copied
    and blended with the foreground only inside them; None blends every pixel."""
    if rects is None:
        inv = np.subtract(1.0, alpha, dtype=np.float32)
        return np.asarray(cv2.blendLinear(foreground, backdrop, alpha, inv), dtype=np.uint8)
    out = np.array(backdrop, dtype=np.uint8, copy=True)
    for x0, y0, x1, y1 in rects:
        a = alpha[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = cv2.blendLinear(
            foreground[y0:y1, x0:x1], backdrop[y0:y1, x0:x1], a, np.subtract(1.0, a, dtype=np.float32)
        )
    return out
