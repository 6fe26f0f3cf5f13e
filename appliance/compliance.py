"""Privacy paperwork rendered from the config: privacy notice, CCPA, PIPEDA, GDPR Art. 30, DPIA, retention.

Every guest-facing fact (what is captured, why, where it stays, for how long) comes from one ``_Facts``
built from ``KioskConfig``, and the consent screen (``appliance.consent``) fills its templates from the same
config, so the two cannot disagree, and changing ``[delivery] window_minutes`` or a ``[session]`` timeout
changes every text that mentions it. The policy version hash on each consent receipt is the SHA-256 of
``policy_text``: the consent screen's templates, their translations and the values filled in from the config,
for every offered language, plus the privacy notice and the configured ``[event] policy_version``.

The documents are drafts pre-filled with what this appliance does; the organiser (the controller) reviews them
with counsel. The controller's identity is not in the config yet: pass a ``Controller``.
The documents are English only; their wording lives in ``appliance/documents/*.md`` (package data), as
``string.Template`` texts whose ``$names`` are the fields of ``_Facts`` plus a few sentences chosen here.
The consent screen is translated (fr, es, de) by the gettext catalogs of ``appliance.consent``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

from appliance.config import KioskConfig, is_loopback
from appliance.consent import (
    CONSENT_LANGUAGES,
    ComplianceError,
    Controller,
    consent_screen,
    consent_templates,
    consent_translator,
    consent_values,
)
from appliance.retention import delivery_window_seconds, idle_limit_seconds
from engine.fileio import write_atomic

__all__ = [
    "SUPPORTED_LANGUAGES",
    "ComplianceError",
    "Controller",
    "consent_summary",
    "format_duration",
    "policy_hash",
    "policy_text",
    "privacy_notice",
    "render_documents",
    "write_documents",
]

SUPPORTED_LANGUAGES = ("en",)  # languages the documents exist in


def format_duration(seconds: float) -> str:
    """Plain English for a duration: ``45 seconds``, ``1 minute``, ``1 minute 30 seconds``, ``2 hours``."""
    total = round(seconds)
    if total < 0:
        raise ValueError(f"duration must not be negative; got {seconds!r}")

    def unit(value: int, word: str) -> str:
        return f"{value} {word}" if value == 1 else f"{value} {word}s"

    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(unit(hours, "hour"))
    if minutes:
        parts.append(unit(minutes, "minute"))
    if secs or not parts:
        parts.append(unit(secs, "second"))
    return " ".join(parts)


@dataclass(frozen=True)
class _Facts:
    """Everything the texts state, derived from the config once."""

    event: str
    policy_version: str
    controller: Controller
    max_takes: int
    idle_longest: str  # the longest inactivity any guest screen allows before wiping
    idle_consent: str
    idle_preview: str
    idle_review: str
    idle_delivery: str
    idle_warning: str
    capture_limit: str
    processing_limit: str
    delivery_window: str
    delivery_window_minutes: int
    delivery_tls: bool
    delivery_local_only: bool
    staff_tls: bool
    staff_local_only: bool
    languages: tuple[str, ...]


def _facts(cfg: KioskConfig, controller: Controller | None) -> _Facts:
    session = cfg.session
    return _Facts(
        event=cfg.event.name,
        policy_version=cfg.event.policy_version,
        controller=controller if controller is not None else Controller(),
        max_takes=session.max_takes,
        idle_longest=format_duration(idle_limit_seconds(session)),
        idle_consent=format_duration(session.consent_idle_timeout_seconds),
        idle_preview=format_duration(session.preview_idle_timeout_seconds),
        idle_review=format_duration(session.review_idle_timeout_seconds),
        idle_delivery=format_duration(session.delivery_idle_timeout_seconds),
        idle_warning=format_duration(session.idle_warning_seconds),
        capture_limit=format_duration(session.capture_timeout_seconds),
        processing_limit=format_duration(session.processing_timeout_seconds),
        delivery_window=format_duration(delivery_window_seconds(cfg)),
        delivery_window_minutes=cfg.delivery.window_minutes,
        delivery_tls=cfg.delivery.tls_cert_path is not None,
        delivery_local_only=is_loopback(cfg.delivery.host),
        staff_tls=cfg.staff.tls_cert_path is not None,
        staff_local_only=is_loopback(cfg.staff.host),
        languages=tuple(cfg.event.languages),
    )


def _check_lang(lang: str) -> None:
    if lang not in SUPPORTED_LANGUAGES:
        raise ComplianceError(
            f"no privacy text for language {lang!r} yet; available: {', '.join(SUPPORTED_LANGUAGES)} "
            "(the documents are English only; the consent screen itself is translated)"
        )


def consent_summary(
    cfg: KioskConfig, lang: str = "en", *, controller: Controller | None = None
) -> dict[str, Any]:
    """The consent screen in English, alongside the English documents (``consent_screen`` for the others).

    Raises ``ComplianceError`` for another language: the documents of this module are English only.
    """
    _check_lang(lang)
    return consent_screen(cfg, lang, controller=controller)


# ---------------------------------------------------------------------------------------------- documents


@cache
def _template(name: str) -> Template:
    """``appliance/documents/<name>.md``, read once through ``importlib.resources`` (works from a wheel)."""
    return Template((files("appliance") / "documents" / f"{name}.md").read_text(encoding="utf-8"))


def _values(f: _Facts) -> dict[str, str]:
    """What the templates' ``$names`` stand for: every fact, plus the sentences that depend on one."""
    values = {key: str(value) for key, value in asdict(f).items() if key != "controller"}
    values.update(
        controller_name=f.controller.name,
        controller_contact=f.controller.contact,
        dpo=f.controller.dpo_contact or "not designated (fill in if required)",
        contact_line=_contact_line(f),
        delivery_measure=(
            "Delivery links served over TLS on the kiosk's own network"
            if f.delivery_tls
            else "Delivery listener bound to this machine only (demo set-up; TLS is required on a network)"
        ),
        staff_measure=(
            "Staff console over TLS" if f.staff_tls else "Staff console reachable from this machine only"
        ),
    )
    # The retention table appears in the privacy notice and the retention statement; without its newline.
    values["retention_table"] = _template("retention-table").substitute(values).removesuffix("\n")
    return values


