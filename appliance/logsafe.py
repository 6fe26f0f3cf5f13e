"""Logging safety net: a filter that masks personal data and secrets, and the stderr-only logging setup.

The filter is a backstop (STYLE.md §6): log calls must not pass personal data in the first place. It masks, in
the formatted message, exception text and stack text:

* e-mail addresses                         -> ``<email>``
* phone numbers (``+``/``00`` international, ``(area)`` grouped, spaced/dashed/dotted groups of >= 8 digits,
  national numbers starting with ``0`` of 10-12 digits; ISO dates and IPv4 addresses are left alone)
  -> ``<phone>``
* delivery URL paths ``/d/<anything>``      -> ``/d/<redacted>``
* ``data:`` URIs                           -> ``data:<redacted>``
* hex runs of >= 20 characters, and base64/base64url runs of >= 20 characters unless they read like an
  identifier (``CamelCase``, ``snake_case`` and ``UPPER_SNAKE`` names in messages and tracebacks stay
  visible) -> ``<token>``

Consequence for callers: a random session id stays readable in logs only if it is shorter than 20 hex digits
(``appliance.store.new_session_id`` makes 16).
"""

from __future__ import annotations

import logging
import re
import sys

_REDACTED_ATTR = "_headshot_redacted"
_HANDLER_ATTR = "_headshot_kiosk_handler"

_DATA_URI = re.compile(r"\bdata:[\w.+/-]*(?:;[\w.+=-]+)*,[^\s\"'<>)\]]*", re.IGNORECASE)
_DELIVERY_PATH = re.compile(r"/d/[^\s\"'<>]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"""
    (?<![\w+])
    (?:
        (?:\+|\b00)\d(?:[\s./()-]{0,2}\d){6,15}          # +44 20 7946 0958, 0049-30-123456
      | \(\d{2,5}\)[\s.-]?\d(?:[\s.-]?\d){4,11}           # (020) 7946 0958
      | \b\d{2,5}(?:[\s.-]\d{2,5}){2,5}\b                # 555-867-5309, 06 12 34 56 78
      | \b0\d{9,11}\b                                    # 07700900123
    )
    (?![\w])
    """,
    re.VERBOSE,
)
# Number shapes that look like grouped digits but are not phone numbers: ISO dates (with a following hour) and
# dotted IPv4 addresses / version numbers.
_NOT_A_PHONE = re.compile(r"^\d{4}-\d{2}-\d{2}\b|^\d{1,3}(?:\.\d{1,3}){3}$")
_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{20,}={0,2}(?![A-Za-z0-9_-])")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
# Identifier-like words (class, function and constant names in messages and tracebacks) stay readable:
# snake_case (digits allowed after the first segment), UPPER_SNAKE_CASE with at least one underscore, and
# CamelCase where every capital starts a word of >= 3 letters (one leading acronym allowed). Random base64 of
# 20+ characters fits these shapes with a probability well below 1e-4.
_SNAKE = re.compile(r"_*[a-z]+(?:_+[a-z0-9]+)*_*")
_UPPER_SNAKE = re.compile(r"_*[A-Z][A-Z0-9]*(?:_+[A-Z0-9]+)+_*")
_CAMEL = re.compile(r"_*(?:[a-z]{2,}|[A-Z]{2,5}(?=[A-Z][a-z]))?(?:[A-Z][a-z]{2,})+_*")


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    if digits < 8 or _NOT_A_PHONE.match(text.strip()):
        return text
    return "<phone>"


def _mask_token(match: re.Match[str]) -> str:
    text = match.group(0)
    if _HEX.match(text) or not any(rx.fullmatch(text) for rx in (_SNAKE, _UPPER_SNAKE, _CAMEL)):
        return "<token>"
    return text


def redact(text: str) -> str:
    """Return ``text`` with the patterns listed in the module docstring masked."""
    text = _DATA_URI.sub("data:<redacted>", text)
    text = _DELIVERY_PATH.sub("/d/<redacted>", text)
    text = _EMAIL.sub("<email>", text)
    text = _TOKEN.sub(_mask_token, text)
    return _PHONE.sub(_mask_phone, text)


class RedactFilter(logging.Filter):
    """Masks personal data and secrets in a record before any handler formats it. Never drops records.

    Attach it to *handlers*, not loggers: a logger's filters do not run for records propagated from child
    loggers (logging docs, "Filter objects"), a handler's filters run for every record it emits. The record is
    rewritten in place (message formatted, ``args`` cleared, exception text pre-rendered and masked), so every
    later handler sees the masked version too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _REDACTED_ATTR, False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A broken format string must not leak its arguments raw; keep the masked template and args.
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, _REDACTED_ATTR, True)
        return True


def configure_logging(level: int | str = logging.INFO) -> logging.Handler:
    """Install one stderr handler with :class:`RedactFilter` on the root logger and set the root level.

    No log files: journald collects stderr (volatile storage on the device). Calling it again replaces the
    handler it installed before and leaves other handlers alone. Returns the handler.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_ATTR, False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(sys.stderr)
    # journald adds timestamps and the unit name; keep the line short.
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter())
    setattr(handler, _HANDLER_ATTR, True)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
