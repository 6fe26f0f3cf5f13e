"""The staff camera check as the facade runs it: the set-up seen live with every person a flat silhouette.

A check runs in a session worker like a visit: it claims the warm spare from the pool, opens the camera
without beginning any visit (no vault, no key, nothing stored), and asks for anonymised frames
(``WorkerClient.check_frame``; the pixels are made and hidden in the worker, see ``engine.anonymise``).
It ends as a visit's worker ends (``WorkerClient.end``: wiped on request, or cancelled), so the next guest
gets a fresh worker and the camera is closed. It ends when its last viewer leaves (the MJPEG stream's
generator closes), after ``IDLE_SECONDS`` without a frame request (``expire``, from the facade's
``tick``), when its worker dies, and at once when a guest visit starts (``detach`` + ``end``): the guest
always wins and is never refused because of a check.

Locking follows the facade (``appliance.kiosk``): the facade's lock guards ``CameraChecks._check`` and is
never held while the worker works (claiming the spare, opening the camera, making a frame, ending it).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from appliance.errors import KioskError, NotAllowed, SessionActive, VisitEnded, WorkerFailed, WorkerRefused
from appliance.workerclient import (
    CheckFrame,
    CheckReadings,
    SparePool,
    WorkerClient,
    WorkerDied,
    WorkerRequestError,
)

logger = logging.getLogger(__name__)

IDLE_SECONDS = 60.0  # a check nobody asked a frame of for this long is ended by ``expire``
END_WAIT_IDLE_SECONDS = 0.25  # as a visit's wipe (``appliance.kiosk.WIPE_WAIT_IDLE_SECONDS``)
ENDED = "the camera check ended (a guest visit started, it timed out, or its page was closed)"


class CameraCheck:
    """One running check: its worker (None while the spare is being claimed), its viewers and the time of
    the last frame request (the facade's monotonic clock). Guarded by the facade's lock."""

    def __init__(self, now: float) -> None:
        self.worker: WorkerClient | None = None
        self.viewers: set[int] = set()
        self.last_request = now
        self.started = now
        self.ready = threading.Event()  # set once the camera is open or the start failed
        self.opened = False
        self.readings: CheckReadings | None = None


class CameraChecks:
    """The facade's camera check: at most one at a time, shared by every staff page showing it.

    ``lock`` is the facade's lock, ``spares`` its pool, ``clock`` its monotonic clock; ``visit_active()``
    (called under the lock) says whether a guest visit is in progress; ``spare_wait_seconds`` bounds the
    wait for a worker that is still loading."""

    def __init__(
        self,
        lock: AbstractContextManager[Any],
        spares: SparePool,
        clock: Callable[[], float],
        visit_active: Callable[[], bool],
        *,
        spare_wait_seconds: float,
    ) -> None:
        self._lock = lock
        self._spares = spares
        self._clock = clock
        self._visit_active = visit_active
        self._spare_wait = spare_wait_seconds
        self._check: CameraCheck | None = None
        self._viewer_ids = itertools.count(1)
        self.closed = False

    @property
    def running(self) -> bool:
        with self._lock:
            return self._check is not None

    def refuse_during_visit(self) -> None:
        """``SessionActive`` (409) while a guest visit is in progress: the check never sees a guest."""
        with self._lock:
            if self._visit_active():
                raise SessionActive("a guest visit is in progress; check the camera when the kiosk is idle")

    def start(self) -> int:
        """Join the running check or start one (claim the spare, open the camera); returns a viewer id to
        hand to ``leave``. ``SessionActive`` during a visit; ``VisitEnded`` if a visit started meanwhile;
        ``WorkerFailed``/``WorkerRefused`` if no worker or camera could be had (nothing is left running)."""
        with self._lock:
            if self.closed:
                raise WorkerFailed("the kiosk is shutting down")
            if self._visit_active():
                raise SessionActive("a guest visit is in progress; check the camera when the kiosk is idle")
            viewer = next(self._viewer_ids)
            c = self._check
            if c is not None:
                c.viewers.add(viewer)
                c.last_request = self._clock()
                return viewer
            c = self._check = CameraCheck(self._clock())
            c.viewers.add(viewer)
        try:
            self._open(c)
        finally:
            c.ready.set()
        logger.info("camera check started")
        return viewer

    def _open(self, c: CameraCheck) -> None:
        try:
            process = self._spares.take(self._spare_wait)
        except KioskError:
            with self._lock:
                if self._check is c:
                    self._check = None
            raise
        with self._lock:
            if self._check is not c:
                # A guest came first: this worker began nothing and opened nothing, so it is the spare again.
                self._spares.give_back(process)
                raise VisitEnded(ENDED)
            c.worker = worker = WorkerClient(process)
        try:
            worker.open_check_camera()
        except (WorkerDied, WorkerRequestError) as exc:
            with self._lock:
                preempted = self._check is not c
                if not preempted:
                    self._check = None
            self.end(c, "failed to start")
            if preempted:
                raise VisitEnded(ENDED) from None
            if isinstance(exc, WorkerRequestError):
                raise WorkerRefused(str(exc), code=exc.code) from None
            raise WorkerFailed("the camera check could not start its worker") from None
        with self._lock:
            c.opened = True
            c.last_request = self._clock()
            if self._check is not c:
                raise VisitEnded(ENDED)

    def frame(self) -> CheckFrame:
        """The next anonymised frame of the running check. The bytes are the caller's to send and forget.
        ``VisitEnded`` once the check has ended (a guest visit started, a timeout): the stream stops."""
        with self._lock:
            c = self._check
            if c is None:
                raise NotAllowed("no camera check is running")
            c.last_request = self._clock()
        c.ready.wait(self._spare_wait)
        worker = c.worker
        if worker is None or not c.opened:
            raise VisitEnded(ENDED)
        try:
            shot = worker.check_frame()
        except WorkerRequestError as exc:
            raise WorkerRefused(str(exc), code=exc.code) from None
        except WorkerDied:
            with self._lock:
                mine = self._check is c
                if mine:
                    self._check = None
            if not mine:
                raise VisitEnded(ENDED) from None
            self.end(c, "worker died")
            raise WorkerFailed("the camera check's worker stopped; reload the page to start again") from None
        with self._lock:
            if self._check is not c:  # a guest visit started while this frame was made: not shown
                raise VisitEnded(ENDED)
            c.readings = shot.readings
        return shot

    def leave(self, viewer: int) -> None:
        """A page showing the check went away; the last one to go ends the check. Never raises."""
        with self._lock:
            c = self._check
            if c is None or viewer not in c.viewers:
                return
            c.viewers.discard(viewer)
            if c.viewers:
                return
            self._check = None
        self.end(c, "page closed")

    def detach(self) -> CameraCheck | None:
        """Take the running check away (call under the facade's lock); the caller ``end``s it after
        letting go of the lock. A request of the check still under way then learns it ended."""
        c, self._check = self._check, None
        return c

    def expire(self) -> None:
        """End a check nobody asked a frame of for ``IDLE_SECONDS``, or whose worker died (from ``tick``)."""
        with self._lock:
            c = self._check
            if c is None:
                return
            idle = self._clock() - c.last_request > IDLE_SECONDS
            dead = c.worker is not None and c.opened and c.worker.exited()
            if not (idle or dead):
                return
            self._check = None
        self.end(c, "timed out" if idle else "worker died")

    def close(self) -> None:
        """No more checks; end the running one."""
        with self._lock:
            self.closed = True
            c = self.detach()
        if c is not None:
            self.end(c, "shutdown")

    def end(self, c: CameraCheck, reason: str) -> None:
        """End a detached check's worker as a visit's wipe does (``WorkerClient.end``): the camera closes
        and the process exits; a frame under way is cancelled. Never raises."""
        worker = c.worker
        if worker is not None:
            worker.end(wait_idle=END_WAIT_IDLE_SECONDS)
        if not self.closed:  # the next guest's worker starts loading now, not at the next tick
            self._spares.spawn()
        logger.info("camera check ended (%s) after %.0f s", reason, self._clock() - c.started)
