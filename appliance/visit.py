"""One visit's record inside the facade, the appliance's counters, and the receipt a visit ends with.

``Visit`` is the facade's live, mutable record (guarded by the facade's lock, never handed out); what leaves
the facade is a frozen ``appliance.views.VisitView`` made by ``visit_view``. Vocabulary as in
``appliance.views``: a *take* is a kept capture, a *headshot* a rendered result of a take.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from appliance.config import KioskConfig
from appliance.delivery import DeliveryTicket
from appliance.errors import BadChoices
from appliance.lifecycle import GUEST_IDLE_PHASES, Phase, WipeReason, timeout_for
from appliance.retention import delivery_window_seconds
from appliance.views import DeliveryView, Headshot, HeldItem, PrintView, TakeView, VisitView
from appliance.workerclient import CameraState, PrintJob, WorkerClient

RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U to misread
# Figures kept for the dashboard's latency charts: enough for a day's percentiles, bounded.
KEEP_TIMINGS = 500


def receipt_code() -> str:
    """A random 8-character receipt id shown to the guest (Crockford base32, ~40 bits)."""
    return "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(8))


@dataclass
class Visit:
    """One guest from the start screen to the wipe. ``started_wall`` is epoch seconds; ``last_activity``
    is the facade's monotonic clock (the idle timeouts count from it)."""

    id: str
    receipt: str
    started_wall: float
    last_activity: float
    phase: Phase = Phase.CONSENT
    # None until consent: the event offered no choices (recorded as such), else every offered id -> answer.
    choices: dict[str, bool] | None = None
    worker: WorkerClient | None = None
    takes: list[str] = field(default_factory=list)
    headshots: dict[str, Headshot] = field(default_factory=dict)
    delivery: DeliveryTicket | None = None
    delivered: str | None = None  # the headshot behind the pending link
    # A step that changes the phase and needs the worker (consent, capture, deliver) is under way.
    busy: str | None = None
    # The worker's inventory and camera state as last read: shown while the worker is busy, so a state
    # poll never waits behind a render (and so never delays a Delete now queued behind it).
    held: list[HeldItem] = field(default_factory=list)
    camera: CameraState = field(default_factory=lambda: CameraState("closed"))
    # Random per delivery, part of the QR image's URL: a page can never show an earlier QR from its
    # image cache, and an old QR URL never answers with a newer guest's code.
    qr_nonce: str | None = None
    # The visit's prints as the worker last reported them, oldest first; a print request under way.
    prints: list[PrintJob] = field(default_factory=list)
    print_pending: bool = False
    print_created: dict[str, float] = field(default_factory=dict)  # kiosk job id -> epoch s submitted

    def headshot_like(self, take: str, background: str, preset: str) -> Headshot | None:
        """The headshot already made with these choices, if any (same choice again: reuse it, don't grow
        what we hold)."""
        for h in self.headshots.values():
            if (h.take, h.background, h.preset) == (take, background, preset):
                return h
        return None

    def forget(self) -> None:
        """Drop every reference to the visit's contents (ids, link, answers) once it is wiped."""
        self.delivery = None
        self.qr_nonce = None
        self.choices = None
        self.headshots.clear()
        self.takes.clear()
        self.held.clear()
        self.prints.clear()
        self.print_created.clear()


@dataclass
class Counters:
    """Counts since start-up for the dashboard and ``/metrics``; nothing personal."""

    started: int = 0
    completed: int = 0
    declined: int = 0
    timed_out: int = 0
    deleted_by_guest: int = 0
    revoked: int = 0
    errors: int = 0
    worker_deaths: int = 0
    wipes: int = 0
    staff_aborts: int = 0
    cancelled_in_flight: int = 0  # wipes that cancelled a capture or render under way
    receipts_unrecorded: int = 0  # the audit trail refused or failed: the guest was told so
    prints_submitted: int = 0  # prints accepted (the event's limit counts these)
    prints_completed: int = 0  # prints CUPS handed to the printer
    prints_failed: int = 0  # prints the printer or CUPS gave up on
    wipe_ms: list[float] = field(default_factory=list)
    render_ms: list[float] = field(default_factory=list)

    _BY_REASON: ClassVar[dict[WipeReason, str]] = {
        WipeReason.FINISHED: "completed",
        WipeReason.CONSENT_DECLINED: "declined",
        WipeReason.IDLE_TIMEOUT: "timed_out",
        WipeReason.DELETED_BY_GUEST: "deleted_by_guest",
        WipeReason.CONSENT_REVOKED: "revoked",
    }

    def wiped(self, reason: WipeReason, ms: float) -> None:
        """Count one wipe that took ``ms`` milliseconds, under its outcome."""
        self.wipes += 1
        self.wipe_ms.append(ms)
        del self.wipe_ms[:-KEEP_TIMINGS]
        name = self._BY_REASON.get(reason)
        if name is not None:
            setattr(self, name, getattr(self, name) + 1)

    def rendered(self, ms: float) -> None:
        self.render_ms.append(ms)
        del self.render_ms[:-KEEP_TIMINGS]

    def counts(self) -> dict[str, int]:
        """The counters without the timing lists."""
        values = ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))
        return {name: value for name, value in values if isinstance(value, int)}


