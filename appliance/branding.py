"""The event's brand on the guest screens: a logo file and theme colours, checked before they are used.

A logo is the one file from outside that the guest page shows, so it is accepted only as a bounded PNG
(decoded and re-encoded by Pillow: no metadata, no trailing data, no animation) or as an SVG reduced to
plain drawing (an allow-list of elements and attributes: no script, no event handler, no reference to
anything outside the file, no CSS). Theme colours are accepted only if text stays readable on them:
WCAG 2.2 contrast (1.4.3 text 4.5:1; 1.4.11 non-text 3:1), computed as the WCAG defines it; the page's
other colours (panels, borders, links, focus ring) are derived from the four checked ones (``palette``).

A backdrop image (a background choice for the headshots) is checked from its header only here (format,
bytes, pixels); the session worker decodes it once, under the same caps (``load_backdrop``).

The attract screen's sample headshots are made by a one-off child process (``python -m appliance.branding
samples``) from the bundled demo portraits, never from a guest: the main process keeps the engine's
models out of its memory and gets JPEG bytes over a pipe; nothing is written to disk (``render_samples``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import struct
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

MAX_LOGO_BYTES = 512 * 1024
MAX_LOGO_PIXELS = 2048  # per side: a logo is shown at most a few hundred pixels wide
TEXT_CONTRAST = 4.5  # WCAG 2.2 SC 1.4.3 (AA), normal text
UI_CONTRAST = 3.0  # WCAG 2.2 SC 1.4.11 (AA), buttons and focus indicators against the background
MAX_BACKDROP_BYTES = 20 * 1024 * 1024
MAX_BACKDROP_PIXELS = 40_000_000  # a 40 MP photo; decoded once per worker and shrunk to the headshot size
MIN_BACKDROP_SIDE = 320  # smaller would be enlarged to a blur behind a 1080x1350 headshot

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
_LOCAL_URL = re.compile(r"url\(#[A-Za-z][\w.-]*\)", re.IGNORECASE)  # CSS: URL( is url(
# Nesting deeper than this is refused: a logo needs a few levels of <g>, and the reduction and the
# serialisation recurse (5000 nested <g> in 35 KB would otherwise end in a RecursionError).
MAX_SVG_DEPTH = 32


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
    head = raw.removeprefix(b"\xef\xbb\xbf").lstrip()[:256].lower()  # a UTF-8 BOM is allowed
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")):
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
    _reduce(root, 1)
    ET.register_namespace("", _SVG_NS)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return data


def _reduce(element: ET.Element, depth: int) -> None:
    """Drop every element and attribute outside the allow-lists, in place (children first); ``depth`` is
    the element's nesting level (the root is 1), refused past :data:`MAX_SVG_DEPTH`."""
    if depth > MAX_SVG_DEPTH:
        raise BrandingError(f"the SVG nests elements more than {MAX_SVG_DEPTH} deep")
    for child in list(element):
        namespace, name = _local(child.tag)
        if namespace not in ("", _SVG_NS) or name not in _SVG_ELEMENTS:
            element.remove(child)
            continue
        _reduce(child, depth + 1)
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
    """The guest page's colours (``#rrggbb``). ``accent`` fills buttons, ``on_accent`` is their text."""

    background: str = "#ffffff"
    text: str = "#1a1a1a"
    accent: str = "#0b5cad"
    on_accent: str = "#ffffff"


# The page's own dark theme (kiosk_ui/static/kiosk.css): the config's defaults, which need no override.
PAGE_THEME = Theme(background="#101418", text="#f4f6f8", accent="#ffcc33", on_accent="#111111")


# The surface panels, chips and dialogs sit on: the background moved this far towards the text colour.
PANEL_MIX = 0.08
LINE_MIX = 0.45  # borders of secondary controls, at least (``line_colour``)


