"""The session worker: one short-lived process per visit that holds the camera, the engine and the key.

DESIGN.md §3: a Python process cannot reliably erase memory, so everything made of a guest's pixels lives
in this process, and WIPE ends it — the kernel then reclaims its memory. The main process relays preview
frames and review images but keeps none.

Life of a worker::

    spawned (warm spare) -> loads the engine, camera closed -> "ready"
    begin(session id)    -> creates the session vault (fresh key in locked, undumpable memory)
    open_camera          -> only after consent
    (or, instead of begin: open_camera(check=True) -> check_frame ...: the staff camera check, no vault)
    preview / capture / render / image / inventory / delete
    print / print_jobs   -> a headshot laid out and sent to CUPS by the worker's one print thread
    wipe                 -> unfinished print jobs cancelled and purged, vault wiped (files unlinked, key
                            destroyed), camera closed, process exits

Protocol: ``multiprocessing.connection`` messages over a socketpair inherited at exec. Requests are
``(op, args)`` tuples; replies are ``("ok", value)`` or ``("error", code, message)``. Both ends are ours
(the socket is never reachable from outside), which is why pickle framing is acceptable here.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.branding import BrandingError, load_backdrop
from appliance.camera import CameraError, ReconnectingFrameSource, make_frame_source
from appliance.config import FILES_CHECKED, KioskConfig
from appliance.hardening import harden_process, zero_array
from appliance.logsafe import configure_logging
from appliance.print_layout import DOCUMENT_FORMAT, print_document
from appliance.printing import CupsQueue, PrintSpooler
from appliance.retention import VAULT_BACKSTOP_SECONDS
from appliance.vault import SessionVault, StoreError
from engine.anonymise import anonymised_view
from engine.compose import BACKDROP, Background, background_image, parse_background
from engine.detect import Face, primary_face
from engine.errors import EngineError, NoFace
from engine.imageio import encode_jpeg
from engine.pipeline import Cutout, HeadshotEngine
from engine.preview import BlendScratch, PreviewAnalyzer, replace_background
from engine.scene import scene_problem

logger = logging.getLogger(__name__)

RgbImage = npt.NDArray[np.uint8]
PREVIEW_JPEG_QUALITY = 80
# The live preview's pose guidance runs on a thread of its own (``_GuideThread``), at most GUIDANCE_FPS times
# a second on the newest frame, while every frame is read, composed and encoded on the request's thread:
# detection was ~8 ms of the ~20 ms a guided 1280×720 frame cost on the 2-core development machine, and
# about half the worker's CPU at 30 fps. The page polls the guidance every 0.7 s and a guest moves slower
# than that; a detection that falls behind (a busy machine) costs the guidance a frame, not the stream.
# With no guidance yet for the frame's mode (the start of a stream, a mode change, after a capture) the
# request waits at most GUIDANCE_WAIT_SECONDS for its own frame's analysis. After that a frame takes the
# newest guidance no older than GUIDANCE_MAX_AGE_SECONDS, or, while the thread is busy with a slow
# detection (a loaded Jetson), the last one as long as it is younger than GUIDANCE_STALE_SECONDS: a slow
# detection then costs the guidance some freshness, never the stream its rate (waiting, then analysing
# again on the request's thread, would double the work just when the CPU is short). Only guidance older
# than that (the thread stuck or failing) makes the request analyse its own frame.
GUIDANCE_FPS = 10.0
GUIDANCE_MAX_AGE_SECONDS = 0.5
GUIDANCE_STALE_SECONDS = 2.0
GUIDANCE_WAIT_SECONDS = 1.0
# A guide thread that keeps failing logs its first failure and then one in this many (not 10 a second).
GUIDANCE_FAILURE_LOG_EVERY = 100
CHECK_JPEG_QUALITY = 75
CAPTURE_KIND = "capture"
HEADSHOT_KIND = "headshot"
# Why a capture burst kept nothing (``engine.scene.scene_problem`` codes), in the order a tie is reported,
# with what the guest should do. The facade returns the guest to the live preview on any of them.
CAPTURE_REFUSALS = {
    "no_face": "we could not see a face; look at the camera and try again",
    "step_apart": "someone else is in the picture; ask them to step aside and try again",
    "face_cut_off": "the face was at the edge of the picture; move to the middle and try again",
    "face_too_small": "the face was too far away; step closer and try again",
}


class Cancelled(BaseException):
    """Raised in the worker's main thread by SIGTERM: the main process ended the visit (Delete now, a staff
    abort, an idle wipe) while a request was running. A ``BaseException`` so that no ``except Exception``
    in the engine or a library can swallow it on its way out."""


def _cancel_on_sigterm(signum: int, frame: Any) -> None:
    # Once only: the wipe that follows must run to its end, whatever else arrives.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Cancelled


class WorkerError(Exception):
    """A request the worker could not serve; ``code`` is stable for the UI."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Take:
    capture_id: str  # object id of the encrypted capture in the vault
    shape: tuple[int, int, int]
    face: Face  # the guest
    others: tuple[Face, ...]  # everybody else the detector saw: the render removes them from the matte


