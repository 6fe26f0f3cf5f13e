"""Privacy paperwork rendered from the config: privacy notice, CCPA, PIPEDA, GDPR Art. 30, DPIA, retention.

Every guest-facing fact (what is captured, why, where it stays, for how long) comes from one ``_Facts``
built from ``KioskConfig``, and the consent screen (``appliance.consent``) fills its templates from the same
config, so the two cannot disagree, and changing ``[delivery] window_minutes`` or a ``[session]`` timeout
changes every text that mentions it. The policy version hash on each consent receipt is the SHA-256 of
``policy_text``: the consent screen's templates, their translations and the values filled in from the config,
plus the guest-facing documents, for every offered language, and the configured ``[event] policy_version``.

The documents are drafts pre-filled with what this appliance does; the organiser (the controller) reviews them
with counsel. The controller's identity is not in the config yet: pass a ``Controller``.

**One source per text.** The wording lives in ``appliance/documents/*.md`` (package data), English
``string.Template`` texts whose ``$names`` are the fields of ``_Facts`` plus a few sentences chosen here
(marked ``_D``). Their French, Spanish and German versions are gettext catalogs of the ``documents`` domain
(``appliance/translations/<lang>/LC_MESSAGES/documents.po``), keyed by the English text of each heading,
paragraph, list item and table cell (``extract_document_messages`` splits a template the same way for
``pybabel extract`` as ``_localise`` does when it renders). English is the template itself, byte for byte;
another language is the template rebuilt from its translated parts, then filled with values worded in that
language (durations from the consent catalogs, so the notice and the consent screen say the same words).
"""

from __future__ import annotations

import gettext as gettext_module
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import IO, Any, Protocol

from appliance.config import KioskConfig, is_loopback
from appliance.consent import (
    CONSENT_LANGUAGES,
    ComplianceError,
    ConsentTranslator,
    Controller,
    consent_screen,
    consent_templates,
    consent_translator,
    consent_values,
    duration_text,  # the consent screen's wording: "10 minutes" reads the same in a document
)
from appliance.retention import delivery_window_seconds, idle_limit_seconds
from engine.fileio import write_atomic

__all__ = [
    "DOCUMENTS_CATALOGS",
    "DOCUMENTS_DOMAIN",
    "DOCUMENT_STEMS",
    "GUEST_DOCUMENTS",
    "SUPPORTED_LANGUAGES",
    "ComplianceError",
    "Controller",
    "DocumentTranslator",
    "consent_summary",
    "document_name",
    "documents_translator",
    "extract_document_messages",
    "format_duration",
    "policy_hash",
    "policy_text",
    "privacy_notice",
    "render_all_documents",
    "render_documents",
    "write_documents",
]

SUPPORTED_LANGUAGES = CONSENT_LANGUAGES  # languages the documents exist in: en (the templates), fr, es, de
DOCUMENTS_DOMAIN = "documents"
DOCUMENTS_CATALOGS = Path(__file__).resolve().parent / "translations"
# Guest-facing documents (the policy hash covers them; their file names always carry the language), then the
# controller's own worksheets (English ones keep their historical names without a language suffix).
GUEST_DOCUMENTS = ("privacy-notice", "notice-at-collection", "pipeda-consent")
DOCUMENT_STEMS = (*GUEST_DOCUMENTS, "record-of-processing", "dpia", "retention")

# Update the catalogs after changing a document or a _D sentence:
#   pybabel extract -F appliance/translations/documents-babel.cfg -k _D --no-default-keywords \
#       --no-location --omit-header -w 100 -o appliance/translations/documents.pot .
#   pybabel update -D documents -i appliance/translations/documents.pot -d appliance/translations -w 100
#   (translate the new or fuzzy entries; tests/appliance/test_documents_i18n.py checks every one)
#   pybabel compile -D documents -d appliance/translations


def _D(msgid: str) -> str:
    """Marks a sentence this module fills into the documents (``pybabel extract -k _D``); returns it."""
    return msgid


