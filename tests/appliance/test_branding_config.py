"""[branding] in the config (issue 14.3): a logo, theme colours, colour names and a backdrop are checked
when the config is loaded; a refused one is a config error naming the key and why."""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.branding import (
    MAX_BACKDROP_BYTES,
    PAGE_THEME,
    TEXT_CONTRAST,
    UI_CONTRAST,
    Theme,
    check_theme,
    contrast_ratio,
    load_backdrop,
    palette,
    theme_css,
)
from appliance.config import FILES_CHECKED, ConfigError, KioskConfig, parse_config


def _problems(data: dict[str, object]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="kiosk.toml")
    return info.value.problems


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``x``height`` (its data is one tiny row: only the header is read)."""
    out = io.BytesIO()
    Image.new("RGB", (1, 1)).save(out, format="PNG")
    raw = bytearray(out.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(raw[24:29])
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(raw)


def test_no_branding_is_the_page_as_it_was() -> None:
    cfg = KioskConfig()
    assert cfg.branding.logo is None and cfg.branding.logo_image is None and cfg.branding.backdrop is None
    assert cfg.branding.theme == PAGE_THEME and not cfg.branding.themed
    assert check_theme(PAGE_THEME) == []


def test_an_svg_logo_is_accepted_without_its_script(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_bytes(
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10" onload="alert(1)">'
        b'<script>alert(2)</script><a href="https://evil.example/"><rect width="5" height="5"/></a>'
        b'<circle r="4" fill="url(https://evil.example/x)"/>'
        b'<rect width="10" height="10" fill="#123456"/></svg>'
    )
    cfg = parse_config({"branding": {"logo": str(logo)}})
    image = cfg.branding.logo_image
    assert image is not None and image.media_type == "image/svg+xml"
    for bad in (b"script", b"onload", b"evil.example", b"<a ", b"alert"):
        assert bad not in image.data
    assert b'fill="#123456"' in image.data


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"GIF89a\x01\x00\x01\x00", "branding.logo: logo must be a PNG or an SVG file"),
        (b'<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg/>', "branding.logo: SVG with a DOCTYPE or entities"),
        (b"<svg><unclosed></svg>", "branding.logo: logo is not a well-formed SVG"),
        (None, "branding.logo: logo unreadable"),
    ],
)
def test_a_bad_logo_is_a_config_error_naming_the_key(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    logo = tmp_path / "logo.bin"
    if content is not None:
        logo.write_bytes(content)
    problems = _problems({"branding": {"logo": str(logo)}})
    assert any(p.startswith(reason) for p in problems), problems


def test_a_png_logo_is_re_encoded(tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.new("RGBA", (120, 40), (11, 92, 173, 255)).save(out, format="PNG")
    logo = tmp_path / "logo.png"
    logo.write_bytes(out.getvalue() + b"appended: jane@example.com")
    image = parse_config({"branding": {"logo": str(logo)}}).branding.logo_image
    assert image is not None and image.media_type == "image/png" and b"jane@" not in image.data


@pytest.mark.parametrize(
    ("colours", "expected"),
    [
        (
            {"background": "#FFFFFF", "text": "#999999"},
            "branding.text on branding.background: contrast 2.85:1",
        ),
        (
            {"background": "#FFFFFF", "text": "#1A1A1A", "accent": "#FFD400", "on_accent": "#111111"},
            "branding.accent on branding.background: contrast 1.",
        ),
        ({"accent": "#FFCC33", "on_accent": "#FFFFFF"}, "branding.on_accent on branding.accent: contrast 1."),
    ],
)
def test_a_theme_guests_cannot_read_is_refused_naming_the_keys(
    colours: dict[str, str], expected: str
) -> None:
    problems = _problems({"branding": colours})
    assert any(p.startswith(expected) and "WCAG 2.2 AA" in p for p in problems), problems


def test_text_must_stay_readable_on_the_panels_too() -> None:
    # 4.6:1 on the background, but the panels (8 % towards the text) take it under 4.5:1.
    colours = {"background": "#FFFFFF", "text": "#747474", "accent": "#0B5CAD", "on_accent": "#FFFFFF"}
    assert contrast_ratio("#747474", "#ffffff") >= TEXT_CONTRAST
    problems = _problems({"branding": colours})
    assert any(p.startswith("branding.text on the panels") for p in problems), problems


def test_a_colour_must_be_a_colour() -> None:
    problems = _problems({"branding": {"accent": "blue"}})
    assert any(p.startswith("branding.accent:") for p in problems), problems


def test_colour_names_are_words(tmp_path: Path) -> None:
    cfg = parse_config({"branding": {"colour_names": {"#1f4e79": " Event blue "}}})
    assert cfg.branding.colour_names == {"#1F4E79": "Event blue"}
    for names, reason in (
        ({"#1F4E79": "#1F4E79"}, "not a colour code"),
        ({"blue": "Event blue"}, "is not a colour"),
        ({"#1F4E79": ""}, "1 to 40 printable"),
        ({"#1F4E79": "x" * 41}, "1 to 40 printable"),
        ({"#1F4E79": "a", "#1f4e79": "b"}, "named twice"),
    ):
        problems = _problems({"branding": {"colour_names": names}})
        assert any(p.startswith("branding.colour_names:") and reason in p for p in problems), problems


def _jpeg(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (40, 80, 120)).save(path, format="JPEG")
    return path


def test_the_backdrop_is_checked_and_offered_only_when_set(tmp_path: Path) -> None:
    backdrop = _jpeg(tmp_path / "wall.jpg", (1600, 900))
    cfg = parse_config(
        {"branding": {"backdrop": str(backdrop)}, "event": {"backgrounds": ["backdrop", "white"]}}
    )
    assert cfg.event.backgrounds == ("backdrop", "white")
    problems = _problems({"event": {"backgrounds": ["white", "backdrop"]}})
    assert problems == ("event.backgrounds offers 'backdrop', so branding.backdrop must name its image",)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b"GIF89a" + b"\0" * 64), "must be a JPEG or PNG"),
        (lambda p: p.write_bytes(_png_with_size(9000, 6000)), "54 MP); the limit is 40 MP"),
        (lambda p: _jpeg(p, (200, 900)), "at least 320 px"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64), "not a readable JPEG"),
    ],
)
def test_a_bad_backdrop_is_a_config_error_naming_the_key(tmp_path: Path, make: object, reason: str) -> None:
    path = tmp_path / "backdrop"
    make(path)  # type: ignore[operator]
    problems = _problems({"branding": {"backdrop": str(path)}})
    assert any(p.startswith("branding.backdrop:") and reason in p for p in problems), problems


def test_an_oversized_backdrop_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(MAX_BACKDROP_BYTES + 1)  # sparse: nothing of it is written
    problems = _problems({"branding": {"backdrop": str(path)}})
    assert any(p.startswith("branding.backdrop:") and "the limit is 20 MiB" in p for p in problems)


def test_the_worker_does_not_need_the_files_again(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>')
    cfg = parse_config({"branding": {"logo": str(logo)}})
    logo.unlink()
    data = cfg.model_dump(mode="json")
    with pytest.raises(ConfigError):
        parse_config(data)
    again = KioskConfig.model_validate(data, context={FILES_CHECKED: True})
    assert again.branding.logo == cfg.branding.logo


def test_load_backdrop_shrinks_to_the_largest_preset(tmp_path: Path) -> None:
    rgb = np.zeros((1500, 3000, 3), dtype=np.uint8)
    rgb[:, 1500:] = 255
    path = tmp_path / "wide.png"
    Image.fromarray(rgb).save(path)
    image = load_backdrop(path)
    assert image.shape[0] == 1350 and image.shape[1] >= 1080 and not image.flags.writeable
    small = load_backdrop(_jpeg(tmp_path / "small.jpg", (640, 480)))
    assert small.shape == (480, 640, 3)  # never enlarged here: compose scales it to each headshot


COLOURS = [
    "#ffffff",
    "#f4f6f8",
    "#101418",
    "#000000",
    "#1f4e79",
    "#0b5cad",
    "#ffcc33",
    "#777777",
    "#1a1a1a",
    "#e30613",
]


def test_every_text_colour_of_an_accepted_theme_reads_at_4_5_to_1() -> None:
    accepted = 0
    for bg, text, accent, on_accent in itertools.product(COLOURS, repeat=4):
        theme = Theme(background=bg, text=text, accent=accent, on_accent=on_accent)
        if check_theme(theme):
            continue
        accepted += 1
        p = palette(theme)
        for surface in (p["--bg"], p["--panel"]):
            for role in ("--text", "--accent-text", "--link", "--ok-text", "--bad-text"):
                assert contrast_ratio(p[role], surface) >= TEXT_CONTRAST, (theme, role, surface)
        assert contrast_ratio(p["--primary-text"], p["--primary"]) >= TEXT_CONTRAST
        assert contrast_ratio(p["--focus"], p["--bg"]) >= UI_CONTRAST
        css = theme_css(theme)
        assert css.count("{") == 1 and ":root {" in css
    assert accepted > 100
