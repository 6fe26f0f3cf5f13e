"""The event's brand on the guest page (issue 14.3): logo and theme served and used, background choices
named (never a colour code), the backdrop offered and rendered through the API, and the attract screen's
samples made from the demo portraits and served from memory."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from appliance.branding import BrandingError, demo_portraits, sample_plan
from appliance.kiosk import Kiosk
from kiosk_ui import create_app
from kiosk_ui.brand import SampleReel, script_json
from tests.kiosk_ui.conftest import kiosk_config

REPO = Path(__file__).resolve().parents[2]
MAGENTA, GREEN = (200, 30, 160), (30, 170, 60)
LIGHT_THEME = {"background": "#FFFFFF", "text": "#1A1A1A", "accent": "#0B5CAD", "on_accent": "#FFFFFF"}
SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 40" onload="alert(1)">
  <script>fetch('https://evil.example/')</script>
  <rect width="100" height="40" fill="#0b5cad"/><text x="8" y="28" fill="#fff">Expo</text>
</svg>"""


def _backdrop(path: Path) -> Path:
    """Left half magenta, right half green: where a pixel of the headshot comes from is plain to see."""
    rgb = np.zeros((600, 800, 3), dtype=np.uint8)
    rgb[:, :400] = MAGENTA
    rgb[:, 400:] = GREEN
    Image.fromarray(rgb).save(path, format="PNG")
    return path


@pytest.fixture(scope="module")
def branded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    base = tmp_path_factory.mktemp("brand")
    (base / "logo.svg").write_bytes(SVG)
    cfg = kiosk_config(
        base,
        event={
            "name": "Brand Expo",
            "languages": ["en", "fr"],
            "backgrounds": ["studio-grey", "#1F4E79", "#00AA88", "backdrop"],
        },
        branding={
            **LIGHT_THEME,
            "logo": str(base / "logo.svg"),
            "backdrop": str(_backdrop(base / "backdrop.png")),
            "colour_names": {"#1f4e79": "Expo blue"},
        },
    )
    k = Kiosk(cfg)
    k.start()
    yield k
    k.close()


@pytest.fixture(scope="module")
def branded_app(branded: Kiosk) -> Flask:
    return create_app(branded, testing=True)


@pytest.fixture
def bc(branded_app: Flask, branded: Kiosk) -> Iterator[FlaskClient]:
    if branded.state().phase != "idle":
        branded.delete_now()
    yield branded_app.test_client()
    if branded.state().phase != "idle":
        branded.delete_now()


