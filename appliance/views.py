"""What the facade (``appliance.kiosk.Kiosk``) answers: frozen snapshots of a visit, never its live state.

Vocabulary, one word per thing (the pinned JSON API keeps its historical keys, noted on each field):
a *take* is a kept capture (the photo the camera took, JSON ``take``); a *headshot* is a rendered result of
a take with one background and preset (JSON ``render``); the *visit* is one guest from consent to wipe
(JSON ``session``). ``as_json()`` on each view is exactly the pinned JSON the guest API answers.

Nothing here holds pixels: a ``PreviewFrame``'s JPEG bytes are the caller's to send and forget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.printing import PrinterState, PrinterStatus
from appliance.store import StoreUsage
from appliance.vault import HeldItem
from appliance.workerclient import CameraState, CheckReadings
from appliance.workerclient import CheckFrame as CameraCheckFrame  # a staff camera-check frame (no person)
from appliance.workerclient import Frame as PreviewFrame  # a live-preview frame, as the worker made it

__all__ = [
    "CameraCheckFrame",
    "Captured",
    "CheckReadings",
    "Delivered",
    "DeliveryView",
    "Ended",
    "Headshot",
    "Health",
    "HeldItem",
    "LastVisit",
    "PreviewFrame",
    "PrintView",
    "PrinterStatus",
    "TakeView",
    "VisitView",
    "WorkerHealth",
]


@dataclass(frozen=True)
class TakeView:
    """A kept capture: its id and its number in the visit (1-based; the retake limit counts these)."""

    id: str
    number: int

    def as_json(self) -> dict[str, Any]:
        return {"take": self.id, "number": self.number}


@dataclass(frozen=True)
class Headshot:
    """A rendered headshot: ``id`` (JSON ``render``), the take it was made from, the background and
    preset chosen, and its JPEG size in bytes (held by the session worker, never by the main process)."""

    id: str
    take: str
    background: str
    preset: str
    bytes: int

    def as_json(self) -> dict[str, Any]:
        return {
            "render": self.id,
            "take": self.take,
            "background": self.background,
            "preset": self.preset,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class DeliveryView:
    """The pending one-time link: seconds until it expires and the QR image's per-delivery nonce."""

    expires_in: int
    qr: str | None

    def as_json(self) -> dict[str, Any]:
        return {"expires_in": self.expires_in, "qr": self.qr}


@dataclass(frozen=True)
class PrintView:
    """Printing in this visit (only where the event offers it): the latest print's kiosk job id and status
    (``queued``, ``printing``, ``completed``, ``failed``, ``cancelled``; both None before the first print),
    why it failed (a code, or None) and how many more prints the guest may make."""

    job: str | None
    status: str | None
    reason: str | None
    prints_left: int

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "status": self.status,
            "reason": self.reason,
            "prints_left": self.prints_left,
        }


@dataclass(frozen=True)
class LastVisit:
    """How the previous visit ended, for the page that asked to end it: the receipt code (None if the
    audit trail could not record it) and the outcome (``WipeReason`` value)."""

    receipt: str | None
    outcome: str

    def as_json(self) -> dict[str, Any]:
        return {"receipt": self.receipt, "outcome": self.outcome}


