"""Camera sources on real files, the hardware sources failing cleanly, and bounded reconnects."""

from __future__ import annotations

import itertools
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from appliance.camera import (
    CameraDisconnected,
    CameraError,
    Capture,
    DemoFrameSource,
    DirectoryFrameSource,
    FrameSource,
    ImageDecodeError,
    ReconnectingFrameSource,
    VideoFrameSource,
    apply_exif_orientation,
    decode_image_file,
    make_frame_source,
    open_frame_source,
)
from appliance.camera.csi_source import CsiFrameSource, csi_pipeline, csi_wait_ns, opencv_has_gstreamer
from appliance.camera.v4l2_source import V4l2FrameSource
from appliance.config import (
    CsiCameraConfig,
    DemoCameraConfig,
    DirectoryCameraConfig,
    V4l2CameraConfig,
    VideoCameraConfig,
)

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "assets" / "faces"
LIMITS = {"max_pixels": 10**8, "max_bytes": 2**30}


class FakeTime:
    """A clock that only moves when something sleeps, so pacing is checked without waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def assert_owned_rgb(capture: Capture, shape: tuple[int, int, int] | None = None) -> None:
    image = capture.image
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.flags.c_contiguous and image.flags.writeable
    if shape is not None:
        assert image.shape == shape


def directory_cfg(path: Path, **kwargs: object) -> DirectoryCameraConfig:
    return DirectoryCameraConfig.model_validate({"source": "directory", "path": path, **kwargs})


# --------------------------------------------------------------------------------------------------
# Decoding and EXIF orientation


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_is_applied_by_hand(orientation: int) -> None:
    upright = decode_image_file(FACES / "hopper.jpg", **LIMITS).astype(np.int16)
    path = FACES / f"hopper_orientation_{orientation}.jpg"
    decoded = decode_image_file(path, **LIMITS).astype(np.int16)
    with Image.open(path) as raw_picture:
        raw = np.asarray(raw_picture.convert("RGB")).astype(np.int16)
    # Same picture up to JPEG noise once turned; clearly different as stored.
    assert np.abs(decoded - upright).mean() < 8
    assert np.abs(raw - upright).mean() > 40


def test_orientation_handles_non_square_images() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    for orientation in (5, 6, 7, 8):
        assert apply_exif_orientation(image, orientation).shape == (3, 2, 3)
    for orientation in (0, 1, 2, 3, 4, 9):
        assert apply_exif_orientation(image, orientation).shape == (2, 3, 3)
    # Orientation 6 means the camera was turned: the top-left pixel ends up top-right.
    assert (apply_exif_orientation(image, 6)[0, -1] == image[0, 0]).all()


def test_decode_refuses_too_many_pixels_before_decoding() -> None:
    with pytest.raises(ImageDecodeError, match="too many pixels"):
        decode_image_file(FACES / "astronaut.png", max_pixels=512 * 512 - 1, max_bytes=2**30)


def test_decode_refuses_large_files() -> None:
    with pytest.raises(ImageDecodeError, match="file too large"):
        decode_image_file(FACES / "astronaut.png", max_pixels=10**8, max_bytes=1000)


def test_decode_errors_never_name_the_path(tmp_path: Path) -> None:
    secret = tmp_path / "jane-doe-portrait.jpg"
    secret.write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError) as info:
        decode_image_file(secret, **LIMITS)
    assert "jane" not in str(info.value)


def test_decode_refuses_other_formats(tmp_path: Path) -> None:
    gif = tmp_path / "face.png"
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    with pytest.raises(ImageDecodeError):
        decode_image_file(gif, **LIMITS)


# --------------------------------------------------------------------------------------------------
# Directory source


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    """Two portraits, a truncated JPEG, a text file named .png and a README that is not an image."""
    folder = tmp_path / "faces"
    folder.mkdir()
    shutil.copy(FACES / "astronaut.png", folder / "a_astronaut.png")
    shutil.copy(FACES / "grace_hopper.jpg", folder / "d_grace_hopper.JPG")
    (folder / "b_truncated.jpg").write_bytes((FACES / "grace_hopper.jpg").read_bytes()[:2000])
    (folder / "c_not_really.png").write_text("hello")
    (folder / "README.txt").write_text("not a picture")
    return folder


def test_directory_source_loops_and_skips_unreadable_files(
    mixed_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake = FakeTime()
    source = DirectoryFrameSource(directory_cfg(mixed_dir), clock=fake.clock, sleep=fake.sleep)
    with source:
        captures = [source.read() for _ in range(4)]
    assert [c.image.shape for c in captures] == [(512, 512, 3), (600, 512, 3)] * 2
    assert [c.index for c in captures] == [0, 1, 2, 3]
    for capture in captures:
        assert_owned_rgb(capture)
    # Each pass meets the two broken files once; the .txt is not a candidate at all.
    assert source.skipped_files == 4
    assert "skipped an unreadable file" in caplog.text
    assert str(mixed_dir) not in caplog.text and "truncated" not in caplog.text
    assert not source.is_open


def test_directory_source_is_paced_to_its_fps(mixed_dir: Path) -> None:
    fake = FakeTime()
    with DirectoryFrameSource(directory_cfg(mixed_dir, fps=10), clock=fake.clock, sleep=fake.sleep) as source:
        stamps = [source.read().timestamp for _ in range(4)]
    assert stamps == pytest.approx([100.0, 100.1, 100.2, 100.3])


def test_directory_source_repeats_an_image_without_sharing_it(mixed_dir: Path) -> None:
    with DirectoryFrameSource(directory_cfg(mixed_dir, fps=60, frames_per_image=3)) as source:
        first = source.read()
        first.image[:] = 0  # the receiver owns its array
        second, third, fourth = source.read(), source.read(), source.read()
    assert second.image.shape == third.image.shape == (512, 512, 3)
    assert second.image.any()
    assert np.array_equal(second.image, third.image)
    assert fourth.image.shape == (600, 512, 3)


def test_empty_directory_is_a_camera_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CameraError, match=r"no \.jpg, \.jpeg or \.png"):
        DirectoryFrameSource(directory_cfg(tmp_path)).open()


def test_missing_directory_is_a_camera_error(tmp_path: Path) -> None:
    source = DirectoryFrameSource(directory_cfg(tmp_path / "gone"))
    with pytest.raises(CameraError) as info:
        source.open()
    assert str(tmp_path) not in str(info.value)
    assert not source.is_open


def test_directory_vanishing_while_open_is_a_camera_error(mixed_dir: Path) -> None:
    with DirectoryFrameSource(directory_cfg(mixed_dir, fps=60)) as source:
        source.read()
        source.read()
        shutil.rmtree(mixed_dir)
        with pytest.raises(CameraError):
            source.read()


def test_directory_of_only_broken_files_is_a_camera_error(tmp_path: Path) -> None:
    for name in ("x.jpg", "y.png"):
        (tmp_path / name).write_bytes(b"\x00" * 64)
    with DirectoryFrameSource(directory_cfg(tmp_path, fps=60)) as source:
        with pytest.raises(CameraError, match="none of the 2 files"):
            source.read()
        assert source.skipped_files == 2


def test_the_test_faces_directory_serves_every_portrait() -> None:
    with DirectoryFrameSource(directory_cfg(FACES, fps=60)) as source:
        captures = [source.read() for _ in range(10)]
    assert source.skipped_files == 0
    assert {c.image.shape for c in captures} == {(512, 512, 3), (600, 512, 3), (128, 128, 3)}


def test_reading_a_closed_source_is_a_camera_error(mixed_dir: Path) -> None:
    source = DirectoryFrameSource(directory_cfg(mixed_dir))
    with pytest.raises(CameraError, match="not open"):
        source.read()
    source.close()  # idempotent, even before open
    source.open()
    source.close()
    source.close()


# --------------------------------------------------------------------------------------------------
# Video source

# One distinct colour per frame (BGR, as OpenCV writes): red, green, blue, white, grey.
VIDEO_COLOURS_BGR = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (128, 128, 128)]


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    path = tmp_path / "rehearsal.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (160, 120))
    assert writer.isOpened()
    for colour in VIDEO_COLOURS_BGR:
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:] = colour
        writer.write(frame)
    writer.release()
    return path


def video_cfg(path: Path, **kwargs: object) -> VideoCameraConfig:
    return VideoCameraConfig.model_validate({"source": "video", "path": path, **kwargs})


def mean_rgb(capture: Capture) -> tuple[int, ...]:
    return tuple(round(float(v)) for v in capture.image.reshape(-1, 3).mean(axis=0))


def test_video_source_delivers_rgb_frames_and_loops(video_file: Path) -> None:
    fake = FakeTime()
    with VideoFrameSource(video_cfg(video_file), clock=fake.clock, sleep=fake.sleep) as source:
        captures = [source.read() for _ in range(12)]
    for capture in captures:
        assert_owned_rgb(capture, (120, 160, 3))
    expected_rgb = [(r, g, b) for b, g, r in VIDEO_COLOURS_BGR]
    for i, capture in enumerate(captures):
        got = mean_rgb(capture)
        want = expected_rgb[i % len(VIDEO_COLOURS_BGR)]
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 12, (i, got, want)
    # Paced at the file's own 25 fps.
    assert captures[1].timestamp - captures[0].timestamp == pytest.approx(0.04)


def test_video_source_without_loop_fails_at_the_end(video_file: Path) -> None:
    with VideoFrameSource(video_cfg(video_file, loop=False, fps=120)) as source:
        for _ in VIDEO_COLOURS_BGR:
            source.read()
        with pytest.raises(CameraError, match="no frame"):
            source.read()


def test_missing_video_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist"):
        VideoFrameSource(video_cfg(tmp_path / "absent.avi")).open()


def test_garbage_video_is_a_camera_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.avi"
    path.write_bytes(b"RIFF" + b"\x00" * 100)
    with pytest.raises(CameraError):
        source = VideoFrameSource(video_cfg(path, fps=120))
        source.open()
        source.read()


# --------------------------------------------------------------------------------------------------
# Demo source


def test_demo_source_gives_gently_moving_frames_of_the_configured_size() -> None:
    fake = FakeTime()
    cfg = DemoCameraConfig(width=320, height=180, fps=15)
    with DemoFrameSource(cfg, clock=fake.clock, sleep=fake.sleep) as source:
        captures = [source.read() for _ in range(30)]
    for capture in captures:
        assert_owned_rgb(capture, (180, 320, 3))
    frames = [c.image.astype(np.int16) for c in captures]
    steps = [np.abs(a - b).mean() for a, b in itertools.pairwise(frames)]
    assert all(step > 0.05 for step in steps), "the preview must look alive"
    assert all(step < 12 for step in steps), "motion must be gentle, not jumpy"
    assert np.abs(frames[0] - frames[-1]).mean() > 1
    # Paced to 15 fps by the injected clock.
    assert captures[-1].timestamp - captures[0].timestamp == pytest.approx(29 / 15)


def test_demo_source_changes_portrait_after_its_time() -> None:
    cfg = DemoCameraConfig(width=160, height=90, fps=10, seconds_per_portrait=1)
    fake = FakeTime()
    with DemoFrameSource(cfg, clock=fake.clock, sleep=fake.sleep) as source:
        captures = [source.read() for _ in range(12)]
    within = np.abs(captures[0].image.astype(int) - captures[9].image).mean()
    across = np.abs(captures[9].image.astype(int) - captures[10].image).mean()
    assert across > 3 * within


def test_demo_source_paces_in_real_time() -> None:
    with DemoFrameSource(DemoCameraConfig(width=160, height=90, fps=50)) as source:
        started = time.monotonic()
        for _ in range(6):
            source.read()
        elapsed = time.monotonic() - started
    assert elapsed >= 5 / 50 * 0.9


def test_demo_source_without_assets_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="demo portraits are missing"):
        DemoFrameSource(DemoCameraConfig(), assets_dir=tmp_path).open()


# --------------------------------------------------------------------------------------------------
# Hardware sources fail fast and clearly without hardware


def test_v4l2_missing_device_is_a_camera_error() -> None:
    cfg = V4l2CameraConfig(source="v4l2", device="/dev/video-headshot-test-absent")
    started = time.monotonic()
    with pytest.raises(CameraError, match="does not exist"):
        V4l2FrameSource(cfg).open()
    assert time.monotonic() - started < 2


def test_v4l2_non_camera_node_is_a_camera_error() -> None:
    cfg = V4l2CameraConfig(source="v4l2", device="/dev/null")
    with pytest.raises(CameraError):
        V4l2FrameSource(cfg).open()


def test_csi_pipeline_matches_the_jetson_recipe() -> None:
    cfg = CsiCameraConfig(source="csi", sensor_id=1, width=1280, height=720, fps=60, flip_method=2)
    assert csi_pipeline(cfg) == (
        "nvarguscamerasrc sensor-id=1 event-wait=3000000000 acquire-wait=5000000000 ! "
        "video/x-raw(memory:NVMM),width=1280,height=720,framerate=60/1 ! "
        "nvvidconv flip-method=2 ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
        "appsink drop=true max-buffers=1"
    )


def test_csi_read_bound_is_the_pipelines_own_and_never_below_argus_minimums() -> None:
    # nvarguscamerasrc refuses event-wait < 3 s and acquire-wait < 5 s; longer read timeouts pass through.
    assert csi_wait_ns(CsiCameraConfig(source="csi", read_timeout_seconds=0.5)) == (3 * 10**9, 5 * 10**9)
    assert csi_wait_ns(CsiCameraConfig(source="csi", read_timeout_seconds=8)) == (8 * 10**9, 8 * 10**9)


def test_csi_source_sets_no_property_on_the_playing_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenCV's GStreamer backend stops and restarts a playing pipeline for any set() (a new Argus session).
    from unittest.mock import Mock

    import appliance.camera.csi_source as csi

    capture = Mock()
    monkeypatch.setattr(csi, "require_gstreamer_element", lambda element, *, timeout_seconds: None)
    monkeypatch.setattr(csi, "opencv_has_gstreamer", lambda: True)
    monkeypatch.setattr(csi, "open_video_capture", lambda target, api, *, cannot_open: capture)
    assert CsiFrameSource(CsiCameraConfig(source="csi"))._open_capture() is capture
    capture.set.assert_not_called()


def _csi_available() -> bool:
    inspect = shutil.which("gst-inspect-1.0")
    if inspect is None or not opencv_has_gstreamer():
        return False
    return subprocess.run([inspect, "--exists", "nvarguscamerasrc"], check=False, timeout=10).returncode == 0


def test_csi_source_fails_quickly_without_nvarguscamerasrc() -> None:
    if _csi_available():
        pytest.skip("this machine has a CSI stack; tests/device covers it")
    started = time.monotonic()
    with pytest.raises(CameraError, match=r"GStreamer|gst-inspect"):
        CsiFrameSource(CsiCameraConfig(source="csi")).open()
    assert time.monotonic() - started < 5


def fake_gst_inspect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """Put a real ``gst-inspect-1.0`` script first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "gst-inspect-1.0"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_csi_source_names_the_missing_element(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gst_inspect(tmp_path, monkeypatch, "exit 1")
    with pytest.raises(CameraError, match="element nvarguscamerasrc is not available"):
        CsiFrameSource(CsiCameraConfig(source="csi")).open()


def test_csi_source_gives_up_on_a_hanging_gst_inspect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gst_inspect(tmp_path, monkeypatch, "exec sleep 30")
    started = time.monotonic()
    with pytest.raises(CameraError, match=r"did not answer within 0\.3s"):
        CsiFrameSource(CsiCameraConfig(source="csi", probe_timeout_seconds=0.3)).open()
    assert time.monotonic() - started < 5


def test_csi_source_refuses_an_opencv_without_gstreamer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if opencv_has_gstreamer():
        pytest.skip("this cv2 has GStreamer")
    fake_gst_inspect(tmp_path, monkeypatch, "exit 0")
    with pytest.raises(CameraError, match="built without GStreamer"):
        CsiFrameSource(CsiCameraConfig(source="csi")).open()


# --------------------------------------------------------------------------------------------------
# Protocol and factory


def test_every_source_satisfies_the_protocol(mixed_dir: Path, video_file: Path) -> None:
    sources: list[object] = [
        DirectoryFrameSource(directory_cfg(mixed_dir)),
        VideoFrameSource(video_cfg(video_file)),
        DemoFrameSource(DemoCameraConfig()),
        V4l2FrameSource(V4l2CameraConfig(source="v4l2")),
        CsiFrameSource(CsiCameraConfig(source="csi")),
        make_frame_source(DemoCameraConfig()),
    ]
    for source in sources:
        assert isinstance(source, FrameSource)


def test_factory_builds_without_opening_and_open_frame_source_opens(mixed_dir: Path) -> None:
    cfg = directory_cfg(mixed_dir, fps=60)
    built = make_frame_source(cfg)
    assert isinstance(built.inner, DirectoryFrameSource)
    assert not built.is_open
    with open_frame_source(cfg) as camera:
        assert camera.is_open
        assert_owned_rgb(camera.read(), (512, 512, 3))
    assert not camera.is_open
    assert not camera.inner.is_open


def test_factory_imports_only_the_named_implementation() -> None:
    code = (
        "import sys\n"
        "from appliance.camera import make_frame_source\n"
        "from appliance.config import DemoCameraConfig, V4l2CameraConfig\n"
        "make_frame_source(DemoCameraConfig())\n"
        "assert 'appliance.camera.v4l2_source' not in sys.modules\n"
        "assert 'appliance.camera.csi_source' not in sys.modules\n"
        "make_frame_source(V4l2CameraConfig(source='v4l2'))\n"
        "assert 'appliance.camera.v4l2_source' in sys.modules\n"
        "assert 'appliance.camera.csi_source' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_factory_gives_up_on_a_missing_v4l2_device_after_the_configured_attempts() -> None:
    cfg = V4l2CameraConfig(
        source="v4l2",
        device="/dev/video-headshot-test-absent",
        reconnect_attempts=3,
        reconnect_delay_seconds=0.5,
    )
    fake = FakeTime()
    camera = make_frame_source(cfg, sleep=fake.sleep)
    with pytest.raises(CameraDisconnected, match="after 3 reconnect attempt"):
        camera.open()
    assert fake.sleeps == [0.5, 0.5, 0.5]
    assert camera.stats().state == "failed"
    assert camera.stats().reconnect_attempts == 3
    assert not camera.is_open


# --------------------------------------------------------------------------------------------------
# Reconnects


class FlakySource:
    """A FrameSource whose next ``fail_reads`` reads and next ``fail_opens`` opens fail."""

    def __init__(self, *, fail_reads: int = 0, fail_opens: int = 0) -> None:
        self.fail_reads = fail_reads
        self.fail_opens = fail_opens
        self.opens = 0
        self.closes = 0
        self.reads = 0
        self._open = False
        self._index = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        if self._open:
            return
        self.opens += 1
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise CameraError("device busy")
        self._open = True
        self._index = 0

    def read(self) -> Capture:
        self.reads += 1
        if not self._open:
            raise CameraError("not open")
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise CameraError("no frame")
        image: npt.NDArray[np.uint8] = np.full((4, 6, 3), self._index, np.uint8)
        capture = Capture(image=image, timestamp=time.monotonic(), index=self._index)
        self._index += 1
        return capture

    def close(self) -> None:
        self.closes += 1
        self._open = False

    def __enter__(self) -> FlakySource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_reconnect_recovers_after_a_few_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    inner = FlakySource()
    fake = FakeTime()
    camera = ReconnectingFrameSource(inner, attempts=5, delay_seconds=2.0, sleep=fake.sleep)
    camera.open()
    assert camera.read().index == 0
    inner.fail_reads = 1  # the next read fails ...
    inner.fail_opens = 2  # ... and so do the first two re-opens
    capture = camera.read()
    assert capture.index == 1  # numbering continues across the re-open
    assert camera.read().index == 2
    stats = camera.stats()
    assert stats.state == "ok"
    assert stats.reconnect_attempts == 3
    assert stats.reconnects == 1
    assert stats.read_failures == 3  # the read plus two failed re-opens
    assert stats.frames_read == 3
    assert stats.last_error == "CameraError"
    assert fake.sleeps == [2.0, 2.0, 2.0]
    assert "reconnect attempt 3/5" in caplog.text
    assert "camera reconnected after 3 attempt(s)" in caplog.text


def test_reconnect_gives_up_after_the_bound() -> None:
    inner = FlakySource()
    fake = FakeTime()
    camera = ReconnectingFrameSource(inner, attempts=4, delay_seconds=1.0, sleep=fake.sleep)
    camera.open()
    inner.fail_reads = 1
    inner.fail_opens = 1000
    with pytest.raises(CameraDisconnected, match="after 4 reconnect attempt"):
        camera.read()
    assert camera.state == "failed"
    assert camera.reconnect_attempts == 4
    assert fake.sleeps == [1.0] * 4
    assert not inner.is_open
    # Later reads fail at once without touching the device again.
    opens_before = inner.opens
    with pytest.raises(CameraDisconnected):
        camera.read()
    assert inner.opens == opens_before
    assert len(fake.sleeps) == 4
    # close() + open() is the explicit way back.
    camera.close()
    inner.fail_opens = 0
    camera.open()
    assert camera.stats().state == "ok"
    assert camera.read().image.shape == (4, 6, 3)


def test_reconnect_with_zero_attempts_fails_at_once() -> None:
    inner = FlakySource(fail_reads=1)
    fake = FakeTime()
    camera = ReconnectingFrameSource(inner, attempts=0, delay_seconds=1.0, sleep=fake.sleep)
    camera.open()
    with pytest.raises(CameraDisconnected):
        camera.read()
    assert fake.sleeps == []
    assert camera.stats().state == "failed"


def test_reconnect_wrapper_on_a_real_directory_that_comes_back(mixed_dir: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(mixed_dir, backup)
    reconnect_pauses: list[float] = []

    def sleep(seconds: float) -> None:
        # The same sleep paces frames (1/60 s) and spaces reconnects (0.7 s): count only the latter.
        if seconds == 0.7:
            reconnect_pauses.append(seconds)
            if len(reconnect_pauses) == 2:  # the "camera" is plugged back in during the second pause
                shutil.copytree(backup, mixed_dir)

    cfg = directory_cfg(mixed_dir, fps=60, reconnect_attempts=3, reconnect_delay_seconds=0.7)
    camera = make_frame_source(cfg, sleep=sleep)
    with camera:
        camera.read()
        shutil.rmtree(mixed_dir)
        camera.read()  # the pass ends, the listing fails, then recovers
        assert camera.stats().reconnects == 1
        assert camera.stats().reconnect_attempts == 2
        assert camera.state == "ok"


def test_wrapper_reads_require_open() -> None:
    camera = ReconnectingFrameSource(FlakySource(), attempts=1, delay_seconds=0)
    with pytest.raises(CameraError, match="not open"):
        camera.read()
    with pytest.raises(ValueError):
        ReconnectingFrameSource(FlakySource(), attempts=-1, delay_seconds=0)
