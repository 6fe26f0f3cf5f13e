"""The compliance documents in the kiosk's four languages: one source per text (the English Markdown
templates, translated by the "documents" gettext catalogs), complete catalogs, the English output unchanged
by the translation machinery, the legal terms of each jurisdiction, and a policy hash that covers every
offered language."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

import appliance.compliance as compliance
from appliance.compliance import (
    DOCUMENT_STEMS,
    GUEST_DOCUMENTS,
    ComplianceError,
    Controller,
    document_name,
    documents_translator,
    policy_hash,
    policy_text,
    privacy_notice,
    render_all_documents,
    render_documents,
)
from appliance.config import KioskConfig, parse_config

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "appliance" / "translations"
TEMPLATES = ROOT / "appliance" / "documents"
LANGS = ("en", "fr", "es", "de")
DEFAULT = KioskConfig()  # offers all four languages
CHANGED = parse_config(
    {
        "delivery": {"window_minutes": 25},
        "session": {"review_idle_timeout_seconds": 200, "idle_warning_seconds": 20},
        "event": {"name": "Salon de l'emploi", "policy_version": "2025-09"},
    }
)
# Placeholders ($name, %(name)s), Markdown emphasis and code spans must survive translation unchanged.
MARKUP = re.compile(r"\$\w+|%\(\w+\)s|\*\*|`")


def _catalog(path: Path) -> Any:
    with path.open("rb") as f:
        return read_po(f)


def test_the_template_is_up_to_date_with_the_documents_and_sentences() -> None:
    with (TRANSLATIONS / "documents-babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    extracted = {
        message
        for _filename, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords={"_D": None}
        )
    }
    pot = {m.id for m in _catalog(TRANSLATIONS / "documents.pot") if m.id}
    assert extracted == pot, "documents.pot is stale: see the commands in appliance/compliance.py"
    assert "Privacy notice — $event" in pot and "the event organiser" in pot


@pytest.mark.parametrize("lang", ["fr", "es", "de"])
def test_documents_catalogs_are_complete_and_compiled(lang: str) -> None:
    wanted = {m.id for m in _catalog(TRANSLATIONS / "documents.pot") if m.id}
    catalog = _catalog(TRANSLATIONS / lang / "LC_MESSAGES" / "documents.po")
    po = {m.id: m.string for m in catalog if m.id}
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "documents.mo").open("rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert set(po) == wanted, "documents.po is out of date with documents.pot"
    assert [k for k, v in po.items() if not v] == []
    assert [m.id for m in catalog if m.id and m.fuzzy] == []
    for msgid, text in po.items():
        assert sorted(MARKUP.findall(msgid)) == sorted(MARKUP.findall(text)), msgid
    assert mo == po, "documents.mo is stale: run pybabel compile -D documents -d appliance/translations"


def test_english_is_the_template_itself() -> None:
    # The English documents are the templates, byte for byte, filled in: the machinery that splits a template
    # into messages for the other languages, given no translation, rebuilds the same text (only where a
    # paragraph's lines break differs), so English and the translations are made from the same units.
    class Identity:
        def gettext(self, msgid: str) -> str:
            return msgid

    for path in sorted(TEMPLATES.glob("*.md")):
        source = path.read_text(encoding="utf-8")
        rebuilt = compliance._localise(source, Identity())
        assert rebuilt.split() == source.split(), path.name
        assert rebuilt.count("\n|") == source.count("\n|"), path.name  # every table row stays a row


@pytest.mark.parametrize("lang", LANGS)
def test_every_document_exists_in_every_language(lang: str) -> None:
    docs = render_documents(DEFAULT, lang)
    assert list(docs) == [document_name(stem, lang) for stem in DOCUMENT_STEMS]
    for name, text in docs.items():
        assert text.startswith("# ") and "$" not in text, name
    assert set(render_all_documents(DEFAULT)) == {
        document_name(stem, code) for stem in DOCUMENT_STEMS for code in LANGS
    }


@pytest.mark.parametrize("lang", ["fr", "es", "de"])
def test_translated_documents_leave_no_english_sentence_behind(lang: str) -> None:
    english = render_documents(CHANGED, "en")
    for stem in DOCUMENT_STEMS:
        text = render_documents(CHANGED, lang)[document_name(stem, lang)]
        english_lines = {line.strip() for line in english[document_name(stem, "en")].splitlines()}
        for line in text.splitlines():
            words = re.findall(r"[^\W\d_]+", line)
            if len(words) >= 4:  # short cells ("Art. 30(1)", "Name: ...") may read the same in both
                assert line.strip() not in english_lines, (stem, line)


@pytest.mark.parametrize(
    ("lang", "window", "warning"),
    [
        ("en", "25 minutes", "20 seconds"),
        ("fr", "25 minutes", "20 secondes"),
        ("es", "25 minutos", "20 segundos"),
        ("de", "25 Minuten", "20 Sekunden"),
    ],
)
def test_durations_follow_the_config_in_each_language(lang: str, window: str, warning: str) -> None:
    for stem in (*GUEST_DOCUMENTS, "record-of-processing", "dpia", "retention"):
        text = render_documents(CHANGED, lang)[document_name(stem, lang)]
        assert window in text and "10 " + window.split()[1] not in text, stem
    assert warning in privacy_notice(CHANGED, lang)


def test_legal_terms_are_those_of_each_jurisdiction() -> None:
    fr = render_documents(DEFAULT, "fr")
    # French Canada (Quebec): PIPEDA is the LPRPDE, meaningful consent the OPC's "consentement valable".
    assert "(Canada, LPRPDE)" in fr["pipeda-consent.fr.md"]
    assert "consentement valable" in fr["pipeda-consent.fr.md"]
    assert "Commissariat à la protection de la vie privée du Canada" in fr["pipeda-consent.fr.md"]
    assert "LPRPDE" in fr["privacy-notice.fr.md"] and "RGPD" in fr["privacy-notice.fr.md"]
    assert "RGPD" in fr["record-of-processing.fr.md"] and "RGPD" in fr["dpia.fr.md"]
    for text in fr.values():
        assert "PIPEDA" not in text and "GDPR" not in text
    de = render_documents(DEFAULT, "de")
    assert "DSGVO" in de["record-of-processing.de.md"] and "Datenschutz-Folgenabschätzung" in de["dpia.de.md"]
    assert "Art. 6 Abs. 1 lit. a DSGVO" in de["privacy-notice.de.md"]
    es = render_documents(DEFAULT, "es")
    assert "RGPD" in es["privacy-notice.es.md"] and "art. 6.1.a RGPD" in es["privacy-notice.es.md"]
    # Each guest document points at its own language's privacy notice.
    for lang in LANGS:
        assert (
            f"privacy-notice.{lang}.md"
            in render_documents(DEFAULT, lang)[document_name("notice-at-collection", lang)]
        )


def test_the_controller_is_named_as_given_and_the_default_role_is_translated() -> None:
    assert (Controller().name, Controller().contact) == compliance._CONTROLLER_DEFAULTS
    notice = privacy_notice(DEFAULT, "fr")
    assert "**l'organisateur de l'événement**" in notice and "the event organiser" not in notice
    acme = Controller(name="Acme Events Ltd", contact="privacy@acme.example", dpo_contact="dpo@acme.example")
    for lang, dpo in (("fr", "Délégué"), ("es", "Delegado"), ("de", "Datenschutzbeauftragte")):
        notice = privacy_notice(DEFAULT, lang, controller=acme)
        assert "**Acme Events Ltd**" in notice and "privacy@acme.example" in notice
        assert f"{dpo}" in notice and "dpo@acme.example" in notice


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ComplianceError, match="'it'"):
        render_documents(DEFAULT, "it")
    with pytest.raises(ComplianceError, match="'it'"):
        documents_translator("it")


# ------------------------------------------------------------------------------------------ the policy hash


class _Altered:
    """A catalog that words one message differently: as if its translation had been edited."""

    def __init__(self, inner: Any, msgid: str) -> None:
        self.inner = inner
        self.msgid = msgid

    def gettext(self, msgid: str) -> str:
        text = str(self.inner.gettext(msgid))
        return text + " (amended)" if msgid == self.msgid else text


@pytest.mark.parametrize("lang", ["fr", "es", "de"])
def test_changing_any_languages_text_changes_the_policy_hash(
    lang: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = policy_hash(DEFAULT)
    english_only = parse_config({"event": {"languages": ["en"]}})
    english_before = policy_hash(english_only)
    original = compliance.documents_translator

    def altered(code: str) -> Any:
        inner = original(code)
        return _Altered(inner, "Never") if code == lang else inner  # a heading of the privacy notice

    monkeypatch.setattr(compliance, "documents_translator", altered)
    assert policy_hash(DEFAULT) != before
    # A language the event does not offer is not part of what its guests consent to.
    assert policy_hash(english_only) == english_before


def test_changing_the_english_text_changes_the_policy_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    before = policy_hash(DEFAULT)
    source = compliance._source

    def edited(name: str) -> str:
        text = source(name)
        return text.replace("## Never", "## Never, ever") if name == "privacy-notice" else text

    monkeypatch.setattr(compliance, "_source", edited)
    assert policy_hash(DEFAULT) != before


def test_the_policy_text_holds_every_guest_document_of_every_offered_language() -> None:
    text = policy_text(DEFAULT)
    for lang in LANGS:
        for stem in GUEST_DOCUMENTS:
            title = render_documents(DEFAULT, lang)[document_name(stem, lang)].splitlines()[0]
            assert title in text, (lang, stem)
    two = parse_config({"event": {"languages": ["de", "en"]}})
    assert "Datenschutzhinweis" in policy_text(two) and "Notice de confidentialité" not in policy_text(two)


@pytest.mark.parametrize("lang", ["en", "fr", "es", "de"])
def test_printing_is_in_the_documents_only_when_the_event_prints(lang: str) -> None:
    off = render_documents(KioskConfig(), lang)
    on = render_documents(KioskConfig.model_validate({"print": {"enabled": True}}), lang)
    notice, record = document_name("privacy-notice", lang), document_name("record-of-processing", lang)
    assert "CUPS" not in off[record] and "CUPS" in on[record]
    assert len(on[notice]) > len(off[notice]) + 200
    assert "\n\n\n" not in off[notice] + on[notice] + off[record] + on[record]
    assert {k: v for k, v in on.items() if k not in (notice, record)} == {
        k: v for k, v in off.items() if k not in (notice, record)
    }
    assert policy_hash(KioskConfig()) != policy_hash(KioskConfig.model_validate({"print": {"enabled": True}}))