def _render(name: str, f: _Facts) -> str:
    return _template(name).substitute(_values(f))


def _contact_line(f: _Facts) -> str:
    line = f"Responsible: **{f.controller.name}**. Contact: {f.controller.contact}."
    if f.controller.dpo_contact:
        line += f" Data protection officer: {f.controller.dpo_contact}."
    return line


def privacy_notice(cfg: KioskConfig, lang: str = "en", *, controller: Controller | None = None) -> str:
    """The full privacy notice for guests (Markdown), linked from the consent screen. Same facts as the
    consent screen, in more detail."""
    _check_lang(lang)
    return _render("privacy-notice", _facts(cfg, controller))


def render_documents(cfg: KioskConfig, *, controller: Controller | None = None) -> dict[str, str]:
    """Every document as ``{file name: Markdown}``. Guest-facing ones carry a language suffix (``.en.md``)."""
    f = _facts(cfg, controller)
    return {
        "privacy-notice.en.md": privacy_notice(cfg, "en", controller=controller),
        "notice-at-collection.en.md": _render("notice-at-collection", f),
        "pipeda-consent.en.md": _render("pipeda-consent", f),
        "record-of-processing.md": _render("record-of-processing", f),
        "dpia.md": _render("dpia", f),
        "retention.md": _render("retention", f),
    }


def _policy_languages(cfg: KioskConfig) -> list[str]:
    """English (the documents' language) plus every language the guest may pick, in a fixed order."""
    return [lang for lang in CONSENT_LANGUAGES if lang == "en" or lang in cfg.event.languages]


def policy_text(cfg: KioskConfig, *, controller: Controller | None = None) -> str:
    """The exact text a guest consents to: the policy version, the consent screen in every offered language
    and the privacy notice.

    For each language it holds the consent templates with their translations, the values filled into them
    from ``cfg`` and the screen they render to, so a receipt's hash pins the wording the guest read in
    whichever language they chose. Canonical (JSON, sorted keys): the same config always gives the same text.
    """
    screens = {}
    for lang in _policy_languages(cfg):
        t = consent_translator(lang)
        screens[lang] = {
            "templates": consent_templates(t),
            "values": consent_values(cfg, t),
            "screen": consent_screen(cfg, lang, translator=t, controller=controller),
        }
    screen = json.dumps(screens, sort_keys=True, ensure_ascii=False)
    notice = privacy_notice(cfg, "en", controller=controller)
    return f"policy {cfg.event.policy_version}\n{screen}\n{notice}"


def policy_hash(cfg: KioskConfig, *, controller: Controller | None = None) -> str:
    """SHA-256 (hex) of ``policy_text``: the policy version recorded on each consent receipt."""
    return hashlib.sha256(policy_text(cfg, controller=controller).encode("utf-8")).hexdigest()


def write_documents(cfg: KioskConfig, directory: Path, *, controller: Controller | None = None) -> list[Path]:
    """Render every document into ``directory`` (created if missing) plus ``index.md``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = render_documents(cfg, controller=controller)
    digest = policy_hash(cfg, controller=controller)
    index = [
        f"# Privacy documents — {cfg.event.name}",
        "",
        f"Policy version {cfg.event.policy_version}; consent text hash `{digest}`.",
        "",
        *[f"- [{name}]({name})" for name in documents],
    ]
    untranslated = [lang for lang in cfg.event.languages if lang not in SUPPORTED_LANGUAGES]
    if untranslated:
        index += [
            "",
            "These documents exist in English only (the consent screen is translated); not yet in: "
            f"{', '.join(untranslated)}.",
        ]
    documents["index.md"] = "\n".join(index) + "\n"
    paths = []
    for name, text in documents.items():
        path = directory / name
        # A reader never sees half a document. mode=None: public documents, the umask decides as it did
        # when they were written with Path.write_text.
        write_atomic(path, text.encode("utf-8"), mode=None)
        paths.append(path)
    return paths
