"""The kiosk facade: the one object the UI drives. Owns the session state machine, the RAM store, the
session worker processes and the delivery links. Thread-safe (one lock; the UI server is threaded).

The main process holds *no pixels*: previews, captures and headshots live in the session worker and pass
through here only as bytes on their way to an HTTP response (DESIGN.md §3).
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from appliance.config import KioskConfig
from appliance.delivery import DeliveryStore, DeliveryTicket
from appliance.hardening import set_non_dumpable
from appliance.lifecycle import Phase, WipeReason, advance, timeout_for, timeout_reason
from appliance.store import Backing, SessionStore, new_session_id
from appliance.systemd import Notifier
from appliance.workerproc import WorkerDied, WorkerProcess, WorkerRequestError

logger = logging.getLogger(__name__)

DELIVERIES_DIR = "deliveries"
_SESSION_DIR = re.compile(r"^[0-9a-f]{16,64}$")
RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U to misread


class KioskError(Exception):
    """A guest or staff request that cannot be served now. ``code`` is stable; ``status`` is the HTTP
    status the UI should answer with; the message is a sentence for people."""

    code = "kiosk_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class SessionActive(KioskError):
    code = "session_active"
    status = 409


class NotAllowed(KioskError):
    code = "not_allowed"
    status = 409


class ConsentRequired(KioskError):
    code = "consent_required"
    status = 403


class NoSession(KioskError):
    code = "no_session"
    status = 404


class RetakeLimit(KioskError):
    code = "retake_limit"
    status = 409


class KioskPaused(KioskError):
    code = "paused"
    status = 503


class WorkerFailed(KioskError):
    code = "worker_failed"
    status = 503


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
    choices: dict[str, bool] = field(default_factory=dict)
    worker: WorkerProcess | None = None
    takes: list[str] = field(default_factory=list)
    renders: dict[str, dict[str, Any]] = field(default_factory=dict)
    delivery: DeliveryTicket | None = None
    delivered_render: str | None = None


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
    wipe_ms: list[float] = field(default_factory=list)
    render_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Receipt:
    """What the guest gets at the end: a code and what happened. Also handed to the audit trail."""

    code: str
    outcome: WipeReason
    choices: Mapping[str, bool]
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
        self._spare: WorkerProcess | None = None
        self._spare_ready = threading.Event()
        self._spare_error: str | None = None
        # The inference runtime the last worker actually loaded: with backend = "auto" the config alone does
        # not say whether a unit runs TensorRT or fell back to ONNX Runtime.
        self._engine_backend: str | None = None
        self._spawning = False
        self._spawner: threading.Thread | None = None
        self._paused = False
        self._last_receipt: Receipt | None = None
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
        self._spawn_spare()
        if wait_for_worker:
            self.wait_for_spare()

    def wait_for_spare(self, timeout: float = 180.0) -> None:
        if not self._spare_ready.wait(timeout):
            raise WorkerFailed("the photo engine did not start in time")
        if self._spare_error is not None:
            raise WorkerFailed(f"the photo engine could not start: {self._spare_error}")

    def _spawn_spare(self) -> None:
        with self._lock:
            if self._spare is not None or self._spawning or self._closed:
                return
            self._spawning = True
            self._spare_ready.clear()
            self._spare_error = None
        self._spawner = threading.Thread(target=self._spawn_spare_blocking, name="spare-worker", daemon=True)
        self._spawner.start()

    def _spawn_spare_blocking(self) -> None:
        worker: WorkerProcess | None = None
        try:
            worker = WorkerProcess(self.cfg, str(self.store.path), log_level=self.log_level)
            info = worker.wait_ready()
            logger.info("warm worker %d ready (backend %s)", worker.pid, info.get("backend"))
        except (WorkerDied, OSError) as exc:
            logger.error("worker failed to start: %s", exc)
            with self._lock:
                self._spare_error = str(exc)
                self._spawning = False
            self._spare_ready.set()
            return
        with self._lock:
            self._spawning = False
            backend = info.get("backend")
            self._engine_backend = str(backend) if backend is not None else None
            if self._closed:
                worker.kill()
            else:
                self._spare = worker
        self._spare_ready.set()

    def close(self) -> None:
        """Wipe any session, stop every worker, unmount the store. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self.notifier.stopping()
            if self._session is not None:
                self._wipe(WipeReason.SHUTDOWN)
            self._closed = True
            spare, self._spare = self._spare, None
            spawner = self._spawner
        if spare is not None:
            spare.kill()
        if spawner is not None:
            spawner.join(timeout=180)  # a spare still loading is killed by its thread once it is ready
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
        """CONSENT -> PREVIEW (camera opens) or, on decline, WIPE -> IDLE with nothing captured."""
        with self._lock:
            s = self._need(Phase.CONSENT)
            s.choices = {str(k): bool(v) for k, v in (choices or {}).items()}
            s.last_activity = self.clock()
            if not accept:
                self._wipe(WipeReason.CONSENT_DECLINED)
                return self._view()
            try:
                worker = self._take_spare()
            except KioskError:
                self._last_error = "worker_failed"
                self._wipe(WipeReason.ERROR)
                raise
            s.worker = worker
            try:
                worker.call("begin", session_id=s.id, capacity_bytes=self._vault_capacity())
                worker.call("open_camera")
            except (WorkerDied, WorkerRequestError) as exc:
                self._fail(exc)
            s.phase = advance(s.phase, Phase.PREVIEW)
            return self._view()

    def _take_spare(self) -> WorkerProcess:
        # Waiting here only happens if a guest arrives within seconds of the previous wipe.
        self._lock.release()
        try:
            self._spawn_spare()
            self.wait_for_spare()
        finally:
            self._lock.acquire()
        if self._spare is None:
            raise WorkerFailed("the photo engine is not available")
        worker, self._spare = self._spare, None
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
            return dict(self._call(s, "frame", background=background, mirror=mirror))

    def touch(self) -> None:
        """The guest did something (the UI pings on every tap); resets the idle timer."""
        with self._lock:
            if self._session is not None:
                self._session.last_activity = self.clock()

    def capture(self) -> dict[str, Any]:
        """PREVIEW (or REVIEW, for a retake) -> COUNTDOWN -> CAPTURE -> PROCESSING -> REVIEW.

        The on-screen 3-2-1 runs in the UI before this call; here a short burst is taken, the sharpest
        frame with a face kept, and a first headshot rendered with the event's default background and
        preset. On ``no_face`` nothing is kept and the guest is back in PREVIEW."""
        with self._lock:
            s = self._need(Phase.PREVIEW, Phase.REVIEW)
            if len(s.takes) >= self.cfg.session.max_takes:
                raise RetakeLimit(f"you have used all {self.cfg.session.max_takes} photos")
            s.last_activity = self.clock()
            if s.phase is Phase.REVIEW:
                s.phase = advance(s.phase, Phase.PREVIEW)
            s.phase = advance(s.phase, Phase.COUNTDOWN)
            s.phase = advance(s.phase, Phase.CAPTURE)
            try:
                taken = self._call(s, "capture", burst=self.cfg.session.capture_burst_frames)
            except KioskError as exc:
                if exc.code == "no_face" and self._session is s:
                    s.phase = Phase.PREVIEW
                raise
            take = str(taken["take"])
            s.takes.append(take)
            s.phase = advance(s.phase, Phase.PROCESSING)
            try:
                first = self._render(s, take, self.cfg.event.backgrounds[0], self.cfg.event.presets[0])
            finally:
                if self._session is s:  # the take is kept; the guest can try another render in review
                    s.phase = advance(s.phase, Phase.REVIEW)
            s.last_activity = self.clock()
            return {"take": take, "render": first["render"], **self._view()}

    def retake(self) -> dict[str, Any]:
        """REVIEW -> PREVIEW: back to the live camera for another photo (within ``max_takes``)."""
        with self._lock:
            s = self._need(Phase.REVIEW)
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
                raise KioskError("that photo is not part of this visit", code="unknown_take", status=404)
            self._check_background(background)
            if preset not in self.cfg.event.presets:
                raise KioskError(
                    f"preset must be one of {', '.join(self.cfg.event.presets)}", code="bad_preset"
                )
            s.last_activity = self.clock()
            return self._render(s, take, background, preset)

    def _render(self, s: _Session, take: str, background: str, preset: str) -> dict[str, Any]:
        for rid, meta in s.renders.items():  # same choice again: reuse, don't grow what we hold
            if (meta["take"], meta["background"], meta["preset"]) == (take, background, preset):
                return {"render": rid, **meta}
        result = self._call(s, "render", take_id=take, background=background, preset=preset)
        rid = str(result["render"])
        meta = {"take": take, "background": background, "preset": preset, "bytes": int(result["bytes"])}
        s.renders[rid] = meta
        self.counters.render_ms.append(float(result["ms"]))
        del self.counters.render_ms[:-500]
        return {"render": rid, **meta}

    def image(self, render_id: str) -> bytes:
        """A headshot's JPEG bytes (REVIEW or DELIVERY). The caller sends them and keeps nothing."""
        with self._lock:
            s = self._need(Phase.REVIEW, Phase.DELIVERY)
            if render_id not in s.renders:
                raise KioskError("that photo is not available", code="unknown_render", status=404)
            return bytes(self._call(s, "image", object_id=render_id))

    def deliver(self, render_id: str) -> dict[str, Any]:
        """REVIEW -> DELIVERY: make a one-time link for one headshot. Returns ``url`` and ``expires_in``;
        the token inside the URL exists only in the QR code and here until the visit ends."""
        with self._lock:
            s = self._need(Phase.REVIEW)
            if render_id not in s.renders:
                raise KioskError("that photo is not available", code="unknown_render", status=404)
            jpeg = bytes(self._call(s, "image", object_id=render_id))
            if self.deliveries is None:
                raise WorkerFailed("the kiosk is not started")
            s.delivery = self.deliveries.create(jpeg)
            del jpeg
            s.delivered_render = render_id
            s.phase = advance(s.phase, Phase.DELIVERY)
            s.last_activity = self.clock()
            return {"url": self.delivery_url(), "expires_in": self.delivery_expires_in(), **self._view()}

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
            receipt = self._wipe(WipeReason.FINISHED)
            return {"receipt": receipt.code, **self._view()}

    def delete_now(self) -> dict[str, Any]:
        """ "Delete now": wipe everything, the pending delivery included."""
        with self._lock:
            self._need_any()
            receipt = self._wipe(WipeReason.DELETED_BY_GUEST, revoke_delivery=True)
            return {"receipt": receipt.code, **self._view()}

    def revoke(self) -> dict[str, Any]:
        """The guest withdraws consent: same as delete-now, recorded as a revocation."""
        with self._lock:
            self._need_any()
            receipt = self._wipe(WipeReason.CONSENT_REVOKED, revoke_delivery=True)
            return {"receipt": receipt.code, **self._view()}

    # -- state -----------------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The session as the guest UI shows it (JSON-ready). ``held`` is read from the store itself."""
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
                    "receipt": self._last_receipt.code,
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
            "delivery": None if s.delivery is None else {"expires_in": self.delivery_expires_in()},
            "paused": self._paused,
        }

    def _held(self, s: _Session) -> list[dict[str, Any]]:
        if s.worker is None:
            return []
        try:
            items = list(s.worker.call("inventory"))
        except (WorkerDied, WorkerRequestError):
            return []
        if s.delivery is not None:
            items.append(
                {
                    "id": "delivery",
                    "kind": "delivery",
                    "bytes": s.renders.get(s.delivered_render or "", {}).get("bytes", 0),
                    "created": s.delivery.expires_at - self.cfg.delivery.window_minutes * 60,
                    "expires": s.delivery.expires_at,
                }
            )
        return items

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
            if self._spare is not None and self._spare.exited():
                logger.error("warm worker died; starting another")
                self._spare = None
            if self.deliveries is not None:
                self.deliveries.purge_expired()
            healthy = self._spare is not None or self._spawning or self._session is not None
        if self._session is None:
            self._spawn_spare()
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
                    camera = dict(s.worker.call("camera_state"))
                except (WorkerDied, WorkerRequestError):
                    camera = {"state": "unknown"}
            usage = self.store.usage()
            return {
                "phase": s.phase.value if s is not None else "idle",
                "paused": self._paused,
                "camera": camera,
                "worker": {
                    "spare_ready": self._spare is not None,
                    "session_worker": s is not None and s.worker is not None and not s.worker.exited(),
                    "spare_error": self._spare_error,
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

    def _call(self, s: _Session, op: str, **args: Any) -> Any:
        if s.worker is None:
            raise NotAllowed("the camera is not on yet")
        try:
            return s.worker.call(op, **args)
        except WorkerRequestError as exc:
            status = 422 if exc.code == "no_face" else 503 if exc.code == "camera" else 409
            raise KioskError(str(exc), code=exc.code, status=status) from None
        except WorkerDied as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> NoReturn:
        """Any worker failure ends the visit: wipe, tell the guest, recover by itself."""
        s = self._session
        sid = s.id if s is not None else "-"
        logger.error("session %s: worker failed (%s); wiping", sid, exc.__class__.__name__)
        self.counters.errors += 1
        self._last_error = "worker_failed"
        if s is not None:
            self._wipe(WipeReason.WORKER_DIED if isinstance(exc, WorkerDied) else WipeReason.ERROR)
        raise WorkerFailed(
            "something went wrong with the camera or the photo engine; your photos were deleted"
        )

    def _wipe(self, reason: WipeReason, *, revoke_delivery: bool = False) -> Receipt:
        """WIPE: end the worker (it unlinks its files and destroys its key), remove the session's files
        by id as a backstop, forget everything, back to IDLE. Never raises."""
        s = self._session
        if s is None:
            raise NoSession("there is no visit in progress")
        t0 = time.perf_counter()
        s.phase = Phase.WIPE
        if s.worker is not None:
            try:
                s.worker.wipe()
            except (WorkerDied, WorkerRequestError):
                s.worker.kill()
        try:
            self.store.wipe_session(s.id)
        except Exception:  # the failsafe must finish: log the class, never the contents
            logger.exception("session %s: store wipe failed", s.id)
        if revoke_delivery and s.delivery is not None and self.deliveries is not None:
            self.deliveries.revoke(s.delivery.token)
        receipt = Receipt(s.receipt, reason, dict(s.choices), s.started_wall, self.wall())
        s.delivery = None
        s.choices.clear()
        s.renders.clear()
        s.takes.clear()
        self._session = None
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
        self._last_receipt = receipt
        logger.info("session %s wiped (%s) in %.1f ms", s.id, reason.value, elapsed)
        if self.on_receipt is not None:
            try:
                self.on_receipt(receipt)
            except Exception:
                logger.exception("could not record the consent receipt")
        return receipt

    def session_dirs(self) -> list[str]:
        """Session directories present in the store (tests and the dashboard's sanity check)."""
        return [d for d in self.store.session_ids() if _SESSION_DIR.match(d)]