# Sentences filled into the templates (``_values``), worded per language by the documents catalogs.
_CONTACT_LINE = _D("Responsible: **%(name)s**. Contact: %(contact)s.")
_DPO_LINE = _D("Data protection officer: %(dpo)s.")
_DPO_UNSET = _D("not designated (fill in if required)")
_DELIVERY_TLS = _D("Delivery links served over TLS on the kiosk's own network")
_DELIVERY_LOCAL = _D(
    "Delivery listener bound to this machine only (demo set-up; TLS is required on a network)"
)
_STAFF_TLS = _D("Staff console over TLS")
_STAFF_LOCAL = _D("Staff console reachable from this machine only")
# Only where the event prints ([print] enabled): the notice's section and the record's paragraph.
_PRINT_HEADING = _D("Printing at the booth")
_PRINT_NOTICE = _D(
    "If you tap Print, the kiosk prints your headshot here at the booth. The page is made inside the kiosk "
    "and goes straight to the printer through a print queue kept in memory, which is emptied as soon as "
    "the print is done or your visit ends: nothing of it is stored on a disk and no copy is made for "
    "anyone. Only you take the print."
)
_PRINT_RECORD = _D(
    "At the guest's request (the Print button, which the consent text mentions), the headshot is printed "
    "on the event's printer next to the kiosk. The session worker sends the page from memory to the "
    "printer's spooler (CUPS), whose spool is a RAM file system of its own that keeps no job files and no "
    "job history and is emptied when the job ends or the visit is wiped; job titles and logs carry no "
    "personal data. Recipient: the guest, who takes the print."
)
# ``Controller``'s defaults describe a role rather than name someone, so they are translated; a real name
# passed in is used as given. tests/appliance/test_documents_i18n.py checks these equal the defaults.
_CONTROLLER_DEFAULTS = (_D("the event organiser"), _D("the staff at the kiosk"))


def format_duration(seconds: float) -> str:
    """Plain English for a duration: ``45 seconds``, ``1 minute``, ``1 minute 30 seconds``, ``2 hours``."""
    if round(seconds) < 0:
        raise ValueError(f"duration must not be negative; got {seconds!r}")
    return duration_text(seconds, consent_translator("en"))


# ---------------------------------------------------------------------------------------------- translation


class DocumentTranslator(Protocol):
    """How a document's text is translated: ``gettext`` returns the translation of one English unit (a
    heading, paragraph, list item or table cell, or a ``_D`` sentence), the msgid itself if there is none."""

    def gettext(self, msgid: str) -> str: ...


@cache
def _catalog(lang: str) -> gettext_module.NullTranslations:
    if lang not in SUPPORTED_LANGUAGES:
        raise ComplianceError(
            f"no privacy documents for language {lang!r}; available: {', '.join(SUPPORTED_LANGUAGES)}"
        )
    if lang == "en":  # the templates are the English text
        return gettext_module.NullTranslations()
    try:
        return gettext_module.translation(DOCUMENTS_DOMAIN, DOCUMENTS_CATALOGS, [lang])
    except OSError:
        raise ComplianceError(
            f"documents catalog for {lang!r} is missing under {DOCUMENTS_CATALOGS}; run "
            "`pybabel compile -D documents -d appliance/translations`"
        ) from None


def documents_translator(lang: str) -> DocumentTranslator:
    """The compiled documents catalog of ``lang`` (English: the identity); ``ComplianceError`` if none."""
    return _catalog(lang)


