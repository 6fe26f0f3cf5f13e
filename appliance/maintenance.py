"""Pausing for an over-the-air update without interrupting a guest.

An updater (the Mender Update Module in
``fleet/mender``, running as root outside the kiosk's sandbox) asks for a pause by creating
:data:`UPDATE_REQUEST`; the facade's tick (``Kiosk.tick``, twice a second) notices it, pauses the kiosk the
way staff do (no new visit starts; a visit in progress runs to its normal end) and, once no visit is left,
reports itself ready for the update. The updater reads that answer from ``/metrics`` on loopback
(``headshot_kiosk_update_ready``), installs, and removes the request; the kiosk then resumes, unless staff
had paused it before the request came.

Why a file and ``/metrics``, not an API call: the request must work while the kiosk is busy or restarting
and needs no credentials (it carries no data: its existence is the whole message); the kiosk's unit makes
the file system read-only for it (``ProtectSystem=strict``) and its ``/run/headshot-kiosk`` is a private
tmpfs nobody else sees, so the answer goes over the loopback scrape the fleet agent already makes.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

logger = logging.getLogger("appliance.maintenance")

# Created by the updater (root, directory mode 0755); the kiosk only reads whether it exists.
UPDATE_REQUEST = Path("/run/headshot-kiosk-update/pause")


class _Pausable(Protocol):
    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def is_paused(self) -> bool: ...

    def has_visit(self) -> bool: ...


class MaintenanceWatch:
    """Follows :data:`UPDATE_REQUEST` (or ``request``) once per :meth:`check`; thread-safe to read.

    ``ready`` is True while a request is pending, the kiosk is paused and no visit is in progress: from
    then on no visit can start until the request goes (a staff "resume" during an update is undone on the
    next tick, and logged)."""

    def __init__(self, request: Path = UPDATE_REQUEST) -> None:
        self.request = request
        self._lock = threading.Lock()
        self._holding = False  # we paused the kiosk (staff had not)
        self._requested = False
        self._ready = False

    @property
    def requested(self) -> bool:
        with self._lock:
            return self._requested

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    def _exists(self) -> bool:
        try:
            return self.request.exists()
        except OSError:  # an unreadable directory is no request: never pause on a guess
            return False

    def check(self, kiosk: _Pausable) -> None:
        """One tick: pause on a new request, report readiness, resume when the request is gone.

        Called from the facade's tick only (one caller at a time). The kiosk's methods take the facade's
        lock, and ``Kiosk.health`` reads :attr:`ready` under that lock: so the kiosk is asked here without
        this watch's lock held, which is taken only to publish the flags (the other order deadlocked)."""
        requested = self._exists()
        with self._lock:
            was_requested, holding = self._requested, self._holding
        if not requested and not was_requested:
            return  # the usual tick: no request, nothing to undo
        ready = False
        if requested:
            paused = kiosk.is_paused()
            if not was_requested:
                holding = not paused
                logger.info("update requested: pausing the kiosk once the current visit (if any) ends")
            elif not paused:
                logger.warning("update pending: the kiosk was resumed; pausing it again")
                holding = True
            if not paused:
                kiosk.pause()
            # Read after pausing: a visit that started before the pause is still seen here, and none
            # can start after it.
            ready = not kiosk.has_visit()
            if ready and not self.ready:
                logger.info("update may proceed: kiosk paused and idle")
        else:
            if holding:
                kiosk.resume()
            kept = "resumed" if holding else "staff pause kept"
            logger.info("update request withdrawn: %s", kept)
            holding = False
        with self._lock:
            self._requested, self._holding, self._ready = requested, holding, ready
