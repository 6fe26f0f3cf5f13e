"""Privacy paperwork rendered from the config: consent text, privacy notice, CCPA, PIPEDA, GDPR Art. 30, DPIA.

Every guest-facing fact (what is captured, why, where it stays, for how long) comes from one ``_Facts``
built from ``KioskConfig``, so the consent screen (``consent_summary``) and the documents cannot disagree,
and changing ``[delivery] window_minutes`` or a ``[session]`` timeout changes every text that mentions it.
The policy version hash on each consent receipt is the SHA-256 of ``policy_text``: the consent screen's
templates, their translations and the values filled in from the config, for every offered language, plus the
privacy notice and the configured ``[event] policy_version``.

The documents are drafts pre-filled with what this appliance does; the organiser (the controller) reviews them
with counsel. The controller's identity is not in the config yet: pass a ``Controller``.
The documents are English only. The consent screen is translated (fr, es, de) by the gettext catalogs next to
this module, which the guest UI also renders from, so the receipt's hash covers what the guest read.
"""

from __future__ import annotations

import argparse
import gettext as gettext_module
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.config import ConfigError, KioskConfig, is_loopback, load_config
from appliance.retention import delivery_window_seconds, idle_limit_seconds
from engine.fileio import write_atomic

__all__ = [
    "CONSENT_CATALOGS",
    "CONSENT_DOMAIN",
    "CONSENT_LANGUAGES",
    "SUPPORTED_LANGUAGES",
    "ComplianceError",
    "ConsentTranslator",
    "Controller",
    "compliance_main",
    "consent_screen",
    "consent_summary",
    "consent_templates",
    "consent_translator",
    "consent_values",
    "format_duration",
    "policy_hash",
    "policy_text",
    "privacy_notice",
    "render_documents",
    "write_documents",
]

SUPPORTED_LANGUAGES = ("en",)


class ComplianceError(Exception):
    """A document cannot be rendered as asked (e.g. a language with no text yet)."""


@dataclass(frozen=True)
class Controller:
    """Who is responsible for the processing (GDPR controller / CCPA business / PIPEDA organisation).

    Not in ``KioskConfig`` yet; proposed keys: ``[controller] name, contact, dpo_contact``.
    """

    name: str = "the event organiser"
    contact: str = "the staff at the kiosk"
    dpo_contact: str | None = None


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


# -------------------------------------------------------------------------------------------- consent screen
#
# The consent screen is the one text whose exact wording a receipt must prove, so it exists once: the
# templates below (English msgids with named placeholders), translated by the gettext catalogs in
# ``appliance/translations/<lang>/LC_MESSAGES/consent.po`` and filled with values from the config. The guest
# UI renders it with ``consent_screen`` through Flask-Babel (a ``Domain`` over the same catalogs);
# ``policy_text`` hashes the templates, their translations and the values for every offered language.
# The catalogs live here, not with the UI's, because the policy hash is computed in this package, which
# must not import or read anything of kiosk_ui (DESIGN.md §3).
#
# Update the catalogs after changing a template:
#   pybabel extract -k _N -k _NP:1,2 --no-default-keywords --no-location \
#       -o appliance/translations/consent.pot appliance/compliance.py
#   pybabel update -D consent -i appliance/translations/consent.pot -d appliance/translations
#   (translate the new or fuzzy entries)
#   pybabel compile -D consent -d appliance/translations


def _N(msgid: str) -> str:
    """Marks a consent template for extraction (``pybabel extract -k _N``); returns it unchanged."""
    return msgid


def _NP(singular: str, plural: str) -> tuple[str, str]:
    """Marks a plural consent template (``-k _NP:1,2``); ``%(num)d`` is the count."""
    return singular, plural


CONSENT_DOMAIN = "consent"
CONSENT_CATALOGS = Path(__file__).resolve().parent / "translations"
CONSENT_LANGUAGES = ("en", "fr", "es", "de")  # languages the consent catalogs cover (en = the msgids)

