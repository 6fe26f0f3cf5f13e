"""The event's brand on the guest page (issue 14.3): logo, theme stylesheet, background swatches and the
attract screen's sample headshots.

Everything here is event data, never a guest's: the logo and the theme come from the config (checked when
it was loaded, ``appliance.branding``), the samples are rendered from the bundled demo portraits by a child
process (``appliance.branding.render_samples``) and kept in this process's memory only — no file is
written — and the backdrop's thumbnail is made from the event's backdrop file.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, current_app, url_for
from flask_babel import gettext as _
from PIL import Image

from appliance.branding import BrandingError, check_backdrop, render_samples, theme_css
from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui.strings import client_strings

logger = logging.getLogger(__name__)

bp = Blueprint("brand", __name__, url_prefix="/brand")

# An SVG opened on its own (not as an <img>) may run nothing, fetch nothing and be framed by nobody;
# `sandbox` also gives it an opaque origin. Its presentation attributes (fill, stroke) are not styles, so
# even inline CSS is refused: the reduced SVG has none (appliance.branding drops <style> and style="").
SVG_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
THUMB_PIXELS = 160
# What a swatch looks like: a small sample of each named background (CSS `background` values).
SWATCHES = {
    "studio-grey": "radial-gradient(ellipse at 50% 35%, #aaacae 0%, #6f7277 62%, #4a4d52 100%)",
    "white": "#ffffff",
    "blur": "linear-gradient(135deg, #8e9aa6 0%, #c6b9a4 45%, #7f8d7c 100%)",
}


def _kiosk() -> Kiosk:
    kiosk: Kiosk = current_app.extensions["kiosk"]
    return kiosk


# -- names and swatches -----------------------------------------------------------------------------------


def background_choices(cfg: KioskConfig) -> dict[str, dict[str, str]]:
    """Each offered background's name (in the request's language, never a colour code) and swatch (a CSS
    ``background`` value). Unnamed brand colours are "Colour", or "Colour 1", "Colour 2"... when several."""
    strings = client_strings()  # the page's own names for the named backgrounds (one catalog entry each)
    names = {b: strings[f"bg_{b}"] for b in ("studio-grey", "white", "blur", "backdrop")}
    if cfg.branding.backdrop_name:
        names["backdrop"] = cfg.branding.backdrop_name
    unnamed = [
        b for b in cfg.event.backgrounds if b.startswith("#") and b.upper() not in cfg.branding.colour_names
    ]
    choices: dict[str, dict[str, str]] = {}
    for b in cfg.event.backgrounds:
        if b.startswith("#"):
            name = cfg.branding.colour_names.get(b.upper())
            if name is None:
                name = (
                    strings["bg_colour"] if len(unnamed) == 1 else _("Colour %(n)d", n=unnamed.index(b) + 1)
                )
            choices[b] = {"name": name, "swatch": b}
        elif b == "backdrop":
            choices[b] = {
                "name": names[b],
                "swatch": f'url("{url_for("brand.backdrop_thumb")}") center / cover',
            }
        else:
            choices[b] = {"name": names.get(b, b), "swatch": SWATCHES.get(b, "#808080")}
    return choices


def script_json(data: object) -> str:
    """``data`` as JSON to put inside a ``<script type="application/json">`` element: no ``<`` at all
    (``</script>`` or ``<!--`` in a staff-written name would end or change the element); in JSON a ``<``
    can only be inside a string, where ``\\u003c`` means the same."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def _context() -> dict[str, Any]:
    """``brand`` for the guest templates: the logo's and the theme's URLs (None without them) and the
    JSON the page script reads (background names and swatches, where the samples are)."""
    cfg = _kiosk().cfg
    branding = cfg.branding
    data = {
        "backgrounds": background_choices(cfg),
        "samples": url_for("brand.samples"),
        "strings": {
            "sample_alt": _("Example headshot"),
            "pause": _("Pause the examples"),
        },
    }
    return {
        "brand": {
            "logo": url_for("brand.logo") if branding.logo_image is not None else None,
            "theme": url_for("brand.theme") if branding.themed else None,
            "json": script_json(data),
        }
    }


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    if "kiosk" not in current_app.extensions:
        return {}
    return _context()


# -- logo and theme ---------------------------------------------------------------------------------------


@bp.get("/logo")
def logo() -> Response:
    """The event's logo as checked at config load (re-encoded PNG or reduced SVG), from memory."""
    image = _kiosk().cfg.branding.logo_image
    if image is None:
        abort(404)
    response = Response(image.data, mimetype=image.media_type)
    if image.media_type == "image/svg+xml":
        response.headers["Content-Security-Policy"] = SVG_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/theme.css")
