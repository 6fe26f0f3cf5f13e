"""Camera seam: the ``FrameSource`` protocol, file and demo sources, bounded reconnects and the factory."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image
from typing_extensions import Self

from appliance.config import (
    CameraConfig,
    CsiCameraConfig,
    DemoCameraConfig,
    DirectoryCameraConfig,
    V4l2CameraConfig,
    VideoCameraConfig,
)

__all__ = [
    "DEMO_ASSETS_DIR",
    "CameraDisconnected",
    "CameraError",
    "CameraState",
    "CameraStats",
    "Capture",
    "DemoFrameSource",
    "DirectoryFrameSource",
    "FrameSource",
    "ImageDecodeError",
    "ManagedFrameSource",
    "ReconnectingFrameSource",
    "VideoFrameSource",
    "apply_exif_orientation",
    "bgr_to_rgb",
    "decode_image_file",
    "make_frame_source",
    "open_frame_source",
]

logger = logging.getLogger(__name__)

DEMO_ASSETS_DIR = Path(__file__).resolve().parent / "demo_assets"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
_EXIF_ORIENTATION_TAG = 0x0112

Clock = Callable[[], float]
Sleep = Callable[[float], None]
RgbImage = npt.NDArray[np.uint8]


class CameraError(Exception):
    """A frame source cannot open or deliver a frame. Messages never contain image paths or pixels."""


class CameraDisconnected(CameraError):
    """The camera stayed unusable after the configured number of re-open attempts."""


class ImageDecodeError(Exception):
    """One image file could not be decoded; ``reason`` is short and names no path."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, eq=False)
class Capture:
    """One raw camera frame.

    ``image`` is a C-contiguous ``uint8`` RGB array of shape ``(height, width, 3)``. The receiver owns it:
    the source keeps no reference, so it may be modified or handed on without copying. ``timestamp`` is
    ``time.monotonic()`` seconds when the frame was read; ``index`` counts frames from 0 since the source
    was opened (``ReconnectingFrameSource`` keeps counting across re-opens).
    """

    image: RgbImage
    timestamp: float
    index: int


@runtime_checkable
class FrameSource(Protocol):
    """Anything that delivers ``Capture`` frames: a CSI or USB camera, a video file, a directory, the demo.

    ``open()`` acquires the device (opening an open source does nothing), ``read()`` blocks until the next
    frame and raises ``CameraError`` when none can be had, ``close()`` releases the device and may be
    called any number of times. ``with source:`` opens and closes it.
    """

    @property
    def is_open(self) -> bool: ...

    def open(self) -> None: ...

    def read(self) -> Capture: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


# --------------------------------------------------------------------------------------------------
# Shared lifecycle and pacing


class _Pacer:
    """Spaces reads ``1/fps`` seconds apart, without a catch-up burst after a stall."""

    def __init__(self, fps: float, clock: Clock, sleep: Sleep) -> None:
        self._period_seconds = 1.0 / fps
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None

    def reset(self) -> None:
        self._due = None

    def wait(self) -> None:
        now = self._clock()
        due = now if self._due is None else self._due
        if due > now:
            self._sleep(due - now)
        # Schedule from the due time so the rate stays exact, but never from the past: a slow consumer
        # must not be answered by a burst of frames.
        self._due = max(due, now) + self._period_seconds


