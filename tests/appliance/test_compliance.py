"""Compliance documents and the consent text: every duration comes from the config, and follows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.cli.compliance import compliance_main
from appliance.compliance import (
    ComplianceError,
    Controller,
    consent_summary,
    format_duration,
    policy_hash,
    policy_text,
    privacy_notice,
    render_all_documents,
    render_documents,
)
from appliance.config import KioskConfig, parse_config

DEFAULT = KioskConfig()
# Every guest-facing duration changed from its default.
CHANGED = parse_config(
    {
        "delivery": {"window_minutes": 25},
        "session": {
            "consent_idle_timeout_seconds": 45,
            "preview_idle_timeout_seconds": 75,
            "review_idle_timeout_seconds": 100,
            "delivery_idle_timeout_seconds": 200,
            "idle_warning_seconds": 20,
            "max_takes": 5,
        },
        "event": {"name": "Career Fair 2025", "policy_version": "2025-03"},
    }
)
GUEST_DOCUMENTS = ("privacy-notice.en.md", "notice-at-collection.en.md", "pipeda-consent.en.md")


def _text(summary: dict[str, Any]) -> str:
    return " ".join(item["text"] for item in summary["items"])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (45, "45 seconds"),
        (60, "1 minute"),
        (90, "1 minute 30 seconds"),
        (90.4, "1 minute 30 seconds"),
        (600, "10 minutes"),
        (3600, "1 hour"),
        (3725, "1 hour 2 minutes 5 seconds"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)


# ------------------------------------------------------------------------------------------------ consent


def test_consent_summary_shape() -> None:
    summary = consent_summary(DEFAULT)
    assert summary["lang"] == "en"
    assert summary["policy_version"] == "2025-01"
    assert [item["id"] for item in summary["items"]] == [
        "what",
        "why",
        "where",
        "how_long",
        "never",
        "choices",
        "receipt",
    ]
    assert all(item["title"] and item["text"] for item in summary["items"])
    assert summary["accept"] and summary["decline"]
    assert summary["durations"] == {
        "idle_timeout_seconds": 120,
        "idle_warning_seconds": 20.0,
        "delivery_window_minutes": 10,
    }


def test_consent_summary_states_the_facts() -> None:
    text = _text(consent_summary(DEFAULT)).lower()
    for fact in ("encrypted", "not uploaded", "not used to train", "delete now", "what we hold", "no name"):
        assert fact in text
    assert "10 minutes" in text  # delivery window
    assert "2 minutes" in text  # longest idle timeout


def test_consent_summary_follows_the_config() -> None:
    default = consent_summary(DEFAULT)
    changed = consent_summary(CHANGED)
    assert default != changed
    text = _text(changed)
    assert "25 minutes" in text and "10 minutes" not in text
    assert "3 minutes 20 seconds" in text  # delivery_idle_timeout_seconds = 200, the longest
    assert "up to 5 photos" in text
    assert changed["intro"].startswith("Career Fair 2025")
    assert changed["durations"]["delivery_window_minutes"] == 25
    assert changed["durations"]["idle_timeout_seconds"] == 200


def test_consent_summary_exists_in_the_documents_languages_only() -> None:
    assert consent_summary(DEFAULT, "fr")["lang"] == "fr"
    with pytest.raises(ComplianceError, match="'it'"):
        consent_summary(DEFAULT, "it")


def test_controller_identity_is_used() -> None:
    controller = Controller(
        name="Acme Events Ltd", contact="privacy@acme.example", dpo_contact="dpo@acme.example"
    )
    summary = consent_summary(DEFAULT, controller=controller)
    assert summary["controller"] == "Acme Events Ltd"
    assert consent_summary(DEFAULT)["controller"] == "the event organiser"
    docs = render_documents(DEFAULT, controller=controller)
    assert "Acme Events Ltd" in docs["record-of-processing.md"]
    assert "dpo@acme.example" in docs["record-of-processing.md"]
    assert "privacy@acme.example" in docs["privacy-notice.en.md"]


# ------------------------------------------------------------------------------------------------ documents


def test_all_documents_are_rendered() -> None:
    docs = render_documents(DEFAULT)
    assert set(docs) == {
        "privacy-notice.en.md",
        "notice-at-collection.en.md",
        "pipeda-consent.en.md",
        "record-of-processing.md",
        "dpia.md",
        "retention.md",
    }
    assert all(text.startswith("# ") for text in docs.values())


@pytest.mark.parametrize(
    "name",
    [*GUEST_DOCUMENTS, "record-of-processing.md", "dpia.md", "retention.md"],
)
def test_documents_carry_the_configured_retention_and_follow_it(name: str) -> None:
    default = render_documents(DEFAULT)[name]
    changed = render_documents(CHANGED)[name]
    assert "10 minutes" in default
    assert "25 minutes" in changed and "10 minutes" not in changed
    assert default != changed


def test_privacy_notice_lists_each_screen_timeout() -> None:
    notice = privacy_notice(CHANGED)
    for duration in ("45 seconds", "1 minute 15 seconds", "1 minute 40 seconds", "3 minutes 20 seconds"):
        assert duration in notice
    assert "20 seconds before it deletes everything" in notice


def test_privacy_notice_says_what_the_consent_screen_says() -> None:
    notice = " ".join(privacy_notice(DEFAULT).lower().split())  # the Markdown wraps lines
    for fact in (
        "not uploaded",
        "not used to train",
        "encrypted",
        "delete now",
        "what we hold",
        "no photo and no name",
        "staff",
        "does not recognise",
    ):
        assert fact in notice, fact


def test_record_of_processing_has_the_art_30_fields() -> None:
    ropa = render_documents(DEFAULT)["record-of-processing.md"]
    for field in (
        "Art. 30(1)(a)",
        "(b) Purpose",
        "(c) Data subjects",
        "(c) Personal data",
        "(d) Recipients",
        "(e) Transfers",
        "(f) Time limits",
        "(g) Technical and organisational security measures",
    ):
        assert field in ropa
    assert "| (d) Recipients | None." in ropa
    assert "| (e) Transfers to third countries | None." in ropa
    assert "AES-256-GCM" in ropa


def test_security_measures_reflect_tls_settings(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    tls = parse_config(
        {"delivery": {"host": "0.0.0.0", "tls_cert_path": str(cert), "tls_key_path": str(key)}}
    )
    assert "served over TLS" in render_documents(tls)["record-of-processing.md"]
    assert "bound to this machine only" in render_documents(DEFAULT)["record-of-processing.md"]


def test_dpia_covers_the_risks_and_mitigations() -> None:
    dpia = render_documents(DEFAULT)["dpia.md"]
    for mitigation in (
        "RAM-only encrypted store",
        "Per-session worker process",
        "One-time link",
        "No upload",
        "no training",
        "anonymous receipt",
        "Staff console never serves guest images",
    ):
        assert mitigation in dpia, mitigation
    assert "Art. 35(7)" in dpia


def test_ccpa_and_pipeda_sections() -> None:
    docs = render_documents(DEFAULT)
    ccpa = docs["notice-at-collection.en.md"]
    assert "do not sell or share" in ccpa
    assert "Biometric information" in ccpa
    pipeda = docs["pipeda-consent.en.md"]
    assert "Express consent" in pipeda
    assert "withdrawn at any moment" in pipeda


def test_policy_text_and_hash_are_deterministic_and_follow_the_config() -> None:
    assert policy_text(DEFAULT) == policy_text(KioskConfig())
    assert policy_hash(DEFAULT) == policy_hash(KioskConfig())
    assert policy_hash(CHANGED) != policy_hash(DEFAULT)
    assert policy_text(CHANGED).startswith("policy 2025-03\n")
    assert json.dumps(privacy_notice(CHANGED), ensure_ascii=False) in policy_text(CHANGED)


# ------------------------------------------------------------------------------------------------ command


def test_compliance_generate_writes_every_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text('[delivery]\nwindow_minutes = 7\n[event]\nlanguages = ["en", "fr"]\n')
    out = tmp_path / "docs"
    assert (
        compliance_main(["generate", "--config", str(config), "-o", str(out), "--controller-name", "Acme"])
        == 0
    )
    names = sorted(path.name for path in out.iterdir())
    assert names == sorted([*render_all_documents(DEFAULT), "index.md"])
    assert "7 minutes" in (out / "retention.md").read_text()
    assert "7 Minuten" in (out / "retention.de.md").read_text()
    assert "Acme" in (out / "privacy-notice.en.md").read_text()
    assert "Acme" in (out / "privacy-notice.fr.md").read_text()
    assert "pipeda-consent.fr.md" in (out / "index.md").read_text()
    assert "English only" not in capsys.readouterr().err  # every language has its documents


def test_compliance_render_alias_and_errors(tmp_path: Path) -> None:
    assert compliance_main(["render", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "dpia.md").is_file()
    assert compliance_main([]) == 2
    assert compliance_main(["generate", "--config", str(tmp_path / "missing.toml"), "-o", str(tmp_path)]) == 2
    assert compliance_main(["--help"]) == 0
