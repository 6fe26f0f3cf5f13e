"""The kiosk facade: the one object the UI drives. Owns the session state machine, the RAM store, the
session worker processes and the delivery links. Thread-safe (the UI server is threaded).

The main process holds *no pixels*: previews, captures and headshots live in the session worker and pass
through here only as bytes on their way to an HTTP response (DESIGN.md §3).

Locking: one lock guards the visit's state and is never held while a worker works. A request takes it to
check and change the phase, lets go while the worker captures or renders, and takes it again to record the
result — only if the same visit is still live. So Delete now, Withdraw, a staff abort or the idle wipe
take effect at any moment (issue 11): the wipe ends the worker in the middle of its burst or render (see
``WorkerProcess.end``), and the request that started it learns that its visit is gone (``VisitEnded``)
and keeps nothing of what came back.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from appliance.config import KioskConfig
from appliance.delivery import DeliveryStore, DeliveryTicket
from appliance.hardening import set_non_dumpable
from appliance.lifecycle import Phase, WipeReason, advance, timeout_for, timeout_reason
from appliance.retention import delivery_window_seconds
from appliance.store import Backing, SessionStore, new_session_id
from appliance.systemd import Notifier
from appliance.workerclient import SparePool, WorkerClient, WorkerDied, WorkerRequestError
from appliance.workerproc import WorkerProcess

logger = logging.getLogger(__name__)
T = TypeVar("T")

DELIVERIES_DIR = "deliveries"
_SESSION_DIR = re.compile(r"^[0-9a-f]{16,64}$")
RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U to misread


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


# How long a wipe waits for a worker to finish a short request (a preview frame, the inventory) and take
# the ordinary wipe request, before cancelling it. Captures and renders are cancelled at once.
WIPE_WAIT_IDLE_SECONDS = 0.25


def receipt_code() -> str:
    """A random 8-character receipt id shown to the guest (Crockford base32, ~40 bits)."""
    return "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(8))


@dataclass
class _Session:
    id: str
    receipt: str
    started_wall: float
    last_activity: float
    phase: Phase = Phase.CONSENT
    # None until consent: the event offered no choices (recorded as such), else every offered id -> answer.
    choices: dict[str, bool] | None = None
    worker: WorkerClient | None = None
    takes: list[str] = field(default_factory=list)
    renders: dict[str, dict[str, Any]] = field(default_factory=dict)
    delivery: DeliveryTicket | None = None
    delivered_render: str | None = None
    # A step that changes the phase and needs the worker (consent, capture, deliver) is under way.
    busy: str | None = None
    # The worker's inventory and camera state as last read: shown while the worker is busy, so a state
    # poll never waits behind a render (and so never delays a Delete now queued behind it).
    held: list[dict[str, Any]] = field(default_factory=list)
    camera: dict[str, Any] = field(default_factory=lambda: {"state": "closed"})
    # Random per delivery, part of the QR image's URL: a page can never show an earlier QR from its
    # image cache, and an old QR URL never answers with a newer guest's code.
    qr_nonce: str | None = None


@dataclass
class _Counters:
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
    wipe_ms: list[float] = field(default_factory=list)
    render_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Receipt:
    """What the guest gets at the end: a code and what happened. Also handed to the audit trail."""

    code: str
    outcome: WipeReason
    # None: the event offered no optional choices (the receipt says so instead of an empty object).
    choices: Mapping[str, bool] | None
    started_wall: float
    ended_wall: float


class Kiosk:
    """The appliance as the UI sees it. Call ``start()`` once, ``tick()`` about twice a second (the
    ``run`` loop does), ``close()`` at the end.

    ``clock`` is monotonic seconds (timeouts), ``wall`` epoch seconds (what-we-hold times, link expiry).
    ``on_receipt`` is called with each finished visit's anonymous ``Receipt`` (the audit trail)."""

    def __init__(
        self,
        cfg: KioskConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        on_receipt: Callable[[Receipt], None] | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.wall = wall
        self.notifier = notifier or Notifier(None)
        self.on_receipt = on_receipt
        self.log_level = log_level
        self.store = SessionStore(cfg.store.path, size_mib=cfg.store.size_mib, clock=wall)
        self.deliveries: DeliveryStore | None = None
        self._lock = threading.RLock()
        self._session: _Session | None = None
        self.spares = SparePool(self._start_worker, on_ready=self._worker_ready)
        # The inference runtime the last worker actually loaded: with backend = "auto" the config alone does
        # not say whether a unit runs TensorRT or fell back to ONNX Runtime.
        self._engine_backend: str | None = None
        self._paused = False
        self._last_receipt: Receipt | None = None
        self._last_receipt_recorded = False
        self._last_error: str | None = None
        self.counters = _Counters()
        self.started_at = clock()
        self._closed = False

    # -- lifecycle of the appliance -------------------------------------------------------------------------

    def start(self, *, wait_for_worker: bool = True) -> None:
        """Make this process non-dumpable, open the RAM store (sweeping anything a crash left), then warm a
        spare worker. Doing it here, not only in ``main()`` (which also sets ``RLIMIT_CORE=0``), means any
        process that embeds the facade — and so relays guest images — is covered (DESIGN.md §3)."""
        set_non_dumpable()
        self.store.open()
        self.deliveries = DeliveryStore(
            self.store.path / DELIVERIES_DIR,
            window_seconds=self.cfg.delivery.window_minutes * 60,
            clock=self.wall,
        )
        self.spares.spawn()
        if wait_for_worker:
            self.wait_for_spare()

    def wait_for_spare(self, timeout: float = 180.0) -> None:
        """Block until the warm worker is loaded; ``WorkerFailed`` if it cannot start."""
        try:
            error = self.spares.wait(timeout)
        except TimeoutError:
            raise WorkerFailed("the photo engine did not start in time") from None
        if error is not None:
            raise WorkerFailed(f"the photo engine could not start: {error}")

    def _start_worker(self) -> WorkerProcess:
        return WorkerProcess(self.cfg, str(self.store.path), log_level=self.log_level)

    def _worker_ready(self, info: dict[str, Any]) -> None:
        backend = info.get("backend")
        with self._lock:
            self._engine_backend = str(backend) if backend is not None else None

    def close(self) -> None:
        """Wipe any session, stop every worker, unmount the store. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self.notifier.stopping()
            if self._session is not None:
                self._wipe(WipeReason.SHUTDOWN)
            self._closed = True
        self.spares.close()  # a spare still loading is killed by its thread once it is ready
        self.store.close()

    # -- guest operations -----------------------------------------------------------------------------------

    def start_session(self) -> dict[str, Any]:
        """IDLE -> CONSENT. Nothing is captured and the camera stays closed until consent."""
        with self._lock:
            if self._paused:
                raise KioskPaused("the kiosk is paused by staff")
            if self._session is not None:
                raise SessionActive("a visit is already in progress")
            sid = new_session_id()
            self._session = _Session(sid, receipt_code(), self.wall(), self.clock())
            self.counters.started += 1
            logger.info("session %s started", sid)
            return self._view()

    def consent(self, accept: bool, choices: Mapping[str, bool] | None = None) -> dict[str, Any]:
        """CONSENT -> PREVIEW (camera opens) or, on decline, WIPE -> IDLE with nothing captured.

        ``choices`` answers the event's optional choices (``[event] consent_choices``): only offered ids,
        only booleans (``BadChoices`` otherwise); an offered choice left out is a no."""
        with self._lock:
            s = self._need(Phase.CONSENT)
            self._not_busy(s)
            s.choices = answers = self._valid_choices(choices or {})
            s.last_activity = self.clock()
            if not accept:
                self._wipe(WipeReason.CONSENT_DECLINED)
                return self._view()
            s.busy = "consent"
        # Waiting for the warm worker happens only if a guest arrives within seconds of the previous wipe;
        # it happens without the lock, so Delete now, a staff abort or the idle wipe can end this visit now.
        try:
            process = self._claim_spare()
        except KioskError:
            with self._lock:
                if self._session is s:
                    self._last_error = "worker_failed"
                    self._wipe(WipeReason.ERROR)
            raise
        with self._lock:
            if self._session is not s:
                # The visit was wiped meanwhile: this worker has begun nothing and opened no camera, so it
                # goes back to being the spare; it is never attached to a visit that no longer exists.
                self.spares.give_back(process)
                raise VisitEnded("the visit ended before the camera opened")
            s.worker = WorkerClient(process)
        # An offered choice replaces the engine's default for this visit only; not offered, the default holds.
        smoothing = None if answers is None else answers.get("skin_smoothing")
        try:
            capacity = self._vault_capacity()
            self._worker_call(
                s, lambda w: w.begin(session_id=s.id, capacity_bytes=capacity, skin_smoothing=smoothing)
            )
            self._worker_call(s, lambda w: w.open_camera())
        except WorkerFailed:
            raise  # the visit was wiped already
        except KioskError as exc:
            with self._lock:
                self._still(s)
                self._fail(s, exc)  # a camera that will not open ends the visit, as any worker failure
        with self._lock:
            self._still(s)
            s.busy = None
            s.phase = advance(s.phase, Phase.PREVIEW)
            return self._view()

    def _claim_spare(self) -> WorkerProcess:
        """Take the warm worker, waiting for one to load if needed. Called without the lock."""
        self.spares.spawn()
        self.wait_for_spare()
        worker = self.spares.claim()
        if worker is None:
            raise WorkerFailed("the photo engine is not available")
        return worker

    def preview_frame(self, *, background: str | None = None, mirror: bool = False) -> dict[str, Any]:
        """One live-preview JPEG with pose guidance: ``{"jpeg", "hints", "face", "size"}``. The bytes are
        the caller's to send and forget. Mirror the preview in the browser (CSS ``scaleX(-1)``): flipping
        1280×720 pixels here costs ~5 ms a frame; ``mirror=True`` exists for clients that cannot."""
        with self._lock:
            s = self._session
            if s is None or s.phase in (Phase.CONSENT, Phase.IDLE):
                raise ConsentRequired("the camera is only on after consent")
            if s.phase not in (Phase.PREVIEW, Phase.COUNTDOWN):
                raise NotAllowed("the live preview is not showing now")
            if background is not None:
                self._check_background(background)
        frame = self._worker_call(s, lambda w: w.frame(background=background, mirror=mirror))
        with self._lock:
            self._still(s)  # a frame of a visit wiped meanwhile is not shown to anybody
        return {
            "jpeg": frame.jpeg,
            "hints": list(frame.hints),
            "face": frame.face and list(frame.face),
            "size": list(frame.size),
        }

    def touch(self) -> None:
        """The guest did something (the UI pings on every tap); resets the idle timer."""
        with self._lock:
            if self._session is not None:
                self._session.last_activity = self.clock()

    def capture(self) -> dict[str, Any]:
        """PREVIEW (or REVIEW, for a retake) -> COUNTDOWN -> CAPTURE -> PROCESSING -> REVIEW.

        The on-screen 3-2-1 runs in the UI before this call; here a short burst is taken, the sharpest
        frame with a face kept, and a first headshot rendered with the event's default background and
        preset. On ``no_face`` nothing is kept and the guest is back in PREVIEW. A wipe during the burst or
        the render cancels it in the worker; this call then raises ``VisitEnded``."""
        with self._lock:
            s = self._need(Phase.PREVIEW, Phase.REVIEW)
            self._not_busy(s)
            if len(s.takes) >= self.cfg.session.max_takes:
                raise RetakeLimit(f"you have used all {self.cfg.session.max_takes} photos")
            s.last_activity = self.clock()
            if s.phase is Phase.REVIEW:
                s.phase = advance(s.phase, Phase.PREVIEW)
            s.phase = advance(s.phase, Phase.COUNTDOWN)
            s.phase = advance(s.phase, Phase.CAPTURE)
            s.busy = "capture"
        try:
            burst = self.cfg.session.capture_burst_frames
            taken = self._worker_call(s, lambda w: w.capture(burst=burst))
        except KioskError as exc:
            with self._lock:
                if self._session is s:
                    s.busy = None
                    if exc.code == "no_face":
                        s.phase = Phase.PREVIEW
            raise
        with self._lock:
            self._still(s)
            take = taken.take
            s.takes.append(take)
            s.phase = advance(s.phase, Phase.PROCESSING)
            s.last_activity = self.clock()  # the processing timeout counts from here
        try:
            first = self._render(s, take, self.cfg.event.backgrounds[0], self.cfg.event.presets[0])
        finally:
            with self._lock:
                if self._session is s:  # the take is kept; the guest can try another render in review
                    s.phase = advance(s.phase, Phase.REVIEW)
                    s.busy = None
        with self._lock:
            self._still(s)
            s.last_activity = self.clock()
            return {"take": take, "render": first["render"], **self._view()}

    def retake(self) -> dict[str, Any]:
        """REVIEW -> PREVIEW: back to the live camera for another photo (within ``max_takes``)."""
        with self._lock:
            s = self._need(Phase.REVIEW)
            self._not_busy(s)
            if len(s.takes) >= self.cfg.session.max_takes:
                raise RetakeLimit(f"you have used all {self.cfg.session.max_takes} photos")
            s.phase = advance(s.phase, Phase.PREVIEW)
            s.last_activity = self.clock()
            return self._view()

    def render(self, take: str, background: str, preset: str) -> dict[str, Any]:
        """Another background/preset for a take (REVIEW only). Returns ``{"render": id, ...}``."""
        with self._lock:
            s = self._need(Phase.REVIEW)
            if take not in s.takes:
                raise NotFound("that photo is not part of this visit", code="unknown_take")
            self._check_background(background)
            if preset not in self.cfg.event.presets:
                raise KioskError(
                    f"preset must be one of {', '.join(self.cfg.event.presets)}", code="bad_preset"
                )
            s.last_activity = self.clock()
        return self._render(s, take, background, preset)

    def _render(self, s: _Session, take: str, background: str, preset: str) -> dict[str, Any]:
        """Render (or reuse) one headshot of ``s``. Called without the lock; records under it."""
        with self._lock:
            for rid, meta in s.renders.items():  # same choice again: reuse, don't grow what we hold
                if (meta["take"], meta["background"], meta["preset"]) == (take, background, preset):
                    return {"render": rid, **meta}
        result = self._worker_call(s, lambda w: w.render(take_id=take, background=background, preset=preset))
        with self._lock:
            self._still(s)
            rid = result.render
            meta = {"take": take, "background": background, "preset": preset, "bytes": result.bytes}
            s.renders[rid] = meta
            self.counters.render_ms.append(result.ms)
            del self.counters.render_ms[:-500]
            return {"render": rid, **meta}

    def image(self, render_id: str) -> bytes:
        """A headshot's JPEG bytes (REVIEW or DELIVERY). The caller sends them and keeps nothing."""
        with self._lock:
            s = self._need(Phase.REVIEW, Phase.DELIVERY)
            if render_id not in s.renders:
                raise NotFound("that photo is not available", code="unknown_render")
        jpeg = self._worker_call(s, lambda w: w.image(render_id))
        with self._lock:
            self._still(s)  # never hand out a headshot of a visit that was deleted meanwhile
        return jpeg

    def deliver(self, render_id: str) -> dict[str, Any]:
        """REVIEW -> DELIVERY: make a one-time link for one headshot. Returns ``url``, ``expires_in`` and
        ``qr`` (a fresh nonce for the QR image's URL); the token inside the URL exists only in the QR code
        and here until the visit ends. A wipe while the link is made revokes it before anyone can use it."""
        with self._lock:
            s = self._need(Phase.REVIEW)
            self._not_busy(s)
            if render_id not in s.renders:
                raise NotFound("that photo is not available", code="unknown_render")
            deliveries = self.deliveries
            if deliveries is None:
                raise WorkerFailed("the kiosk is not started")
            s.busy = "deliver"
        try:
            jpeg = self._worker_call(s, lambda w: w.image(render_id))
            ticket = deliveries.create(jpeg)
            del jpeg
        finally:
            with self._lock:
                if self._session is s:
                    s.busy = None
        with self._lock:
            if self._session is not s or s.phase is not Phase.REVIEW:
                deliveries.revoke(ticket.token)
                raise VisitEnded("the visit ended before its link was shown")
            s.delivery = ticket
            s.delivered_render = render_id
            s.qr_nonce = secrets.token_hex(8)
            s.phase = advance(s.phase, Phase.DELIVERY)
            s.last_activity = self.clock()
            return {
                "url": self.delivery_url(),
                "expires_in": self.delivery_expires_in(),
                "qr": s.qr_nonce,
                **self._view(),
            }

    def qr_nonce(self) -> str | None:
        """The current delivery's QR nonce (``deliver``'s ``qr``), or None without a delivery."""
        with self._lock:
            s = self._session
            return None if s is None or s.delivery is None else s.qr_nonce

    def delivery_url(self) -> str | None:
        with self._lock:
            s = self._session
            if s is None or s.delivery is None:
                return None
            return s.delivery.url(self.cfg.delivery.public_host, self.cfg.delivery.port)

    def delivery_expires_in(self) -> int:
        with self._lock:
            s = self._session
            if s is None or s.delivery is None:
                return 0
            return max(0, int(s.delivery.expires_at - self.wall()))

    def end(self) -> dict[str, Any]:
        """The guest is done: wipe everything of the visit except the pending delivery, which stays
        (encrypted, keyless on the kiosk) until its window ends."""
        with self._lock:
            self._need(Phase.REVIEW, Phase.DELIVERY)
            return {"receipt": self._wipe(WipeReason.FINISHED), **self._view()}

    def delete_now(self) -> dict[str, Any]:
        """ "Delete now": wipe everything, the pending delivery included — at any moment, a capture or a
        render under way included (it is cancelled in the worker and nothing of it is kept).

        ``receipt`` is the code the guest may keep, or None if the receipt could not be recorded (the
        page then says so rather than show a code that proves nothing)."""
        with self._lock:
            self._need_any()
            receipt = self._wipe(WipeReason.DELETED_BY_GUEST, revoke_delivery=True)
            return {"receipt": receipt, **self._view()}

    def revoke(self) -> dict[str, Any]:
        """The guest withdraws consent: same as delete-now, recorded as a revocation."""
        with self._lock:
            self._need_any()
            receipt = self._wipe(WipeReason.CONSENT_REVOKED, revoke_delivery=True)
            return {"receipt": receipt, **self._view()}

    # -- state -----------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The session as the guest UI shows it (JSON-ready). ``held`` is read from the store itself (as
        of the worker's last answer while it is busy capturing or rendering); each item's ``expires`` is
        when the kiosk deletes it if the guest does nothing more (``appliance.retention``)."""
        with self._lock:
            return self._view()

    def _view(self) -> dict[str, Any]:
        s = self._session
        if s is None:
            view: dict[str, Any] = {
                "phase": Phase.IDLE.value,
                "session": None,
                "held": [],
                "takes": [],
                "renders": [],
                "paused": self._paused,
            }
            if self._last_receipt is not None:
                view["last_receipt"] = {
                    "receipt": self._last_receipt.code if self._last_receipt_recorded else None,
                    "outcome": self._last_receipt.outcome.value,
                }
            if self._last_error is not None:
                view["error"] = self._last_error
            return view
        timeout = timeout_for(s.phase, self.cfg.session)
        idle_left = None if timeout is None else max(0.0, timeout - (self.clock() - s.last_activity))
        return {
            "phase": s.phase.value,
            "session": s.id,
            "receipt": s.receipt,
            "held": self._held(s),
            "takes": [{"take": t, "number": i + 1} for i, t in enumerate(s.takes)],
            "renders": [{"render": r, **m} for r, m in s.renders.items()],
            "takes_left": max(0, self.cfg.session.max_takes - len(s.takes)),
            "idle_seconds_left": None if idle_left is None else round(idle_left, 1),
            "idle_warning": idle_left is not None and idle_left <= self.cfg.session.idle_warning_seconds,
            "delivery": None
            if s.delivery is None
            else {"expires_in": self.delivery_expires_in(), "qr": s.qr_nonce},
            "paused": self._paused,
        }

    def _held(self, s: _Session) -> list[dict[str, Any]]:
        if s.worker is not None:
            try:
                items = s.worker.inventory_if_idle()
            except (WorkerDied, WorkerRequestError):
                items = None
            if items is not None:
                s.held = [dataclasses.asdict(item) for item in items]
        # What the kiosk enforces, not only the vault's backstop stamp: the visit (and with it every capture
        # and headshot) is wiped when this phase's idle timeout runs out, unless the guest touches the screen.
        timeout = timeout_for(s.phase, self.cfg.session)
        deadline = (
            None if timeout is None else self.wall() + max(0.0, timeout - (self.clock() - s.last_activity))
        )
        held = [
            {**item, "expires": item["expires"] if deadline is None else min(item["expires"], deadline)}
            for item in s.held
        ]
        if s.delivery is not None:
            held.append(
                {
                    "id": "delivery",
                    "kind": "delivery",
                    "bytes": s.renders.get(s.delivered_render or "", {}).get("bytes", 0),
                    "created": s.delivery.expires_at - delivery_window_seconds(self.cfg),
                    "expires": s.delivery.expires_at,
                }
            )
        return held

    # -- timers and health -----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Enforce idle timeouts, notice dead workers, purge expired links, keep a spare warm, feed the
        watchdog. Called from the ``run`` loop; cheap."""
        with self._lock:
            if self._closed:
                return
            s = self._session
            if s is not None:
                if s.worker is not None and s.worker.exited():
                    self.counters.worker_deaths += 1
                    logger.error("session %s worker died", s.id)
                    self._last_error = "worker_died"
                    self._wipe(WipeReason.WORKER_DIED)
                else:
                    timeout = timeout_for(s.phase, self.cfg.session)
                    if timeout is not None and self.clock() - s.last_activity > timeout:
                        logger.info("session %s timed out in %s", s.id, s.phase.value)
                        self._wipe(timeout_reason(s.phase))
            self.spares.check()
            if self.deliveries is not None:
                self.deliveries.purge_expired()
            healthy = self.spares.ready or self.spares.spawning or self._session is not None
        if self._session is None:
            self.spares.spawn()
        self.notifier.status(self.status_line())
        if healthy:
            self.notifier.watchdog()

    def status_line(self) -> str:
        """systemd STATUS=: phase and counts, nothing personal."""
        c = self.counters
        phase = self._session.phase.value if self._session is not None else "idle"
        return f"{phase}; sessions {c.started} started, {c.completed} completed, {c.wipes} wiped"

    # -- staff -----------------------------------------------------------------------------------------------

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def update_event(
        self,
        cfg: KioskConfig,
        *,
        require_idle: bool = False,
        on_receipt: Callable[[Receipt], None] | None = None,
    ) -> None:
        """Staff changed the event: swap in ``cfg``, which may differ from the current config only in
        ``[event]`` and the delivery window (camera, store, engine and listeners are fixed while running).
        ``require_idle``: only while paused with no visit (settings that change the consent text).
        ``on_receipt`` replaces the receipt sink (its policy hash follows the consent text)."""
        with self._lock:
            if require_idle and (not self._paused or self._session is not None):
                raise NotAllowed("pause the kiosk and wait until no visit is in progress")
            fixed = ("camera", "store", "ui", "session", "engine", "staff", "audit")
            changed = [name for name in fixed if getattr(cfg, name) != getattr(self.cfg, name)]
            delivery = cfg.delivery.model_copy(update={"window_minutes": self.cfg.delivery.window_minutes})
            if delivery != self.cfg.delivery:
                changed.append("delivery")
            if changed:
                raise ValueError(f"only [event] and the delivery window change at run time, not {changed}")
            self.cfg = cfg
            if self.deliveries is not None:
                self.deliveries.window_seconds = cfg.delivery.window_minutes * 60
            if on_receipt is not None:
                self.on_receipt = on_receipt

    def staff_abort(self) -> bool:
        """Abort the current visit (wipes it). Returns whether there was one."""
        with self._lock:
            if self._session is None:
                return False
            self.counters.staff_aborts += 1
            self._wipe(WipeReason.STAFF_ABORT, revoke_delivery=True)
            return True

    def health(self) -> dict[str, Any]:
        """Counts, timings and states for the staff dashboard and /metrics; never session contents."""
        with self._lock:
            s = self._session
            camera: dict[str, Any] = {"state": "closed"}
            if s is not None and s.worker is not None and not s.worker.exited():
                try:
                    state = s.worker.camera_state_if_idle()
                    if state is not None:
                        s.camera = state.as_json()
                except (WorkerDied, WorkerRequestError):
                    s.camera = {"state": "unknown"}
                camera = dict(s.camera)  # as last read while the worker is capturing or rendering
            usage = self.store.usage()
            return {
                "phase": s.phase.value if s is not None else "idle",
                "paused": self._paused,
                "camera": camera,
                "worker": {
                    "spare_ready": self.spares.ready,
                    "session_worker": s is not None and s.worker is not None and not s.worker.exited(),
                    "spare_error": self.spares.error,
                    "engine_backend": self._engine_backend,
                },
                "counters": {k: v for k, v in vars(self.counters).items() if not isinstance(v, list)},
                "render_ms": list(self.counters.render_ms),
                "wipe_ms": list(self.counters.wipe_ms),
                "store": {
                    "bytes_used": usage.bytes_used,
                    "capacity_bytes": usage.capacity_bytes,
                    "objects": usage.objects,
                    "backing": usage.backing.value,
                    "noswap": usage.noswap,
                },
                "deliveries_pending": self.deliveries.pending() if self.deliveries is not None else 0,
                "uptime_seconds": round(self.clock() - self.started_at, 1),
            }

    # -- internals -------------------------------------------------------------------------------------------

    def _need_any(self) -> _Session:
        if self._session is None:
            raise NoSession("there is no visit in progress")
        return self._session

    def _need(self, *phases: Phase) -> _Session:
        s = self._need_any()
        if s.phase not in phases:
            raise NotAllowed(f"not possible while the kiosk is in {s.phase.value}")
        return s

    def _check_background(self, background: str) -> None:
        if background not in self.cfg.event.backgrounds:
            raise KioskError(
                f"background must be one of {', '.join(self.cfg.event.backgrounds)}", code="bad_background"
            )

    def _vault_capacity(self) -> int | None:
        return self.store.capacity_bytes if self.store.backing is Backing.SHM_FALLBACK else None

    def _not_busy(self, s: _Session) -> None:
        if s.busy is not None:
            raise Busy(f"please wait: {s.busy} is still under way")

    def _still(self, s: _Session) -> None:
        """After a worker call made without the lock: the visit must still be the live one."""
        if self._session is not s:
            raise VisitEnded("the visit ended while this was under way; nothing of it was kept")

    def _valid_choices(self, answers: Mapping[str, object]) -> dict[str, bool] | None:
        """Every offered choice -> the guest's yes/no (an omitted one is a no); None if none is offered."""
        offered = self.cfg.event.consent_choices
        unknown = [key for key in answers if key not in offered]
        if unknown or not all(isinstance(value, bool) for value in answers.values()):
            # Never echo the keys: a free-text key is exactly how a name would reach a log or the trail.
            allowed = ", ".join(offered) if offered else "none"
            raise BadChoices(f"choices must be yes/no answers to the offered choices ({allowed})")
        if not offered:
            return None
        return {key: answers.get(key, False) is True for key in offered}

    def _worker_call(self, s: _Session, request: Callable[[WorkerClient], T]) -> T:
        """One request to ``s``'s worker (``request(client)``), made WITHOUT the facade lock (the worker
        serialises requests). The worker's refusals become ``KioskError``s here, in one place; a worker that
        died or was ended by a wipe becomes ``VisitEnded`` if the visit is gone, else a failure that wipes
        the visit."""
        worker = s.worker
        if worker is None:
            raise NotAllowed("the camera is not on yet")
        try:
            return request(worker)
        except WorkerRequestError as exc:
            raise WorkerRefused(str(exc), code=exc.code) from None
        except WorkerDied as exc:
            with self._lock:
                self._still(s)
                self._fail(s, exc)

    def _fail(self, s: _Session, exc: Exception) -> NoReturn:
        """Any worker failure ends the visit ``s`` (the live one; hold the lock): wipe, tell the guest,
        recover by itself."""
        logger.error("session %s: worker failed (%s); wiping", s.id, exc.__class__.__name__)
        self.counters.errors += 1
        self._last_error = "worker_failed"
        if self._session is s:
            self._wipe(WipeReason.WORKER_DIED if isinstance(exc, WorkerDied) else WipeReason.ERROR)
        raise WorkerFailed(
            "something went wrong with the camera or the photo engine; your photos were deleted"
        )

    def _wipe(self, reason: WipeReason, *, revoke_delivery: bool = False) -> str | None:
        """WIPE: end the worker (it unlinks its files and destroys its key; a capture or render under way
        is cancelled), remove the session's files by id as a backstop, forget everything, back to IDLE.
        Returns the receipt code, or None if the receipt could not be recorded. Never raises otherwise."""
        s = self._session
        if s is None:
            raise NoSession("there is no visit in progress")
        t0 = time.perf_counter()
        s.phase = Phase.WIPE
        # Detach first: a request of this visit still running sees it is gone (VisitEnded) whatever the
        # worker answers from here on.
        self._session = None
        if s.worker is not None and not s.worker.end(wait_idle=WIPE_WAIT_IDLE_SECONDS):
            self.counters.cancelled_in_flight += 1
        try:
            self.store.wipe_session(s.id)
        except Exception:  # the failsafe must finish: log the class, never the contents
            logger.exception("session %s: store wipe failed", s.id)
        if revoke_delivery and s.delivery is not None and self.deliveries is not None:
            self.deliveries.revoke(s.delivery.token)
        receipt = Receipt(
            s.receipt, reason, None if s.choices is None else dict(s.choices), s.started_wall, self.wall()
        )
        s.delivery = None
        s.qr_nonce = None
        s.choices = None
        s.renders.clear()
        s.takes.clear()
        s.held.clear()
        elapsed = (time.perf_counter() - t0) * 1000
        c = self.counters
        c.wipes += 1
        c.wipe_ms.append(elapsed)
        del c.wipe_ms[:-500]
        if reason is WipeReason.FINISHED:
            c.completed += 1
        elif reason is WipeReason.CONSENT_DECLINED:
            c.declined += 1
        elif reason is WipeReason.IDLE_TIMEOUT:
            c.timed_out += 1
        elif reason is WipeReason.DELETED_BY_GUEST:
            c.deleted_by_guest += 1
        elif reason is WipeReason.CONSENT_REVOKED:
            c.revoked += 1
        if reason not in (WipeReason.WORKER_DIED, WipeReason.ERROR):
            self._last_error = None
        logger.info("session %s wiped (%s) in %.1f ms", s.id, reason.value, elapsed)
        recorded = True
        if self.on_receipt is not None:
            try:
                self.on_receipt(receipt)
            except Exception:
                recorded = False
                c.receipts_unrecorded += 1
                logger.exception("could not record the consent receipt")
        self._last_receipt, self._last_receipt_recorded = receipt, recorded
        return receipt.code if recorded else None

    def session_dirs(self) -> list[str]:
        """Session directories present in the store (tests and the dashboard's sanity check)."""
        return [d for d in self.store.session_ids() if _SESSION_DIR.fullmatch(d)]