@dataclass(frozen=True)
class Receipt:
    """What the guest gets at the end: a code and what happened. Also handed to the audit trail."""

    code: str
    outcome: WipeReason
    # None: the event offered no optional choices (the receipt says so instead of an empty object).
    choices: Mapping[str, bool] | None
    started_wall: float
    ended_wall: float


def held_items(v: Visit, cfg: KioskConfig, *, idle_left: float | None, wall: float) -> tuple[HeldItem, ...]:
    """What the guest's "What we hold" lists: the vault's items as last read, each expiring no later than
    the visit's idle deadline (``idle_left`` seconds from ``wall``; None: no timeout in this phase), and the
    pending link, which lives on after the visit until its window ends (``appliance.retention``)."""
    deadline = None if idle_left is None else wall + idle_left
    # What the kiosk enforces, not only the vault's backstop stamp: the visit (and with it every take and
    # headshot) is wiped when this phase's idle timeout runs out, unless the guest touches the screen.
    held = [
        item if deadline is None else dataclasses.replace(item, expires=min(item.expires, deadline))
        for item in v.held
    ]
    for job in v.prints:
        # A print not yet done is a copy of the headshot in the printer's RAM spool: the guest sees it here
        # until it is printed, and the visit's end cancels and purges it.
        if job.status in ("queued", "printing"):
            created = v.print_created.get(job.job, wall)
            expires = created + cfg.print.job_timeout_seconds
            if deadline is not None:
                expires = min(expires, deadline)
            held.append(HeldItem(f"print-{job.job}", "print", job.bytes, created, expires))
    if v.delivery is not None:
        delivered = v.headshots.get(v.delivered or "")
        held.append(
            HeldItem(
                id="delivery",
                kind="delivery",
                bytes=0 if delivered is None else delivered.bytes,
                created=v.delivery.expires_at - delivery_window_seconds(cfg),
                expires=v.delivery.expires_at,
            )
        )
    return tuple(held)


def print_view(v: Visit, cfg: KioskConfig, *, event_prints_left: int) -> PrintView | None:
    """The visit's printing as the guest page shows it; None where the event offers no printing."""
    if not cfg.print.enabled:
        return None
    last = v.prints[-1] if v.prints else None
    left = min(max(0, cfg.print.copies_per_guest - len(v.prints)), max(0, event_prints_left))
    if last is None:
        return PrintView(None, None, None, left)
    return PrintView(last.job, last.status, last.reason, left)


def visit_view(
    v: Visit, cfg: KioskConfig, *, now: float, wall: float, paused: bool, event_prints_left: int = 0
) -> VisitView:
    """The frozen view of live visit ``v`` at monotonic ``now`` / epoch ``wall`` (hold the facade's lock)."""
    timeout = timeout_for(v.phase, cfg.session)
    idle_left = None if timeout is None else max(0.0, timeout - (now - v.last_activity))
    return VisitView(
        phase=v.phase.value,
        visit=v.id,
        paused=paused,
        receipt=v.receipt,
        held=held_items(v, cfg, idle_left=idle_left, wall=wall),
        takes=tuple(TakeView(t, i + 1) for i, t in enumerate(v.takes)),
        headshots=tuple(v.headshots.values()),
        takes_left=max(0, cfg.session.max_takes - len(v.takes)),
        idle_seconds_left=None if idle_left is None else round(idle_left, 1),
        # Only where the visit waits for the guest: COUNTDOWN/CAPTURE/PROCESSING run on the failsafe of the
        # machine (capture_timeout_seconds is 20 s, as long as the warning), and "Are you still there?"
        # while the photo is being taken would take the shutter button's next press for "I need more time".
        idle_warning=v.phase in GUEST_IDLE_PHASES
        and idle_left is not None
        and idle_left <= cfg.session.idle_warning_seconds,
        delivery=None
        if v.delivery is None
        else DeliveryView(max(0, int(v.delivery.expires_at - wall)), v.qr_nonce),
        print=print_view(v, cfg, event_prints_left=event_prints_left),
    )


def valid_choices(offered: Sequence[str], answers: Mapping[str, object]) -> dict[str, bool] | None:
    """The guest's consent answers checked against the event's ``offered`` choice ids: every offered choice
    -> yes/no (an omitted one is a no); None if none is offered. ``BadChoices`` for an id not offered or an
    answer that is not a boolean."""
    unknown = [key for key in answers if key not in offered]
    if unknown or not all(isinstance(value, bool) for value in answers.values()):
        # Never echo the keys: a free-text key is exactly how a name would reach a log or the trail.
        allowed = ", ".join(offered) if offered else "none"
        raise BadChoices(f"choices must be yes/no answers to the offered choices ({allowed})")
    if not offered:
        return None
    return {key: answers.get(key, False) is True for key in offered}
