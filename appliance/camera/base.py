"""Camera building blocks: errors, ``Capture``, the ``FrameSource`` protocol and the shared source bases."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__all__ = [
    "CameraDisconnected",
    "CameraError",
    "Capture",
    "Clock",
    "FrameSource",
    "ImageDecodeError",
    "ManagedFrameSource",
    "OpenCvFrameSource",
    "RgbImage",
    "Sleep",
    "as_uint8",
    "bgr_to_rgb",
    "open_video_capture",
]

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
        self._sleep = sleep
        self._pacer = _Pacer(fps, clock, sleep) if fps is not None else None
        self._open = False
        self._index = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def _set_fps(self, fps: float) -> None:
        """Pace to ``fps`` from the next read on, for sources that learn their rate only when opened."""
        self._pacer = _Pacer(fps, self._clock, self._sleep)

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
# OpenCV: the one open/grab/release shared by the video, V4L2 and CSI sources


def as_uint8(array: object) -> RgbImage:
    """``array`` as a ``uint8`` ndarray, without a copy when it already is one.

    OpenCV's stubs type every result as a generic ``Mat``; the arrays we pass in are ``uint8`` and so
    are the results, so this only restores the type.
    """
    return np.asarray(array, dtype=np.uint8)


def bgr_to_rgb(frame: npt.NDArray[Any]) -> RgbImage:
    """OpenCV frames are BGR (or grey); return a new RGB array."""
    if frame.ndim == 2:
        converted: RgbImage = as_uint8(cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB))
    elif frame.ndim == 3 and frame.shape[2] == 3:
        converted = as_uint8(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    else:
        raise CameraError(f"unexpected frame shape {frame.shape}")
    return converted


def open_video_capture(target: str, api: int, *, cannot_open: str) -> cv2.VideoCapture:
    """Open ``target`` (a file, a device node or a GStreamer pipeline) with OpenCV backend ``api``.

    Returns an opened capture the caller releases; raises ``CameraError(cannot_open)`` otherwise.
    ``cannot_open`` should say what to check, and name no image path.
    """
    capture = cv2.VideoCapture(target, api)
    if not capture.isOpened():
        # A capture that failed to open can still hold a half-built pipeline or a device handle.
        capture.release()
        raise CameraError(cannot_open)
    return capture


class OpenCvFrameSource(ManagedFrameSource):
    """Base for sources read through one ``cv2.VideoCapture`` (video file, V4L2, CSI).

    Subclasses implement ``_open_capture()`` (their own checks, then ``open_video_capture(...)`` and any
    settings; the capture returned is owned here and released at ``close()``) and ``_no_frame(waited)``,
    the ``CameraError`` message for a read that gave nothing after ``waited`` seconds. Frames are RGB.
    """

    def __init__(
        self, *, fps: float | None, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        super().__init__(fps=fps, clock=clock, sleep=sleep)
        self._capture: cv2.VideoCapture | None = None

    def _open_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def _no_frame(self, waited_seconds: float) -> str:
        raise NotImplementedError

    def _acquire(self) -> None:
        self._capture = self._open_capture()

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def _read_rgb(self) -> RgbImage | None:
        """The next frame as RGB, or ``None`` when OpenCV gave none (end of file, unplugged, stalled)."""
        if self._capture is None:
            raise CameraError(f"{type(self).__name__} is not open")
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        return bgr_to_rgb(frame)

    def _grab(self) -> RgbImage:
        # Wall time, not the injected clock: the message reports how long the device really blocked.
        started = time.monotonic()
        image = self._read_rgb()
        if image is None:
            raise CameraError(self._no_frame(time.monotonic() - started))
        return image
