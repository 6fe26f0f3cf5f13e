"""``GET /api/speech.wav`` (issue 14.2): the guest screens' texts as audio, made on the kiosk; anything else
is refused, and without espeak-ng the page is told so (503) and goes on silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui import create_app
from kiosk_ui.openapi import spec
from kiosk_ui.speech import Speech

ESPEAK = shutil.which("espeak-ng")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    base = Path(tmp_path_factory.mktemp("speech"))
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "event": {"name": "Test Expo", "languages": ["en", "fr", "es", "de"]},
        }
    )
    # The route needs only the configuration: the kiosk is never started here.
    return create_app(Kiosk(cfg), testing=True)


def _get(app: Flask, lang: str, text: str) -> tuple[int, str, bytes]:
    r = app.test_client().get("/api/speech.wav", query_string={"lang": lang, "text": text})
    return r.status_code, r.mimetype, r.get_data()


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "Choose your headshot"),  # a heading of the guest catalog
        ("de", "Ich brauche mehr Zeit"),  # the idle warning's button, translated
        ("fr", "Test Expo"),  # the event's name
        ("es", "3"),  # a countdown number
        ("en", "Before we take your photo"),  # the consent screen's own catalog
        ("en", "Test Expo makes your headshot right here, on this kiosk."),  # with the event's name
    ],
)
def test_screen_texts_are_spoken(app: Flask, lang: str, text: str) -> None:
    status, mimetype, body = _get(app, lang, text)
    if ESPEAK is None:
        assert status == 503
    else:
        assert status == 200 and mimetype == "audio/wav" and body[:4] == b"RIFF"


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "jane.doe@example.com"),
        ("it", "Choose your headshot"),
        ("en", ""),
        ("en", "Jane Doe makes your headshot right here, on this kiosk."),  # a placeholder: no other name
    ],
)
def test_other_texts_are_refused(app: Flask, lang: str, text: str) -> None:
    status, _, body = _get(app, lang, text)
    assert status == 404 and b"not_speakable" in body


def test_without_espeak_the_route_says_so(app: Flask) -> None:
    saved = app.extensions.get("kiosk_ui.speech")
    app.extensions["kiosk_ui.speech"] = Speech({"en": ["Delete now"]}, binary="/nonexistent/espeak-ng")
    try:
        status, _, body = _get(app, "en", "Delete now")
    finally:
        app.extensions["kiosk_ui.speech"] = saved
    assert status == 503 and b"speech_unavailable" in body


def test_the_route_is_described() -> None:
    responses = spec()["paths"]["/api/speech.wav"]["get"]["responses"]
    assert {"200", "404", "503"} <= set(responses)


def test_the_idle_warning_gives_twenty_seconds_by_default() -> None:
    assert KioskConfig().session.idle_warning_seconds >= 20
