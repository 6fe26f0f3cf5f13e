"""What a guest or staff request to the facade (``appliance.kiosk.Kiosk``) can fail with. Each class has a
stable ``code``; the message is a sentence for people. How HTTP says it is the UI's business
(``kiosk_ui.errors``), not the appliance's. The facade re-exports these, so the UI imports the facade only."""

from __future__ import annotations

__all__ = [
    "CAPTURE_REFUSED",
    "BadChoices",
    "Busy",
    "ConsentRequired",
    "KioskError",
    "KioskPaused",
    "NoSession",
    "NotAllowed",
    "NotFound",
    "PrintDisabled",
    "PrintLimit",
    "PrinterUnavailable",
    "RetakeLimit",
    "SessionActive",
    "VisitEnded",
    "WorkerFailed",
    "WorkerRefused",
]

# The worker's codes for a capture burst that kept no frame (``appliance.worker.CAPTURE_REFUSALS``): the
# guest is back in the live preview and told what to change. HTTP says them as 422 (``kiosk_ui.errors``).
CAPTURE_REFUSED = frozenset({"no_face", "step_apart", "face_cut_off", "face_too_small"})


class KioskError(Exception):
    """A guest or staff request that cannot be served now. ``code`` is stable; the message is a sentence
    for people. How HTTP says it is the UI's business (``kiosk_ui.errors``), not the appliance's."""

    code = "kiosk_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class SessionActive(KioskError):
    code = "session_active"


class NotAllowed(KioskError):
    code = "not_allowed"


class ConsentRequired(KioskError):
    code = "consent_required"


class NoSession(KioskError):
    code = "no_session"


class RetakeLimit(KioskError):
    code = "retake_limit"


class KioskPaused(KioskError):
    code = "paused"


class WorkerFailed(KioskError):
    code = "worker_failed"


class NotFound(KioskError):
    """A photo id that is not part of this visit (``unknown_take``, ``unknown_render``)."""

    code = "not_found"


class WorkerRefused(KioskError):
    """The session worker refused a request; ``code`` is the worker's (``no_face``, ``camera``, ...)."""

    code = "worker_refused"


class VisitEnded(KioskError):
    """The visit this request belonged to was wiped while it ran (Delete now, a timeout, staff); whatever
    the request was making was discarded."""

    code = "visit_ended"


class Busy(KioskError):
    """Another step of the same visit (consent, capture, delivery) is still under way."""

    code = "busy"


class BadChoices(KioskError):
    """Consent choices that the event does not offer, or answers that are not yes/no."""

    code = "bad_choices"


class PrintDisabled(NotFound):
    """Printing is not offered at this event (``[print] enabled = false``): there is nothing to ask for."""

    code = "print_disabled"


class PrintLimit(NotAllowed):
    """The guest has made all the prints they may (``copies_per_guest``), or the event all it may
    (``max_prints_per_event``)."""

    code = "print_limit"


class PrinterUnavailable(NotAllowed):
    """The printer cannot print now (out of paper or ribbon, offline); the phone delivery still works."""

    code = "printer_unavailable"
