"""Session lifecycle: the phases of a visit, the allowed transitions and per-phase time limits.

Every road ends in WIPE (DESIGN.md §2 invariant 3): WIPE is reachable from every phase that can hold
something of a guest, and WIPE leads only back to IDLE. IDLE itself has no edge to WIPE: in IDLE no session
exists (no key, no files, camera closed), so there is nothing to wipe; a shutdown in IDLE just stops, and
the RAM store's start-up sweep covers anything a crash left behind.

This module is pure: the facade owns the current phase and the clock, and enforces the retake limit
(``session.max_takes``); the table only says REVIEW -> PREVIEW is a legal move.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

from appliance.config import SessionConfig

__all__ = [
    "CAMERA_PHASES",
    "GUEST_IDLE_PHASES",
    "TRANSITIONS",
    "InvalidTransition",
    "Phase",
    "WipeReason",
    "advance",
    "can_advance",
    "timeout_for",
    "timeout_reason",
]


class Phase(str, Enum):
    """Where a visit stands. Values are stable strings for the UI, STATUS= lines and logs."""

    IDLE = "idle"  # attract screen; no session exists
    CONSENT = "consent"  # notice shown; nothing captured yet
    PREVIEW = "preview"  # camera open, live preview with pose guidance
    COUNTDOWN = "countdown"
    CAPTURE = "capture"  # burst being taken
    PROCESSING = "processing"  # engine rendering headshots
    REVIEW = "review"  # takes x backgrounds x presets
    DELIVERY = "delivery"  # QR code shown
    WIPE = "wipe"  # files unlinked, key destroyed, worker ended


class WipeReason(str, Enum):
    """Why a session was wiped; recorded on the anonymous receipt and in logs."""

    FINISHED = "finished"
    DELETED_BY_GUEST = "deleted_by_guest"
    CONSENT_REVOKED = "consent_revoked"
    CONSENT_DECLINED = "consent_declined"
    IDLE_TIMEOUT = "idle_timeout"
    ERROR = "error"
    WORKER_DIED = "worker_died"
    STAFF_ABORT = "staff_abort"
    SHUTDOWN = "shutdown"


class InvalidTransition(Exception):
    """``advance`` was asked for a move the table does not allow; a bug in the caller, not the guest."""

    def __init__(self, current: Phase, target: Phase) -> None:
        self.current = current
        self.target = target
        allowed = ", ".join(sorted(phase.value for phase in TRANSITIONS[current])) or "nothing"
        super().__init__(
            f"cannot go from phase {current.value!r} to {target.value!r}; from {current.value!r} the "
            f"allowed next phases are: {allowed}"
        )


# The happy path, plus the moves back that the guest flow needs.
_FORWARD: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.CONSENT}),
    Phase.CONSENT: frozenset({Phase.PREVIEW}),  # declining goes to WIPE (to record the receipt)
    Phase.PREVIEW: frozenset({Phase.COUNTDOWN}),
    Phase.COUNTDOWN: frozenset({Phase.CAPTURE, Phase.PREVIEW}),  # PREVIEW: the guest cancelled the countdown
    Phase.CAPTURE: frozenset({Phase.PROCESSING}),
    Phase.PROCESSING: frozenset({Phase.REVIEW}),
    Phase.REVIEW: frozenset({Phase.DELIVERY, Phase.PREVIEW}),  # PREVIEW: a retake (limit: the facade's)
    Phase.DELIVERY: frozenset(),  # done: the only way on is WIPE (reason "finished")
    Phase.WIPE: frozenset({Phase.IDLE}),
}

# Failsafe: any phase holding session state can be wiped (delete now, revoke, idle, error, crash, staff).
_WIPEABLE = frozenset(Phase) - {Phase.IDLE, Phase.WIPE}

TRANSITIONS: Mapping[Phase, frozenset[Phase]] = MappingProxyType(
    {phase: _FORWARD[phase] | ({Phase.WIPE} if phase in _WIPEABLE else frozenset()) for phase in Phase}
)
"""Allowed next phases for each phase (read-only)."""

GUEST_IDLE_PHASES: frozenset[Phase] = frozenset({Phase.CONSENT, Phase.PREVIEW, Phase.REVIEW, Phase.DELIVERY})
"""Phases that wait for the guest: they show the idle warning and time out with ``IDLE_TIMEOUT``."""

CAMERA_PHASES: frozenset[Phase] = frozenset(
    {Phase.PREVIEW, Phase.COUNTDOWN, Phase.CAPTURE, Phase.PROCESSING, Phase.REVIEW, Phase.DELIVERY}
)
"""Phases in which the camera may be open: only after consent, and never in IDLE, CONSENT or WIPE."""


def can_advance(current: Phase, target: Phase) -> bool:
    """True if ``current -> target`` is in the table."""
    return target in TRANSITIONS[current]


def advance(current: Phase, target: Phase) -> Phase:
    """Return ``target`` if ``current -> target`` is allowed, else raise ``InvalidTransition``. Pure."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(current, target)
    return target


def timeout_for(phase: Phase, session_cfg: SessionConfig) -> float | None:
    """Seconds ``phase`` may last without progress before the failsafe wipes, or None for no limit.

    Guest phases use their idle timeouts (each <= 600 s by validation); COUNTDOWN and CAPTURE share
    ``capture_timeout_seconds`` and PROCESSING has ``processing_timeout_seconds``, so a stuck camera or
    engine cannot hold a session. IDLE holds nothing, and WIPE must never be interrupted.
    """
    limits: dict[Phase, float] = {
        Phase.CONSENT: session_cfg.consent_idle_timeout_seconds,
        Phase.PREVIEW: session_cfg.preview_idle_timeout_seconds,
        Phase.COUNTDOWN: session_cfg.capture_timeout_seconds,
        Phase.CAPTURE: session_cfg.capture_timeout_seconds,
        Phase.PROCESSING: session_cfg.processing_timeout_seconds,
        Phase.REVIEW: session_cfg.review_idle_timeout_seconds,
        Phase.DELIVERY: session_cfg.delivery_idle_timeout_seconds,
    }
    return limits.get(phase)


def timeout_reason(phase: Phase) -> WipeReason:
    """The reason to record when ``phase`` runs out of time: the guest left, or the machine stalled."""
    return WipeReason.IDLE_TIMEOUT if phase in GUEST_IDLE_PHASES else WipeReason.ERROR
