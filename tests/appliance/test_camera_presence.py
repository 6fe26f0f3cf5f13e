"""headshot_kiosk_camera_present: the configured camera's node or file, looked at without opening it."""

from __future__ import annotations

from pathlib import Path

from appliance.camera_presence import camera_present
from appliance.config import CameraConfig, KioskConfig


def _camera(data: dict[str, object]) -> CameraConfig:
    return KioskConfig.model_validate({"camera": data}).camera


def test_each_source_is_checked_where_it_lives(tmp_path: Path) -> None:
    assert camera_present(_camera({"source": "demo"}))
    # /dev/null is a character device that every machine has; a missing node is an unplugged camera.
    assert camera_present(_camera({"source": "v4l2", "device": "/dev/null"}))
    assert not camera_present(_camera({"source": "v4l2", "device": "/dev/video97"}))
    photos = tmp_path / "photos"
    photos.mkdir()
    assert camera_present(_camera({"source": "directory", "path": str(photos)}))
    photos.rmdir()
    assert not camera_present(_camera({"source": "directory", "path": str(photos)}))
    clip = tmp_path / "clip.mp4"
    assert not camera_present(_camera({"source": "video", "path": str(clip)}))
    clip.write_bytes(b"\0")
    assert camera_present(_camera({"source": "video", "path": str(clip)}))
    assert not camera_present(_camera({"source": "csi", "sensor_id": 7}))