# (id, title, text), in display order. Placeholders: %(takes)s, %(idle)s, %(window)s, %(version)s.
_CONSENT_ITEMS: tuple[tuple[str, str, str], ...] = (
    (
        "what",
        _N("What we capture"),
        _N(
            "Only after you tap “I agree”: %(takes)s of you from this camera, to make your headshot. The "
            "kiosk finds your face to frame the picture; it does not recognise who you are."
        ),
    ),
    ("why", _N("Why"), _N("Only to make your headshot and give it to you. Nothing else.")),
    (
        "where",
        _N("Where it stays"),
        _N(
            "Inside this kiosk, in memory, encrypted. Never written to a disk, never sent to the internet "
            "or a cloud."
        ),
    ),
    (
        "how_long",
        _N("How long"),
        _N(
            "Until you finish or tap “Delete now”. If you walk away, everything is deleted after %(idle)s "
            "without a touch. If you take the QR code, your photo waits for you, encrypted, for at most "
            "%(window)s; the link works once and only your QR code can open it."
        ),
    ),
    (
        "never",
        _N("Never"),
        _N("Your photo is not uploaded, not used to train AI, not shared and not sold. Staff cannot see it."),
    ),
    (
        "choices",
        _N("Your choices"),
        _N(
            "You can say no: nothing is captured. At any time, “What we hold” shows what the kiosk has "
            "about you and “Delete now” erases it and withdraws your consent."
        ),
    ),
    (
        "receipt",
        _N("Your receipt"),
        _N(
            "We keep an anonymous receipt: a random code shown to you, the version of this notice "
            "(%(version)s), your yes/no answers, how the visit ended and the time to the minute. No photo, "
            "no name."
        ),
    ),
)
# The screen's other sentences. %(event)s is the configured event name (shown as configured, untranslated).
_CONSENT_LABELS: tuple[tuple[str, str], ...] = (
    ("title", _N("Before we take your photo")),
    ("intro", _N("%(event)s makes your headshot right here, on this kiosk.")),
    (
        "agree",
        _N("I agree that this kiosk takes my photo and processes it on the device to make my headshot."),
    ),
    ("accept", _N("I agree — take my photo")),
    ("decline", _N("No thanks")),
    ("notice_link", _N("Read the full privacy notice")),
)
# Optional yes/no choices an event may offer (``[event] consent_choices``), each unticked until the guest
# ticks it; the label is what the guest agrees to, so it is part of the hashed consent text.
_CONSENT_CHOICES: dict[str, str] = {
    "skin_smoothing": _N("Smooth my skin lightly in the headshot (the shape of my face is never changed)."),
}
_TAKES = _NP("one photo", "up to %(num)d photos")
_HOURS = _NP("%(num)d hour", "%(num)d hours")
_MINUTES = _NP("%(num)d minute", "%(num)d minutes")
_SECONDS = _NP("%(num)d second", "%(num)d seconds")


class ConsentTranslator(Protocol):
    """How a consent template is translated: gettext catalogs here, Flask-Babel in the guest UI.

    ``gettext`` returns the translated template unformatted; ``ngettext`` returns the form for ``num``
    with ``%(num)d`` filled in.
    """

    def gettext(self, msgid: str) -> str: ...
    def ngettext(self, singular: str, plural: str, num: int) -> str: ...


class _CatalogTranslator:
    """A ``ConsentTranslator`` over the compiled consent catalog of one language (stdlib ``gettext``)."""

    def __init__(self, lang: str) -> None:
        if lang not in CONSENT_LANGUAGES:
            raise ComplianceError(
                f"no consent text for language {lang!r}; available: {', '.join(CONSENT_LANGUAGES)}"
            )
        if lang == "en":  # the templates are the English text
            self._catalog: gettext_module.NullTranslations = gettext_module.NullTranslations()
            return
        try:
            self._catalog = gettext_module.translation(CONSENT_DOMAIN, CONSENT_CATALOGS, [lang])
        except OSError:
            raise ComplianceError(
                f"consent catalog for {lang!r} is missing under {CONSENT_CATALOGS}; run "
                "`pybabel compile -D consent -d appliance/translations`"
            ) from None

    def gettext(self, msgid: str) -> str:
        return self._catalog.gettext(msgid)

    def ngettext(self, singular: str, plural: str, num: int) -> str:
        return self._catalog.ngettext(singular, plural, num) % {"num": num}