def _sharpness(rgb: RgbImage, box: tuple[float, float, float, float]) -> float:
    """Variance of the Laplacian on the face box: higher = sharper (a blink or motion blur scores low)."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(max(0, v)) for v in box)
    roi = rgb[y0 : min(h, y1), x0 : min(w, x1)]
    if roi.size == 0:
        return 0.0
    grey = cv2.cvtColor(roi, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


@dataclass(frozen=True)
class _Guidance:
    """The pose guidance of one preview frame: no pixels, only the face, hint codes and when."""

    face: Face | None
    hints: tuple[str, ...]
    problem: str | None
    seated: bool
    size: tuple[int, int]  # (width, height) of the analysed frame
    at: float  # monotonic time the frame was offered


class _GuideThread:
    """Face detection and pose hints for the live preview, on a thread of its own (``GUIDANCE_*``).

    ``offer(rgb, seated)`` copies a frame into the thread's one buffer when the thread is idle and the
    last analysis for that mode is more than ``1 / GUIDANCE_FPS`` old (else the frame is skipped: a later
    one will do); ``latest(seated, wait)`` returns the newest guidance for that mode (see ``GUIDANCE_*``
    for how old it may be), waiting up to ``wait`` seconds while an analysis is under way only when there
    is none usable.
    ``stop()`` ends the thread, zeroes the buffer (the only pixels it holds) and forgets the guidance; the
    next ``offer`` starts a new thread. (ONNX Runtime sessions may be run from several threads: the request
    thread segments meanwhile, and analyses itself when this thread has fallen a second behind.)"""

    def __init__(self, analyzer: PreviewAnalyzer, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._analyzer = analyzer
        self._clock = clock
        self._cond = threading.Condition()
        self._buffer: RgbImage | None = None
        self._seated = False
        self._offered_at = 0.0
        self._queued = False  # a frame waits in the buffer
        self._busy = False  # the buffer is queued or being analysed
        self._result: _Guidance | None = None
        self._generation = 0  # stop() moves it on: an older thread ends and its result is dropped
        self._thread: threading.Thread | None = None
        self._failures = 0  # analyses failed in a row

    def offer(self, rgb: RgbImage, *, seated: bool) -> bool:
        with self._cond:
            if self._busy:
                return False
            last = self._result
            if last is not None and last.seated == seated and self._clock() - last.at < 1.0 / GUIDANCE_FPS:
                return False
            if self._buffer is None or self._buffer.shape != rgb.shape:
                if self._buffer is not None:
                    zero_array(self._buffer)
                self._buffer = np.empty_like(rgb)
            np.copyto(self._buffer, rgb)
            self._seated, self._offered_at = seated, self._clock()
            self._queued = self._busy = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(self._generation,), name="preview-guidance", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
            return True

    def latest(self, *, seated: bool, wait: float) -> _Guidance | None:
        deadline = self._clock() + wait
        with self._cond:
            while True:
                result = self._result if self._result is not None and self._result.seated == seated else None
                now = self._clock()
                age = now - result.at if result is not None else math.inf
                if age <= GUIDANCE_MAX_AGE_SECONDS:
                    return result
                if age <= GUIDANCE_STALE_SECONDS and self._busy:
                    return result  # a slow detection is under way: do not hold the frame for it
                if now >= deadline or not self._busy:
                    return result if age <= GUIDANCE_STALE_SECONDS else None
                self._cond.wait(deadline - now)

    def _run(self, generation: int) -> None:
        while True:
            with self._cond:
                while not self._queued and self._generation == generation:
                    self._cond.wait()
                if self._generation != generation:
                    return
                self._queued = False
                buffer, seated, at = self._buffer, self._seated, self._offered_at
            result: _Guidance | None = None
            if buffer is not None:
                try:
                    analysis = self._analyzer.analyze(buffer, with_mask=False, seated=seated)
                    size = (int(buffer.shape[1]), int(buffer.shape[0]))
                    result = _Guidance(analysis.face, analysis.hints, analysis.problem, seated, size, at)
                except Exception as exc:  # a failed analysis costs one frame's guidance, never the worker
                    if self._failures % GUIDANCE_FAILURE_LOG_EVERY == 0:
                        name, count = exc.__class__.__name__, self._failures + 1
                        logger.warning("preview guidance failed: %s (%d in a row)", name, count)
            with self._cond:
                if self._generation != generation:
                    return
                self._busy = False
                self._failures = 0 if result is not None else self._failures + 1
                if result is not None:
                    self._result = result
                self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._generation += 1
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=5.0)  # one detection at most (milliseconds)
        with self._cond:
            if self._buffer is not None:
                zero_array(self._buffer)
                self._buffer = None
            self._result = None
            self._queued = self._busy = False


class SessionWorker:
    """Serves one session. Owns the engine, the camera and the vault; ``shutdown()`` releases all three."""

    def __init__(self, cfg: KioskConfig, store_dir: str, *, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.store_dir = store_dir
        self.clock = clock
        self.engine = HeadshotEngine(cfg.engine)
        self.preview = PreviewAnalyzer(cfg.engine)
        self._guide = _GuideThread(self.preview)
        # The live preview's full-size work buffers, reused from frame to frame (see ``BlendScratch``) and
        # zeroed when the preview stops (``_stop_preview``).
        self._blend = BlendScratch()
        self._mirrored: RgbImage | None = None
        self.camera: ReconnectingFrameSource | None = None
        self.vault: SessionVault | None = None
        self.takes: dict[str, _Take] = {}
        self._cutouts: dict[tuple[str, str], Cutout] = {}
        self._backdrops: dict[tuple[str, int, int], RgbImage] = {}
        self.skin_smoothing: bool | None = None
        self.retention_seconds = VAULT_BACKSTOP_SECONDS
        # Serving the staff camera check: no vault, never a visit (it is ended like one, and a fresh
        # worker serves the next guest).
        self.checking = False
        # The visit's print thread, started by its first print (``[print] enabled`` only).
        self.spooler: PrintSpooler | None = None
        # The event's backdrop image ([branding] backdrop): event data, not a guest's, decoded once for
        # the worker's life (a warm spare does it before any guest arrives).
        self.event_backdrop = self._load_event_backdrop()

    # -- requests -------------------------------------------------------------------------------------------

    def begin(
        self, session_id: str, capacity_bytes: int | None, skin_smoothing: bool | None = None
    ) -> dict[str, Any]:
        """Start serving one visit: a fresh vault (new key). ``skin_smoothing`` is the guest's answer to
        that consent choice when the event offers it (None: the engine's configured default)."""
        if self.vault is not None or self.checking:
            raise WorkerError("busy", "this worker already serves a session or a camera check")
        self.vault = SessionVault.create(Path(self.store_dir), session_id, capacity_bytes=capacity_bytes)
        self.skin_smoothing = skin_smoothing
        return {"key_memory": self.vault.key.mechanism.value}

    def open_camera(self, check: bool = False) -> dict[str, Any]:
        """Open the camera: for the visit that has begun, or (``check``) for the staff camera check, which
        begins no visit and makes only anonymised frames (``check_frame``)."""
        if check:
            if self.vault is not None:
                raise WorkerError("busy", "this worker serves a session")
            self.checking = True
        else:
            self._need_vault()
        if self.camera is None:
            self.camera = make_frame_source(self.cfg.camera)
        if not self.camera.is_open:
            self.camera.open()
        return {"camera": self.camera.state}

    def frame(self, background: str | None, mirror: bool = False, seated: bool = False) -> dict[str, Any]:
        """One live-preview frame as JPEG plus guidance. With ``background`` the person is shown over it
        (fast selfie segmentation; the final render uses MODNet). ``seated``: the guidance aims for the
        seated mode's lower face outline (``engine.preview.pose_hints``).

        Every frame is read, composed and encoded here; its guidance comes from the guide thread, which
        analyses the newest frame it can take (usually this one, otherwise the one before)."""
        cam = self._need_camera()
        capture = cam.read()
        rgb = capture.image
        h, w = rgb.shape[:2]
        try:
            self._guide.offer(rgb, seated=seated)
            composed = rgb
            if background is not None:
                mask = self.preview.segment(rgb)
                backdrop = self._backdrop(background, w, h)
                composed = replace_background(rgb, mask, backdrop, scratch=self._blend)
            shown = self._mirror(composed) if mirror else composed
            jpeg = encode_jpeg(shown, quality_percent=PREVIEW_JPEG_QUALITY)
            # ``composed`` and ``shown`` are the kept buffers (``BlendScratch``, ``_mirrored``): the next
            # frame overwrites them and ``_stop_preview`` zeroes them; zeroing them per frame too would
            # cost two full-size writes a frame for nothing.
            guidance = self._guide.latest(seated=seated, wait=GUIDANCE_WAIT_SECONDS)
            if guidance is None or guidance.size != (w, h):
                # No usable guidance from the guide thread (stuck, failing, or a second without a first
                # result for this mode): analyse this frame here.
                analysis = self.preview.analyze(rgb, with_mask=False, seated=seated)
                guidance = _Guidance(
                    analysis.face, analysis.hints, analysis.problem, seated, (w, h), time.monotonic()
                )
        finally:
            zero_array(rgb)
        face = None
        if guidance.face is not None:
            x0, y0, x1, y1 = guidance.face.bbox
            if mirror:
                x0, x1 = w - x1, w - x0
            face = [x0 / w, y0 / h, x1 / w, y1 / h]
        return {
            "jpeg": jpeg,
            # Someone else in the guest's picture comes first: the capture would not keep such a frame.
            "hints": (["step_apart"] if guidance.problem == "step_apart" else []) + list(guidance.hints),
            "face": face,
            "size": [w, h],
        }

    def _mirror(self, rgb: RgbImage) -> RgbImage:
        """``rgb`` flipped left to right, into a buffer kept for the next frame. cv2.flip into it takes
        0.2 ms for 1280×720; numpy's reversed view copied took 7.5 ms, cv2.flip into a fresh buffer 1.7."""
        if self._mirrored is None or self._mirrored.shape != rgb.shape:
            self._mirrored = np.empty_like(rgb)
        cv2.flip(rgb, 1, dst=self._mirrored)
        return self._mirrored

    def _stop_preview(self) -> None:
        """The live preview is over (a capture, the wipe): stop the guide thread, zero the work buffers."""
        self._guide.stop()
        self._blend.clear()
        if self._mirrored is not None:
            zero_array(self._mirrored)
            self._mirrored = None

    def check_frame(self) -> dict[str, Any]:
        """One camera-check frame: every person a flat silhouette, every face box hidden and outlined, the
        framing guide and the set-up readings drawn in (``engine.anonymise``). No pixel of a person leaves
        this process; the raw frame is zeroed before the reply."""
        if not self.checking or self.camera is None or not self.camera.is_open:
            raise WorkerError("camera_closed", "the camera check is not running in this worker")
        rgb = self.camera.read().image
        try:
            # The engine's detector (search windows included), the one a capture uses, finds the faces to
            # hide; the preview's selfie segmentation finds the rest of each person.
            faces = self.engine.detect_faces(rgb)
            shown, measured = anonymised_view(rgb, self.preview.segment(rgb), faces, self.engine.detect_faces)
        finally:
            zero_array(rgb)
        jpeg = encode_jpeg(shown, quality_percent=CHECK_JPEG_QUALITY)
        zero_array(shown)
        return {"jpeg": jpeg, "readings": measured.as_json(), "size": [rgb.shape[1], rgb.shape[0]]}

    def _backdrop(self, background: str, w: int, h: int) -> RgbImage:
        key = (background, w, h)
        if key not in self._backdrops:
            bg = self._background(background)
            if bg.kind == "blur":
                # Live "blur" preview: the real blur needs the MODNet plate; a soft grey is honest enough.
                bg = parse_background("#808080")
            self._backdrops[key] = np.ascontiguousarray(background_image(bg, w, h, None))
        return self._backdrops[key]

    def _load_event_backdrop(self) -> RgbImage | None:
        path = self.cfg.branding.backdrop
        if path is None:
            return None
        try:
            return load_backdrop(path)
        except BrandingError as exc:
            # Checked when the config was loaded; a file changed since then. The other backgrounds work.
            logger.warning("the event backdrop could not be loaded: %s", exc)
        except Exception as exc:  # OpenCV/Pillow/memory errors alike: a spare must start without it
            logger.warning("the event backdrop could not be loaded (%s)", exc.__class__.__name__)
        return None

    def _background(self, background: str) -> Background:
        """A render's background; ``backdrop`` is the event's image, scaled to cover the headshot."""
        if background == BACKDROP and self.event_backdrop is None:
            raise WorkerError("bad_background", "the event's backdrop image is not available")
        return parse_background(background, backdrop=self.event_backdrop)

    def capture(self, burst: int) -> dict[str, Any]:
        """Take a short burst and keep the sharpest frame the render would take as it is: the guest's face
        whole, large enough, and nobody else's face in the guest's framing box (``engine.scene``). Nothing
        is kept when no frame qualifies; the refusal then names what was wrong in most frames
        (``CAPTURE_REFUSALS``), so the guest is told what to change (step apart, step closer, ...)."""
        vault = self._need_vault()
        cam = self._need_camera()
        self._stop_preview()  # the live preview is over: its detector's CPU goes to the burst
        preset = self.cfg.event.presets[0]  # the first headshot is rendered with it
        best: tuple[float, RgbImage, Face, tuple[Face, ...]] | None = None
        problems: list[str] = []
        for _ in range(max(1, burst)):
            rgb = cam.read().image
            size = (rgb.shape[1], rgb.shape[0])
            faces = self.engine.detect_faces(rgb)
            problem = scene_problem(faces, size, preset)
            face = primary_face(faces, size)
            if problem is not None or face is None:
                problems.append(problem or "no_face")
                zero_array(rgb)
                continue
            score = _sharpness(rgb, face.bbox) * face.score
            if best is None or score > best[0]:
                if best is not None:
                    zero_array(best[1])
                best = (score, rgb, face, tuple(f for f in faces if f is not face))
            else:
                zero_array(rgb)
        if best is None:
            code = max(CAPTURE_REFUSALS, key=problems.count)  # ties: the first in CAPTURE_REFUSALS
            raise WorkerError(code, CAPTURE_REFUSALS[code])
        _, rgb, face, others = best
        shape = (int(rgb.shape[0]), int(rgb.shape[1]), 3)
        capture_id = vault.put(CAPTURE_KIND, rgb.tobytes(), expires_at=self.clock() + self.retention_seconds)
        zero_array(rgb)
        self.takes[capture_id] = _Take(capture_id, shape, face, others)
        return {"take": capture_id, "warnings": []}

    def _capture_pixels(self, take_id: str) -> tuple[RgbImage, _Take]:
        vault = self._need_vault()
        take = self.takes.get(take_id)
        if take is None:
            raise WorkerError("unknown_take", "that photo is not available")
        raw = vault.get(take.capture_id)
        rgb = np.frombuffer(raw, dtype=np.uint8).reshape(take.shape).copy()
        return rgb, take

    def render(self, take_id: str, background: str, preset: str) -> dict[str, Any]:
        """Render one headshot and store it encrypted. The cutout (framing + matte) is cached per take and
        preset in this process, so flipping backgrounds costs a composite, not a model run."""
        # A preview frame that passed the facade's phase check just before the capture may have reached
        # this worker after it and started the guide thread again: the preview is over, stop it (again).
        self._stop_preview()
        vault = self._need_vault()
        key = (take_id, preset)
        t0 = time.perf_counter()
        cut = self._cutouts.get(key)
        if cut is None:
            rgb, take = self._capture_pixels(take_id)
            try:
                cut = self.engine.cutout(
                    rgb, take.face, preset, smoothing=self.skin_smoothing, others=take.others
                )
            finally:
                zero_array(rgb)
            self._cutouts[key] = cut
        pixels = self.engine.compose(cut, self._background(background))
        jpeg = self.engine.encode(pixels)
        zero_array(pixels)
        render_id = vault.put(HEADSHOT_KIND, jpeg, expires_at=self.clock() + self.retention_seconds)
        return {
            "render": render_id,
            "bytes": len(jpeg),
            "ms": (time.perf_counter() - t0) * 1000,
            "warnings": list(cut.warnings),
        }

    def image(self, object_id: str) -> bytes:
        vault = self._need_vault()
        return vault.get(object_id)

    def delete(self, object_id: str) -> bool:
        vault = self._need_vault()
        for key in [k for k in self._cutouts if k[0] == object_id]:
            self._cutouts.pop(key).release()
        self.takes.pop(object_id, None)
        return vault.delete(object_id)

    def print_headshot(self, object_id: str) -> dict[str, Any]:
        """Lay out a stored headshot for the printer and hand it to the print thread, which sends it to
        CUPS from memory and follows the job (``appliance.printing``). Returns the job as the guest page
        shows it (``{"job", "status": "queued", ...}``); how it goes on is in ``print_jobs``."""
        vault = self._need_vault()
        settings = self.cfg.print
        if not settings.enabled:
            raise WorkerError("print_disabled", "printing is not offered at this event")
        item = next((i for i in vault.inventory() if i.id == object_id), None)
        if item is None or item.kind != HEADSHOT_KIND:
            raise WorkerError("unknown_render", "that photo is not available")
        document = print_document(
            vault.get(object_id),
            settings.layout,
            event_name=self.cfg.event.name,
            brand_colour=settings.brand_colour,
        )
        if self.spooler is None:
            cups = CupsQueue(str(settings.cups_socket), settings.queue)
            self.spooler = PrintSpooler(cups, job_timeout_seconds=settings.job_timeout_seconds)
        return self.spooler.submit(document, DOCUMENT_FORMAT)

    def print_jobs(self) -> list[dict[str, Any]]:
        """The visit's prints, oldest first (``PrintSpooler.jobs``)."""
        self._need_vault()
        return [] if self.spooler is None else self.spooler.jobs()

    def inventory(self) -> list[dict[str, Any]]:
        vault = self._need_vault()
        return [
            {"id": i.id, "kind": i.kind, "bytes": i.bytes, "created": i.created, "expires": i.expires}
            for i in vault.inventory()
        ]

    def camera_state(self) -> dict[str, Any]:
        if self.camera is None:
            return {"state": "closed"}
        stats = self.camera.stats()
        return {
            "state": self.camera.state if self.camera.is_open else "closed",
            "reconnects": stats.reconnects,
            "failures": stats.read_failures,
        }

    def shutdown(self) -> int:
        """WIPE: close the camera, drop cached pixels, unlink every object and destroy the key; then release
        the engine."""
        try:
            return self.wipe_session()
        finally:
            self.preview.close()
            self.engine.close()

    def wipe_session(self) -> int:
        """The part of WIPE that matters to the guest: camera closed, cached pixels dropped, every object
        unlinked, the key destroyed. Returns the number of files removed."""
        removed = 0
        try:
            self._stop_preview()  # before the camera closes and the models are released
            if self.spooler is not None:
                # First: a job still queued or printing is cancelled and purged from CUPS's spool.
                self.spooler.close()
            if self.camera is not None:
                self.camera.close()
            for cut in self._cutouts.values():
                cut.release()
            self._cutouts.clear()
            self.takes.clear()
        finally:
            # Whatever failed above (a camera that hangs up badly), the files and the key go.
            if self.vault is not None:
                removed = self.vault.wipe()
        return removed

    # -- helpers --------------------------------------------------------------------------------------------

    def _need_vault(self) -> SessionVault:
        if self.vault is None:
            raise WorkerError("no_session", "no session has begun in this worker")
        return self.vault

    def _need_camera(self) -> ReconnectingFrameSource:
        self._need_vault()
        if self.camera is None or not self.camera.is_open:
            raise WorkerError("camera_closed", "the camera is not open")
        return self.camera


def serve(conn: Connection, worker: SessionWorker) -> int:
    """Answer requests until ``wipe``, until the main process goes away, or until SIGTERM cancels the
    visit; the last two wipe too. A cancelled request is abandoned where it stands: nothing it was making
    is stored (or, if it was being stored, the wipe removes it with the rest of the vault)."""
    signal.signal(signal.SIGTERM, _cancel_on_sigterm)
    try:
        return _serve(conn, worker)
    except Cancelled:
        logger.info("visit cancelled by the main process; wiping")
        worker.wipe_session()
        # The main process waits for this exit before it reports the visit deleted: skip releasing the
        # models and the interpreter's teardown (hundreds of ms); the kernel reclaims all of it anyway.
        logging.shutdown()
        os._exit(0)


def _serve(conn: Connection, worker: SessionWorker) -> int:
    handlers: dict[str, Callable[..., Any]] = {
        "begin": worker.begin,
        "open_camera": worker.open_camera,
        "frame": worker.frame,
        "check_frame": worker.check_frame,
        "capture": worker.capture,
        "render": worker.render,
        "image": worker.image,
        "delete": worker.delete,
        "print": worker.print_headshot,
        "print_jobs": worker.print_jobs,
        "inventory": worker.inventory,
        "camera_state": worker.camera_state,
        "ping": lambda: {"pid": os.getpid()},
    }
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            logger.warning("main process went away; wiping")
            _final_wipe(worker)
            return 1
        if op == "wipe":
            removed = _final_wipe(worker)
            with contextlib.suppress(OSError, EOFError):  # wiped; a main process gone by now changes nothing
                conn.send(("ok", {"removed": removed}))
            return 0
        handler = handlers.get(op)
        try:
            if handler is None:
                raise WorkerError("bad_request", f"unknown operation {op!r}")
            result = handler(**args)
        except WorkerError as exc:
            reply: tuple[Any, ...] = ("error", exc.code, str(exc))
        except NoFace as exc:
            reply = ("error", "no_face", str(exc))
        except EngineError as exc:
            reply = ("error", exc.code, str(exc))
        except CameraError as exc:
            logger.warning("camera error: %s", exc.__class__.__name__)
            reply = ("error", "camera", "the camera is not responding")
        except StoreError as exc:
            logger.warning("store error: %s", exc.__class__.__name__)
            reply = ("error", "store", "that photo is no longer available")
        except (ValueError, KeyError) as exc:
            reply = ("error", "bad_request", str(exc) if isinstance(exc, ValueError) else "bad request")
        else:
            reply = ("ok", result)
        try:
            conn.send(reply)
        except (OSError, EOFError):
            # The main process died while this request ran (kill -9 mid-render, found by the audit): nobody
            # will ask for a wipe any more, so wipe now, exactly as on EOF above.
            logger.warning("main process went away during a request; wiping")
            _final_wipe(worker)
            return 1


def _final_wipe(worker: SessionWorker) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a wipe under way runs to its end
    return worker.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the worker process (``python -m appliance.worker --fd N --store DIR [--config P]``)."""
    # First thing, before any personal data exists in this process (exec reset what the parent set).
    harden_process()
    parser = argparse.ArgumentParser(prog="python -m appliance.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    sock = socket.socket(fileno=args.fd)
    conn = Connection(sock.detach())
    # The config arrives over the socket, already validated by the main process; validate again anyway so
    # a worker never runs on something that is not a KioskConfig.
    cfg = KioskConfig.model_validate(conn.recv(), context={FILES_CHECKED: True})
    try:
        worker = SessionWorker(cfg, args.store)
    except EngineError as exc:
        conn.send(("error", exc.code, str(exc)))
        return 2
    conn.send(("ok", {"pid": os.getpid(), "backend": worker.engine.backend_name}))
    try:
        return serve(conn, worker)
    except BaseException:
        worker.shutdown()  # whatever went wrong, never leave the session's files and key behind
        raise
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