# A Markdown template is a sequence of units; each translatable text in one is one catalog message.
_HEADING = re.compile(r"^(#{1,6} )(.*)$")
_SEPARATOR_ROW = re.compile(r"^\|(?:\s*:?-+:?\s*\|)+$")
_PLACEHOLDER = re.compile(r"\$(?:\w+|\{\w+\})")
_LETTER = re.compile(r"[^\W\d_]")
_BLANK_RUN = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class _Unit:
    """One piece of a template: ``kind`` is ``raw`` (kept as is: a blank line, a table's separator row),
    ``heading`` (``prefix`` holds the ``#`` marks), ``row`` (``texts`` are the cells), ``item`` (a list item,
    its continuation lines joined) or ``para``. ``line`` is 1-based, where the unit starts."""

    kind: str
    texts: tuple[str, ...]
    line: int
    prefix: str = ""


def _units(text: str) -> list[_Unit]:
    units: list[_Unit] = []
    block: tuple[str, int, list[str]] | None = None  # an open paragraph or list item

    def flush() -> None:
        nonlocal block
        if block is not None:
            kind, start, lines = block
            units.append(_Unit(kind, (" ".join(line.strip() for line in lines),), start))
            block = None

    for number, line in enumerate(text.split("\n"), 1):
        heading = _HEADING.match(line)
        if not line.strip():
            flush()
            units.append(_Unit("raw", (line,), number))
        elif heading is not None:
            flush()
            units.append(_Unit("heading", (heading.group(2),), number, heading.group(1)))
        elif line.startswith("|"):
            flush()
            if _SEPARATOR_ROW.match(line):
                units.append(_Unit("raw", (line,), number))
            else:
                cells = tuple(cell.strip() for cell in line.strip().strip("|").split("|"))
                units.append(_Unit("row", cells, number))
        elif line.startswith("- "):
            flush()
            block = ("item", number, [line[2:]])
        elif block is not None:
            block[2].append(line)
        else:
            block = ("para", number, [line])
    flush()
    return units


def _translatable(text: str) -> bool:
    """A unit with words in it (not a bare placeholder such as ``$retention_table``, nor a dash)."""
    return _LETTER.search(_PLACEHOLDER.sub("", text)) is not None


def _localise(template: str, t: DocumentTranslator) -> str:
    """``template`` with each translatable unit replaced by its translation (one line per paragraph or list
    item; Markdown does not care where a paragraph's lines break)."""

    def tr(text: str) -> str:
        return t.gettext(text) if _translatable(text) else text

    out = []
    for unit in _units(template):
        if unit.kind == "raw":
            out.append(unit.texts[0])
        elif unit.kind == "heading":
            out.append(unit.prefix + tr(unit.texts[0]))
        elif unit.kind == "row":
            out.append("| " + " | ".join(tr(cell) for cell in unit.texts) + " |")
        elif unit.kind == "item":
            out.append("- " + tr(unit.texts[0]))
        else:
            out.append(tr(unit.texts[0]))
    return "\n".join(out)