@dataclass(frozen=True)
class VisitView:
    """The visit as the guest page shows it, or the idle kiosk (``visit is None``).

    ``held`` is what the RAM store holds for the visit, each item's ``expires`` the epoch second the kiosk
    deletes it if the guest does nothing more. ``idle_seconds_left`` is None in phases without a timeout.
    ``idle_warning`` ("still there?") is only ever true in the phases that wait for the guest
    (``GUEST_IDLE_PHASES``), never during the capture's or the render's failsafe.
    Idle only: ``last_visit`` and ``error`` (``worker_failed``, ``worker_died``) of the visit that ended."""

    phase: str
    visit: str | None  # JSON "session"
    paused: bool
    held: tuple[HeldItem, ...] = ()
    takes: tuple[TakeView, ...] = ()
    headshots: tuple[Headshot, ...] = ()  # JSON "renders"
    receipt: str | None = None
    takes_left: int = 0
    idle_seconds_left: float | None = None
    idle_warning: bool = False
    delivery: DeliveryView | None = None
    last_visit: LastVisit | None = None
    error: str | None = None
    print: PrintView | None = None  # None where the event offers no printing (no "print" key in JSON)

    def as_json(self) -> dict[str, Any]:
        if self.visit is None:
            idle: dict[str, Any] = {
                "phase": self.phase,
                "session": None,
                "held": [],
                "takes": [],
                "renders": [],
                "paused": self.paused,
            }
            if self.last_visit is not None:
                idle["last_receipt"] = self.last_visit.as_json()
            if self.error is not None:
                idle["error"] = self.error
            return idle
        visit: dict[str, Any] = {
            "phase": self.phase,
            "session": self.visit,
            "receipt": self.receipt,
            "held": [dataclasses.asdict(item) for item in self.held],
            "takes": [t.as_json() for t in self.takes],
            "renders": [h.as_json() for h in self.headshots],
            "takes_left": self.takes_left,
            "idle_seconds_left": self.idle_seconds_left,
            "idle_warning": self.idle_warning,
            "delivery": None if self.delivery is None else self.delivery.as_json(),
            "paused": self.paused,
        }
        if self.print is not None:
            visit["print"] = self.print.as_json()
        return visit


@dataclass(frozen=True)
class Captured:
    """A capture kept as a take, with its first headshot (the event's default background and preset)."""

    take: str
    headshot: Headshot
    visit: VisitView

    def as_json(self) -> dict[str, Any]:
        return {"take": self.take, "render": self.headshot.id, **self.visit.as_json()}


@dataclass(frozen=True)
class Delivered:
    """A one-time link was made: its URL (the token inside exists only here and in the QR code), its
    lifetime in seconds and the QR image's nonce."""

    url: str | None
    expires_in: int
    qr: str | None
    visit: VisitView

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "expires_in": self.expires_in, "qr": self.qr, **self.visit.as_json()}


@dataclass(frozen=True)
class Ended:
    """A visit ended at the guest's request: the receipt code, or None if it could not be recorded."""

    receipt: str | None
    visit: VisitView

    def as_json(self) -> dict[str, Any]:
        return {"receipt": self.receipt, **self.visit.as_json()}


@dataclass(frozen=True)
class WorkerHealth:
    """The session workers: a warm spare loaded, a visit's worker alive, the spare's last start error, and
    the inference runtime the last worker actually loaded (``tensorrt``/``onnxruntime``; None before)."""

    spare_ready: bool
    session_worker: bool
    spare_error: str | None
    engine_backend: str | None


@dataclass(frozen=True)
class Health:
    """Counts, timings (milliseconds, the last 500) and states for the staff dashboard and ``/metrics``;
    never a visit's contents. ``uptime_seconds`` is since the facade was made."""

    phase: str
    paused: bool
    camera: CameraState
    worker: WorkerHealth
    counters: Mapping[str, int]
    render_ms: tuple[float, ...]
    wipe_ms: tuple[float, ...]
    store: StoreUsage
    deliveries_pending: int
    uptime_seconds: float
    # The printer's state and media (``disabled`` where the event offers no printing).
    printer: PrinterStatus = dataclasses.field(default_factory=lambda: PrinterStatus(PrinterState.DISABLED))
    # The configured camera's device or file is there (appliance.camera_presence; not opened).
    camera_present: bool = True
    # An updater's pause is in force and no visit is left (appliance.maintenance).
    update_ready: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "paused": self.paused,
            "camera": self.camera.as_json(),
            "worker": dataclasses.asdict(self.worker),
            "counters": dict(self.counters),
            "render_ms": list(self.render_ms),
            "wipe_ms": list(self.wipe_ms),
            "store": {
                "bytes_used": self.store.bytes_used,
                "capacity_bytes": self.store.capacity_bytes,
                "objects": self.store.objects,
                "backing": self.store.backing.value,
                "noswap": self.store.noswap,
            },
            "deliveries_pending": self.deliveries_pending,
            "uptime_seconds": self.uptime_seconds,
            "printer": self.printer.as_json(),
            "camera_present": self.camera_present,
            "update_ready": self.update_ready,
        }
