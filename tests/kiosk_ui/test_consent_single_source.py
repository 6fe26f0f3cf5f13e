"""The consent screen has one source: the guest page shows exactly ``appliance.consent.consent_screen`` in
every language, and the receipt's policy hash follows the same templates and config values (invariant 7: a
receipt proves what the guest read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from markupsafe import escape

from appliance.audit import AuditLog, receipt_recorder
from appliance.compliance import policy_hash, policy_text
from appliance.config import KioskConfig
from appliance.consent import CONSENT_LANGUAGES, consent_screen
from appliance.kiosk import Kiosk, Receipt
from appliance.lifecycle import WipeReason
from kiosk_ui import create_app
from kiosk_ui.strings import consent_summary
from tests.kiosk_ui.conftest import kiosk_config


def _page(cfg: KioskConfig, lang: str) -> str:
    # The guest page only reads the facade's config: a kiosk that is not started is enough.
    client = create_app(Kiosk(cfg), testing=True).test_client()
    response = client.get(f"/?lang={lang}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _shown(screen: dict[str, object]) -> list[str]:
    items = screen["items"]
    assert isinstance(items, list)
    texts = [str(screen[key]) for key in ("title", "intro", "agree", "accept", "decline", "notice_link")]
    return texts + [str(item[part]) for item in items for part in ("title", "text")]


@pytest.mark.parametrize("lang", CONSENT_LANGUAGES)
def test_guest_page_shows_the_compliance_consent_text(tmp_path: Path, lang: str) -> None:
    cfg = kiosk_config(tmp_path)
    page = _page(cfg, lang)
    for sentence in _shown(consent_screen(cfg, lang)):
        assert str(escape(sentence)) in page, sentence
    app = create_app(Kiosk(cfg), testing=True)
    with app.test_request_context(f"/?lang={lang}"):
        assert consent_summary(cfg) == consent_screen(cfg, lang)  # Flask-Babel and gettext agree


def test_translations_are_real_and_complete(tmp_path: Path) -> None:
    cfg = kiosk_config(tmp_path)
    english = _shown(consent_screen(cfg, "en"))
    for lang in ("fr", "es", "de"):
        translated = _shown(consent_screen(cfg, lang))
        # Every sentence is translated (none left in English).
        assert sum(a == b for a, b in zip(english, translated, strict=True)) == 0, lang
    assert "jusqu'à 3 photos" in consent_screen(cfg, "fr")["items"][0]["text"]
    assert "2 Minuten" in consent_screen(cfg, "de")["items"][3]["text"]
    assert "10 minutos" in consent_screen(cfg, "es")["items"][3]["text"]


def test_changing_a_duration_changes_the_consent_text_and_the_policy_hash(tmp_path: Path) -> None:
    before = kiosk_config(tmp_path)
    after = kiosk_config(
        tmp_path, delivery={"window_minutes": 25}, session={"review_idle_timeout_seconds": 300}
    )
    for lang, old, new in (
        ("en", "10 minutes", "25 minutes"),
        ("fr", "10 minutes", "25 minutes"),
        ("es", "10 minutos", "25 minutos"),
        ("de", "10 Minuten", "25 Minuten"),
    ):
        assert old in _page(before, lang) and new not in _page(before, lang)
        assert new in _page(after, lang) and old not in _page(after, lang)
    assert "5 minutes without a touch" in _page(after, "en")
    assert policy_hash(after) != policy_hash(before)

    # The receipt written for a visit records the hash of the text that visit was shown.
    for cfg in (before, after):
        record = receipt_recorder(cfg)
        record(Receipt("7K3QX9MD", WipeReason.FINISHED, {}, 1_700_000_000.0, 1_700_000_060.0))
        last = json.loads(AuditLog(cfg.audit.path).export().splitlines()[-1])
        assert last["policy"] == policy_hash(cfg)


def test_policy_hash_covers_every_offered_language(tmp_path: Path) -> None:
    everything = kiosk_config(tmp_path)
    english_only = kiosk_config(tmp_path, event={"name": "Test Expo", "languages": ["en"]})
    text = policy_text(everything)
    for lang in ("fr", "es", "de"):
        assert json.dumps(consent_screen(everything, lang)["intro"], ensure_ascii=False) in text
    assert "réalise votre portrait" not in policy_text(english_only)
    assert policy_hash(english_only) != policy_hash(everything)
