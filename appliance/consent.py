"""The consent screen: its templates, their gettext catalogs and translators, filled from the config.

The consent screen is the one text whose exact wording a receipt must prove, so it exists once: the
templates below (English msgids with named placeholders), translated by the gettext catalogs in
``appliance/translations/<lang>/LC_MESSAGES/consent.po`` and filled with values from the config. The guest
UI renders it with ``consent_screen`` through Flask-Babel (a ``Domain`` over the same catalogs);
``appliance.compliance.policy_text`` hashes the templates, their translations and the values for every
offered language, so the receipt's hash covers what the guest read. The catalogs live here, not with the
UI's, because the policy hash is computed in this package, which must not import or read anything of
kiosk_ui (DESIGN.md §3).

This module sits below ``appliance.compliance`` (the documents and the policy hash import it, never the
other way round), so the two names both need, ``Controller`` and ``ComplianceError``, are defined here.
"""

from __future__ import annotations

import gettext as gettext_module
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.config import KioskConfig
from appliance.retention import delivery_window_seconds, idle_limit_seconds

__all__ = [
    "CONSENT_CATALOGS",
    "CONSENT_DOMAIN",
    "CONSENT_LANGUAGES",
    "ComplianceError",
    "ConsentTranslator",
    "Controller",
    "consent_screen",
    "consent_templates",
    "consent_translator",
    "consent_values",
    "duration_text",
]


class ComplianceError(Exception):
    """A consent text or privacy document cannot be rendered as asked (e.g. a language with no text yet)."""


@dataclass(frozen=True)
class Controller:
    """Who is responsible for the processing (GDPR controller / CCPA business / PIPEDA organisation).

    Named on the consent screen and in every document. Not in ``KioskConfig`` yet; proposed keys:
    ``[controller] name, contact, dpo_contact``.
    """

    name: str = "the event organiser"
    contact: str = "the staff at the kiosk"
    dpo_contact: str | None = None


# Update the catalogs after changing a template:
#   pybabel extract -k _N -k _NP:1,2 --no-default-keywords --no-location -w 100 \
#       -o appliance/translations/consent.pot appliance/consent.py
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
# Said only where the event offers printing (``[print] enabled``), after "where": where a print goes.
_CONSENT_PRINT_ITEM: tuple[str, str, str] = (
    "print",
    _N("If you print"),
    _N(
        "Only if you tap “Print”: your headshot is sent to the printer of this kiosk and printed here for "
        "you to take. The print job is held in the printer's memory only, and deleted as soon as it is "
        "printed or when your visit ends."
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


def duration_text(seconds: float, t: ConsentTranslator) -> str:
    """``appliance.compliance.format_duration`` in the translator's language (the same words in English)."""
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
        "idle": duration_text(idle_limit_seconds(cfg.session), t),
        "window": duration_text(delivery_window_seconds(cfg), t),
        "version": cfg.event.policy_version,
    }


def consent_templates(t: ConsentTranslator) -> dict[str, str]:
    """Every consent template (English msgid) mapped to its translation by ``t``, plural forms included."""
    templates = {msgid: t.gettext(msgid) for _, msgid in _CONSENT_LABELS}
    templates.update({msgid: t.gettext(msgid) for msgid in _CONSENT_CHOICES.values()})
    for _, title, text in (*_CONSENT_ITEMS, _CONSENT_PRINT_ITEM):
        templates[title] = t.gettext(title)
        templates[text] = t.gettext(text)
    for singular, plural in (_TAKES, _HOURS, _MINUTES, _SECONDS):
        # The forms for 1 and 2 cover every plural rule of the catalog languages (fr, es, de: two forms).
        templates[singular] = t.ngettext(singular, plural, 1)
        templates[plural] = t.ngettext(singular, plural, 2)
    return templates


def _consent_items(cfg: KioskConfig) -> tuple[tuple[str, str, str], ...]:
    """The screen's items in display order: printing is mentioned only where the event offers it."""
    if not cfg.print.enabled:
        return _CONSENT_ITEMS
    at = [key for key, _, _ in _CONSENT_ITEMS].index("where") + 1
    return (*_CONSENT_ITEMS[:at], _CONSENT_PRINT_ITEM, *_CONSENT_ITEMS[at:])


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
    ``items`` (``{"id", "title", "text"}`` in display order: what, why, where, print (only where the event
    offers printing), how_long, never, choices, receipt), ``choices`` (``{"id", "label"}`` of each
    optional choice the event offers, in its order; empty when it offers none), ``controller``,
    ``contact`` and ``durations`` (the numbers behind the text).
    """
    t = translator if translator is not None else consent_translator(lang)
    values = consent_values(cfg, t)
    who = controller if controller is not None else Controller()
    screen: dict[str, Any] = {"lang": lang, "policy_version": cfg.event.policy_version}
    for key, msgid in _CONSENT_LABELS:
        screen[key] = t.gettext(msgid) % values
    screen["items"] = [
        {"id": key, "title": t.gettext(title), "text": t.gettext(text) % values}
        for key, title, text in _consent_items(cfg)
    ]
    screen["choices"] = [
        {"id": key, "label": t.gettext(_CONSENT_CHOICES[key])} for key in cfg.event.consent_choices
    ]
    screen["controller"] = who.name
    screen["contact"] = who.contact
    screen["durations"] = {
        # float(): a default of 60 and a configured 60.0 are the same duration and must hash the same.
        "idle_timeout_seconds": float(idle_limit_seconds(cfg.session)),
        "idle_warning_seconds": float(cfg.session.idle_warning_seconds),
        "delivery_window_minutes": cfg.delivery.window_minutes,
    }
    return screen
