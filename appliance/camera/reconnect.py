"""Bounded reconnects: a ``FrameSource`` wrapper that re-opens a failed camera and counts what happened."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from typing_extensions import Self

from appliance.camera.base import CameraDisconnected, CameraError, Capture, FrameSource, Sleep

__all__ = ["CameraState", "CameraStats", "ReconnectingFrameSource"]

logger = logging.getLogger(__name__)

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
