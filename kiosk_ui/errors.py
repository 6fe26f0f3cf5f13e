"""HTTP statuses for the facade's errors: the appliance says what went wrong (``KioskError.code`` and its
class), the UI decides how HTTP says it. The one table of them (issue 12: statuses live only in kiosk_ui)."""

from __future__ import annotations

from appliance.errors import (
    CAPTURE_REFUSED,
    BadChoices,
    Busy,
    ConsentRequired,
    KioskError,
    KioskPaused,
    NoSession,
    NotAllowed,
    NotFound,
    RetakeLimit,
    SessionActive,
    VisitEnded,
    WorkerFailed,
    WorkerRefused,
)

# The worker's own refusal codes that HTTP says differently from "not now" (409).
# A capture that kept no frame (no face, someone else in the picture, ...) is 422: the guest can fix it.
_WORKER_CODES = {**dict.fromkeys(CAPTURE_REFUSED, 422), "camera": 503}
_BY_CLASS: tuple[tuple[type[KioskError], int], ...] = (
    (ConsentRequired, 403),
    (NoSession, 404),
    (NotFound, 404),
    (SessionActive, 409),
    (NotAllowed, 409),
    (RetakeLimit, 409),
    (VisitEnded, 409),
    (Busy, 409),
    (KioskPaused, 503),
    (WorkerFailed, 503),
    (BadChoices, 400),
)


def http_status(exc: KioskError) -> int:
    """The status to answer ``exc`` with: by class; a worker refusal by its code (409 by default); any
    other ``KioskError`` (a bad background or preset) is the client's mistake, 400."""
    if isinstance(exc, WorkerRefused):
        return _WORKER_CODES.get(exc.code, 409)
    for cls, status in _BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 400
