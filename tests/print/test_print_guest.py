"""Printing as the guest and staff see it, with and without ``[print] enabled``: the page, the consent text,
the API's answers, the state JSON and ``/metrics``. No cupsd here: with printing on, the kiosk points at a
socket nobody listens on, which is a printer that is offline (the CUPS round trip is test_print_cups)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance.compliance import policy_hash
from appliance.config import KioskConfig
from appliance.consent import consent_screen
from appliance.kiosk import Kiosk
from kiosk_ui import create_app
from kiosk_ui.metrics import metrics_text
from kiosk_ui.openapi import spec

LANGUAGES = ("en", "fr", "es", "de")


def _config(base: Path, *, enabled: bool) -> KioskConfig:
    return KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store"), "size_mib": 16},
            "audit": {"path": str(base / "audit")},
            "event": {"name": "Print Expo", "languages": list(LANGUAGES)},
            "print": {"enabled": enabled, "cups_socket": str(base / "no-cups.sock"), "copies_per_guest": 2},
        }
    )


@pytest.fixture(scope="module", params=[False, True], ids=["print-off", "print-on"])
def kiosk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    k = Kiosk(_config(tmp_path_factory.mktemp("guest"), enabled=request.param))
    k.start(wait_for_worker=False)  # no visit gets past consent here: no worker needed
    yield k
    k.close()


@pytest.fixture
def client(kiosk: Kiosk) -> Iterator[FlaskClient]:
    yield create_app(kiosk, testing=True).test_client()
    if kiosk.state().phase != "idle":
        kiosk.delete_now()


def _page_data(html: str) -> dict[str, object]:
    match = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    return dict(json.loads(match.group(1)))


def test_the_page_offers_printing_only_where_the_event_does(client: FlaskClient, kiosk: Kiosk) -> None:
    for lang in LANGUAGES:
        html = client.get(f"/?lang={lang}").get_data(as_text=True)
        page = _page_data(html)
        if kiosk.cfg.print.enabled:
            assert 'id="print-btn"' in html and 'id="print-status"' in html
            assert isinstance(page["print"], dict) and page["print"]["copies"] == 2
            strings = page["print"]["strings"]
            assert set(strings) >= {"print", "queued", "printing", "completed", "failed", "kind_print"}
            if lang != "en":  # translated, not the English msgid
                assert strings["completed"] != "Collect your print from the printer."
        else:
            assert "print-btn" not in html and "print-status" not in html
            assert page["print"] is None
        # The guest page's element ids that outside checks use are all still there.
        for element in (
            "start",
            "agree",
            "accept",
            "decline",
            "shoot",
            "retake",
            "deliver",
            "finish",
            "again",
        ):
            assert f'id="{element}"' in html, element


def test_the_consent_text_mentions_printing_only_where_the_event_prints(kiosk: Kiosk) -> None:
    for lang in LANGUAGES:
        screen = consent_screen(kiosk.cfg, lang)
        ids = [item["id"] for item in screen["items"]]
        text = " ".join(item["text"] for item in screen["items"]).lower()
        if kiosk.cfg.print.enabled:
            assert ids.index("print") == ids.index("where") + 1
            printed = next(item for item in screen["items"] if item["id"] == "print")
            if lang != "en":
                english = next(i for i in consent_screen(kiosk.cfg, "en")["items"] if i["id"] == "print")
                assert printed["text"] != english["text"] and printed["title"] != english["title"]
        else:
            assert "print" not in ids
            assert "print" not in text and "imprim" not in text and "druck" not in text


def test_the_policy_hash_covers_the_printing_sentence(tmp_path: Path) -> None:
    assert policy_hash(_config(tmp_path, enabled=True)) != policy_hash(_config(tmp_path, enabled=False))


def test_the_print_api_answers_what_the_event_offers(client: FlaskClient, kiosk: Kiosk) -> None:
    started = client.post("/api/session", json={})
    assert started.status_code == 201
    state = client.get("/api/session").json
    refused = client.post("/api/session/print", json={"render": "0" * 32})
    if not kiosk.cfg.print.enabled:
        assert "print" not in state
        assert refused.status_code == 404 and refused.json["error"] == "print_disabled"
        return
    assert state["print"] == {"job": None, "status": None, "reason": None, "prints_left": 2}
    # Printing is a review/delivery step: on the consent screen it is "not now", and a malformed body is 400.
    assert refused.status_code == 409 and refused.json["error"] == "not_allowed"
    assert client.post("/api/session/print", json={}).status_code == 400


def test_metrics_and_the_dashboard_say_how_the_printer_is(kiosk: Kiosk) -> None:
    text = metrics_text(kiosk).decode()
    current = "offline" if kiosk.cfg.print.enabled else "disabled"  # nobody listens on the socket
    for state in ("ready", "printing", "out_of_media", "offline", "disabled"):
        value = "1.0" if state == current else "0.0"
        assert f'headshot_kiosk_printer_state{{state="{state}"}} {value}' in text
    assert "headshot_kiosk_prints_total 0.0" in text
    assert "headshot_kiosk_printer_media_remaining" not in text  # this printer reports none
    health = kiosk.health().as_json()
    assert health["printer"]["state"] == current
    assert health["counters"]["prints_completed"] == 0


def test_the_openapi_document_describes_the_print_route() -> None:
    document = spec()
    route = document["paths"]["/api/session/print"]["post"]
    assert route["requestBody"]["content"]["application/json"]["schema"]["required"] == ["render"]
    assert "print" in document["components"]["schemas"]["State"]["properties"]
