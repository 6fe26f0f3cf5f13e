"""Languages (en, fr, es, de) render completely; the idle warning shows and an idle visit is wiped from every
waiting phase (a Kiosk with an injected clock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui import create_app

TRANSLATIONS = Path(__file__).resolve().parents[2] / "kiosk_ui" / "translations"
EXPECTED = {
    "en": "Tap to start",
    "fr": "Touchez pour commencer",
    "es": "Toque para empezar",
    "de": "Zum Starten tippen",
}


@pytest.mark.parametrize("lang", ["fr", "es", "de"])
def test_catalogs_are_complete_and_compiled(lang: str) -> None:
    with (TRANSLATIONS / "messages.pot").open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert set(po) == wanted, "messages.po is out of date with messages.pot"
    assert [k for k, v in po.items() if not v] == []
    assert mo == po, "messages.mo is stale: run pybabel compile -d kiosk_ui/translations"


@pytest.mark.parametrize("lang", sorted(EXPECTED))
def test_pages_render_in_each_language(app: Flask, lang: str) -> None:
    c = app.test_client()
    page = c.get(f"/?lang={lang}").get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    assert EXPECTED[lang] in page
    notice = c.get(f"/notice?lang={lang}")
    assert notice.status_code == 200 and f'<html lang="{lang}">' in notice.get_data(as_text=True)


def test_accept_language_picks_an_offered_language(app: Flask) -> None:
    page = app.test_client().get("/", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert EXPECTED["de"] in page.get_data(as_text=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def idle_kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kiosk, Clock]]:
    clock = Clock()
    base = Path(tmp_path_factory.mktemp("idle"))
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "session": {
                "consent_idle_timeout_seconds": 30,
                "preview_idle_timeout_seconds": 30,
                "review_idle_timeout_seconds": 30,
                "delivery_idle_timeout_seconds": 30,
                "idle_warning_seconds": 10,
            },
        }
    )
    k = Kiosk(cfg, clock=clock)
    k.start()
    yield k, clock
    k.close()


@pytest.mark.parametrize("phase", ["consent", "preview", "review", "delivery"])
def test_idle_warning_then_wipe_from_every_phase(idle_kiosk: tuple[Kiosk, Clock], phase: str) -> None:
    kiosk, clock = idle_kiosk
    c = create_app(kiosk, testing=True).test_client()
    assert c.post("/api/session", json={}).status_code == 201
    if phase != "consent":
        c.post("/api/session/consent", json={"accept": True})
    if phase in ("review", "delivery"):
        render = c.post("/api/session/capture", json={}).json["render"]
        if phase == "delivery":
            c.post("/api/session/deliver", json={"render": render})
    state = c.get("/api/session").json
    assert state["phase"] == phase and state["idle_warning"] is False
    clock.now += 21  # inside the 10 s warning window
    state = c.get("/api/session").json
    assert state["idle_warning"] is True and 0 < state["idle_seconds_left"] <= 10
    c.post("/api/session/touch", json={})  # the guest is still there
    assert c.get("/api/session").json["idle_warning"] is False
    clock.now += 31
    kiosk.tick()
    state = c.get("/api/session").json
    assert state["phase"] == "idle" and state["held"] == []
    assert state["last_receipt"]["outcome"] == "idle_timeout"
    assert kiosk.session_dirs() == []
