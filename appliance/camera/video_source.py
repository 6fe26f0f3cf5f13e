"""Video-file camera: a file decoded by OpenCV (FFmpeg), looped, paced to its own rate or the config's."""

from __future__ import annotations

import time

import cv2

from appliance.camera.base import (
    CameraError,
    Clock,
    OpenCvFrameSource,
    RgbImage,
    Sleep,
    open_video_capture,
)
from appliance.config import VideoCameraConfig

__all__ = ["VideoFrameSource"]


class VideoFrameSource(OpenCvFrameSource):
    """Decodes a video file with OpenCV, looping at the end, paced to ``fps`` (or the file's own rate).

    Frames are RGB at the file's size. Without ``loop`` the read after the last frame raises
    ``CameraError``.
    """

    _FALLBACK_FPS = 15.0

    def __init__(
        self, cfg: VideoCameraConfig, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        # The file's own rate is known only after opening; _acquire() re-paces then.
        super().__init__(fps=cfg.fps or self._FALLBACK_FPS, clock=clock, sleep=sleep)
        self._cfg = cfg

    def _open_capture(self) -> cv2.VideoCapture:
        if not self._cfg.path.is_file():
            raise CameraError("the camera.path video file does not exist or is not a file")
        return open_video_capture(
            str(self._cfg.path),
            cv2.CAP_ANY,
            cannot_open="OpenCV cannot open the camera.path video file (unsupported codec or container?)",
        )

    def _no_frame(self, waited_seconds: float) -> str:
        return "the video file delivered no frame"

    def _acquire(self) -> None:
        capture = self._open_capture()
        self._capture = capture
        fps = self._cfg.fps
        if fps is None:
            file_fps = float(capture.get(cv2.CAP_PROP_FPS))
            fps = file_fps if 0 < file_fps <= 120 else self._FALLBACK_FPS
        self._set_fps(fps)

    def _read_rgb(self) -> RgbImage | None:
        image = super()._read_rgb()
        if image is None and self._cfg.loop:
            # Seeking back with CAP_PROP_POS_FRAMES is unreliable for some codecs; re-opening always works.
            self._release()
            self._capture = self._open_capture()
            image = super()._read_rgb()
        return image
