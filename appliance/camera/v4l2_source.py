"""USB (UVC) cameras through OpenCV's Video4Linux2 backend."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2

from appliance.camera.base import CameraError, Clock, OpenCvFrameSource, open_video_capture
from appliance.config import V4l2CameraConfig

__all__ = ["V4l2FrameSource"]

logger = logging.getLogger(__name__)

# OpenCV's V4L2 backend ignores CAP_PROP_READ_TIMEOUT_MSEC (that property is for FFmpeg and GStreamer).
# Its wait for a frame is a select() whose limit comes from this variable, read once per process at
# the first grab, default 10 s. See modules/videoio/src/cap_v4l.cpp, CvCaptureCAM_V4L::tryIoctl.
_SELECT_TIMEOUT_ENV = "OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT"


class V4l2FrameSource(OpenCvFrameSource):
    """A V4L2 device (``/dev/videoN``) at the configured size, rate and pixel format (MJPG by default).

    The camera paces itself: ``read()`` blocks until the next frame, at most about
    ``read_timeout_seconds``, then raises ``CameraError`` (an unplugged camera). Frames are RGB
    ``(height, width, 3)``; the driver may pick a nearby size, which is logged, not refused.
    """

    def __init__(self, cfg: V4l2CameraConfig, *, clock: Clock = time.monotonic) -> None:
        super().__init__(fps=None, clock=clock)
        self._cfg = cfg

    def _open_capture(self) -> cv2.VideoCapture:
        cfg = self._cfg
        device = Path(cfg.device)
        # Checked first because OpenCV only prints a warning and returns a closed capture otherwise.
        if not device.exists():
            raise CameraError(
                f"V4L2 device {cfg.device} does not exist: is the USB camera plugged in? "
                "`v4l2-ctl --list-devices` lists the cameras"
            )
        if not os.access(device, os.R_OK | os.W_OK):
            raise CameraError(f"no permission to open {cfg.device}: the service user needs the 'video' group")
        # setdefault: an operator who exported the variable on purpose keeps their value. The session
        # worker is one process per session, so the first camera it opens decides the value.
        os.environ.setdefault(_SELECT_TIMEOUT_ENV, str(cfg.read_timeout_seconds))
        capture = open_video_capture(
            cfg.device,
            cv2.CAP_V4L2,
            cannot_open=f"OpenCV cannot open {cfg.device} as a V4L2 camera (busy, or not a capture node?)",
        )
        # Pixel format before size: some UVC drivers reset the size when the format changes.
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.fourcc))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        capture.set(cv2.CAP_PROP_FPS, cfg.fps)
        # One buffer: the preview shows the newest frame rather than one queued a few frames ago.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if (width, height) != (cfg.width, cfg.height):
            logger.warning(
                "v4l2 camera delivers %dx%d instead of the requested %dx%d",
                width,
                height,
                cfg.width,
                cfg.height,
            )
        return capture

    def _no_frame(self, waited_seconds: float) -> str:
        return (
            f"V4L2 camera {self._cfg.device} gave no frame within {waited_seconds:.1f}s "
            "(unplugged or stalled?)"
        )
