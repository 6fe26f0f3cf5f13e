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

The staff camera check (``appliance.camera_check``) follows the same rules with its own worker; a guest
visit that starts ends it at once, and the check is refused while a visit is in progress.

Printing (``[print] enabled``, ``appliance.printing``): the visit's worker lays a headshot out and submits it
to CUPS itself; the facade checks the limits, follows the jobs through the worker, and at WIPE purges
whatever is still on the queue after the worker is gone (a worker killed before it could). A printer
problem is a failed print, never an error that ends the visit.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

from appliance.camera_check import CameraChecks
from appliance.camera_presence import camera_present
from appliance.config import KioskConfig
from appliance.delivery import MAX_BUNDLE_PHOTOS, SINGLE_NAME, DeliveryStore, pack_photos
from appliance.errors import (
    CAPTURE_REFUSED,
    Busy,
    ConsentRequired,
    KioskError,
    KioskPaused,
    NoSession,
    NotAllowed,
    NotFound,
    PrintDisabled,
    PrinterUnavailable,
    PrintLimit,
    RetakeLimit,
    SessionActive,
    VisitEnded,
    WorkerFailed,
    WorkerRefused,
)
from appliance.hardening import set_non_dumpable
from appliance.lifecycle import GUEST_IDLE_PHASES, Phase, WipeReason, advance, timeout_for, timeout_reason
from appliance.maintenance import UPDATE_REQUEST, MaintenanceWatch
from appliance.print_ipp import IppError
from appliance.printing import CupsQueue, PrinterMonitor, PrinterState
from appliance.store import Backing, SessionStore, new_session_id
from appliance.systemd import Notifier
from appliance.views import (
    CameraCheckFrame,
    Captured,
    Delivered,
    Ended,
    Headshot,
    Health,
    LastVisit,
    PreviewFrame,
    PrintView,
    VisitView,
    WorkerHealth,
)
from appliance.visit import Counters, Receipt, Visit, print_view, receipt_code, valid_choices, visit_view
from appliance.workerclient import CameraState, SparePool, WorkerClient, WorkerDied, WorkerRequestError
from appliance.workerproc import WorkerProcess

logger = logging.getLogger(__name__)
T = TypeVar("T")

DELIVERIES_DIR = "deliveries"
_SESSION_DIR = re.compile(r"^[0-9a-f]{16,64}$")


# How long a wipe waits for a worker to finish a short request (a preview frame, the inventory) and take
# the ordinary wipe request, before cancelling it. Captures and renders are cancelled at once.
WIPE_WAIT_IDLE_SECONDS = 0.25
# How long to wait for a worker to load its models (the first one after boot builds/loads every engine).
SPARE_WAIT_SECONDS = 180.0
PURGE_RETRY_SECONDS = 10.0  # a failed purge of the print queue is tried again this often while idle
# The main process's own CUPS calls (the printer's state, the backstop purge at WIPE) run under the facade's
# lock or on the dashboard's request: a hung cupsd may hold them this long, never longer.
PRINT_CALL_TIMEOUT_SECONDS = 2.0
_UNFINISHED_PRINTS = ("queued", "printing")


