"""CSI and V4L2 capture on the device, through the product's own sources (issue 18; README promised it).

Run by ``make test-device`` on the Jetson, whose record (tools/device_record.py) is what lets README's
Jetson column say verified. Off the device every test is skipped with the reason: no Jetson, no
nvargus-daemon, no USB (UVC) camera. Nothing is mocked: frames come from the sensor.

- CSI: the interpreter's cv2 is JetPack's (built with GStreamer, imported from outside the venv, numpy
  1.x underneath), frames arrive RGB at the configured size and change over time, a second session opens
  the camera after the first closed it, and a sensor that is not there fails within the stall bound
  instead of hanging.
- V4L2: the first UVC camera gives RGB frames through ``V4l2FrameSource`` and reopens after a close.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.camera import CameraError, make_frame_source
from appliance.config import CsiCameraConfig, V4l2CameraConfig

pytestmark = pytest.mark.device

ARGUS_SOCKET = Path("/tmp/argus_socket")  # nvargus-daemon's fixed socket path
FRAMES = 10
# VIDIOC_QUERYCAP = _IOR('V', 0, struct v4l2_capability) with sizeof == 104 (linux/videodev2.h).
_VIDIOC_QUERYCAP = 0x80685600
_V4L2_CAP_VIDEO_CAPTURE = 0x00000001
_V4L2_CAP_DEVICE_CAPS = 0x80000000


def _require_jetson() -> None:
    if not Path("/etc/nv_tegra_release").is_file():
        pytest.skip("not a Jetson (no /etc/nv_tegra_release): run make test-device on the device")


def _require_csi() -> None:
    _require_jetson()
    if not ARGUS_SOCKET.exists():
        pytest.skip("nvargus-daemon is not running (no /tmp/argus_socket): no CSI camera stack")


def _querycap(device: Path) -> tuple[str, int] | None:
    """(driver name, capabilities of this node) from VIDIOC_QUERYCAP, or None when it cannot be asked."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buffer = bytearray(104)
        fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buffer)
    except OSError:
        return None
    finally:
        os.close(fd)
    driver = bytes(buffer[0:16]).split(b"\0", 1)[0].decode(errors="replace")
    capabilities, device_caps = struct.unpack_from("=II", buffer, 84)
    caps = device_caps if capabilities & _V4L2_CAP_DEVICE_CAPS else capabilities
    return driver, caps


def uvc_cameras() -> list[str]:
    """USB (UVC) capture nodes, sorted. The Jetson's CSI sensors also appear as /dev/videoN (tegra VI,
    raw Bayer): those are the CSI tests' business, so only the uvcvideo driver counts here."""
    found = []
    for node in sorted(Path("/dev").glob("video*")):
        cap = _querycap(node)
        if cap is not None and cap[0] == "uvcvideo" and cap[1] & _V4L2_CAP_VIDEO_CAPTURE:
            found.append(str(node))
    return found


def _assert_live_rgb(frames: list[np.ndarray], width: int, height: int) -> None:
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, frame.shape
        assert frame.std() > 1.0, "a flat frame: lens cap on, or the pipeline delivers nothing real"
    sizes = {f.shape[:2] for f in frames}
    assert sizes == {(height, width)}, f"frames are {sizes}, configured {width}x{height}"
    # A live sensor: sensor noise alone makes consecutive frames differ.
    assert any(not np.array_equal(a, b) for a, b in itertools.pairwise(frames)), "frozen frames"


def _read_frames(cfg: CsiCameraConfig | V4l2CameraConfig, count: int = FRAMES) -> list[np.ndarray]:
    source = make_frame_source(cfg)
    source.open()
    try:
        return [source.read().image for _ in range(count)]
    finally:
        source.close()


# ------------------------------------------------------------------------------------------------- CSI


def test_csi_opencv_is_jetpacks_with_gstreamer() -> None:
    # The bug of the old recipe: PyPI's opencv-python in the venv shadowed JetPack's, without GStreamer.
    _require_jetson()
    import cv2

    from appliance.camera.csi_source import opencv_has_gstreamer

    assert opencv_has_gstreamer(), "this cv2 has no GStreamer: a PyPI OpenCV shadows JetPack's"
    assert not str(cv2.__file__).startswith(sys.prefix), f"cv2 comes from the venv: {cv2.__file__}"
    assert np.__version__.startswith("1."), f"numpy {np.__version__}: JetPack's cv2 is built for numpy 1.x"


def test_csi_capture_gives_live_rgb_frames_at_the_configured_size() -> None:
    _require_csi()
    cfg = CsiCameraConfig(source="csi", width=1280, height=720, fps=30)
    try:
        frames = _read_frames(cfg)
    except CameraError as exc:
        if "is not available" in str(exc):
            pytest.skip(f"no nvarguscamerasrc here: {exc}")
        raise
    _assert_live_rgb(frames, cfg.width, cfg.height)


def test_csi_camera_opens_again_for_the_next_session() -> None:
    # Each visit's worker opens the camera and closes it at WIPE; Argus must hand it over every time.
    _require_csi()
    cfg = CsiCameraConfig(source="csi", width=1280, height=720, fps=30)
    for _session in range(2):
        frames = _read_frames(cfg, count=3)
        assert len(frames) == 3


def test_csi_missing_sensor_fails_within_the_stall_bound() -> None:
    # sensor-id 7 is not wired on any carrier board we ship: open or the first read must fail, bounded by
    # nvarguscamerasrc's event-wait/acquire-wait (read_timeout_seconds, at least 5 s), never hang.
    _require_csi()
    # The raw source, without the factory's reconnect wrapper: one open and one read.
    from appliance.camera.csi_source import CsiFrameSource

    cfg = CsiCameraConfig(source="csi", sensor_id=7, read_timeout_seconds=5)
    source = CsiFrameSource(cfg)
    started = time.monotonic()
    with pytest.raises(CameraError):
        try:
            source.open()
            source.read()
        finally:
            source.close()
    assert time.monotonic() - started < 30


# ------------------------------------------------------------------------------------------------ V4L2


@pytest.fixture
def uvc_device() -> Iterator[str]:
    cameras = uvc_cameras()
    if not cameras:
        pytest.skip("no USB (UVC) camera attached (no /dev/video* node of the uvcvideo driver)")
    yield cameras[0]


def test_v4l2_capture_gives_live_rgb_frames(uvc_device: str) -> None:
    cfg = V4l2CameraConfig(source="v4l2", device=uvc_device, width=640, height=480, fps=30)
    frames = _read_frames(cfg)
    # A UVC camera may pick a nearby size (logged, not refused): every frame has the size of the first.
    height, width = frames[0].shape[:2]
    _assert_live_rgb(frames, width, height)


def test_v4l2_camera_opens_again_for_the_next_session(uvc_device: str) -> None:
    cfg = V4l2CameraConfig(source="v4l2", device=uvc_device, width=640, height=480, fps=30)
    for _session in range(2):
        assert len(_read_frames(cfg, count=3)) == 3


def test_v4l2_missing_node_is_a_clear_error() -> None:
    # On the device too: a configured camera that is unplugged is an error the UI shows, not a hang.
    _require_jetson()
    cfg = V4l2CameraConfig(source="v4l2", device="/dev/video63")
    if Path(cfg.device).exists():
        pytest.skip("/dev/video63 exists here")
    with pytest.raises(CameraError, match="does not exist"):
        _read_frames(cfg, count=1)
