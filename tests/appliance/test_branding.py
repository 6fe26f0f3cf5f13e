"""The event's logo and colours are checked before a guest sees them (appliance.branding, issue 14.3)."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from appliance.branding import (
    MAX_LOGO_BYTES,
    BrandingError,
    Theme,
    check_logo,
    check_theme,
    contrast_ratio,
)


def _png(size: tuple[int, int] = (64, 32), **info: str) -> bytes:
    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGBA", size, (11, 92, 173, 255)).save(out, format="PNG", pnginfo=meta)
    return out.getvalue()


def test_a_png_is_re_encoded_without_its_metadata() -> None:
    raw = _png(Author="Jane Doe, jane@example.com") + b"trailing bytes after IEND"
    logo = check_logo(raw)
    assert logo.media_type == "image/png"
    assert b"jane@example.com" not in logo.data and b"trailing" not in logo.data
    with Image.open(io.BytesIO(logo.data)) as image:
        assert image.size == (64, 32)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "1 byte"),
        (b"GIF89a....", "PNG or an SVG"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "readable PNG"),
        (b"x" * (MAX_LOGO_BYTES + 1), "KiB"),
    ],
)
def test_what_is_not_a_logo_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(BrandingError, match=reason):
        check_logo(raw)


def test_a_huge_png_is_refused() -> None:
    with pytest.raises(BrandingError, match="px on a side"):
        check_logo(_png((4000, 10)))


def test_an_svg_keeps_its_drawing_and_loses_everything_active() -> None:
    raw = b"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
        viewBox="0 0 100 40" onload="alert(1)">
      <script>fetch('https://evil.example/')</script>
      <style>@import url(https://evil.example/a.css);</style>
      <defs><linearGradient id="g"><stop offset="0" stop-color="#0b5cad"/></linearGradient></defs>
      <rect width="100" height="40" fill="url(#g)" onclick="steal()"/>
      <circle cx="20" cy="20" r="10" fill="url(https://evil.example/x)"/>
      <ellipse cx="40" cy="20" rx="5" ry="5" fill="URL(https://evil.example/y)" stroke="image(x.png)"/>
      <image xlink:href="https://evil.example/track.png" width="1" height="1"/>
      <foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="https://evil.example/"/></foreignObject>
      <a href="https://evil.example/"><text x="5" y="30">Career Fair</text></a>
      <text x="50" y="30" font-size="12">Career Fair</text>
    </svg>"""
    logo = check_logo(raw)
    assert logo.media_type == "image/svg+xml"
    text = logo.data.decode()
    for gone in ("script", "style", "onload", "onclick", "evil.example", "image", "foreignObject", "<a "):
        assert gone not in text, gone
    for kept in ('viewBox="0 0 100 40"', 'fill="url(#g)"', "<rect", "<circle", "Career Fair", "stop-color"):
        assert kept in text, kept


def test_an_svg_with_entities_is_refused() -> None:
    bomb = b"""<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>
    <svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>"""
    with pytest.raises(BrandingError, match="DOCTYPE"):
        check_logo(bomb)
    with pytest.raises(BrandingError, match="root element"):
        check_logo(b"<?xml version='1.0'?><html><body/></html>")


def test_contrast_follows_the_wcag_definition() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the classic AA grey


def test_a_theme_that_guests_cannot_read_is_refused() -> None:
    assert check_theme(Theme()) == []
    problems = check_theme(Theme(accent="#ffd400", on_accent="#ffffff"))  # white on yellow
    assert any(p.startswith("on_accent on accent") for p in problems)
    assert any(p.startswith("accent on background") for p in problems)
    assert check_theme(Theme(text="#1F4E7")) == ["colour must be #rrggbb, got '#1F4E7'"]


def test_deep_nesting_is_refused_not_a_crash() -> None:
    """5000 nested groups in 35 KB: a BrandingError (a config error naming the key), not a RecursionError."""
    from appliance.branding import BrandingError, check_logo

    raw = b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g>" * 5000 + b"</g>" * 5000 + b"</svg>"
    with pytest.raises(BrandingError, match="deep"):
        check_logo(raw)
    # A byte-order mark and an upper-case local reference are fine.
    clean = check_logo(b'\xef\xbb\xbf<svg xmlns="http://www.w3.org/2000/svg"><rect fill="URL(#a)"/></svg>')
    assert b'fill="URL(#a)"' in clean.data


def test_borders_and_the_accent_on_panels_reach_three_to_one() -> None:
    """The derived colours are checked too: secondary controls' borders reach 3:1 against the background
    and the panels, and an accent that would not on a panel (pressed chips, focus in dialogs) is refused."""
    from appliance.branding import PAGE_THEME, PANEL_MIX, Theme, check_theme, contrast_ratio, mix, palette

    for theme in (Theme(), PAGE_THEME):
        line = palette(theme)["--line"]
        panel = mix(theme.background, theme.text, PANEL_MIX)
        assert contrast_ratio(line, theme.background) >= 3.0 and contrast_ratio(line, panel) >= 3.0
    grey = Theme(background="#ffffff", text="#1a1a1a", accent="#929292", on_accent="#000000")
    assert any("accent on the panels" in p for p in check_theme(grey, prefix="branding."))


def test_the_page_defaults_use_the_derived_border() -> None:
    """kiosk.css's own --line (no event theme) is the one palette() derives for the page's defaults."""
    import re
    from pathlib import Path

    from appliance.branding import PAGE_THEME, palette

    css = (Path(__file__).resolve().parents[2] / "kiosk_ui" / "static" / "kiosk.css").read_text()
    root = css[css.index(":root {") : css.index("}", css.index(":root {"))]
    match = re.search(r"--line: (#[0-9a-f]{6});", root)
    assert match is not None and match.group(1) == palette(PAGE_THEME)["--line"]
