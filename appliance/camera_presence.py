"""Whether the configured camera is there, without opening it (``headshot_kiosk_camera_present``).

The camera is opened only during a visit or a staff camera check, so "open" says nothing about a camera
that was unplugged at the end of the last visit; a fleet wants to know before the next guest arrives. This
looks at the device node or the file, never at the sensor (opening a V4L2 node between visits would turn
the camera's light on in front of passers-by). Light on purpose: the main process imports no OpenCV.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from appliance.config import (
    CameraConfig,
    CsiCameraConfig,
    DirectoryCameraConfig,
    V4l2CameraConfig,
    VideoCameraConfig,
)


def _is_char_device(path: Path) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def camera_present(camera: CameraConfig) -> bool:
    """True while the configured source can be opened as far as the file system tells: a V4L2 node (and
    a CSI sensor's ``/dev/video<sensor_id>``) is a character device, a video file or a directory of photos
    is readable; the demo camera is always there."""
    if isinstance(camera, V4l2CameraConfig):
        return _is_char_device(Path(camera.device))
    if isinstance(camera, CsiCameraConfig):
        return _is_char_device(Path(f"/dev/video{camera.sensor_id}"))
    if isinstance(camera, DirectoryCameraConfig):
        return camera.path.is_dir() and os.access(camera.path, os.R_OK | os.X_OK)
    if isinstance(camera, VideoCameraConfig):
        return camera.path.is_file() and os.access(camera.path, os.R_OK)
    return True  # the demo camera