def extract_document_messages(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """Babel extractor for the Markdown templates (``documents-babel.cfg``): one message per translatable
    heading, paragraph, list item and table cell, split exactly as ``_localise`` splits when rendering."""
    del keywords, comment_tags, options  # the units are the messages; there are no call sites
    for unit in _units(fileobj.read().decode("utf-8")):
        if unit.kind != "raw":
            for text in unit.texts:
                if _translatable(text):
                    yield unit.line, None, text, []


# ---------------------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class _Facts:
    """Everything the texts state, derived from the config once, durations worded in one language."""

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
    print_enabled: bool


def _facts(cfg: KioskConfig, controller: Controller | None, words: ConsentTranslator) -> _Facts:
    session = cfg.session

    def duration(seconds: float) -> str:
        return duration_text(seconds, words)

    return _Facts(
        event=cfg.event.name,
        policy_version=cfg.event.policy_version,
        controller=controller if controller is not None else Controller(),
        max_takes=session.max_takes,
        idle_longest=duration(idle_limit_seconds(session)),
        idle_consent=duration(session.consent_idle_timeout_seconds),
        idle_preview=duration(session.preview_idle_timeout_seconds),
        idle_review=duration(session.review_idle_timeout_seconds),
        idle_delivery=duration(session.delivery_idle_timeout_seconds),
        idle_warning=duration(session.idle_warning_seconds),
        capture_limit=duration(session.capture_timeout_seconds),
        processing_limit=duration(session.processing_timeout_seconds),
        delivery_window=duration(delivery_window_seconds(cfg)),
        delivery_window_minutes=cfg.delivery.window_minutes,
        delivery_tls=cfg.delivery.tls_cert_path is not None,
        delivery_local_only=is_loopback(cfg.delivery.host),
        staff_tls=cfg.staff.tls_cert_path is not None,
        staff_local_only=is_loopback(cfg.staff.host),
        languages=tuple(cfg.event.languages),
        print_enabled=cfg.print.enabled,
    )


def _check_lang(lang: str) -> None:
    if lang not in SUPPORTED_LANGUAGES:
        raise ComplianceError(
            f"no privacy text for language {lang!r}; available: {', '.join(SUPPORTED_LANGUAGES)}"
        )


def consent_summary(
    cfg: KioskConfig, lang: str = "en", *, controller: Controller | None = None
) -> dict[str, Any]:
    """The consent screen in ``lang`` (``appliance.consent.consent_screen``), the language checked against
    the documents' (``ComplianceError`` for another)."""
    _check_lang(lang)
    return consent_screen(cfg, lang, controller=controller)


# ---------------------------------------------------------------------------------------------- documents


@cache
def _source(name: str) -> str:
    """``appliance/documents/<name>.md``, read once through ``importlib.resources`` (works from a wheel)."""
    return (files("appliance") / "documents" / f"{name}.md").read_text(encoding="utf-8")


def _template(name: str, lang: str) -> Template:
    source = _source(name)
    return Template(source if lang == "en" else _localise(source, documents_translator(lang)))


class _Document:
    """Renders the documents of one language: the facts worded in it and the sentences filled in."""

    def __init__(self, cfg: KioskConfig, lang: str, controller: Controller | None) -> None:
        _check_lang(lang)
        self.lang = lang
        self.t = documents_translator(lang)
        self.facts = _facts(cfg, controller, consent_translator(lang))
        self._values: dict[str, str] | None = None

    def _who(self, text: str) -> str:
        return self.t.gettext(text) if text in _CONTROLLER_DEFAULTS else text

    def values(self) -> dict[str, str]:
        """What the templates' ``$names`` stand for: every fact, plus the sentences that depend on one."""
        if self._values is not None:
            return self._values
        f, t = self.facts, self.t
        who = f.controller
        values = {key: str(value) for key, value in asdict(f).items() if key != "controller"}
        contact_line = t.gettext(_CONTACT_LINE) % {
            "name": self._who(who.name),
            "contact": self._who(who.contact),
        }
        if who.dpo_contact:
            contact_line += " " + t.gettext(_DPO_LINE) % {"dpo": who.dpo_contact}
        values.update(
            controller_name=self._who(who.name),
            controller_contact=self._who(who.contact),
            dpo=who.dpo_contact or t.gettext(_DPO_UNSET),
            contact_line=contact_line,
            delivery_measure=t.gettext(_DELIVERY_TLS if f.delivery_tls else _DELIVERY_LOCAL),
            staff_measure=t.gettext(_STAFF_TLS if f.staff_tls else _STAFF_LOCAL),
        )
        printing = t.gettext(_PRINT_HEADING)
        values["print_section"] = f"## {printing}\n{t.gettext(_PRINT_NOTICE)}" if f.print_enabled else ""
        values["print_record"] = f"**{printing}.** {t.gettext(_PRINT_RECORD)}" if f.print_enabled else ""
        # The retention table appears in the privacy notice and the retention statement; without its newline.
        values["retention_table"] = (
            _template("retention-table", self.lang).substitute(values).removesuffix("\n")
        )
        self._values = values
        return values

    def render(self, stem: str) -> str:
        # A section left out (printing off) leaves its blank lines behind: fold them, so the document is
        # exactly what it was before the section existed.
        return _BLANK_RUN.sub("\n\n", _template(stem, self.lang).substitute(self.values()))


def document_name(stem: str, lang: str) -> str:
    """The file name of document ``stem`` in ``lang``: guest-facing ones always carry the language
    (``privacy-notice.en.md``), the controller's worksheets only when not English (``dpia.md``,
    ``dpia.fr.md``)."""
    if stem in GUEST_DOCUMENTS or lang != "en":
        return f"{stem}.{lang}.md"
    return f"{stem}.md"


def privacy_notice(cfg: KioskConfig, lang: str = "en", *, controller: Controller | None = None) -> str:
    """The full privacy notice for guests (Markdown) in ``lang``, linked from the consent screen. Same facts
    as the consent screen, in more detail."""
    return _Document(cfg, lang, controller).render("privacy-notice")


def render_documents(
    cfg: KioskConfig, lang: str = "en", *, controller: Controller | None = None
) -> dict[str, str]:
    """Every document in ``lang`` as ``{file name: Markdown}`` (names: ``document_name``), in
    ``DOCUMENT_STEMS`` order."""
    document = _Document(cfg, lang, controller)
    return {document_name(stem, lang): document.render(stem) for stem in DOCUMENT_STEMS}


def render_all_documents(cfg: KioskConfig, *, controller: Controller | None = None) -> dict[str, str]:
    """``render_documents`` for every supported language, English first."""
    documents: dict[str, str] = {}
    for lang in SUPPORTED_LANGUAGES:
        documents.update(render_documents(cfg, lang, controller=controller))
    return documents


def _policy_languages(cfg: KioskConfig) -> list[str]:
    """English (the templates' language) plus every language the guest may pick, in a fixed order."""
    return [lang for lang in CONSENT_LANGUAGES if lang == "en" or lang in cfg.event.languages]


def policy_text(cfg: KioskConfig, *, controller: Controller | None = None) -> str:
    """The exact text a guest consents to: the policy version, the consent screen and the guest-facing
    documents (privacy notice, notice at collection, PIPEDA summary), in English and every offered language.

    For each language it holds the consent templates with their translations, the values filled into them
    from ``cfg`` and the screen they render to, and each guest document as rendered in that language, so a
    receipt's hash pins the wording the guest could read in whichever language they chose. Canonical (JSON,
    sorted keys): the same config always gives the same text.
    """
    screens = {}
    documents = {}
    for lang in _policy_languages(cfg):
        t = consent_translator(lang)
        screens[lang] = {
            "templates": consent_templates(t),
            "values": consent_values(cfg, t),
            "screen": consent_screen(cfg, lang, translator=t, controller=controller),
        }
        document = _Document(cfg, lang, controller)
        documents[lang] = {document_name(stem, lang): document.render(stem) for stem in GUEST_DOCUMENTS}
    screen = json.dumps(screens, sort_keys=True, ensure_ascii=False)
    text = json.dumps(documents, sort_keys=True, ensure_ascii=False)
    return f"policy {cfg.event.policy_version}\n{screen}\n{text}"


def policy_hash(cfg: KioskConfig, *, controller: Controller | None = None) -> str:
    """SHA-256 (hex) of ``policy_text``: the policy version recorded on each consent receipt."""
    return hashlib.sha256(policy_text(cfg, controller=controller).encode("utf-8")).hexdigest()


def write_documents(cfg: KioskConfig, directory: Path, *, controller: Controller | None = None) -> list[Path]:
    """Render every document in every language into ``directory`` (created if missing) plus ``index.md``;
    return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = render_all_documents(cfg, controller=controller)
    digest = policy_hash(cfg, controller=controller)
    index = [
        f"# Privacy documents — {cfg.event.name}",
        "",
        f"Policy version {cfg.event.policy_version}; consent text hash `{digest}`.",
        "",
        *[f"- [{name}]({name})" for name in documents],
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
