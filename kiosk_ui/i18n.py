"""Language choice for the guest UI and the phone page (Flask-Babel catalogs: en, fr, es, de)."""

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
