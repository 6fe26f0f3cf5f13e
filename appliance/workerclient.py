"""The main process's typed view of a session worker: one method per worker operation, frozen results.

The wire format (``(op, args)`` requests, ``("ok", value)`` / ``("error", code, message)`` replies, see
``appliance.worker``) exists in two places only: here and in the worker's own dispatch table. The facade
calls ``client.render(take_id=..., background=..., preset=...) -> Rendered`` like a local method, and the
worker's refusals arrive as one exception type with a stable ``code`` (``WorkerRequestError``), which the
facade turns into its own errors in one place.

Also here: ``SparePool``, the one warm worker kept loaded while the kiosk is idle (DESIGN.md §3), so the
facade holds a pool and not five fields and three code paths.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.errors import WorkerFailed
from appliance.vault import HeldItem
from appliance.workerproc import WorkerDied, WorkerProcess, WorkerRequestError

logger = logging.getLogger(__name__)

__all__ = [
    "CameraState",
    "CheckFrame",
    "CheckReadings",
    "Frame",
    "PrintJob",
    "Rendered",
    "SparePool",
    "Taken",
    "WorkerClient",
    "WorkerDied",
    "WorkerRequestError",
]


@dataclass(frozen=True)
class Frame:
    """One live-preview frame: JPEG bytes (the caller's to send and forget), pose hint codes, the face box
    as fractions of the frame ``(x0, y0, x1, y1)`` or None, and the frame size ``(width, height)`` in px."""

    jpeg: bytes
    hints: tuple[str, ...]
    face: tuple[float, float, float, float] | None
    size: tuple[int, int]


@dataclass(frozen=True)
class CheckReadings:
    """The set-up readings of one camera-check frame (``engine.anonymise.SetupReadings`` as the worker
    sent them): exposure (mean coded luma 0-1, clipped fractions), grey-world white balance (R/G, B/G over
    the background), focus (Laplacian variance on the background), the fraction hidden by silhouettes, the
    face boxes as fractions of the frame (outlines only) and the problem codes. Nothing describes a person."""

    mean_luma: float
    clipped_highlights: float
    clipped_shadows: float
    red_green: float
    blue_green: float
    focus: float
    hidden: float
    faces: tuple[tuple[float, float, float, float], ...]
    problems: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["faces"], data["problems"] = [list(f) for f in self.faces], list(self.problems)
        return data


@dataclass(frozen=True)
class CheckFrame:
    """One staff camera-check frame: JPEG bytes in which every person is a flat silhouette (the caller's to
    send and forget), its readings, and the frame size ``(width, height)`` in px."""

    jpeg: bytes
    readings: CheckReadings
    size: tuple[int, int]


@dataclass(frozen=True)
class Taken:
    """A capture kept in the worker's vault: its object id (the guest-facing *take*)."""

    take: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Rendered:
    """A headshot stored in the vault: object id, JPEG size in bytes, render time in ms."""

    render: str
    bytes: int
    ms: float
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class PrintJob:
    """One print of the visit as the worker's print thread knows it: the kiosk's own job id, its status
    (``appliance.printing.PrintJobState`` values), why it failed or was cancelled (a code, or None) and
    CUPS's job id once CUPS has the job (the main process's backstop purge needs no more than that), and
    the document's size in bytes (for "What we hold")."""

    job: str
    status: str
    reason: str | None = None
    cups_job: int | None = None
    bytes: int = 0

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> PrintJob:
        cups_job = reply.get("cups_job")
        reason = reply.get("reason")
        return cls(
            str(reply["job"]),
            str(reply["status"]),
            None if reason is None else str(reason),
            None if cups_job is None else int(cups_job),
            int(reply.get("bytes", 0)),
        )


@dataclass(frozen=True)
class CameraState:
    """The worker's camera: ``state`` (closed, open, reconnecting, ...) and its counters."""

    state: str
    reconnects: int = 0
    failures: int = 0

    def as_json(self) -> dict[str, Any]:
        if self.state in ("closed", "unknown") and not (self.reconnects or self.failures):
            return {"state": "closed"}
        return {"state": self.state, "reconnects": self.reconnects, "failures": self.failures}


class WorkerClient:
    """Typed calls to one ``WorkerProcess``. Thread-safe as the process is (one request on the wire at a
    time); ``end`` works from any thread at any moment. Raises ``WorkerRequestError`` (a refusal with a
    stable ``code``) or ``WorkerDied``."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> bool:
        return self.process.exited()

    @property
    def busy(self) -> bool:
        """A request is under way (the worker is capturing, rendering, framing...)."""
        return self.process.busy

    def begin(self, *, session_id: str, capacity_bytes: int | None, skin_smoothing: bool | None) -> str:
        """Start serving one visit (a fresh vault and key); returns how the key memory is protected."""
        reply = self.process.call(
            "begin", session_id=session_id, capacity_bytes=capacity_bytes, skin_smoothing=skin_smoothing
        )
        return str(reply["key_memory"])

    def open_camera(self) -> str:
        """Open the camera (only ever after consent); returns its state."""
        return str(self.process.call("open_camera")["camera"])

    def frame(self, *, background: str | None, mirror: bool, seated: bool = False) -> Frame:
        """One live-preview frame; ``seated`` aims the guidance at the seated mode's face outline."""
        reply = self.process.call("frame", background=background, mirror=mirror, seated=seated)
        face = reply["face"]
        width, height = reply["size"]
        return Frame(
            jpeg=bytes(reply["jpeg"]),
            hints=tuple(str(h) for h in reply["hints"]),
            face=None if face is None else (float(face[0]), float(face[1]), float(face[2]), float(face[3])),
            size=(int(width), int(height)),
        )

    def open_check_camera(self) -> str:
        """Open the camera for the staff camera check: the worker begins no visit, serves only
        ``check_frame`` from now on, and is ended (never reused) when the check ends."""
        return str(self.process.call("open_camera", check=True)["camera"])

    def check_frame(self) -> CheckFrame:
        """One anonymised camera-check frame (``engine.anonymise.anonymised_view``)."""
        reply = self.process.call("check_frame")
        r = reply["readings"]
        width, height = reply["size"]
        readings = CheckReadings(
            mean_luma=float(r["mean_luma"]),
            clipped_highlights=float(r["clipped_highlights"]),
            clipped_shadows=float(r["clipped_shadows"]),
            red_green=float(r["red_green"]),
            blue_green=float(r["blue_green"]),
            focus=float(r["focus"]),
            hidden=float(r["hidden"]),
            faces=tuple((float(f[0]), float(f[1]), float(f[2]), float(f[3])) for f in r["faces"]),
            problems=tuple(str(p) for p in r["problems"]),
        )
        return CheckFrame(jpeg=bytes(reply["jpeg"]), readings=readings, size=(int(width), int(height)))

    def capture(self, *, burst: int) -> Taken:
        reply = self.process.call("capture", burst=burst)
        return Taken(take=str(reply["take"]), warnings=tuple(reply.get("warnings", ())))

    def render(self, *, take_id: str, background: str, preset: str) -> Rendered:
        reply = self.process.call("render", take_id=take_id, background=background, preset=preset)
        return Rendered(
            render=str(reply["render"]),
            bytes=int(reply["bytes"]),
            ms=float(reply["ms"]),
            warnings=tuple(reply.get("warnings", ())),
        )

    def image(self, object_id: str) -> bytes:
        """A headshot's JPEG bytes (the caller's to send and forget)."""
        return bytes(self.process.call("image", object_id=object_id))

    def print_headshot(self, *, object_id: str) -> PrintJob:
        """Lay out a headshot and queue it on the worker's print thread (``queued``); never waits for CUPS."""
        return PrintJob.from_reply(self.process.call("print", object_id=object_id))

    def print_jobs_if_idle(self) -> tuple[PrintJob, ...] | None:
        """The visit's prints, oldest first, or None at once if the worker is busy."""
        fresh, reply = self.process.call_if_idle("print_jobs")
        if not fresh:
            return None
        return tuple(PrintJob.from_reply(job) for job in reply)

    def inventory_if_idle(self) -> list[HeldItem] | None:
        """What the vault holds, or None at once if the worker is busy (a state poll never waits)."""
        fresh, items = self.process.call_if_idle("inventory")
        if not fresh:
            return None
        return [
            HeldItem(str(i["id"]), str(i["kind"]), int(i["bytes"]), float(i["created"]), float(i["expires"]))
            for i in items
        ]

    def camera_state_if_idle(self) -> CameraState | None:
        """The camera's state, or None at once if the worker is busy."""
        fresh, reply = self.process.call_if_idle("camera_state")
        if not fresh:
            return None
        return CameraState(
            str(reply["state"]), int(reply.get("reconnects", 0)), int(reply.get("failures", 0))
        )

    def end(self, *, wait_idle: float) -> bool:
        """WIPE: see ``WorkerProcess.end`` (True: wiped on request; False: cancelled)."""
        return self.process.end(wait_idle=wait_idle)

    def kill(self) -> None:
        self.process.kill()


class SparePool:
    """The one warm worker: started in the background, handed to a visit at consent, replaced after.

    ``spawn`` starts one unless one is ready or loading; ``take`` waits for it and takes it; ``give_back``
    returns a worker that never began a visit (it holds nothing of anyone). ``start_worker`` builds and
    loads one ``WorkerProcess`` (blocking; called on the pool's thread). Thread-safe.
    """

    def __init__(self, start_worker: Callable[[], WorkerProcess]) -> None:
        self._start_worker = start_worker
        # The inference runtime the last worker actually loaded: with backend = "auto" the config alone does
        # not say whether a unit runs TensorRT or fell back to ONNX Runtime.
        self.engine_backend: str | None = None
        self._lock = threading.Lock()
        self._spare: WorkerProcess | None = None
        self._ready = threading.Event()
        self._error: str | None = None
        self._spawning = False
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def ready(self) -> bool:
        """A loaded spare is waiting."""
        with self._lock:
            return self._spare is not None

    @property
    def spawning(self) -> bool:
        with self._lock:
            return self._spawning

    @property
    def error(self) -> str | None:
        """Why the last spare failed to start, if it did."""
        with self._lock:
            return self._error

    @property
    def spare_pid(self) -> int | None:
        with self._lock:
            return None if self._spare is None else self._spare.pid

    def spawn(self) -> None:
        """Start loading a spare in the background unless one is ready or loading."""
        with self._lock:
            if self._spare is not None or self._spawning or self._closed:
                return
            self._spawning = True
            self._ready.clear()
            self._error = None
            self._thread = threading.Thread(target=self._spawn_blocking, name="spare-worker", daemon=True)
            self._thread.start()

    def _spawn_blocking(self) -> None:
        try:
            worker = self._start_worker()
            info = worker.wait_ready()
        except (WorkerDied, OSError) as exc:
            logger.error("worker failed to start: %s", exc)
            with self._lock:
                self._error = str(exc)
                self._spawning = False
            self._ready.set()
            return
        logger.info("warm worker %d ready (backend %s)", worker.pid, info.get("backend"))
        backend = info.get("backend")
        with self._lock:
            self.engine_backend = None if backend is None else str(backend)
            self._spawning = False
            # Closed meanwhile, or a claimed worker was given back while this one loaded: one spare only.
            surplus = self._closed or self._spare is not None
            if not surplus:
                self._spare = worker
        if surplus:
            worker.kill()
        self._ready.set()

    def wait(self, timeout: float) -> None:
        """Block until a spare is ready (``timeout`` s). ``WorkerFailed`` if it could not start or nothing
        happened in time."""
        if not self._ready.wait(timeout):
            raise WorkerFailed("the photo engine did not start in time")
        error = self.error
        if error is not None:
            raise WorkerFailed(f"the photo engine could not start: {error}")

    def take(self, timeout: float) -> WorkerProcess:
        """Start a spare if none is loading, wait for it (``wait``) and take it."""
        self.spawn()
        self.wait(timeout)
        worker = self.claim()
        if worker is None:  # another caller took it first (the facade lets only one visit consent)
            raise WorkerFailed("the photo engine is not available")
        return worker

    def claim(self) -> WorkerProcess | None:
        """Take the ready spare (None if there is none)."""
        with self._lock:
            worker, self._spare = self._spare, None
            return worker

    def give_back(self, worker: WorkerProcess) -> None:
        """Return a worker that never began a visit; killed if the pool has one or is closed."""
        with self._lock:
            keep = self._spare is None and not self._closed and not worker.exited()
            if keep:
                self._spare = worker
                self._ready.set()
        if not keep:
            worker.kill()

    def check(self) -> None:
        """Forget a spare that died while waiting (the next ``spawn`` replaces it)."""
        with self._lock:
            dead = self._spare is not None and self._spare.exited()
            if dead:
                self._spare = None
        if dead:
            logger.error("warm worker died; starting another")

    def close(self, timeout: float = 180.0) -> None:
        """Kill the spare and wait for a spare still loading (its thread kills it once it is ready)."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
            thread = self._thread
        if spare is not None:
            spare.kill()
        if thread is not None:
            thread.join(timeout=timeout)
