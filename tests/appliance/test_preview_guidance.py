"""Live-preview guidance (issue 14): the vertical framing target, standing and seated, and the worker's
guide thread that analyses frames beside the stream.

The pure rule (``engine.preview.pose_hints``) is checked on synthetic face boxes, against the page's CSS
outline and on the bundled demo portraits; the worker runs in this process with a directory camera over
composed frames, as in ``test_capture_scenes``."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from appliance.camera.demo_source import DemoFrameSource
from appliance.config import DemoCameraConfig, KioskConfig
from appliance.store import new_session_id
from appliance.worker import SessionWorker
from engine.config import EngineConfig
from engine.detect import Face
from engine.preview import (
    FACE_CENTRE_Y_SEATED,
    FACE_CENTRE_Y_STANDING,
    MAX_VERTICAL_OFFSET,
    PreviewAnalyzer,
    face_centre_target,
    pose_hints,
)
from tests.support import box_face

REPO = Path(__file__).resolve().parents[2]
Rgb = npt.NDArray[np.uint8]
W, H = 1280, 720
BRIGHT = np.full((H, W, 3), 200, dtype=np.uint8)  # no "more_light"


def face_at(cy: float, rel: float = 0.25, cx: float = 0.5) -> Face:
    """A frontal face box centred at (``cx``, ``cy``) (fractions of a 1280×720 frame), ``rel`` of its
    height tall."""
    size = rel * H
    x0, y0 = cx * W - size / 2, cy * H - size / 2
    return box_face(x0, y0, x0 + size, y0 + size)


def test_seated_aims_lower_than_standing() -> None:
    assert face_centre_target() == face_centre_target(seated=False) == FACE_CENTRE_Y_STANDING
    assert face_centre_target(seated=True) == FACE_CENTRE_Y_SEATED
    assert FACE_CENTRE_Y_SEATED - FACE_CENTRE_Y_STANDING >= 0.15


@pytest.mark.parametrize(
    ("cy", "standing", "seated"),
    [
        (0.41, (), ()),  # on the standing outline; within reach of the seated one too
        (0.28, (), ("centre_yourself",)),  # high: fine standing, too high for the lowered outline
        (0.72, ("centre_yourself",), ()),  # low: a seated guest with the standing outline, or fine seated
    ],
)
def test_vertical_target_standing_and_seated(
    cy: float, standing: tuple[str, ...], seated: tuple[str, ...]
) -> None:
    face = face_at(cy)
    assert pose_hints(face, BRIGHT) == pose_hints(face, BRIGHT, seated=False) == standing
    assert pose_hints(face, BRIGHT, seated=True) == seated


def test_the_vertical_window_is_symmetric_around_each_target() -> None:
    for seated in (False, True):
        target = face_centre_target(seated)
        inside = MAX_VERTICAL_OFFSET - 0.01
        outside = MAX_VERTICAL_OFFSET + 0.01
        # Small faces, so the edge margin never decides.
        assert pose_hints(face_at(target - inside, rel=0.17), BRIGHT, seated=seated) == ()
        assert pose_hints(face_at(target + inside, rel=0.17), BRIGHT, seated=seated) == ()
        for off in (-outside, outside):
            hints = pose_hints(face_at(target + off, rel=0.17), BRIGHT, seated=seated)
            assert hints == ("centre_yourself",), (seated, off)


def _outline_centres() -> dict[str, float]:
    """Centres of the page's face outline as a fraction of a 16:9 stage's height, from kiosk.css."""
    css = (REPO / "kiosk_ui" / "static" / "kiosk.css").read_text(encoding="utf-8")
    base = re.search(r"^\.outline\s*\{([^}]*)\}", css, flags=re.MULTILINE)
    seated = re.search(r"^html\.mode-seated \.outline\s*\{([^}]*)\}", css, flags=re.MULTILINE)
    assert base is not None and seated is not None, "kiosk.css no longer has the .outline rules"

    def pct(rule: str, name: str) -> float:
        found = re.search(rf"(?<![-\w]){name}:\s*([\d.]+)%", rule)
        assert found is not None, f"{name} in {rule!r}"
        return float(found.group(1)) / 100

    ratio = re.search(r"aspect-ratio:\s*([\d.]+)\s*/\s*([\d.]+)", base.group(1))
    assert ratio is not None
    # Width is a fraction of the stage's width; the stage is 16:9 and shows the frame's whole height.
    height = pct(base.group(1), "width") * float(ratio.group(2)) / float(ratio.group(1)) * 16 / 9
    return {
        "standing": pct(base.group(1), "top") + height / 2,
        "seated": pct(seated.group(1), "top") + height / 2,
    }


def test_the_targets_follow_the_outline_on_the_page() -> None:
    centres = _outline_centres()
    assert abs(centres["standing"] - FACE_CENTRE_Y_STANDING) < 0.03, centres
    assert abs(centres["seated"] - FACE_CENTRE_Y_SEATED) < 0.03, centres


@pytest.fixture(scope="module")
def analyzer() -> Iterator[PreviewAnalyzer]:
    with PreviewAnalyzer(EngineConfig(backend="onnxruntime")) as a:
        yield a


def test_the_demo_portraits_stay_ready_standing(analyzer: PreviewAnalyzer) -> None:
    """The standing target must not start asking the laptop demo's guests to move: every portrait, through
    its whole drift (one frame a second over both portraits' 24 s)."""
    assert (DemoCameraConfig().width, DemoCameraConfig().height, DemoCameraConfig().fps) == (1280, 720, 30)
    # At 1 fps each frame is a second of the demo's drift (a function of the frame number and the rate).
    cfg = DemoCameraConfig(fps=1)
    with DemoFrameSource(cfg, sleep=lambda _s: None) as camera:
        for _ in range(int(2 * cfg.seconds_per_portrait)):
            result = analyzer.analyze(camera.read().image, with_mask=False)
            assert result.face is not None
            assert "centre_yourself" not in result.hints, result.hints


# -- the worker's guide thread ------------------------------------------------------------------------------


def _frame_with(portrait: Rgb, scale: float = 1.0) -> Rgb:
    """A 1280×720 frame: the portrait ``scale`` of the height, bottom-aligned in the middle, on a wall."""
    frame = np.full((H, W, 3), (170, 165, 160), dtype=np.uint8)
    h = int(H * scale)
    w = int(portrait.shape[1] * h / portrait.shape[0])
    small = cv2.resize(portrait, (w, h), interpolation=cv2.INTER_AREA)
    x0 = (W - w) // 2
    frame[H - h :, x0 : x0 + w] = small
    return frame


@pytest.fixture
def worker(tmp_path: Path, portraits: dict[str, Rgb]) -> Iterator[SessionWorker]:
    """A worker whose camera sees the astronaut, face centre at ~25 % of the height: ready standing,
    too high for the seated outline."""
    shots = tmp_path / "camera"
    shots.mkdir()
    Image.fromarray(_frame_with(portraits["astronaut.png"])).save(shots / "00.png")
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    cfg = KioskConfig.model_validate(
        {"camera": {"source": "directory", "path": str(shots), "fps": 60}, "store": {"path": str(store)}}
    )
    w = SessionWorker(cfg, str(store))
    try:
        w.begin(new_session_id(), capacity_bytes=None)
        w.open_camera()
        yield w
    finally:
        w.shutdown()


def _guide_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "preview-guidance" and t.is_alive()]


