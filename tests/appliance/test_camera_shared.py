"""What the camera sources share (issue 12): one image decoder with the engine, one OpenCV reader."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from appliance.camera import OpenCvFrameSource, VideoFrameSource, decode_image_file
from appliance.camera.csi_source import CsiFrameSource
from appliance.camera.v4l2_source import V4l2FrameSource
from appliance.config import VideoCameraConfig
from engine.imageio import decode

FACES = Path(__file__).resolve().parents[1] / "assets" / "faces"
LIMITS = {"max_pixels": 10**8, "max_bytes": 2**30}


def test_decode_image_file_is_the_engine_decoder() -> None:
    # Photos and camera files go through one decoder: the same pixels, orientation included.
    files = sorted(p for p in FACES.iterdir() if p.suffix in (".jpg", ".png"))
    assert len(files) >= 9
    for path in files:
        engine_rgb = decode(path.read_bytes(), **LIMITS).rgb
        assert np.array_equal(decode_image_file(path, **LIMITS), engine_rgb), path.name


def test_decode_gives_a_writeable_array_and_whitens_transparency(tmp_path: Path) -> None:
    path = tmp_path / "cutout.png"
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., 0] = 200  # red everywhere, but only the left half is opaque
    rgba[:, :24, 3] = 255
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = decode_image_file(path, **LIMITS)
    # The engine may hand back a read-only view of Pillow's buffer; a camera frame's receiver owns it.
    assert rgb.flags.writeable and rgb.flags.c_contiguous and rgb.flags.owndata
    assert (rgb[:, :24] == (200, 0, 0)).all()
    assert (rgb[:, 24:] == 255).all()  # what engine.imageio does with an uploaded photo


def test_video_source_starts_again_after_close_and_open(tmp_path: Path) -> None:
    path = tmp_path / "two.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (64, 48))
    for bgr in ((0, 0, 255), (255, 0, 0)):
        writer.write(np.full((48, 64, 3), bgr, np.uint8))
    writer.release()
    source = VideoFrameSource(VideoCameraConfig(source="video", path=path, loop=False, fps=120))
    with source:
        first = source.read().image
        assert source.read().image[..., 2].mean() > 200  # the second frame is blue
    assert not source.is_open
    with source:
        again = source.read()
    assert again.index == 0
    assert first[..., 0].mean() > 200 and np.abs(again.image.astype(int) - first).mean() < 2


def test_hardware_and_video_sources_share_one_opencv_reader() -> None:
    # Each source brings only how to open its capture; grabbing and releasing are written once.
    for source_class in (VideoFrameSource, V4l2FrameSource, CsiFrameSource):
        assert issubclass(source_class, OpenCvFrameSource)
        assert source_class._grab is OpenCvFrameSource._grab
        assert source_class._release is OpenCvFrameSource._release