def _image_of(render_id: str) -> Callable[[WorkerClient], bytes]:
    """A worker request for one headshot's JPEG (bound now, not when a loop variable has moved on)."""
    return lambda w: w.image(render_id)


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
        update_request: Path = UPDATE_REQUEST,
    ) -> None:
        """``update_request``: the file an updater creates to pause the kiosk between visits
        (:mod:`appliance.maintenance`)."""
        self.cfg = cfg
        self.clock = clock
        self.wall = wall
        self.notifier = notifier or Notifier(None)
        self.on_receipt = on_receipt
        self.log_level = log_level
        self.store = SessionStore(cfg.store.path, size_mib=cfg.store.size_mib, clock=wall)
        self.deliveries: DeliveryStore | None = None
        self._lock = threading.RLock()
        self._visit: Visit | None = None
        self.spares = SparePool(self._start_worker)
        self.camera_checks = CameraChecks(
            self._lock,
            self.spares,
            clock,
            lambda: self._visit is not None,
            spare_wait_seconds=SPARE_WAIT_SECONDS,
        )
        self._paused = False
        self.maintenance = MaintenanceWatch(update_request)
        self._purge_owed = False  # a wipe's print-queue purge failed: retried while idle
        self._purge_retry_at = 0.0
        self._last_receipt: Receipt | None = None
        self._last_receipt_recorded = False
        self._last_error: str | None = None
        self.counters = Counters()
        self.started_at = clock()
        self._closed = False
        # Printing (off by default): the queue for the main process's own calls, and the printer's state.
        self.print_queue: CupsQueue | None = None
        if cfg.print.enabled:
            self.print_queue = CupsQueue(
                str(cfg.print.cups_socket), cfg.print.queue, timeout_seconds=PRINT_CALL_TIMEOUT_SECONDS
            )
        self.printer = PrinterMonitor(self.print_queue)

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
        # A main process that died mid-print left its visit's jobs in CUPS; no visit is in progress now.
        self._purge_print_queue("start")
        self.spares.spawn()
        if wait_for_worker:
            self.wait_for_spare()

    def wait_for_spare(self, timeout: float = SPARE_WAIT_SECONDS) -> None:
        """Block until the warm worker is loaded; ``WorkerFailed`` if it cannot start."""
        self.spares.wait(timeout)

    def _start_worker(self) -> WorkerProcess:
        return WorkerProcess(self.cfg, str(self.store.path), log_level=self.log_level)

    def close(self) -> None:
        """Wipe any session, stop every worker, unmount the store. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self.notifier.stopping()
            if self._visit is not None:
                self._wipe(WipeReason.SHUTDOWN)
            self._closed = True
        self.camera_checks.close()
        self.spares.close()  # a spare still loading is killed by its thread once it is ready
        self.store.close()

    # -- guest operations -----------------------------------------------------------------------------------

    def start_session(self) -> VisitView:
        """IDLE -> CONSENT. Nothing is captured and the camera stays closed until consent."""
        with self._lock:
            if self._paused:
                raise KioskPaused("the kiosk is paused by staff")
            if self._visit is not None:
                raise SessionActive("a visit is already in progress")
            sid = new_session_id()
            self._visit = Visit(sid, receipt_code(), self.wall(), self.clock())
            self.counters.started += 1
            logger.info("session %s started", sid)
            check = self.camera_checks.detach()  # the guest always wins over a staff camera check
            view = self._view()
        if check is not None:
            # Ended before this returns (outside the lock), so the camera is closed before consent opens it.
            self.camera_checks.end(check, "guest visit started")
        return view

    def consent(self, accept: bool, choices: Mapping[str, bool] | None = None) -> VisitView:
        """CONSENT -> PREVIEW (camera opens) or, on decline, WIPE -> IDLE with nothing captured.

        ``choices`` answers the event's optional choices (``[event] consent_choices``): only offered ids,
        only booleans (``BadChoices`` otherwise); an offered choice left out is a no."""
        with self._lock:
            s = self._need(Phase.CONSENT)
            self._not_busy(s)
            s.choices = answers = valid_choices(self.cfg.event.consent_choices, choices or {})
            s.last_activity = self.clock()
            if not accept:
                self._wipe(WipeReason.CONSENT_DECLINED)
                return self._view()
            s.busy = "consent"
        # Waiting for the warm worker happens only if a guest arrives within seconds of the previous wipe;
        # it happens without the lock, so Delete now, a staff abort or the idle wipe can end this visit now.
        try:
            process = self.spares.take(SPARE_WAIT_SECONDS)
        except KioskError:
            with self._lock:
                if self._visit is s:
                    self._last_error = "worker_failed"
                    self._wipe(WipeReason.ERROR)
            raise
        with self._lock:
            if self._visit is not s:
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

    def preview_frame(
        self, *, background: str | None = None, mirror: bool = False, seated: bool = False
    ) -> PreviewFrame:
        """One live-preview JPEG with pose guidance. The bytes are the caller's to send and forget.
        ``mirror``: flipped left to right in the worker (0.2 ms a 1280×720 frame). ``seated``: the page
        shows the seated mode's lower face outline, and the guidance aims for it. Raises (``VisitEnded``)
        rather than return a frame of a visit wiped while the worker made it."""
        with self._lock:
            s = self._visit
            if s is None or s.phase in (Phase.CONSENT, Phase.IDLE):
                raise ConsentRequired("the camera is only on after consent")
            if s.phase not in (Phase.PREVIEW, Phase.COUNTDOWN):
                raise NotAllowed("the live preview is not showing now")
            if background is not None:
                self._check_background(background)
        frame = self._worker_call(s, lambda w: w.frame(background=background, mirror=mirror, seated=seated))
        with self._lock:
            self._still(s)  # a frame of a visit wiped meanwhile is not shown to anybody
        return frame

    def touch(self) -> None:
        """The guest did something (the UI pings on every tap); resets the idle timer of a phase that waits
        for the guest. Not the capture's and the render's failsafe: taps on the screen while the camera or
        the engine is stuck must not keep the visit (and the camera) held."""
        with self._lock:
            if self._visit is not None and self._visit.phase in GUEST_IDLE_PHASES:
                self._visit.last_activity = self.clock()

    def capture(self) -> Captured:
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
                if self._visit is s:
                    s.busy = None
                    if exc.code in CAPTURE_REFUSED:  # nothing kept: back to the live preview
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
                if self._visit is s:  # the take is kept; the guest can try another render in review
                    s.phase = advance(s.phase, Phase.REVIEW)
                    s.busy = None
        with self._lock:
            self._still(s)
            s.last_activity = self.clock()
            return Captured(take, first, self._view())

    def retake(self) -> VisitView:
        """REVIEW -> PREVIEW: back to the live camera for another photo (within ``max_takes``)."""
        with self._lock:
            s = self._need(Phase.REVIEW)
            self._not_busy(s)
            if len(s.takes) >= self.cfg.session.max_takes:
                raise RetakeLimit(f"you have used all {self.cfg.session.max_takes} photos")
            s.phase = advance(s.phase, Phase.PREVIEW)
            s.last_activity = self.clock()
            return self._view()

    def render(self, take: str, background: str, preset: str) -> Headshot:
        """Another headshot of a take with another background/preset (REVIEW only)."""
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

    def _render(self, s: Visit, take: str, background: str, preset: str) -> Headshot:
        """Render (or reuse) one headshot of ``s``. Called without the lock; records under it."""
        with self._lock:
            made = s.headshot_like(take, background, preset)
            if made is not None:
                return made
        result = self._worker_call(s, lambda w: w.render(take_id=take, background=background, preset=preset))
        with self._lock:
            self._still(s)
            headshot = Headshot(result.render, take, background, preset, result.bytes)
            s.headshots[headshot.id] = headshot
            self.counters.rendered(result.ms)
            return headshot

    def image(self, render_id: str) -> bytes:
        """A headshot's JPEG bytes (REVIEW or DELIVERY). The caller sends them and keeps nothing."""
        with self._lock:
            s = self._need(Phase.REVIEW, Phase.DELIVERY)
            if render_id not in s.headshots:
                raise NotFound("that photo is not available", code="unknown_render")
        jpeg = self._worker_call(s, lambda w: w.image(render_id))
        with self._lock:
            self._still(s)  # never hand out a headshot of a visit that was deleted meanwhile
        return jpeg

    def deliver(self, render_id: str, also_presets: Sequence[str] = ()) -> Delivered:
        """REVIEW -> DELIVERY: make a one-time link for one headshot, with a fresh nonce for the QR image's
        URL; the token inside the URL exists only in the QR code and here until the visit ends. A wipe while
        the link is made revokes it before anyone can use it.

        ``also_presets``: other crops of the same photo and background the guest wants too (e.g. the badge
        besides the square; issue 15.4). They are rendered now where not yet made and travel through the
        same one link (``appliance.delivery.pack_photos``): one QR, one download, one spend."""
        with self._lock:
            s = self._need(Phase.REVIEW)
            self._not_busy(s)
            if render_id not in s.headshots:
                raise NotFound("that photo is not available", code="unknown_render")
            main = s.headshots[render_id]
            extra = list(dict.fromkeys(p for p in also_presets if p != main.preset))
            if any(p not in self.cfg.event.presets for p in extra) or len(extra) >= MAX_BUNDLE_PHOTOS:
                raise KioskError(
                    f"also_presets must be other crops among {', '.join(self.cfg.event.presets)}",
                    code="bad_preset",
                )
            deliveries = self.deliveries
            if deliveries is None:
                raise WorkerFailed("the kiosk is not started")
            s.busy = "deliver"
        try:
            chosen = [main, *(self._render(s, main.take, main.background, p) for p in extra)]
            photos = [
                (f"headshot-{h.preset}.jpg" if extra else SINGLE_NAME, self._worker_call(s, _image_of(h.id)))
                for h in chosen
            ]
            ticket = deliveries.create(pack_photos(photos))
            del photos
        finally:
            with self._lock:
                if self._visit is s:
                    s.busy = None
        with self._lock:
            if self._visit is not s or s.phase is not Phase.REVIEW:
                deliveries.revoke(ticket.token)
                raise VisitEnded("the visit ended before its link was shown")
            s.delivery = ticket
            s.delivered = render_id
            s.qr_nonce = secrets.token_hex(8)
            s.phase = advance(s.phase, Phase.DELIVERY)
            s.last_activity = self.clock()
            return Delivered(self.delivery_url(), self.delivery_expires_in(), s.qr_nonce, self._view())

    def print_headshot(self, render_id: str) -> PrintView:
        """Print a headshot of this visit (REVIEW or DELIVERY, ``[print] enabled`` only): the worker lays it
        out and queues it on its print thread, which sends it to CUPS; returns at once with the job
        ``queued``, and ``state()`` follows it. ``PrintDisabled`` where the event offers no printing,
        ``PrintLimit`` past the guest's or the event's prints, ``PrinterUnavailable`` while the printer is
        out of media or offline. None of them touches the visit: the phone delivery works regardless."""
        if not self.cfg.print.enabled:
            raise PrintDisabled("printing is not offered at this event")
        printer = self.printer.status()  # outside the lock: it may ask CUPS
        with self._lock:
            s = self._need(Phase.REVIEW, Phase.DELIVERY)
            if render_id not in s.headshots:
                raise NotFound("that photo is not available", code="unknown_render")
            if s.print_pending:
                raise Busy("please wait: your print is being sent")
            if self._purge_owed:
                raise PrinterUnavailable(
                    "the printer cannot print right now; your photo can still go to your phone",
                    code="printer_offline",
                )
            if len(s.prints) >= self.cfg.print.copies_per_guest:
                raise PrintLimit("you have used all your prints")
            if self.counters.prints_submitted >= self.cfg.print.max_prints_per_event:
                raise PrintLimit("the prints of this event are used up")
            if printer.state in (PrinterState.OUT_OF_MEDIA, PrinterState.OFFLINE):
                raise PrinterUnavailable(
                    "the printer cannot print right now; your photo can still go to your phone",
                    code=f"printer_{printer.state.value}",
                )
            s.print_pending = True
            s.last_activity = self.clock()
        try:
            job = self._worker_call(s, lambda w: w.print_headshot(object_id=render_id))
        except BaseException:
            with self._lock:
                if self._visit is s:
                    s.print_pending = False
            raise
        with self._lock:
            # The flag drops only together with counting the job: a second tap in between would pass the
            # limits with the old counts (found in review).
            if self._visit is s:
                s.print_pending = False
            # A wipe meanwhile closed the worker's print thread first: the job was cancelled and purged.
            self._still(s)
            s.prints.append(job)
            s.print_created[job.job] = self.wall()
            self.counters.prints_submitted += 1
            logger.info("session %s: print %s queued", s.id, job.job)
            view = print_view(s, self.cfg, event_prints_left=self._event_prints_left())
            assert view is not None  # printing is enabled
            return view

    def _event_prints_left(self) -> int:
        return max(0, self.cfg.print.max_prints_per_event - self.counters.prints_submitted)

    def _refresh_prints(self, s: Visit) -> None:
        """Read the visit's prints from its worker (never waiting behind a render) and count the ones that
        ended since the last read. Hold the lock."""
        if s.worker is None or not any(p.status in _UNFINISHED_PRINTS for p in s.prints):
            return
        try:
            jobs = s.worker.print_jobs_if_idle()
        except (WorkerDied, WorkerRequestError):
            return
        if jobs is None:
            return
        before = {p.job: p.status for p in s.prints}
        for job in jobs:
            if before.get(job.job) in _UNFINISHED_PRINTS and job.status != before[job.job]:
                if job.status == "completed":
                    self.counters.prints_completed += 1
                elif job.status == "failed":
                    self.counters.prints_failed += 1
                logger.info("session %s: print %s %s", s.id, job.job, job.status)
        known = {p.job for p in s.prints}
        s.prints = [job for job in jobs if job.job in known]

    def _purge_print_queue(self, why: str) -> None:
        """Cancel and purge every unfinished job on the kiosk's queue (no visit's worker is alive: at start,
        and at WIPE after the worker ended). Logs, never raises: a missing CUPS holds no job either."""
        if self.print_queue is None:
            return
        try:
            purged = self.print_queue.purge_unfinished()
        except IppError as exc:
            # Owed: retried on every idle tick, and no print is taken until it succeeds, so a job of an
            # ended visit can never come out of the printer for the next guest (found in review).
            self._purge_owed = True
            logger.warning("print queue not purged at %s: %s", why, exc)
            return
        self._purge_owed = False
        if purged:
            logger.warning("purged %d unfinished print job(s) at %s", purged, why)

    def qr_nonce(self) -> str | None:
        """The current delivery's QR nonce (``deliver``'s ``qr``), or None without a delivery."""
        with self._lock:
            s = self._visit
            return None if s is None or s.delivery is None else s.qr_nonce

    def delivery_url(self) -> str | None:
        with self._lock:
            s = self._visit
            if s is None or s.delivery is None:
                return None
            return s.delivery.url(self.cfg.delivery.public_host, self.cfg.delivery.port)

    def delivery_expires_in(self) -> int:
        with self._lock:
            s = self._visit
            if s is None or s.delivery is None:
                return 0
            return max(0, int(s.delivery.expires_at - self.wall()))

    def end(self) -> Ended:
        """The guest is done: wipe everything of the visit except the pending delivery, which stays
        (encrypted, keyless on the kiosk) until its window ends."""
        with self._lock:
            self._need(Phase.REVIEW, Phase.DELIVERY)
            return Ended(self._wipe(WipeReason.FINISHED), self._view())

    def delete_now(self) -> Ended:
        """ "Delete now": wipe everything, the pending delivery included — at any moment, a capture or a
        render under way included (it is cancelled in the worker and nothing of it is kept).

        ``receipt`` is the code the guest may keep, or None if the receipt could not be recorded (the
        page then says so rather than show a code that proves nothing)."""
        with self._lock:
            self._need_any()
            receipt = self._wipe(WipeReason.DELETED_BY_GUEST, revoke_delivery=True)
            return Ended(receipt, self._view())

    def revoke(self) -> Ended:
        """The guest withdraws consent: same as delete-now, recorded as a revocation."""
        with self._lock:
            self._need_any()
            receipt = self._wipe(WipeReason.CONSENT_REVOKED, revoke_delivery=True)
            return Ended(receipt, self._view())

    # -- state -----------------------------------------------------------------------------------------------

    def state(self) -> VisitView:
        """The visit as the guest UI shows it. ``held`` is read from the store itself (as of the worker's
        last answer while it is busy capturing or rendering); each item's ``expires`` is when the kiosk
        deletes it if the guest does nothing more (``appliance.retention``)."""
        with self._lock:
            return self._view()

    def _view(self) -> VisitView:
        s = self._visit
        if s is None:
            last = self._last_receipt
            return VisitView(
                phase=Phase.IDLE.value,
                visit=None,
                paused=self._paused,
                last_visit=None
                if last is None
                else LastVisit(last.code if self._last_receipt_recorded else None, last.outcome.value),
                error=self._last_error,
            )
        if s.worker is not None:
            try:
                items = s.worker.inventory_if_idle()
            except (WorkerDied, WorkerRequestError):
                items = None
            if items is not None:
                s.held = items
            self._refresh_prints(s)
        return visit_view(
            s,
            self.cfg,
            now=self.clock(),
            wall=self.wall(),
            paused=self._paused,
            event_prints_left=self._event_prints_left(),
        )

    # -- timers and health -----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Enforce idle timeouts, notice dead workers, purge expired links, keep a spare warm, feed the
        watchdog. Called from the ``run`` loop; cheap."""
        with self._lock:
            if self._closed:
                return
            s = self._visit
            if s is not None:
                if s.worker is not None and s.worker.exited():
                    self.counters.worker_deaths += 1
                    logger.error("session %s worker died", s.id)
                    self._last_error = "worker_died"
                    self._wipe(WipeReason.WORKER_DIED)
                else:
                    self._refresh_prints(s)
                    timeout = timeout_for(s.phase, self.cfg.session)
                    if timeout is not None and self.clock() - s.last_activity > timeout:
                        logger.info("session %s timed out in %s", s.id, s.phase.value)
                        self._wipe(timeout_reason(s.phase))
            self.spares.check()
            if self.deliveries is not None:
                self.deliveries.purge_expired()
            healthy = self.spares.ready or self.spares.spawning or self._visit is not None
        self.camera_checks.expire()
        if self._purge_owed and self._visit is None and self.clock() >= self._purge_retry_at:
            # Every 10 s, not every tick: a hung cupsd costs the IPP timeout (5 s) per try.
            self._purge_retry_at = self.clock() + PURGE_RETRY_SECONDS
            self._purge_print_queue("retry")
        self.maintenance.check(self)  # an updater's pause request (outside the lock: it takes it)
        if self._visit is None:
            self.spares.spawn()
        self.notifier.status(self.status_line())
        if healthy:
            self.notifier.watchdog()

    def status_line(self) -> str:
        """systemd STATUS=: phase and counts, nothing personal."""
        c = self.counters
        phase = self._visit.phase.value if self._visit is not None else "idle"
        return f"{phase}; sessions {c.started} started, {c.completed} completed, {c.wipes} wiped"

    # -- staff -----------------------------------------------------------------------------------------------

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def is_paused(self) -> bool:
        with self._lock:
            return self._paused

    def has_visit(self) -> bool:
        """Whether a guest visit is in progress (any phase but idle)."""
        with self._lock:
            return self._visit is not None

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
            if require_idle and (not self._paused or self._visit is not None):
                raise NotAllowed("pause the kiosk and wait until no visit is in progress")
            fixed = ("camera", "store", "ui", "session", "engine", "staff", "audit", "print")
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

    def refuse_camera_check(self) -> None:
        """``SessionActive`` while a guest visit is in progress (the camera check page then answers 409)."""
        self.camera_checks.refuse_during_visit()

    def start_camera_check(self) -> int:
        """Start (or join) the staff camera check; returns the viewer id for ``end_camera_check``. Refused
        with ``SessionActive`` while a guest visit is in progress (``appliance.camera_check``)."""
        return self.camera_checks.start()

    def camera_check_frame(self) -> CameraCheckFrame:
        """The check's next frame: every person a flat silhouette, with the set-up readings. The bytes are
        the caller's to send and forget; ``VisitEnded`` once the check has ended."""
        return self.camera_checks.frame()

    def end_camera_check(self, viewer: int) -> None:
        """A page showing the check went away; the last one ends it (worker ended, camera closed)."""
        self.camera_checks.leave(viewer)

    def staff_abort(self) -> bool:
        """Abort the current visit (wipes it). Returns whether there was one."""
        with self._lock:
            if self._visit is None:
                return False
            self.counters.staff_aborts += 1
            self._wipe(WipeReason.STAFF_ABORT, revoke_delivery=True)
            return True

    def health(self) -> Health:
        """Counts, timings and states for the staff dashboard and /metrics; never session contents."""
        printer = self.printer.status()  # outside the lock: it may ask CUPS (cached for a few seconds)
        with self._lock:
            s = self._visit
            camera = CameraState("closed")
            alive = s is not None and s.worker is not None and not s.worker.exited()
            if s is not None and s.worker is not None and alive:
                try:
                    state = s.worker.camera_state_if_idle()
                    if state is not None:
                        s.camera = state
                except (WorkerDied, WorkerRequestError):
                    s.camera = CameraState("unknown")
                camera = s.camera  # as last read while the worker is capturing or rendering
            if s is None and self.camera_checks.running:
                camera = CameraState("check")  # open for the staff camera check, showing no one
            spares = self.spares
            return Health(
                phase=s.phase.value if s is not None else "idle",
                paused=self._paused,
                camera=camera,
                worker=WorkerHealth(spares.ready, alive, spares.error, spares.engine_backend),
                counters=self.counters.counts(),
                render_ms=tuple(self.counters.render_ms),
                wipe_ms=tuple(self.counters.wipe_ms),
                store=self.store.usage(),
                deliveries_pending=self.deliveries.pending() if self.deliveries is not None else 0,
                uptime_seconds=round(self.clock() - self.started_at, 1),
                printer=printer,
                camera_present=camera_present(self.cfg.camera),
                update_ready=self.maintenance.ready,
            )

    # -- internals -------------------------------------------------------------------------------------------

    def _need_any(self) -> Visit:
        if self._visit is None:
            raise NoSession("there is no visit in progress")
        return self._visit

    def _need(self, *phases: Phase) -> Visit:
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

    def _not_busy(self, s: Visit) -> None:
        if s.busy is not None:
            raise Busy(f"please wait: {s.busy} is still under way")

    def _still(self, s: Visit) -> None:
        """After a worker call made without the lock: the visit must still be the live one."""
        if self._visit is not s:
            raise VisitEnded("the visit ended while this was under way; nothing of it was kept")

    def _worker_call(self, s: Visit, request: Callable[[WorkerClient], T]) -> T:
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

    def _fail(self, s: Visit, exc: Exception) -> NoReturn:
        """Any worker failure ends the visit ``s`` (the live one; hold the lock): wipe, tell the guest,
        recover by itself."""
        logger.error("session %s: worker failed (%s); wiping", s.id, exc.__class__.__name__)
        self.counters.errors += 1
        self._last_error = "worker_failed"
        if self._visit is s:
            self._wipe(WipeReason.WORKER_DIED if isinstance(exc, WorkerDied) else WipeReason.ERROR)
        raise WorkerFailed(
            "something went wrong with the camera or the photo engine; your photos were deleted"
        )

    def _wipe(self, reason: WipeReason, *, revoke_delivery: bool = False) -> str | None:
        """WIPE: end the worker (it unlinks its files and destroys its key; a capture or render under way
        is cancelled), remove the session's files by id as a backstop, forget everything, back to IDLE.
        Returns the receipt code, or None if the receipt could not be recorded. Never raises otherwise."""
        s = self._visit
        if s is None:
            raise NoSession("there is no visit in progress")
        t0 = time.perf_counter()
        s.phase = Phase.WIPE
        # Detach first: a request of this visit still running sees it is gone (VisitEnded) whatever the
        # worker answers from here on.
        self._visit = None
        if s.worker is not None and not s.worker.end(wait_idle=WIPE_WAIT_IDLE_SECONDS):
            self.counters.cancelled_in_flight += 1
        if s.prints or s.print_pending:
            # The worker cancelled its jobs as it wiped, unless it was killed first: whatever of this visit
            # is still on the queue goes now (every earlier visit's jobs went at its own WIPE).
            self._purge_print_queue("wipe")
        try:
            self.store.wipe_session(s.id)
        except Exception:  # the failsafe must finish: log the class, never the contents
            logger.exception("session %s: store wipe failed", s.id)
        if revoke_delivery and s.delivery is not None and self.deliveries is not None:
            self.deliveries.revoke(s.delivery.token)
        receipt = Receipt(
            s.receipt, reason, None if s.choices is None else dict(s.choices), s.started_wall, self.wall()
        )
        s.forget()
        elapsed = (time.perf_counter() - t0) * 1000
        c = self.counters
        c.wiped(reason, elapsed)
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
