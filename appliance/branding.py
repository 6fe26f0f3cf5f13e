"""The event's brand on the guest screens: a logo file and theme colours, checked before they are used.

A logo is the one file from outside that the guest page shows, so it is accepted only as a bounded PNG
(decoded and re-encoded by Pillow: no metadata, no trailing data, no animation) or as an SVG reduced to
plain drawing (an allow-list of elements and attributes: no script, no event handler, no reference to
anything outside the file, no CSS). Theme colours are accepted only if text stays readable on them:
WCAG 2.2 contrast (1.4.3 text 4.5:1; 1.4.11 non-text 3:1), computed as the WCAG defines it.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MAX_LOGO_BYTES = 512 * 1024
MAX_LOGO_PIXELS = 2048  # per side: a logo is shown at most a few hundred pixels wide
TEXT_CONTRAST = 4.5  # WCAG 2.2 SC 1.4.3 (AA), normal text
UI_CONTRAST = 3.0  # WCAG 2.2 SC 1.4.11 (AA), buttons and focus indicators against the background

_HEX = re.compile(r"#[0-9a-fA-F]{6}")
_SVG_NS = "http://www.w3.org/2000/svg"
# Drawing only. No <script>, <foreignObject>, <image>, <use>, <a>, <style>, animation or filters that fetch.
_SVG_ELEMENTS = frozenset(
    {
        "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
        "defs", "linearGradient", "radialGradient", "stop", "clipPath", "title", "desc",
    }
)  # fmt: skip
_SVG_ATTRIBUTES = frozenset(
    {
        "viewBox", "width", "height", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "d",
        "points", "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
        "stroke-linecap", "stroke-linejoin", "opacity", "transform", "offset", "stop-color", "stop-opacity",
        "gradientUnits", "gradientTransform", "clip-path", "clipPathUnits", "id", "font-size", "font-family",
        "font-weight", "text-anchor", "preserveAspectRatio", "version",
    }
)  # fmt: skip
# Paint and clip references may point inside the file only: url(#id).
_LOCAL_URL = re.compile(r"url\(#[A-Za-z][\w.-]*\)")


class BrandingError(ValueError):
    """A logo or colour that is refused; the message says why, for staff (never shown to guests)."""


@dataclass(frozen=True)
class Logo:
    """A checked logo: ``data`` is what the page gets (re-encoded PNG or reduced SVG)."""

    media_type: str  # "image/png" or "image/svg+xml"
    data: bytes


def load_logo(path: Path) -> Logo:
    """Read and check the logo at ``path`` (PNG or SVG, at most :data:`MAX_LOGO_BYTES`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BrandingError(f"logo unreadable: {exc.strerror or exc}") from None
    return check_logo(raw)


def check_logo(raw: bytes) -> Logo:
    """Check and clean a logo's bytes. Raises :class:`BrandingError`."""
    if not raw or len(raw) > MAX_LOGO_BYTES:
        raise BrandingError(f"logo must be 1 byte to {MAX_LOGO_BYTES // 1024} KiB")
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return Logo("image/png", _clean_png(raw))
    head = raw.lstrip()[:256].lower()
    if head.startswith(b"<?xml") or head.startswith(b"<svg"):
        return Logo("image/svg+xml", _clean_svg(raw))
    raise BrandingError("logo must be a PNG or an SVG file")


def _clean_png(raw: bytes) -> bytes:
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if getattr(image, "n_frames", 1) != 1:
                raise BrandingError("an animated PNG is not accepted (nothing on the kiosk may flash)")
            if max(image.size) > MAX_LOGO_PIXELS:  # read from the header, before any pixel is decoded
                raise BrandingError(f"logo larger than {MAX_LOGO_PIXELS} px on a side")
            image.load()
            rgba = image.convert("RGBA")
    except BrandingError:
        raise
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise BrandingError(f"logo is not a readable PNG ({type(exc).__name__})") from None
    out = io.BytesIO()
    rgba.save(out, format="PNG", optimize=True)  # no text chunks, no EXIF: only pixels go out
    return out.getvalue()


def _parse_svg(raw: bytes) -> ET.Element:
    # A DOCTYPE is where entity expansion ("billion laughs") and external entities live; an SVG for a
    # logo never needs one.
    if b"<!doctype" in raw.lower() or b"<!entity" in raw.lower():
        raise BrandingError("SVG with a DOCTYPE or entities is not accepted")
    try:
        return ET.fromstring(raw)  # noqa: S314 - no DOCTYPE (checked above), so no entity can expand
    except ET.ParseError as exc:
        raise BrandingError(f"logo is not a well-formed SVG ({exc})") from None


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _clean_svg(raw: bytes) -> bytes:
    root = _parse_svg(raw)
    namespace, name = _local(root.tag)
    if name != "svg" or namespace not in ("", _SVG_NS):
        raise BrandingError("the SVG's root element must be <svg>")
    _reduce(root)
    ET.register_namespace("", _SVG_NS)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return data


def _reduce(element: ET.Element) -> None:
    """Drop every element and attribute outside the allow-lists, in place (children first)."""
    for child in list(element):
        namespace, name = _local(child.tag)
        if namespace not in ("", _SVG_NS) or name not in _SVG_ELEMENTS:
            element.remove(child)
            continue
        _reduce(child)
    for attribute in list(element.attrib):
        namespace, name = _local(attribute)
        value = element.attrib[attribute]
        keep = namespace == "" and name in _SVG_ATTRIBUTES
        if keep and "(" in value and name not in ("transform", "gradientTransform"):
            # CSS function names are case-insensitive: URL( is url(. Only url(#local-id) may stay.
            keep = all(_LOCAL_URL.fullmatch(part) for part in re.findall(r"(?i)url\([^)]*\)", value))
            keep = keep and value.lower().count("(") == len(re.findall(r"(?i)url\(", value))
        if not keep:
            del element.attrib[attribute]


# -- colours -----------------------------------------------------------------------------------------------


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: str) -> float:
    """WCAG 2.2 relative luminance of ``#rrggbb`` (0 for black, 1 for white)."""
    if not _HEX.fullmatch(colour):
        raise BrandingError(f"colour must be #rrggbb, got {colour!r}")
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours, 1.0 to 21.0."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@dataclass(frozen=True)
class Theme:
    """The guest page's colours. ``accent`` fills buttons, ``on_accent`` is their text."""

    background: str = "#ffffff"
    text: str = "#1a1a1a"
    accent: str = "#0b5cad"
    on_accent: str = "#ffffff"


def check_theme(theme: Theme) -> list[str]:
    """Every contrast problem of ``theme`` (empty when it is accepted), worded for staff."""
    problems = []
    pairs = (
        ("text", "background", TEXT_CONTRAST),
        ("on_accent", "accent", TEXT_CONTRAST),
        ("accent", "background", UI_CONTRAST),
    )
    for fg, bg, needed in pairs:
        try:
            ratio = contrast_ratio(getattr(theme, fg), getattr(theme, bg))
        except BrandingError as exc:
            problems.append(str(exc))
            continue
        if ratio < needed:
            problems.append(f"{fg} on {bg}: contrast {ratio:.2f}:1, WCAG 2.2 AA needs {needed:g}:1")
    return problems
