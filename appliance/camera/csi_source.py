"""MIPI CSI cameras on a Jetson through GStreamer's nvarguscamerasrc and OpenCV."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time

import cv2

from appliance.camera.base import CameraError, Clock, OpenCvFrameSource, open_video_capture
from appliance.config import CsiCameraConfig

__all__ = [
    "CsiFrameSource",
    "csi_pipeline",
    "csi_wait_ns",
    "opencv_has_gstreamer",
    "require_gstreamer_element",
]

logger = logging.getLogger(__name__)

_CSI_ELEMENT = "nvarguscamerasrc"
# nvarguscamerasrc's own stall limits (L4T r36 public sources, gstnvarguscamerasrc.cpp): event-wait bounds
# the wait for the next capture event and acquire-wait the wait for its frame, in nanoseconds; both
# refuse values below their defaults (3 s and 5 s). When one runs out the source stops and create()
# returns EOS, so the appsink ends, cv2's read() returns False at once and ReconnectingFrameSource
# re-opens the camera. That is the bound on a CSI read: a stall costs read_timeout_seconds (at least 3 s),
# not a hang.
_EVENT_WAIT_MIN_NS = 3_000_000_000
_ACQUIRE_WAIT_MIN_NS = 5_000_000_000


def csi_wait_ns(cfg: CsiCameraConfig) -> tuple[int, int]:
    """(event-wait, acquire-wait) in nanoseconds for ``cfg.read_timeout_seconds``, raised to the
    element's minimums (3 s, 5 s)."""
    wanted = int(cfg.read_timeout_seconds * 1_000_000_000)
    return max(wanted, _EVENT_WAIT_MIN_NS), max(wanted, _ACQUIRE_WAIT_MIN_NS)


def csi_pipeline(cfg: CsiCameraConfig) -> str:
    """The GStreamer pipeline for ``cfg``: NVMM capture, hardware flip/convert, BGR into an appsink.

    ``event-wait``/``acquire-wait`` end the stream (EOS) when the sensor stalls (see ``csi_wait_ns``).
    ``drop=true max-buffers=1`` keeps only the newest frame, so a slow consumer sees a live picture, not
    a growing backlog.
    """
    event_wait, acquire_wait = csi_wait_ns(cfg)
    return (
        f"{_CSI_ELEMENT} sensor-id={cfg.sensor_id} event-wait={event_wait} acquire-wait={acquire_wait} ! "
        f"video/x-raw(memory:NVMM),width={cfg.width},height={cfg.height},framerate={cfg.fps}/1 ! "
        f"nvvidconv flip-method={cfg.flip_method} ! video/x-raw,format=BGRx ! "
        "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
    )


def require_gstreamer_element(element: str, *, timeout_seconds: float) -> None:
    """Raise ``CameraError`` unless ``gst-inspect-1.0 --exists element`` succeeds within the timeout.

    Run before handing a pipeline to OpenCV because a pipeline naming a missing element can hang
    ``cv2.VideoCapture`` forever (DESIGN.md §4).
    """
    inspect = shutil.which("gst-inspect-1.0")
    if inspect is None:
        raise CameraError(
            "gst-inspect-1.0 is not installed, so GStreamer is missing: the CSI camera needs JetPack's "
            'GStreamer with nvarguscamerasrc (on a laptop use camera.source = "demo")'
        )
    try:
        result = subprocess.run(
            [inspect, "--exists", element],
            capture_output=True,
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CameraError(
            f"gst-inspect-1.0 did not answer within {timeout_seconds:g}s (camera.probe_timeout_seconds); "
            "the GStreamer registry may be rebuilding or broken"
        ) from None
    except OSError as exc:
        raise CameraError(f"gst-inspect-1.0 cannot run ({type(exc).__name__})") from None
    if result.returncode != 0:
        raise CameraError(
            f"GStreamer element {element} is not available: the CSI camera needs a Jetson with JetPack's "
            "nvarguscamerasrc (install nvidia-l4t-gstreamer), or choose another camera.source"
        )


def opencv_has_gstreamer() -> bool:
    """True if the imported cv2 was built with GStreamer (PyPI wheels are not; JetPack's cv2 is)."""
    match = re.search(r"^\s*GStreamer:\s*(\w+)", cv2.getBuildInformation(), flags=re.MULTILINE)
    return match is not None and match.group(1).upper() == "YES"


class CsiFrameSource(OpenCvFrameSource):
    """A CSI sensor through ``csi_pipeline(cfg)``; frames are RGB ``(height, width, 3)``.

    ``open()`` first checks that nvarguscamerasrc exists and that cv2 has GStreamer, raising a clear
    ``CameraError`` otherwise, instead of risking a hang. The camera paces itself.
    """

    def __init__(self, cfg: CsiCameraConfig, *, clock: Clock = time.monotonic) -> None:
        super().__init__(fps=None, clock=clock)
        self._cfg = cfg

    def _open_capture(self) -> cv2.VideoCapture:
        cfg = self._cfg
        require_gstreamer_element(_CSI_ELEMENT, timeout_seconds=cfg.probe_timeout_seconds)
        if not opencv_has_gstreamer():
            raise CameraError(
                "this OpenCV was built without GStreamer (PyPI wheels are): on the Jetson run in a venv made "
                "with --system-site-packages so JetPack's cv2 is used"
            )
        capture = open_video_capture(
            csi_pipeline(cfg),
            cv2.CAP_GSTREAMER,
            cannot_open=(
                f"cannot start the CSI camera on sensor-id {cfg.sensor_id}: is the ribbon cable seated and "
                "nvargus-daemon running?"
            ),
        )
        # No capture.set(...) here, CAP_PROP_READ_TIMEOUT_MSEC included: OpenCV's GStreamer backend stops
        # a playing pipeline to set any property (cap_gstreamer.cpp, GStreamerCapture::setProperty), which
        # for nvarguscamerasrc means a new Argus capture session. The stall bound is in the pipeline
        # (event-wait/acquire-wait); OpenCV's own default read timeout (30 s since 4.6) is the backstop.
        return capture

    def _no_frame(self, waited_seconds: float) -> str:
        return f"CSI camera on sensor-id {self._cfg.sensor_id} gave no frame"