def _brand_data(html: str) -> dict[str, object]:
    match = re.search(r'<script id="brand-data" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    data: dict[str, object] = json.loads(match.group(1))
    return data


def test_the_page_carries_the_logo_and_the_theme(bc: FlaskClient) -> None:
    html = bc.get("/?lang=en").get_data(as_text=True)
    assert '<link rel="stylesheet" href="/brand/theme.css">' in html
    assert html.count('src="/brand/logo"') == 2  # the attract screen and the top bar
    assert 'id="attract-logo" class="brand-logo" src="/brand/logo" alt=""' in html  # the h1 names it
    for needed in (
        'id="start"',
        'id="screen-attract"',
        'id="attract-title"',
        'id="samples" class="samples" hidden',
    ):
        assert needed in html
    css = bc.get("/brand/theme.css")
    assert css.mimetype == "text/css"
    text = css.get_data(as_text=True)
    assert "--bg: #ffffff;" in text and "--text: #1a1a1a;" in text and "--primary: #0b5cad;" in text
    assert "color-scheme: light;" in text
    assert text.count(":root") == 1 and "mode-contrast" not in text  # the contrast mode stays stronger
    kiosk_css = (REPO / "kiosk_ui" / "static" / "kiosk.css").read_text()
    assert "html.mode-contrast {" in kiosk_css


def test_the_logo_is_served_from_memory_without_anything_active(bc: FlaskClient, branded: Kiosk) -> None:
    r = bc.get("/brand/logo")
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "script-src" not in r.headers["Content-Security-Policy"]
    assert "unsafe" not in r.headers["Content-Security-Policy"]
    assert "sandbox" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
    body = r.get_data()
    assert b"<script" not in body and b"onload" not in body and b"evil.example" not in body
    assert b"<rect" in body and b"Expo" in body
    logo = branded.cfg.branding.logo
    assert logo is not None
    logo.unlink()  # read once, when the config was loaded: the page does not need the file any more
    assert bc.get("/brand/logo").get_data() == body


def test_background_choices_have_names_and_swatches_never_a_code(bc: FlaskClient) -> None:
    for lang, blue_only in (("en", "Colour"), ("fr", "Couleur")):
        data = _brand_data(bc.get(f"/?lang={lang}").get_data(as_text=True))
        choices = data["backgrounds"]
        assert isinstance(choices, dict)
        assert list(choices) == ["studio-grey", "#1F4E79", "#00AA88", "backdrop"]
        names = {b: c["name"] for b, c in choices.items()}
        assert names["#1F4E79"] == "Expo blue"  # the config's name
        assert names["#00AA88"] == blue_only  # unnamed: the translated word, not its code
        assert names["backdrop"] == ("Event backdrop" if lang == "en" else "Décor de l'événement")
        assert not any(re.search(r"#[0-9A-Fa-f]{3,6}", n) for n in names.values())
        assert choices["#1F4E79"]["swatch"] == "#1F4E79"
        assert choices["backdrop"]["swatch"].startswith('url("/brand/backdrop.jpg")')
    thumb = bc.get("/brand/backdrop.jpg")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(thumb.get_data())) as image:
        assert max(image.size) <= 160 and not image.info.get("exif")


def test_the_backdrop_is_offered_and_rendered_through_the_api(bc: FlaskClient) -> None:
    page = bc.get("/?lang=en").get_data(as_text=True)
    assert '"backdrop"' in page
    assert bc.post("/api/session", json={}).status_code == 201
    assert bc.post("/api/session/consent", json={"accept": True}).status_code == 200
    shot = bc.post("/api/session/capture", json={})
    assert shot.status_code == 200, shot.get_json()
    take = shot.get_json()["take"]
    r = bc.post("/api/session/render", json={"take": take, "background": "backdrop", "preset": "square"})
    assert r.status_code == 200, r.get_json()
    jpeg = bc.get(r.get_json()["image"]).get_data()
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.int16)
    w = rgb.shape[1]
    # The top band's corners are backdrop (the guest is in the middle): left magenta, right green.
    assert np.abs(rgb[4:24, 4:24].reshape(-1, 3).mean(0) - MAGENTA).max() < 12
    assert np.abs(rgb[4:24, w - 24 : w - 4].reshape(-1, 3).mean(0) - GREEN).max() < 12
    named = bc.post("/api/session/render", json={"take": take, "background": "#1F4E79", "preset": "square"})
    assert named.status_code == 200


def test_a_kiosk_without_branding_keeps_its_own_look(client: FlaskClient) -> None:
    html = client.get("/?lang=en").get_data(as_text=True)
    assert "/brand/theme.css" not in html and "/brand/logo" not in html
    assert client.get("/brand/logo").status_code == 404
    assert client.get("/brand/backdrop.jpg").status_code == 404
    data = _brand_data(html)
    assert isinstance(data["backgrounds"], dict)
    assert {c["name"] for c in data["backgrounds"].values()} == {"Studio grey", "White", "Blurred"}


def _new_files_holding(roots: list[Path], since: float, needles: list[bytes]) -> list[str]:
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", "node_modules")]
            for name in filenames:
                path = Path(dirpath) / name
                try:
                    if path.is_symlink() or path.stat().st_mtime < since or path.stat().st_size > 64 << 20:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(n in data for n in needles):
                    found.append(str(path))
    return found


