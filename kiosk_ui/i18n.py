"""Language choice for the guest UI, the phone page and the staff console (Flask-Babel catalogs: en, fr, es,
de; the guest's in the "messages" domain, the console's in "staff")."""

from __future__ import annotations

from collections.abc import Sequence

from flask import request

# Each language names itself, so a guest who reads only that language can find it.
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "fr": "Français", "es": "Español", "de": "Deutsch"}


def pick_locale(offered: Sequence[str]) -> str:
    """``?lang=`` if it is offered, else the browser's best offered match, else the first offered."""
    asked = request.args.get("lang", "")
    if asked in offered:
        return asked
    return request.accept_languages.best_match(list(offered)) or offered[0]


def remembered_locale(offered: Sequence[str], remembered: str | None) -> str:
    """Like ``pick_locale``, with the browser's earlier choice (``remembered``, e.g. from a cookie) before
    its Accept-Language: someone who picked a language keeps it until they pick another."""
    asked = request.args.get("lang", "")
    if asked in offered:
        return asked
    if remembered in offered:
        return str(remembered)
    return request.accept_languages.best_match(list(offered)) or offered[0]
