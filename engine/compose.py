"""Backgrounds and compositing: studio grey, white, a brand colour, or the original background blurred."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from engine.framing import Rect
from engine.imageio import RgbImage
from engine.matting import AlphaMap

_HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
NAMED_BACKGROUNDS = ("studio-grey", "white", "blur")


@dataclass(frozen=True)
class Background:
    """A parsed background choice: ``kind`` is ``studio-grey``, ``white``, ``blur`` or ``colour``."""

    kind: str
    rgb: tuple[int, int, int] = (0, 0, 0)

    @property
    def name(self) -> str:
        r, g, b = self.rgb
        return f"#{r:02X}{g:02X}{b:02X}" if self.kind == "colour" else self.kind


def parse_background(spec: str) -> Background:
    """``studio-grey`` | ``white`` | ``blur`` | ``#RRGGBB``; raises ValueError naming the valid choices."""
    if spec in NAMED_BACKGROUNDS:
        return Background(spec, (255, 255, 255) if spec == "white" else (0, 0, 0))
    if _HEX.fullmatch(spec):
        return Background("colour", (int(spec[1:3], 16), int(spec[3:5], 16), int(spec[5:7], 16)))
    raise ValueError(f"unknown background {spec!r}; use studio-grey, white, blur or a colour like #1F4E79")


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
    is needed for ``blur`` only."""
    if bg.kind == "studio-grey":
        return studio_grey(width, height)
    if bg.kind == "blur":
        if plate is None:
            raise ValueError("the blur background needs the background plate")
        # Blur at quarter size: a wide Gaussian is 16× cheaper there and looks the same after upscaling.
        small = cv2.resize(plate, (max(8, width // 4), max(8, height // 4)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(2.0, width / 160))
        return np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
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