def test_attract_samples_come_from_the_demo_portraits_and_stay_in_memory(bc: FlaskClient) -> None:
    started = time.time() - 1
    assert [p.name for p in demo_portraits()] == ["astronaut.png", "grace_hopper.jpg"]
    first = bc.get("/brand/samples.json").get_json()
    assert first["ready"] is False and first["count"] == 0  # lazily: asked for now, made in the background
    assert bc.get("/brand/sample/0.jpg").status_code == 404
    deadline = time.monotonic() + 120
    status = first
    while not status["ready"] and time.monotonic() < deadline:
        time.sleep(0.5)
        status = bc.get("/brand/samples.json").get_json()
    assert status["ready"], "the samples were not rendered within 2 minutes"
    plan = sample_plan(2, ["studio-grey", "#1F4E79", "#00AA88", "backdrop"])
    assert status["count"] == len(plan) == 4
    assert status["urls"] == [f"/brand/sample/{i}.jpg" for i in range(4)]
    samples = []
    for url in status["urls"]:
        r = bc.get(url)
        assert r.status_code == 200 and r.mimetype == "image/jpeg"
        samples.append(r.get_data())
        with Image.open(io.BytesIO(samples[-1])) as image:
            assert image.size == (540, 675) and not image.info.get("exif")
    assert len(set(samples)) == 4
    # Served from memory: no file anywhere in the repository or /tmp holds their bytes.
    needles = [s[len(s) // 2 : len(s) // 2 + 64] for s in samples]
    assert _new_files_holding([REPO, Path("/tmp")], started, needles) == []
    # The sample on the backdrop shows it (its top corners), as the guest's headshot would.
    rgb = np.asarray(Image.open(io.BytesIO(samples[3])).convert("RGB"), dtype=np.int16)
    assert np.abs(rgb[2:12, 2:12].reshape(-1, 3).mean(0) - MAGENTA).max() < 16
    assert bc.get("/brand/sample/4.jpg").status_code == 404


def test_the_reel_renders_once_per_set_of_backgrounds(branded: Kiosk) -> None:
    calls: list[tuple[str, ...]] = []

    def fake(cfg: object) -> list[bytes]:
        calls.append(branded.cfg.event.backgrounds)
        return [b"\xff\xd8sample"]

    reel = SampleReel(render=fake)
    deadline = time.monotonic() + 10
    while not reel.status(branded.cfg)["ready"] and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(5):
        assert reel.status(branded.cfg) == {"ready": True, "count": 1, "pending": False}
    assert len(calls) == 1 and reel.image(0) == b"\xff\xd8sample" and reel.image(1) is None


def test_a_failed_render_leaves_the_text_and_is_not_retried(branded: Kiosk) -> None:
    calls: list[int] = []

    def failing(cfg: object) -> list[bytes]:
        calls.append(1)
        raise BrandingError("the sample renderer exited with 1: no models")

    reel = SampleReel(render=failing)
    deadline = time.monotonic() + 10
    while reel.status(branded.cfg)["pending"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reel.status(branded.cfg) == {"ready": False, "count": 0, "pending": False}
    assert calls == [1] and reel.image(0) is None


def test_sample_plan_shows_every_portrait_and_background() -> None:
    plan = sample_plan(2, ["studio-grey", "white", "blur"])
    assert {p for p, _ in plan} == {0, 1} and {b for _, b in plan} == {"studio-grey", "white", "blur"}
    assert all(a[0] != b[0] and a[1] != b[1] for a, b in itertools.pairwise(plan))
    assert len(sample_plan(2, [f"#0000{i:02d}" for i in range(8)])) == 6  # capped
    assert sample_plan(0, ["white"]) == [] and sample_plan(2, []) == []


def test_names_cannot_end_the_script_element() -> None:
    """A staff-written colour name holding ``</script>`` or ``<!--`` stays inside the page's JSON."""
    name = "Blue </script><script>alert(1)</script> <!-- x"
    text = script_json({"backgrounds": {"#1F4E79": {"name": name}}})
    assert "<" not in text
    assert json.loads(text)["backgrounds"]["#1F4E79"]["name"] == name