def consent_translator(lang: str) -> ConsentTranslator:
    """The translator for ``lang`` from the compiled consent catalogs; ``ComplianceError`` if none."""
    return _CatalogTranslator(lang)


def _duration(seconds: float, t: ConsentTranslator) -> str:
    """``format_duration`` in the translator's language (the same words in English)."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [t.ngettext(*_HOURS, hours)] if hours else []
    if minutes:
        parts.append(t.ngettext(*_MINUTES, minutes))
    if secs or not parts:
        parts.append(t.ngettext(*_SECONDS, secs))
    return " ".join(parts)


def consent_values(cfg: KioskConfig, t: ConsentTranslator) -> dict[str, str]:
    """The values the consent templates' placeholders take for ``cfg``, worded by ``t``."""
    return {
        "event": cfg.event.name,
        "takes": t.ngettext(*_TAKES, cfg.session.max_takes),
        "idle": _duration(idle_limit_seconds(cfg.session), t),
        "window": _duration(delivery_window_seconds(cfg), t),
        "version": cfg.event.policy_version,
    }


def consent_templates(t: ConsentTranslator) -> dict[str, str]:
    """Every consent template (English msgid) mapped to its translation by ``t``, plural forms included."""
    templates = {msgid: t.gettext(msgid) for _, msgid in _CONSENT_LABELS}
    templates.update({msgid: t.gettext(msgid) for msgid in _CONSENT_CHOICES.values()})
    for _, title, text in _CONSENT_ITEMS:
        templates[title] = t.gettext(title)
        templates[text] = t.gettext(text)
    for singular, plural in (_TAKES, _HOURS, _MINUTES, _SECONDS):
        # The forms for 1 and 2 cover every plural rule of the catalog languages (fr, es, de: two forms).
        templates[singular] = t.ngettext(singular, plural, 1)
        templates[plural] = t.ngettext(singular, plural, 2)
    return templates


def consent_screen(
    cfg: KioskConfig,
    lang: str = "en",
    *,
    translator: ConsentTranslator | None = None,
    controller: Controller | None = None,
) -> dict[str, Any]:
    """The consent screen in ``lang``: every sentence a template from this module, filled from ``cfg``.

    ``translator`` defaults to the compiled catalog of ``lang``; the guest UI passes Flask-Babel's. Keys:
    ``lang``, ``policy_version``, ``title``, ``intro``, ``agree``, ``accept``, ``decline``, ``notice_link``,
    ``items`` (``{"id", "title", "text"}`` in display order: what, why, where, how_long, never, choices,
    receipt), ``choices`` (``{"id", "label"}`` of each optional choice the event offers, in its order;
    empty when it offers none), ``controller``, ``contact`` and ``durations`` (the numbers behind the text).
    """
    t = translator if translator is not None else consent_translator(lang)
    values = consent_values(cfg, t)
    f = _facts(cfg, controller)
    screen: dict[str, Any] = {"lang": lang, "policy_version": f.policy_version}
    for key, msgid in _CONSENT_LABELS:
        screen[key] = t.gettext(msgid) % values
    screen["items"] = [
        {"id": key, "title": t.gettext(title), "text": t.gettext(text) % values}
        for key, title, text in _CONSENT_ITEMS
    ]
    screen["choices"] = [
        {"id": key, "label": t.gettext(_CONSENT_CHOICES[key])} for key in cfg.event.consent_choices
    ]
    screen["controller"] = f.controller.name
    screen["contact"] = f.controller.contact
    screen["durations"] = {
        # float(): a default of 60 and a configured 60.0 are the same duration and must hash the same.
        "idle_timeout_seconds": float(idle_limit_seconds(cfg.session)),
        "idle_warning_seconds": float(cfg.session.idle_warning_seconds),
        "delivery_window_minutes": cfg.delivery.window_minutes,
    }
    return screen