def check_theme(theme: Theme, *, prefix: str = "") -> list[str]:
    """Every contrast problem of ``theme`` (empty when it is accepted), worded for staff; ``prefix``
    (``"branding."``) turns the colour names into the config's dotted keys."""
    problems = []
    pairs = (
        ("text", "background", TEXT_CONTRAST, "1.4.3"),
        ("on_accent", "accent", TEXT_CONTRAST, "1.4.3"),
        ("accent", "background", UI_CONTRAST, "1.4.11"),
    )
    for fg, bg, needed, criterion in pairs:
        try:
            ratio = contrast_ratio(getattr(theme, fg), getattr(theme, bg))
        except BrandingError as exc:
            problems.append(f"{prefix}{fg}: {exc}" if prefix else str(exc))
            continue
        if ratio < needed:
            problems.append(
                f"{prefix}{fg} on {prefix}{bg}: contrast {ratio:.2f}:1, WCAG 2.2 AA needs {needed:g}:1"
                + (f" (SC {criterion})" if prefix else "")
            )
    if not problems:
        # Chips, dialogs and the consent summary show the text on a panel slightly lighter or darker
        # than the background: the text must stay readable there too.
        panel = mix(theme.background, theme.text, PANEL_MIX)
        ratio = contrast_ratio(theme.text, panel)
        if ratio < TEXT_CONTRAST:
            problems.append(
                f"{prefix}text on the panels made from {prefix}background: contrast {ratio:.2f}:1, WCAG 2.2 "
                f"AA needs {TEXT_CONTRAST:g}:1; choose a text colour further from the background"
            )
        # Pressed chips and the focus ring inside dialogs are the accent on a panel (SC 1.4.11).
        ratio = contrast_ratio(theme.accent, panel)
        if ratio < UI_CONTRAST:
            problems.append(
                f"{prefix}accent on the panels made from {prefix}background: contrast {ratio:.2f}:1, WCAG "
                f"2.2 AA needs {UI_CONTRAST:g}:1 (SC 1.4.11)"
            )
    return problems


def line_colour(theme: Theme) -> str:
    """The border of secondary controls (chips, language buttons, dialogs): the background moved towards
    the text colour, at least ``LINE_MIX`` of the way and as much further as it takes to reach
    ``UI_CONTRAST`` against the background and the panels (SC 1.4.11: a border is the only edge these
    controls have). Always found: the text itself has 4.5:1 against both (``check_theme``)."""
    panel = mix(theme.background, theme.text, PANEL_MIX)
    amount = LINE_MIX
    while amount < 1.0:
        line = mix(theme.background, theme.text, amount)
        if min(contrast_ratio(line, theme.background), contrast_ratio(line, panel)) >= UI_CONTRAST:
            return line
        amount += 0.01
    return theme.text


def mix(a: str, b: str, amount: float) -> str:
    """``a`` moved ``amount`` (0..1) of the way towards ``b`` in sRGB, as ``#rrggbb``."""
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * amount):02x}" for x, y in zip(ca, cb, strict=True))


def palette(theme: Theme) -> dict[str, str]:
    """The page's CSS custom properties for an accepted ``theme`` (``check_theme`` returned nothing).

    Every text colour is one of the checked pairs: accent-coloured text (messages, headings of the
    summary, the receipt code, links) keeps the accent only where it reads at 4.5:1 on both the background
    and the panels, else it takes the text colour; status colours become the text colour too."""
    panel = mix(theme.background, theme.text, PANEL_MIX)
    accent_reads = min(contrast_ratio(theme.accent, theme.background), contrast_ratio(theme.accent, panel))
    accent_text = theme.accent if accent_reads >= TEXT_CONTRAST else theme.text
    light = contrast_ratio(theme.background, "#000000") > contrast_ratio(theme.background, "#ffffff")
    return {
        "--bg": theme.background,
        "--panel": panel,
        "--text": theme.text,
        "--muted": theme.text,
        "--primary": theme.accent,
        "--primary-text": theme.on_accent,
        "--accent-text": accent_text,
        "--link": accent_text,
        # The focus ring sits on the background (outline-offset): the accent has 3:1 there (SC 1.4.11).
        "--focus": theme.accent,
        "--line": line_colour(theme),
        "--ok-text": theme.text,
        "--bad-text": theme.text,
        "color-scheme": "light" if light else "dark",
    }


def theme_css(theme: Theme) -> str:
    """A stylesheet that sets ``palette(theme)`` on the root, after kiosk.css. Its selector is ``:root``,
    as kiosk.css's own, so the high-contrast mode (``html.mode-contrast``, more specific) still wins."""
    body = "".join(f"  {name}: {value};\n" for name, value in palette(theme).items())
    return f"/* The event's theme (appliance.branding.palette). */\n:root {{\n{body}}}\n"


# -- backdrop ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackdropInfo:
    """What the header of an accepted backdrop says."""

    media_type: str  # "image/jpeg" or "image/png"
    width: int
    height: int