def theme() -> Response:
    """The page's colours as CSS custom properties (``appliance.branding.theme_css``)."""
    return Response(theme_css(_kiosk().cfg.branding.theme), mimetype="text/css")


@bp.get("/backdrop.jpg")
def backdrop_thumb() -> Response:
    """A small thumbnail of the event's backdrop, for its swatch (made once, kept in memory)."""
    path = _kiosk().cfg.branding.backdrop
    if path is None:
        abort(404)
    cache: dict[str, bytes] = current_app.extensions.setdefault("kiosk_ui.brand.thumbs", {})
    key = str(path)
    if key not in cache:
        try:
            check_backdrop(path)  # again: the file may have been replaced since the config was checked
            cache[key] = _thumbnail(path.read_bytes())
        except (OSError, BrandingError) as exc:
            logger.warning("backdrop thumbnail failed (%s)", type(exc).__name__)
            abort(404)
    return Response(cache[key], mimetype="image/jpeg")


def _thumbnail(raw: bytes) -> bytes:
    try:
        with warnings.catch_warnings():
            # The file passed the config's pixel cap (appliance.branding.check_backdrop).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=["JPEG", "PNG"]) as image:
                image.draft("RGB", (THUMB_PIXELS, THUMB_PIXELS))  # JPEG: decode at 1/2..1/8 size
                image.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
                rgb = image.convert("RGB")
    except Exception as exc:  # Pillow raises many kinds for a broken file
        raise BrandingError(f"backdrop unreadable ({type(exc).__name__})") from None
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=85)  # no EXIF, no ICC: a fresh image
    return out.getvalue()


# -- attract-screen samples -------------------------------------------------------------------------------


class SampleReel:
    """Sample headshots for the attract screen, rendered once per process (and again only when the
    offered backgrounds change) on a background thread; JPEG bytes in memory, never on disk."""

    def __init__(self, render: Callable[[KioskConfig], list[bytes]] | None = None) -> None:
        self._render = render or _render_from_demo_portraits
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._state = "idle"  # idle -> rendering -> ready | failed
        self._images: list[bytes] = []

    @staticmethod
    def key(cfg: KioskConfig) -> tuple[object, ...]:
        return (cfg.event.backgrounds, cfg.branding.backdrop, cfg.engine)

    def status(self, cfg: KioskConfig) -> dict[str, Any]:
        """``{"ready": bool, "count": n, "pending": bool}``; asks for the render on first call (lazily,
        never blocking)."""
        key = self.key(cfg)
        with self._lock:
            if self._key != key and self._state != "rendering":
                self._key, self._state = key, "rendering"
                threading.Thread(target=self._run, args=(cfg, key), name="brand-samples", daemon=True).start()
            ready = self._state == "ready" and self._key == key
            # pending: worth asking again (a failed render is not retried in this process).
            pending = self._state == "rendering" or self._key != key
            return {"ready": ready, "count": len(self._images) if ready else 0, "pending": pending}

    def image(self, index: int) -> bytes | None:
        with self._lock:
            if self._state != "ready" or not 0 <= index < len(self._images):
                return None
            return self._images[index]

    def _run(self, cfg: KioskConfig, key: tuple[object, ...]) -> None:
        try:
            images = self._render(cfg)
        except BrandingError as exc:
            logger.warning("attract samples not made: %s", exc)
            images = []
        except Exception as exc:  # else the state stays "rendering" and the pages poll for nothing
            logger.warning("attract samples not made (%s)", exc.__class__.__name__)
            images = []
        with self._lock:
            self._images = images
            self._state = "ready" if images else "failed"
            self._key = key


def _render_from_demo_portraits(cfg: KioskConfig) -> list[bytes]:
    return render_samples(cfg.engine.model_dump(mode="json"), cfg.event.backgrounds, cfg.branding.backdrop)


def _reel() -> SampleReel:
    reel: SampleReel = current_app.extensions.setdefault("kiosk_ui.brand.samples", SampleReel())
    return reel


@bp.get("/samples.json")
def samples() -> Response:
    """Whether the sample headshots are ready and how many there are (``/brand/sample/<n>.jpg``)."""
    status = _reel().status(_kiosk().cfg)
    status["urls"] = [url_for("brand.sample", index=i) for i in range(status["count"])]
    return Response(json.dumps(status), mimetype="application/json")


@bp.get("/sample/<int:index>.jpg")
def sample(index: int) -> Response:
    """One sample headshot (a demo portrait, never a guest), from memory."""
    image = _reel().image(index)
    if image is None:
        abort(404)
    return Response(image, mimetype="image/jpeg")