def consent_summary(
    cfg: KioskConfig, lang: str = "en", *, controller: Controller | None = None
) -> dict[str, Any]:
    """The consent screen in English, alongside the English documents (``consent_screen`` for the others).

    Raises ``ComplianceError`` for another language: the documents of this module are English only.
    """
    _check_lang(lang)
    return consent_screen(cfg, lang, controller=controller)


# ---------------------------------------------------------------------------------------------- documents


def _retention_rows(f: _Facts) -> list[tuple[str, str, str]]:
    return [
        (
            "Camera frames and live preview",
            "Encrypted memory of the session's worker process",
            "Until the visit ends; never stored beyond the session",
        ),
        (
            "Your photos and headshots",
            "Encrypted RAM store (tmpfs), key in locked memory",
            f"Until you finish, tap Delete now, withdraw consent, or {f.idle_longest} of inactivity",
        ),
        (
            "Your headshot for download (only if you take the QR code)",
            "Encrypted under a key that only your QR code holds",
            f"At most {f.delivery_window}, and gone after the first download",
        ),
        (
            "Anonymous consent receipt",
            "Audit log on the kiosk's disk (no photo, no name)",
            "Kept by the organiser as proof of consent; it identifies no one",
        ),
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _contact_line(f: _Facts) -> str:
    line = f"Responsible: **{f.controller.name}**. Contact: {f.controller.contact}."
    if f.controller.dpo_contact:
        line += f" Data protection officer: {f.controller.dpo_contact}."
    return line


def privacy_notice(cfg: KioskConfig, lang: str = "en", *, controller: Controller | None = None) -> str:
    """The full privacy notice for guests (Markdown), linked from the consent screen. Same facts as the
    consent screen, in more detail."""
    _check_lang(lang)
    f = _facts(cfg, controller)
    retention = _table(("What", "Where", "How long"), _retention_rows(f))
    return f"""# Privacy notice — {f.event}

Policy version {f.policy_version}. {_contact_line(f)}

## In short
This kiosk takes your headshot and gives it to you. Your photos stay inside the kiosk, encrypted in memory,
and are deleted when your visit ends. Nothing is uploaded, nothing is used to train AI, and staff cannot see
your photos.

## What we capture
Nothing until you tap “I agree”. Then the camera takes short bursts of photos of you (up to {f.max_takes}
takes) and shows you a live preview. The kiosk finds where your face is in the picture to frame it; it does
not recognise who you are and makes no face template. We do not ask for your name, e-mail address or phone
number.

## Why, and on what basis
Only to make your headshot and hand it to you. We rely on your consent, which you give on the screen and can
withdraw at any time (GDPR Art. 6(1)(a); express consent under PIPEDA). Guests in California: see also
the notice at collection.

## Where it stays
In this kiosk only, in memory (never on a disk), encrypted with a key made fresh for your visit. Your
session runs in its own process, which is ended when your visit ends. Nothing is sent to the internet or to
a cloud service; no one else receives your photos.

## How long
{retention}

Each screen waits for you: the consent screen {f.idle_consent}, the live preview {f.idle_preview}, the
review screen {f.idle_review} and the QR-code screen {f.idle_delivery}. The kiosk warns you
{f.idle_warning} before it deletes everything and returns to the start.

## Getting your photo
If you take the QR code, your phone downloads the headshot from the kiosk itself over its own network. The
link works once, for at most {f.delivery_window}. The kiosk does not keep the key: only the QR code can
open the photo. The file carries no hidden data (no location, no camera details).

## What we keep after your visit
An anonymous receipt: a random code shown to you, the version of this notice, your yes/no answers, how the
visit ended (delivered, declined, timed out, deleted, withdrawn, stopped by staff, error) and the start and
end time rounded down to the minute. It contains no photo and no name.

## Your rights, at the kiosk
- **Say no:** tap “No thanks”; nothing is captured.
- **See what we hold:** the “What we hold” button shows what is stored about you right now, its size and
  when it expires (right of access).
- **Delete now:** erases everything at once and withdraws your consent (right to erasure; withdrawal of
  consent).
- **Complain or ask:** {f.controller.contact}. You may also complain to your data protection authority.

After your visit nothing on the kiosk can be linked to you, so there is nothing left to access or erase; the
receipt code lets the organiser find your anonymous receipt if you ask about it.

## Never
Your photos are not uploaded, not used to train or improve AI, not used for advertising, not shared and not
sold. Event staff manage the kiosk but cannot see guest photos.
"""


def _notice_at_collection(f: _Facts) -> str:
    table = _table(
        ("Category of personal information", "Collected?", "Purpose", "Sold or shared?", "Kept for"),
        [
            (
                "Visual information (photographs of you)",
                "Yes, after you agree",
                "Make your headshot and give it to you",
                "No",
                f"The visit; if you take the QR code, at most {f.delivery_window}",
            ),
            (
                "Biometric information (sensitive)",
                "Your photo may count as such; no face template or faceprint is made",
                "Framing the picture only",
                "No",
                "As above",
            ),
            ("Identifiers (name, e-mail, phone, device ids)", "No", "—", "—", "—"),
            ("Inferences / profiles", "No", "—", "—", "—"),
            (
                "Anonymous consent receipt (random code, answers, outcome, time to the minute)",
                "Yes",
                "Proof of consent",
                "No",
                "Kept by the business; identifies no one",
            ),
        ],
    )
    return f"""# Notice at collection (California CCPA/CPRA) — {f.event}

Business: **{f.controller.name}**. Contact: {f.controller.contact}. Policy version {f.policy_version}.

{table}

- We do not sell or share personal information (no cross-context behavioural advertising).
- Sensitive personal information is used only to provide the service you ask for, and not to infer
  characteristics about you.
- Your rights: to know, delete, correct, opt out of sale/sharing (nothing is sold or shared), limit the use
  of sensitive information, and not to be discriminated against. At the kiosk use “What we hold” and
  “Delete now”; otherwise contact {f.controller.contact}.
- Full privacy notice: the “Privacy” link on the consent screen (privacy-notice.en.md).
"""


def _pipeda(f: _Facts) -> str:
    return f"""# Meaningful consent summary (Canada, PIPEDA) — {f.event}

Organisation: **{f.controller.name}**. Contact: {f.controller.contact}. Policy version {f.policy_version}.
Follows the Office of the Privacy Commissioner's *Guidelines for obtaining meaningful consent*.

## Key elements shown before the camera opens
- **What:** photographs of you from the kiosk camera (up to {f.max_takes} takes). No name, e-mail or phone.
- **With whom:** no one. Photos stay in the kiosk; nothing is uploaded or sent to another organisation.
- **Purpose:** to make your headshot and give it to you; no other purpose (no training, no marketing).
- **Risk of harm:** low. Photos exist only in encrypted memory for the visit (at most {f.idle_longest}
  without a touch) and, if you take the QR code, at most {f.delivery_window} for a one-time download that
  only your QR code can open.

## Form of consent
Express consent: a clear “I agree” / “No thanks” choice on the screen, equal in size. Declining captures
nothing and costs nothing.

## Control and withdrawal
Consent can be withdrawn at any moment with “Delete now”, which erases everything at once. “What we hold”
shows what is stored and when it expires. An anonymous receipt records the choice without identifying you.

## Accountability
{_contact_line(f)} The wording of this notice is versioned ({f.policy_version}); each receipt records the
hash of the exact text shown.
"""


def _security_measures(f: _Facts) -> list[str]:
    delivery = (
        "Delivery links served over TLS on the kiosk's own network"
        if f.delivery_tls
        else "Delivery listener bound to this machine only (demo set-up; TLS is required on a network)"
    )
    staff = "Staff console over TLS" if f.staff_tls else "Staff console reachable from this machine only"
    return [
        "Photos only in RAM (size-capped tmpfs, no swap), as AES-256-GCM ciphertext, fresh key per session",
        "Session key in memory that is locked and excluded from core dumps (memfd_secret where available)",
        "One short-lived worker process per session, ended at wipe, so the kernel reclaims its memory",
        "Every exit path wipes: finish, Delete now, withdrawal, idle timeout, error, crash (start-up sweep)",
        f"Idle timeouts per screen, at most {f.idle_longest}; capture limit {f.capture_limit}, rendering "
        f"limit {f.processing_limit}",
        "Core dumps disabled in every process; logs carry no personal data and stay in volatile memory",
        "Headshots carry no metadata (EXIF, GPS, ICC, comments, thumbnails)",
        f"{delivery}; each link works once, for at most {f.delivery_window}; its key is not kept on the "
        "kiosk",
        "No upload, no cloud service, no model training; inference runs on the device",
        "Staff never see guest photos; roles operator/admin; argon2id passwords, single-use TOTP, lockout; "
        f"{staff}",
        "Hash-chained, anonymous audit trail of consent receipts and staff actions",
    ]


def _record_of_processing(f: _Facts) -> str:
    measures = "\n".join(f"- {m}" for m in _security_measures(f))
    dpo = f.controller.dpo_contact or "not designated (fill in if required)"
    guests = _table(
        ("Art. 30(1)", "Entry"),
        [
            ("(b) Purpose", "Make a headshot of a guest who asks for one and hand it to them at the kiosk"),
            (
                "Legal basis",
                "Consent, Art. 6(1)(a), given on the kiosk screen before the camera opens; withdrawable at "
                "any time",
            ),
            ("(c) Data subjects", "Visitors of the event who choose to use the kiosk"),
            (
                "(c) Personal data",
                "Photographs of the guest (camera frames, preview, headshots). No name, contact details or "
                "identifiers. Faces are located for framing only, not recognised; no face templates (not "
                "processed to uniquely identify a person, Recital 51)",
            ),
            ("(d) Recipients", "None. Only the guest receives the headshot, via a one-time link"),
            ("(e) Transfers to third countries", "None. Nothing leaves the device"),
            (
                "(f) Time limits for erasure",
                f"The session (wiped after at most {f.idle_longest} of inactivity, or at once on Delete now) "
                f"plus, if the guest takes the QR code, at most {f.delivery_window} for the one-time "
                "download",
            ),
            (
                "Anonymous receipts",
                "Random code, policy version hash, yes/no choices, outcome, times to the minute; identifies "
                "no one",
            ),
        ],
    )
    staff = _table(
        ("Art. 30(1)", "Entry"),
        [
            ("(b) Purpose", "Secure operation of the kiosk; accountability for staff actions"),
            ("Legal basis", "Legitimate interests, Art. 6(1)(f) (or the employment relationship)"),
            ("(c) Data subjects", "Event staff and administrators"),
            (
                "(c) Personal data",
                "Account name, role, argon2id password hash, TOTP secret, sign-in failure count; audit "
                "records (account, action, time to the minute)",
            ),
            ("(d) Recipients", "Administrators of the kiosk"),
            ("(e) Transfers", "None"),
            (
                "(f) Time limits",
                "Accounts until removed; audit records as set by the controller (no limit configured on the "
                "kiosk)",
            ),
        ],
    )
    return f"""# Record of processing activities (GDPR Art. 30(1)) — {f.event}

Generated from the kiosk configuration; policy version {f.policy_version}. Review before use.

## Controller (Art. 30(1)(a))
- Name: {f.controller.name}
- Contact: {f.controller.contact}
- Data protection officer: {dpo}
- Representative in the EU (Art. 27): fill in if the controller is established outside the EU

## Activity 1: on-site headshots for guests
{guests}

## Activity 2: staff access and audit trail
{staff}

## (g) Technical and organisational security measures (Art. 32)
{measures}
"""


_DPIA_RISKS: tuple[tuple[str, str, str, str], ...] = (
    (
        "Photos persist after the visit (disk, swap, core dumps, logs)",
        "High",
        "RAM-only encrypted store on tmpfs without swap; key excluded from dumps; core dumps disabled; logs "
        "carry no personal data and stay in volatile memory; every exit path wipes; start-up sweep",
        "Low",
    ),
    (
        "Photos recovered from a process's memory after the visit",
        "Medium",
        "Per-session worker process holds the pixels and key and is ended at wipe, so the kernel reclaims "
        "its memory; the long-lived process keeps no images",
        "Low",
    ),
    (
        "Headshot intercepted or opened by someone else during delivery",
        "Medium",
        "One-time link (GET never spends it, POST once), short window ({window}), kiosk network only, TLS, "
        "per-delivery key not kept on the kiosk, same 404 for unknown/expired/spent links",
        "Low",
    ),
    (
        "Function creep: upload, model training, face recognition",
        "High",
        "No upload path; no training; inference on the device; no face templates; identity-preserving "
        "processing only (no generated faces)",
        "Low",
    ),
    (
        "Staff see or copy guest photos",
        "Medium",
        "Staff console never serves guest images; roles; argon2id passwords, single-use TOTP, lockout, "
        "server-side sessions; staff actions in the audit trail",
        "Low",
    ),
    (
        "Consent not freely given, not informed, or not provable",
        "Medium",
        "Consent screen before the camera opens; equal yes/no; declining captures nothing; plain-language "
        "notice with durations from the configuration; anonymous receipt with the hash of the exact text",
        "Low",
    ),
    (
        "Guest walks away and leaves photos on screen",
        "Medium",
        "Idle timeouts per screen (at most {idle}) with a visible warning, then wipe and return to the start",
        "Low",
    ),
    (
        "Hidden data in the delivered file (location, device details)",
        "Low",
        "Outputs carry no metadata; orientation baked into the pixels",
        "Low",
    ),
    (
        "Unfair treatment: skin tone lightened or features altered",
        "Medium",
        "Tone correction preserves skin tone; light retouch limited to skin; no generated or reshaped faces",
        "Low",
    ),
    (
        "Audit trail edited to hide or invent events",
        "Low",
        "Hash-chained JSON Lines with a head record; `python -m appliance audit verify`; regular export",
        "Low (the chain is unkeyed: an insider with write access could rebuild it)",
    ),
    (
        "Bystanders or children in the frame",
        "Medium",
        "Only the guest who consents is photographed; the preview is not stored; background replaced in the "
        "headshot. Organiser policy for minors (supervision, parental consent) is needed",
        "Medium — organisational measure required",
    ),
)


def _dpia(f: _Facts) -> str:
    rows = [
        (risk, before, mitigation.format(window=f.delivery_window, idle=f.idle_longest), after)
        for risk, before, mitigation, after in _DPIA_RISKS
    ]
    table = _table(("Risk to guests", "Inherent", "Mitigations in this appliance", "Residual"), rows)
    return f"""# Data protection impact assessment — summary (GDPR Art. 35) — {f.event}

Pre-filled worksheet generated from the kiosk configuration; policy version {f.policy_version}.
Controller: {f.controller.name} ({f.controller.contact}). Review, complete and sign before the event.

## 1. Description of the processing (Art. 35(7)(a))
Guests who agree on the touch screen are photographed; the device makes a headshot on site and hands it over
through a one-time QR link valid for at most {f.delivery_window}. Photos exist only in encrypted memory for
the visit. Purpose: give the guest their headshot. No upload, no training, no sharing.

## 2. Necessity and proportionality (Art. 35(7)(b))
- Data minimisation: photos only; no name, contact details or identifiers; anonymous receipts, times to the
  minute.
- Storage limitation: the visit (at most {f.idle_longest} of inactivity) plus at most {f.delivery_window} for
  delivery.
- Lawfulness: consent before capture, withdrawable at once with “Delete now”.
- Transparency: consent screen and privacy notice generated from the same configuration.

## 3. Risks and mitigations (Art. 35(7)(c)-(d))
{table}

## 4. Conclusion
With the mitigations above the residual risk to guests is low, except where noted as needing an
organisational measure. Prior consultation (Art. 36) is not expected to be needed; the controller decides.

Signed: ______________________   Date: ____________
"""


def _retention(f: _Facts) -> str:
    table = _table(("What", "Where", "How long"), _retention_rows(f))
    return f"""# Retention statement — {f.event}

Policy version {f.policy_version}. Generated from the kiosk configuration.

{table}

Inactivity limits per screen: consent {f.idle_consent}, live preview {f.idle_preview}, review {f.idle_review},
QR code {f.idle_delivery} (a warning shows {f.idle_warning} before). A capture must finish within
{f.capture_limit} and rendering within {f.processing_limit}, otherwise the session is wiped. After a wipe
nothing of the session can be recovered.
"""


def render_documents(cfg: KioskConfig, *, controller: Controller | None = None) -> dict[str, str]:
    """Every document as ``{file name: Markdown}``. Guest-facing ones carry a language suffix (``.en.md``)."""
    f = _facts(cfg, controller)
    return {
        "privacy-notice.en.md": privacy_notice(cfg, "en", controller=controller),
        "notice-at-collection.en.md": _notice_at_collection(f),
        "pipeda-consent.en.md": _pipeda(f),
        "record-of-processing.md": _record_of_processing(f),
        "dpia.md": _dpia(f),
        "retention.md": _retention(f),
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


# ---------------------------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m appliance compliance", description="Render privacy documents from the kiosk config."
    )
    parser.add_argument("--config", type=Path, default=None, help="kiosk.toml (default: built-in defaults)")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("generate", "render"):
        sub = commands.add_parser(command, help="write the documents as Markdown")
        if command == "render":
            sub.add_argument("outdir", type=Path, nargs="?", default=None)
        sub.add_argument("-o", "--output", type=Path, default=None, help="directory (default ./compliance)")
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS)
        sub.add_argument(
            "--controller-name", default=None, help='organisation (default "the event organiser")'
        )
        sub.add_argument("--controller-contact", default=None, help="how guests reach it")
        sub.add_argument("--dpo-contact", default=None, help="data protection officer, if any")
    return parser


def compliance_main(argv: Sequence[str]) -> int:
    """``python -m appliance compliance generate [--config PATH] [-o DIR]`` (also ``render [OUTDIR]``).

    Exit codes: 0 written, 2 usage, config or I/O error. Never calls ``sys.exit``.
    """
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse printed usage or help
        return 0 if exc.code == 0 else 2
    defaults = Controller()
    controller = Controller(
        name=args.controller_name or defaults.name,
        contact=args.controller_contact or defaults.contact,
        dpo_contact=args.dpo_contact,
    )
    outdir = args.output or getattr(args, "outdir", None) or Path("compliance")
    try:
        cfg = load_config(args.config)
        paths = write_documents(cfg, outdir, controller=controller)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or type(exc).__name__} ({exc.filename})", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    untranslated = [lang for lang in cfg.event.languages if lang not in SUPPORTED_LANGUAGES]
    if untranslated:
        print(
            f"note: documents rendered in English only (the consent screen is translated); "
            f"no documents yet for {', '.join(untranslated)}",
            file=sys.stderr,
        )
    return 0