def check_backdrop(path: Path) -> BackdropInfo:
    """Check the backdrop at ``path`` from its header: a JPEG or PNG of at most :data:`MAX_BACKDROP_BYTES`
    and :data:`MAX_BACKDROP_PIXELS`, at least :data:`MIN_BACKDROP_SIDE` on each side, one frame."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise BrandingError(f"backdrop unreadable: {exc.strerror or exc}") from None
    if size > MAX_BACKDROP_BYTES:
        raise BrandingError(
            f"backdrop is {size / 2**20:.1f} MiB; the limit is {MAX_BACKDROP_BYTES // 2**20} MiB"
        )
    if head.startswith(b"\xff\xd8\xff"):
        fmt, media_type = "JPEG", "image/jpeg"
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt, media_type = "PNG", "image/png"
    else:
        raise BrandingError("backdrop must be a JPEG or PNG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap below is stricter
            with Image.open(path, formats=[fmt]) as image:  # the header only: no pixel is decoded here
                width, height = image.size
                frames = getattr(image, "n_frames", 1)
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise BrandingError(f"backdrop is not a readable {fmt} ({type(exc).__name__})") from None
    if frames != 1:
        raise BrandingError("an animated backdrop is not accepted")
    if width * height > MAX_BACKDROP_PIXELS:
        raise BrandingError(
            f"backdrop is {width}x{height} ({width * height / 1e6:.0f} MP); the limit is "
            f"{MAX_BACKDROP_PIXELS / 1e6:.0f} MP"
        )
    if min(width, height) < MIN_BACKDROP_SIDE:
        raise BrandingError(
            f"backdrop is {width}x{height}; it needs at least {MIN_BACKDROP_SIDE} px on each side"
        )
    return BackdropInfo(media_type, width, height)


def load_backdrop(path: Path) -> npt.NDArray[np.uint8]:
    """Decode the backdrop at ``path`` (checked again, as :func:`check_backdrop`) as H×W×3 uint8, shrunk
    so that it still covers the largest headshot preset: the session worker keeps it for its life."""
    import cv2  # noqa: PLC0415 - the session worker's imports; the main process only checks headers
    import numpy as np  # noqa: PLC0415

    from engine.errors import EngineError  # noqa: PLC0415
    from engine.framing import PRESETS  # noqa: PLC0415
    from engine.imageio import decode  # noqa: PLC0415

    check_backdrop(path)
    try:
        rgb = decode(path.read_bytes(), max_pixels=MAX_BACKDROP_PIXELS, max_bytes=MAX_BACKDROP_BYTES).rgb
    except (OSError, EngineError) as exc:
        raise BrandingError(f"backdrop could not be decoded ({type(exc).__name__})") from None
    need_w = max(p.width for p in PRESETS.values())
    need_h = max(p.height for p in PRESETS.values())
    h, w = rgb.shape[:2]
    scale = max(need_w / w, need_h / h)
    if scale < 1:
        size = (max(need_w, round(w * scale)), max(need_h, round(h * scale)))
        rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    out = np.ascontiguousarray(rgb)
    out.setflags(write=False)
    return out


# -- sample headshots for the attract screen ---------------------------------------------------------------

SAMPLE_PRESET = "portrait"
MAX_SAMPLES = 6
SAMPLES_TIMEOUT_SECONDS = 300.0
MAX_SAMPLE_BYTES = 4 * 1024 * 1024


# The demo camera's portraits (appliance.camera.demo_source.DEMO_ASSETS_DIR, IMAGE_SUFFIXES): not imported,
# not even inside the function — the camera package imports the config, which imports this module, and
# tests/test_import_cycles.py counts every import.
DEMO_ASSETS_DIR = Path(__file__).resolve().parent / "demo_assets"
_DEMO_SUFFIXES = (".jpg", ".jpeg", ".png")


def demo_portraits(assets_dir: Path = DEMO_ASSETS_DIR) -> list[Path]:
    """The bundled public-domain portraits (``appliance/demo_assets``, provenance in PROVENANCE.md)."""
    return sorted(p for p in assets_dir.iterdir() if p.suffix.lower() in _DEMO_SUFFIXES)


def sample_plan(portraits: int, backgrounds: Sequence[str]) -> list[tuple[int, str]]:
    """Which portrait goes with which background: every portrait and every background at least once (up
    to :data:`MAX_SAMPLES`), neighbours differing in both."""
    if portraits <= 0 or not backgrounds:
        return []
    count = min(MAX_SAMPLES, max(portraits, len(backgrounds)))
    return [(k % portraits, backgrounds[k % len(backgrounds)]) for k in range(count)]


def render_samples(
    engine: dict[str, Any],
    backgrounds: Sequence[str],
    backdrop: Path | None,
    *,
    timeout_seconds: float = SAMPLES_TIMEOUT_SECONDS,
) -> list[bytes]:
    """Sample headshots (JPEG bytes) of the demo portraits on ``backgrounds``, made by a child process
    (``python -m appliance.branding samples``) so that this process never loads the engine's models.
    ``engine`` is ``EngineConfig.model_dump(mode="json")``. Raises :class:`BrandingError` if the child
    fails; nothing is written to disk on either side."""
    from appliance.hardening import worker_environment  # noqa: PLC0415

    request = {
        "engine": engine,
        "backgrounds": list(backgrounds),
        "backdrop": None if backdrop is None else str(backdrop),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "appliance.branding", "samples"],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=timeout_seconds,
            env=worker_environment(os.environ),
            close_fds=True,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BrandingError(f"the sample renderer did not run ({type(exc).__name__})") from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise BrandingError(f"the sample renderer exited with {done.returncode}: {tail[0][:200]}")
    return _read_frames(done.stdout)


def _read_frames(data: bytes) -> list[bytes]:
    """Length-prefixed frames (4-byte big-endian lengths) up to a zero length."""
    frames: list[bytes] = []
    offset = 0
    while offset + 4 <= len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        offset += 4
        if size == 0:
            return frames
        if size > MAX_SAMPLE_BYTES or offset + size > len(data):
            break
        frames.append(data[offset : offset + size])
        offset += size
    raise BrandingError("the sample renderer's output was cut short")


def _samples_main() -> int:
    """The child: read the request on stdin, write the samples to stdout as frames; logs on stderr."""
    from appliance.hardening import harden_process  # noqa: PLC0415
    from appliance.logsafe import configure_logging  # noqa: PLC0415

    harden_process()  # every process of the service, this one too (DESIGN.md §3)
    os.nice(10)  # a visit's worker comes first: the samples can wait
    configure_logging("WARNING")
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from engine.compose import parse_background  # noqa: PLC0415
    from engine.config import EngineConfig  # noqa: PLC0415 - heavy: only in this child
    from engine.errors import EngineError  # noqa: PLC0415
    from engine.pipeline import HeadshotEngine  # noqa: PLC0415

    request = json.loads(sys.stdin.buffer.read(1024 * 1024))
    backgrounds = [str(b) for b in request["backgrounds"]]
    backdrop = None
    if request.get("backdrop"):
        try:
            backdrop = load_backdrop(Path(request["backdrop"]))
        except Exception as exc:  # the other backgrounds' samples are still worth making
            logger.warning("the event backdrop could not be loaded (%s)", exc.__class__.__name__)
    portraits = demo_portraits()
    plan = sample_plan(len(portraits), backgrounds)
    out = sys.stdout.buffer
    with HeadshotEngine(EngineConfig.model_validate(request["engine"])) as engine:
        cutouts: dict[int, Any] = {}
        for index, background in plan:
            try:
                if index not in cutouts:
                    photo = engine.decode(portraits[index].read_bytes())
                    face, _notes = engine.find_face(photo.rgb)
                    cutouts[index] = engine.cutout(photo.rgb, face, SAMPLE_PRESET)
                pixels = engine.compose(cutouts[index], parse_background(background, backdrop=backdrop))
                # Half size: the attract screen shows them a few hundred pixels wide.
                small = cv2.resize(
                    pixels, (pixels.shape[1] // 2, pixels.shape[0] // 2), interpolation=cv2.INTER_AREA
                )
                jpeg = engine.encode(np.ascontiguousarray(small))
            except (EngineError, ValueError) as exc:
                logger.warning("sample %s on %s failed: %s", portraits[index].name, background, exc)
                continue
            out.write(struct.pack(">I", len(jpeg)) + jpeg)
        for cut in cutouts.values():
            cut.release()
    out.write(struct.pack(">I", 0))
    out.flush()
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["samples"]:
        sys.exit(_samples_main())
    print("usage: python -m appliance.branding samples  (request as JSON on stdin)", file=sys.stderr)
    sys.exit(2)