def test_the_worker_guides_standing_and_seated(worker: SessionWorker) -> None:
    for _ in range(3):
        standing = worker.frame(background=None, mirror=True)
        assert standing["jpeg"][:2] == b"\xff\xd8" and standing["size"] == [W, H]
        assert standing["hints"] == [] and standing["face"] is not None
    # Switching mode never reuses the other mode's guidance: the very next frame aims lower.
    seated = worker.frame(background=None, mirror=True, seated=True)
    assert seated["hints"] == ["centre_yourself"]
    assert worker.frame(background="white", seated=False)["hints"] == []


def test_the_mirrored_face_box_is_mirrored(worker: SessionWorker) -> None:
    plain = worker.frame(background=None, mirror=False)["face"]
    mirrored = worker.frame(background=None, mirror=True)["face"]
    assert plain is not None and mirrored is not None
    assert mirrored[0] == pytest.approx(1 - plain[2], abs=0.02)
    assert mirrored[1] == pytest.approx(plain[1], abs=0.02)


def test_a_capture_and_the_wipe_stop_the_guide_and_zero_its_pixels(worker: SessionWorker) -> None:
    worker.frame(background="white", mirror=True)
    guide = worker._guide
    held = [b for b in (guide._buffer, worker._mirrored) if b is not None]
    assert len(held) == 2 and _guide_threads()
    worker.capture(burst=1)
    assert not _guide_threads()
    assert all(not b.any() for b in held)  # zeroed, not only dropped
    assert guide._buffer is None and worker._mirrored is None
    # The preview comes back (a retake): a new thread, fresh guidance.
    assert worker.frame(background=None)["hints"] == []
    assert _guide_threads()
    worker.wipe_session()
    assert not _guide_threads()


class _SlowAnalyzer:
    """A stand-in for PreviewAnalyzer whose detection blocks until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def analyze(self, frame: Rgb, *, with_mask: bool, seated: bool) -> object:
        self.calls += 1
        if self.calls > 1:
            self.release.wait(10)
        return type("A", (), {"face": None, "hints": ("no_face",), "problem": None})()


def test_a_slow_detection_costs_freshness_not_the_stream() -> None:
    """While the thread is busy with a slow detection, a frame takes the last guidance at once (up to
    GUIDANCE_STALE_SECONDS old) instead of waiting a second and analysing again on its own thread; past
    that, or with no guidance yet, it gets none from the thread (the request then analyses itself)."""
    from appliance.worker import GUIDANCE_STALE_SECONDS, _GuideThread

    skew = [0.0]  # real time plus what the test moves on (waits must still end)
    analyzer = _SlowAnalyzer()
    guide = _GuideThread(analyzer, clock=lambda: time.monotonic() + skew[0])  # type: ignore[arg-type]
    try:
        assert guide.offer(BRIGHT, seated=False)
        first = guide.latest(seated=False, wait=5.0)  # the first analysis: waited for
        assert first is not None and first.hints == ("no_face",)
        skew[0] += 1.0  # older than GUIDANCE_MAX_AGE_SECONDS...
        assert guide.offer(BRIGHT, seated=False)  # ...and the next detection hangs
        started = time.monotonic()
        assert guide.latest(seated=False, wait=5.0) is first  # ...so the last one, without waiting
        assert time.monotonic() - started < 0.5
        assert guide.latest(seated=True, wait=0.05) is None  # never the other mode's
        skew[0] += GUIDANCE_STALE_SECONDS
        assert guide.latest(seated=False, wait=0.05) is None  # too old even for a slow machine
    finally:
        analyzer.release.set()
        guide.stop()
