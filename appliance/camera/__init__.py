"""Camera seam: the ``FrameSource`` sources, bounded reconnects and the factory that picks one by config.

Layout (one module per source; the value of ``camera.source`` names its module):

- ``base``: errors, ``Capture``, the ``FrameSource`` protocol, pacing, and ``OpenCvFrameSource``, the one
  OpenCV open/grab/release behind the video, V4L2 and CSI sources
- ``directory_source``, ``video_source``, ``demo_source``: sources that need no hardware
- ``v4l2_source``, ``csi_source``: USB and Jetson CSI cameras, imported only by the factory, lazily
- ``reconnect``: ``ReconnectingFrameSource``, which every source the factory builds is wrapped in

Source modules import ``base`` (the demo also the directory decoder), never this package, so there is no
import circle; every public name is re-exported here, so callers import from ``appliance.camera``.
"""

from __future__ import annotations

import time

from appliance.camera.base import (
    CameraDisconnected,
    CameraError,
    Capture,
    Clock,
    FrameSource,
    ImageDecodeError,
    ManagedFrameSource,
    OpenCvFrameSource,
    RgbImage,
    Sleep,
    bgr_to_rgb,
)
from appliance.camera.demo_source import DEMO_ASSETS_DIR, DemoFrameSource
from appliance.camera.directory_source import (
    DirectoryFrameSource,
    apply_exif_orientation,
    decode_image_file,
)
from appliance.camera.reconnect import CameraState, CameraStats, ReconnectingFrameSource
from appliance.camera.video_source import VideoFrameSource
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
    "Clock",
    "DemoFrameSource",
    "DirectoryFrameSource",
    "FrameSource",
    "ImageDecodeError",
    "ManagedFrameSource",
    "OpenCvFrameSource",
    "ReconnectingFrameSource",
    "RgbImage",
    "Sleep",
    "VideoFrameSource",
    "apply_exif_orientation",
    "bgr_to_rgb",
    "decode_image_file",
    "make_frame_source",
    "open_frame_source",
]


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
        from appliance.camera.v4l2_source import V4l2FrameSource  # noqa: PLC0415 - lazy: only on devices with one

        inner = V4l2FrameSource(cfg, clock=clock)
    elif isinstance(cfg, CsiCameraConfig):
        from appliance.camera.csi_source import CsiFrameSource  # noqa: PLC0415 - lazy: Jetson only

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