class ManagedFrameSource:
    """Base for concrete sources: open/close bookkeeping, optional pacing, ``Capture`` numbering.

    Subclasses implement ``_acquire()`` (raise ``CameraError`` and leave nothing open on failure),
    ``_grab() -> RgbImage`` (a fresh array the receiver may own) and ``_release()`` (must not raise).
    ``fps=None`` means the device paces itself (a real camera blocks until its next frame).
    """

    def __init__(
        self, *, fps: float | None, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self._clock = clock
        self._pacer = _Pacer(fps, clock, sleep) if fps is not None else None
        self._open = False
        self._index = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        if self._open:
            return
        self._acquire()
        self._open = True
        self._index = 0
        if self._pacer is not None:
            self._pacer.reset()

    def read(self) -> Capture:
        if not self._open:
            raise CameraError(f"{type(self).__name__} is not open; call open() first")
        if self._pacer is not None:
            self._pacer.wait()
        image = self._grab()
        capture = Capture(image=image, timestamp=self._clock(), index=self._index)
        self._index += 1
        return capture

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        self._release()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _acquire(self) -> None:
        raise NotImplementedError

    def _grab(self) -> RgbImage:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# Image files


def apply_exif_orientation(image: RgbImage, orientation: int) -> RgbImage:
    """Return ``image`` (``HxWxC``) turned upright according to an EXIF Orientation value (1..8).

    Done with numpy by hand rather than ``ImageOps.exif_transpose``, which crashed under fuzzing
    (DESIGN.md P1-5). Unknown values are treated as 1 (as cameras that write 0 mean "upright"). The result
    is a new C-contiguous array.
    """
    if orientation == 2:  # mirrored left-right
        turned = image[:, ::-1]
    elif orientation == 3:  # upside down
        turned = image[::-1, ::-1]
    elif orientation == 4:  # mirrored top-bottom
        turned = image[::-1, :]
    elif orientation == 5:  # mirrored along the main diagonal
        turned = image.transpose(1, 0, 2)
    elif orientation == 6:  # sensor rotated: turn 90° clockwise
        turned = np.rot90(image, k=-1)
    elif orientation == 7:  # mirrored along the anti-diagonal
        turned = image.transpose(1, 0, 2)[::-1, ::-1]
    elif orientation == 8:  # turn 90° counter-clockwise
        turned = np.rot90(image, k=1)
    else:
        turned = image
    return np.ascontiguousarray(turned)


def decode_image_file(path: Path, *, max_pixels: int, max_bytes: int) -> RgbImage:
    """Decode a JPEG or PNG file into an upright ``uint8`` RGB ``HxWx3`` array the caller owns.

    Refuses files over ``max_bytes`` bytes or ``max_pixels`` pixels before decoding any pixel
    (decompression bombs). Raises ``ImageDecodeError`` whose reason names no path.
    """
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size > max_bytes:
                raise ImageDecodeError("file too large")
            # Only the two formats we expect: Pillow's other decoders are attack surface we do not need.
            with Image.open(handle, formats=("JPEG", "PNG")) as picture:
                width, height = picture.size
                if width * height > max_pixels:
                    raise ImageDecodeError("too many pixels")
                orientation = int(picture.getexif().get(_EXIF_ORIENTATION_TAG, 1))
                array: RgbImage = np.array(picture.convert("RGB"), dtype=np.uint8)
    except ImageDecodeError:
        raise
    except Exception as exc:
        # A broken or hostile file can make Pillow raise almost anything (OSError, ValueError,
        # SyntaxError, struct.error, DecompressionBombError...). Pillow's messages often include the
        # file name, so keep only the class name.
        raise ImageDecodeError(type(exc).__name__) from None
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageDecodeError("unexpected pixel layout")
    return apply_exif_orientation(array, orientation)


class DirectoryFrameSource(ManagedFrameSource):
    """Serves the ``.jpg/.jpeg/.png`` files of a directory in name order, looping, paced to ``fps``.

    The directory is listed again at the start of every pass, so files may be added while it runs.
    Unreadable files are skipped and counted (``skipped_files``); a log line reports the count, never the
    path. A missing or empty directory, or a pass in which no file decodes, raises ``CameraError``.
    Frames keep each file's own size.
    """

    def __init__(
        self, cfg: DirectoryCameraConfig, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        super().__init__(fps=cfg.fps, clock=clock, sleep=sleep)
        self._directory = cfg.path
        self._frames_per_image = cfg.frames_per_image
        self._max_pixels = int(cfg.max_image_megapixels * 1_000_000)
        self._max_bytes = int(cfg.max_file_mib * 1024 * 1024)
        self._files: list[Path] = []
        self._position = 0
        self._held: RgbImage | None = None
        self._held_frames_left = 0
        self.skipped_files = 0

    def _acquire(self) -> None:
        self._files = self._list_files()
        self._position = 0
        self._held = None
        self._held_frames_left = 0

    def _release(self) -> None:
        self._files = []
        self._held = None

    def _list_files(self) -> list[Path]:
        try:
            files = sorted(
                entry
                for entry in self._directory.iterdir()
                if entry.suffix.lower() in IMAGE_SUFFIXES and entry.is_file()
            )
        except OSError as exc:
            raise CameraError(
                f"the camera.path image directory cannot be listed ({type(exc).__name__}); does it exist?"
            ) from None
        if not files:
            raise CameraError("the camera.path image directory holds no .jpg, .jpeg or .png file")
        return files

    def _grab(self) -> RgbImage:
        if self._held is not None and self._held_frames_left > 0:
            self._held_frames_left -= 1
            return self._held.copy()  # the receiver owns its array; keep ours pristine
        image = self._decode_next()
        if self._frames_per_image > 1:
            self._held = image
            self._held_frames_left = self._frames_per_image - 1
            return image.copy()
        return image

    def _decode_next(self) -> RgbImage:
        tried = 0
        while True:
            if self._position >= len(self._files):
                self._files = self._list_files()
                self._position = 0
            if tried >= len(self._files):
                raise CameraError(
                    f"none of the {len(self._files)} files in the camera.path image directory decodes"
                )
            path = self._files[self._position]
            self._position += 1
            tried += 1
            try:
                return decode_image_file(path, max_pixels=self._max_pixels, max_bytes=self._max_bytes)
            except ImageDecodeError as exc:
                self.skipped_files += 1
                logger.warning(
                    "image directory source skipped an unreadable file (%s); %d skipped so far",
                    exc.reason,
                    self.skipped_files,
                )


# --------------------------------------------------------------------------------------------------
# Video file


class VideoFrameSource(ManagedFrameSource):
    """Decodes a video file with OpenCV, looping at the end, paced to ``fps`` (or the file's own rate)."""

    _FALLBACK_FPS = 15.0

    def __init__(
        self, cfg: VideoCameraConfig, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        # The real rate is known only after opening; the pacer is rebuilt then.
        super().__init__(fps=cfg.fps or self._FALLBACK_FPS, clock=clock, sleep=sleep)
        self._cfg = cfg
        self._sleep = sleep
        self._capture: cv2.VideoCapture | None = None

    def _open_capture(self) -> cv2.VideoCapture:
        if not self._cfg.path.is_file():
            raise CameraError("the camera.path video file does not exist or is not a file")
        capture = cv2.VideoCapture(str(self._cfg.path))
        if not capture.isOpened():
            capture.release()
            raise CameraError(
                "OpenCV cannot open the camera.path video file (unsupported codec or container?)"
            )
        return capture

    def _acquire(self) -> None:
        capture = self._open_capture()
        fps = self._cfg.fps
        if fps is None:
            file_fps = float(capture.get(cv2.CAP_PROP_FPS))
            fps = file_fps if 0 < file_fps <= 120 else self._FALLBACK_FPS
        self._pacer = _Pacer(fps, self._clock, self._sleep)
        self._capture = capture

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _grab(self) -> RgbImage:
        if self._capture is None:
            raise CameraError("video source is not open")
        ok, frame = self._capture.read()
        if not ok and self._cfg.loop:
            # Seeking back with CAP_PROP_POS_FRAMES is unreliable for some codecs; re-opening always works.
            self._capture.release()
            self._capture = self._open_capture()
            ok, frame = self._capture.read()
        if not ok or frame is None:
            raise CameraError("the video file delivered no frame")
        return bgr_to_rgb(frame)


def _u8(array: object) -> RgbImage:
    # OpenCV's stubs type every result as a generic Mat; the arrays we pass in are uint8, and so are the
    # results (no copy is made when the dtype already matches).
    return np.asarray(array, dtype=np.uint8)


def bgr_to_rgb(frame: npt.NDArray[Any]) -> RgbImage:
    """OpenCV frames are BGR (or grey); return a new RGB array."""
    if frame.ndim == 2:
        converted: RgbImage = _u8(cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB))
    elif frame.ndim == 3 and frame.shape[2] == 3:
        converted = _u8(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    else:
        raise CameraError(f"unexpected frame shape {frame.shape}")
    return converted


# --------------------------------------------------------------------------------------------------
# Demo


def _compose_scene(portrait: RgbImage, width: int, height: int) -> RgbImage:
    """Place a portrait in a ``height x width`` frame in front of a blurred, dimmed copy of itself.

    The blurred copy reads as an out-of-focus room, so the matting stage has a real background to remove.
    """
    portrait_height, portrait_width = portrait.shape[:2]
    cover = max(width / portrait_width, height / portrait_height)
    backdrop_size = (math.ceil(portrait_width * cover), math.ceil(portrait_height * cover))
    backdrop: RgbImage = _u8(cv2.resize(portrait, backdrop_size, interpolation=cv2.INTER_LINEAR))
    top = (backdrop.shape[0] - height) // 2
    left = (backdrop.shape[1] - width) // 2
    backdrop = backdrop[top : top + height, left : left + width]
    backdrop = _u8(cv2.GaussianBlur(backdrop, (0, 0), sigmaX=max(width, height) / 40))
    scene: RgbImage = _u8(cv2.convertScaleAbs(backdrop, alpha=0.55))

    # The subject fills the full height, so the zoom below always pushes the portrait's top and bottom
    # edges out of the frame and only its sides (against the blurred backdrop) can show.
    scale = min(height / portrait_height, width / portrait_width)
    subject_size = (max(1, round(portrait_width * scale)), max(1, round(portrait_height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    subject: RgbImage = _u8(cv2.resize(portrait, subject_size, interpolation=interpolation))
    x = (width - subject_size[0]) // 2
    y = height - subject_size[1]
    scene[y : y + subject_size[1], x : x + subject_size[0]] = subject
    return scene


class DemoFrameSource(ManagedFrameSource):
    """Bundled public-domain portraits (``appliance/demo_assets/``) with gentle motion, for laptops.

    Frames are ``(cfg.height, cfg.width, 3)`` RGB, paced to ``cfg.fps``. Motion is a slow, smooth drift
    of pan (about 1.5 % of the frame), zoom (5 % ± 3 %), roll (± 0.8°) and brightness (± 5 %), made of
    sines with unrelated periods so it never visibly repeats; it is a function of the frame index, so a
    run is reproducible. Each portrait is shown for ``cfg.seconds_per_portrait`` seconds.
    """

    def __init__(
        self,
        cfg: DemoCameraConfig,
        *,
        assets_dir: Path = DEMO_ASSETS_DIR,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(fps=cfg.fps, clock=clock, sleep=sleep)
        self._cfg = cfg
        self._assets_dir = assets_dir
        self._scenes: list[RgbImage] = []
        self._frame_number = 0

    def _acquire(self) -> None:
        files = sorted(p for p in self._assets_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        scenes = []
        for path in files:
            try:
                portrait = decode_image_file(path, max_pixels=50_000_000, max_bytes=50 * 1024 * 1024)
            except ImageDecodeError as exc:
                raise CameraError(
                    f"a bundled demo portrait is unreadable ({exc.reason}); reinstall"
                ) from None
            scenes.append(_compose_scene(portrait, self._cfg.width, self._cfg.height))
        if not scenes:
            raise CameraError("the bundled demo portraits are missing (appliance/demo_assets); reinstall")
        self._scenes = scenes
        self._frame_number = 0

    def _release(self) -> None:
        self._scenes = []

    def _grab(self) -> RgbImage:
        width, height = self._cfg.width, self._cfg.height
        t = self._frame_number / self._cfg.fps  # seconds of demo time
        self._frame_number += 1
        scene = self._scenes[int(t // self._cfg.seconds_per_portrait) % len(self._scenes)]

        def wave(period_seconds: float, phase: float = 0.0) -> float:
            return math.sin(2 * math.pi * t / period_seconds + phase)

        zoom = 1.05 + 0.03 * wave(9.0)  # never below 1.02: with the pan below, edges stay out of frame
        angle_degrees = 0.8 * wave(13.0, 0.5)
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle_degrees, zoom)
        matrix[0, 2] += 0.015 * width * wave(7.0, 1.0)
        matrix[1, 2] += 0.008 * height * wave(11.0, 2.0)
        # Reflecting the border hides the edge that a pan or roll would otherwise reveal.
        moved = cv2.warpAffine(
            scene, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        return _u8(cv2.convertScaleAbs(moved, alpha=1.0 + 0.05 * wave(17.0, 3.0)))


# --------------------------------------------------------------------------------------------------
# Reconnects


CameraState = Literal["ok", "reconnecting", "failed"]


@dataclass(frozen=True)
class CameraStats:
    """A snapshot for the staff dashboard and systemd STATUS: counts only, no personal data."""

    state: CameraState
    frames_read: int
    read_failures: int
    reconnect_attempts: int
    reconnects: int
    last_error: str | None  # exception class name of the last failure


class ReconnectingFrameSource:
    """Wraps a ``FrameSource``: a failed ``read()`` closes and re-opens it, a bounded number of times.

    Each attempt waits ``delay_seconds`` (through the injectable ``sleep``), is logged without personal
    data and is counted. The first frame after a successful re-open is returned, so callers see only a
    slower ``read()``. After ``attempts`` failures the inner source is closed, ``state`` becomes "failed"
    and ``CameraDisconnected`` is raised; later reads raise it at once until ``close()`` and ``open()``.
    ``open()`` retries the same way. Frame indices continue across re-opens. Owns and closes ``inner``.
    """

    def __init__(
        self, inner: FrameSource, *, attempts: int, delay_seconds: float, sleep: Sleep = time.sleep
    ) -> None:
        if attempts < 0 or delay_seconds < 0:
            raise ValueError("attempts and delay_seconds must not be negative")
        self._inner = inner
        self._attempts = attempts
        self._delay_seconds = delay_seconds
        self._sleep = sleep
        self._open = False
        self._index = 0
        self.state: CameraState = "ok"
        self.frames_read = 0
        self.read_failures = 0
        self.reconnect_attempts = 0
        self.reconnects = 0
        self.last_error: str | None = None

    @property
    def inner(self) -> FrameSource:
        return self._inner

    @property
    def is_open(self) -> bool:
        return self._open

    def stats(self) -> CameraStats:
        return CameraStats(
            state=self.state,
            frames_read=self.frames_read,
            read_failures=self.read_failures,
            reconnect_attempts=self.reconnect_attempts,
            reconnects=self.reconnects,
            last_error=self.last_error,
        )

    def open(self) -> None:
        if self._open:
            return
        self.state = "ok"
        try:
            self._inner.open()
        except CameraError as exc:
            self._note_failure(exc)
            # A re-open counts as recovered only once a frame arrives; that test frame is dropped.
            self._recover(exc)
        self._open = True

    def read(self) -> Capture:
        if not self._open:
            raise CameraError("camera is not open; call open() first")
        if self.state == "failed":
            raise CameraDisconnected("camera is disconnected; close() and open() it to try again")
        try:
            capture = self._inner.read()
        except CameraError as exc:
            self._note_failure(exc)
            capture = self._recover(exc)
        return self._renumber(capture)

    def close(self) -> None:
        self._open = False
        self._inner.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _note_failure(self, exc: CameraError) -> None:
        self.read_failures += 1
        self.last_error = type(exc).__name__

    def _renumber(self, capture: Capture) -> Capture:
        capture = dataclasses.replace(capture, index=self._index)
        self._index += 1
        self.frames_read += 1
        return capture

    def _recover(self, first_error: CameraError) -> Capture:
        """Close, re-open and read, up to ``attempts`` times; return the first frame or raise."""
        self.state = "reconnecting"
        # Our CameraError messages name devices and config keys only, never image paths.
        logger.warning("camera failed (%s: %s); reconnecting", type(first_error).__name__, first_error)
        last_error: CameraError = first_error
        for attempt in range(1, self._attempts + 1):
            self.reconnect_attempts += 1
            logger.warning(
                "camera reconnect attempt %d/%d in %.1fs", attempt, self._attempts, self._delay_seconds
            )
            self._sleep(self._delay_seconds)
            self._inner.close()
            try:
                self._inner.open()
                capture = self._inner.read()
            except CameraError as exc:
                self._note_failure(exc)
                last_error = exc
                logger.warning("camera reconnect attempt %d/%d failed (%s)", attempt, self._attempts, exc)
                continue
            self.state = "ok"
            self.reconnects += 1
            logger.info("camera reconnected after %d attempt(s)", attempt)
            return capture
        self.state = "failed"
        self._inner.close()
        logger.error("camera disconnected: %d reconnect attempt(s) failed", self._attempts)
        raise CameraDisconnected(
            f"camera unavailable after {self._attempts} reconnect attempt(s); last error: {last_error}"
        ) from last_error


# --------------------------------------------------------------------------------------------------
# Factory


def make_frame_source(
    cfg: CameraConfig, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
) -> ReconnectingFrameSource:
    """Build the source ``cfg`` names, wrapped for reconnects, without opening it (no hardware touched).

    Only the module of the named implementation is imported: the CSI and V4L2 modules load lazily so a
    laptop never needs GStreamer or a video device.
    """
    inner: FrameSource
    if isinstance(cfg, DemoCameraConfig):
        inner = DemoFrameSource(cfg, clock=clock, sleep=sleep)
    elif isinstance(cfg, DirectoryCameraConfig):
        inner = DirectoryFrameSource(cfg, clock=clock, sleep=sleep)
    elif isinstance(cfg, VideoCameraConfig):
        inner = VideoFrameSource(cfg, clock=clock, sleep=sleep)
    elif isinstance(cfg, V4l2CameraConfig):
        from appliance.v4l2_source import V4l2FrameSource  # noqa: PLC0415 - lazy: only on devices with one

        inner = V4l2FrameSource(cfg, clock=clock)
    elif isinstance(cfg, CsiCameraConfig):
        from appliance.csi_source import CsiFrameSource  # noqa: PLC0415 - lazy: Jetson only

        inner = CsiFrameSource(cfg, clock=clock)
    else:  # pragma: no cover - the config union is closed
        raise CameraError(f"unknown camera source {cfg!r}")
    return ReconnectingFrameSource(
        inner, attempts=cfg.reconnect_attempts, delay_seconds=cfg.reconnect_delay_seconds, sleep=sleep
    )


def open_frame_source(
    cfg: CameraConfig, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
) -> ReconnectingFrameSource:
    """Build and open the source ``cfg`` names. Call only after consent; the caller closes it at WIPE.

    Raises ``CameraDisconnected`` when the camera cannot be opened within the configured attempts.
    """
    source = make_frame_source(cfg, clock=clock, sleep=sleep)
    source.open()
    return source
