"""What goes on the paper: a headshot laid out on a 4×6 inch page at the printer's 300 dpi.

Two layouts (``[print] layout``): ``postcard`` — the headshot large, with a band in the event's brand
colour carrying the event's name; ``badges`` — four badge photos (3:4) to cut out, with the same band.
4×6 is the size every supported dye-sub printer prints natively (DNP DS620 / DS-RX1HS, Mitsubishi
CP-D70/D80), so the queue's page size is fixed by provisioning and the layout is made at its aspect ratio.

Runs in the session worker only (it handles pixels); every intermediate image is zeroed after use, and the
document is returned as a ``bytearray`` so the print thread can zero it once CUPS has it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from appliance.hardening import zero_array
from engine.imageio import encode_jpeg

__all__ = [
    "DOCUMENT_FORMAT",
    "LAYOUTS",
    "PAGE_PIXELS",
    "PRINT_DPI",
    "compose_print",
    "print_document",
]

RgbImage = npt.NDArray[np.uint8]

PRINT_DPI = 300
PAGE_PIXELS = (4 * PRINT_DPI, 6 * PRINT_DPI)  # (width, height): a portrait 4×6 inch page
DOCUMENT_FORMAT = "image/jpeg"
DOCUMENT_JPEG_QUALITY = 95  # the print is made once and thrown away: no reason to skimp
LAYOUTS = ("postcard", "badges")
_MARGIN = 60  # px, 0.2 in: dye-sub printers print borderless, but a cutter may shave a little
_BAND = 240  # px, 0.8 in: the brand band at the bottom
_BADGE = (540, 720)  # px, 1.8 × 2.4 in, the badge preset's 3:4
_GUTTER = 40
_MAX_HEADSHOT_PIXELS = 40_000_000
# The event's name may be any printable text (accents, Greek, Cyrillic): DejaVu Sans covers those and is
# on Debian and Ubuntu images (fonts-dejavu-core). Pillow's bundled font, the fallback, is ASCII only.
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (relative luminance, sRGB weights)."""
    r, g, b = background
    return (17, 17, 17) if 0.2126 * r + 0.7152 * g + 0.0722 * b > 150 else (255, 255, 255)


def _fit(image: RgbImage, width: int, height: int) -> RgbImage:
    """``image`` scaled to fit inside ``width``×``height`` (aspect kept)."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=interpolation), dtype=np.uint8)


def _cover(image: RgbImage, width: int, height: int) -> RgbImage:
    """``image`` scaled and centre-cropped to exactly ``width``×``height``."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    scaled = cv2.resize(
        image, (max(width, round(w * scale)), max(height, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    y = (scaled.shape[0] - height) // 2
    x = (scaled.shape[1] - width) // 2
    out = np.ascontiguousarray(scaled[y : y + height, x : x + width], dtype=np.uint8)
    zero_array(scaled)
    return out


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_CANDIDATES:
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _band(page: RgbImage, top: int, event_name: str, colour: tuple[int, int, int]) -> None:
    """Fill the page below ``top`` with ``colour`` and write the event's name in it, centred, as large
    as fits (``FONT_CANDIDATES``)."""
    page[top:] = colour
    picture = Image.fromarray(page[top:])
    draw = ImageDraw.Draw(picture)
    width = page.shape[1] - 2 * _MARGIN
    height = page.shape[0] - top
    for size in range(96, 23, -8):
        font = _font(size)
        left, upper, right, lower = draw.textbbox((0, 0), event_name, font=font)
        if right - left <= width:
            break
    x = (page.shape[1] - (right - left)) // 2 - left
    y = (height - (lower - upper)) // 2 - upper
    draw.text((x, y), event_name, font=font, fill=_text_colour(colour))
    page[top:] = np.asarray(picture)


def compose_print(headshot: RgbImage, layout: str, *, event_name: str, brand_colour: str) -> RgbImage:
    """The page for ``headshot`` (H×W×3 uint8 sRGB) in ``layout``: H×W = ``PAGE_PIXELS`` reversed. The
    caller owns (and zeroes) both arrays."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    width, height = PAGE_PIXELS
    page = np.full((height, width, 3), 255, dtype=np.uint8)
    band_top = height - _BAND
    if layout == "postcard":
        photo = _fit(headshot, width - 2 * _MARGIN, band_top - 2 * _MARGIN)
        y = _MARGIN + (band_top - 2 * _MARGIN - photo.shape[0]) // 2
        x = (width - photo.shape[1]) // 2
        page[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
    else:
        photo = _cover(headshot, *_BADGE)
        columns_width = 2 * _BADGE[0] + _GUTTER
        x0 = (width - columns_width) // 2
        y0 = (band_top - (2 * _BADGE[1] + _GUTTER)) // 2
        for row in range(2):
            for column in range(2):
                x = x0 + column * (_BADGE[0] + _GUTTER)
                y = y0 + row * (_BADGE[1] + _GUTTER)
                page[y : y + _BADGE[1], x : x + _BADGE[0]] = photo
    zero_array(photo)
    _band(page, band_top, event_name, _hex_rgb(brand_colour))
    return page


def print_document(headshot_jpeg: bytes, layout: str, *, event_name: str, brand_colour: str) -> bytearray:
    """The document CUPS receives for a headshot JPEG: the composed page as a metadata-free JPEG
    (``DOCUMENT_FORMAT``), in a ``bytearray`` the caller zeroes once it has been sent. Deterministic: the
    same JPEG and settings give the same bytes."""
    # The headshot is the engine's own output (sRGB, upright, no metadata): OpenCV decodes it straight into
    # a writeable array this function can zero (Pillow's arrays share an immutable buffer).
    bgr = cv2.imdecode(np.frombuffer(headshot_jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[0] * bgr.shape[1] > _MAX_HEADSHOT_PIXELS:
        raise ValueError("the headshot could not be decoded")
    rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr), dtype=np.uint8)  # in place: no copy
    try:
        page = compose_print(rgb, layout, event_name=event_name, brand_colour=brand_colour)
    finally:
        zero_array(rgb)
    try:
        return bytearray(encode_jpeg(page, quality_percent=DOCUMENT_JPEG_QUALITY))
    finally:
        zero_array(page)
