"""Live preview: segmentation + detection per frame, and the pose guidance a guest sees."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from engine.config import EngineConfig
from engine.preview import PreviewAnalyzer, replace_background

Rgb = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def analyzer() -> Iterator[PreviewAnalyzer]:
    with PreviewAnalyzer(EngineConfig(backend="onnxruntime")) as a:
        yield a


def frame_with(portrait: Rgb, *, scale: float = 1.0, x_frac: float = 0.5, gain: float = 1.0) -> Rgb:
    """A 1280×720 camera frame: the portrait scaled, placed at ``x_frac`` of the width, on a wall colour."""
    frame = np.full((720, 1280, 3), (170, 165, 160), dtype=np.uint8)
    h = int(720 * scale)
    w = int(portrait.shape[1] * h / portrait.shape[0])
    small = cv2.resize(portrait, (w, h), interpolation=cv2.INTER_AREA)
    x0 = int(np.clip(1280 * x_frac - w / 2, 0, 1280 - w))
    frame[720 - h :, x0 : x0 + w] = small
    return np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def test_a_well_placed_guest_gets_no_hints(analyzer: PreviewAnalyzer, portraits: dict[str, Rgb]) -> None:
    result = analyzer.analyze(frame_with(portraits["grace_hopper.jpg"]))
    assert result.face is not None and result.hints == () and result.ready


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [({"scale": 0.35}, "step_closer"), ({"x_frac": 0.12}, "centre_yourself"), ({"gain": 0.22}, "more_light")],
)
def test_pose_guidance(
    analyzer: PreviewAnalyzer, portraits: dict[str, Rgb], kwargs: dict[str, float], hint: str
) -> None:
    assert hint in analyzer.analyze(frame_with(portraits["grace_hopper.jpg"], **kwargs)).hints


def test_no_face_hint_on_an_empty_scene(analyzer: PreviewAnalyzer) -> None:
    empty = np.full((720, 1280, 3), 150, dtype=np.uint8)
    assert analyzer.analyze(empty).hints == ("no_face",)


def test_segmentation_mask_covers_the_person_not_the_wall(
    analyzer: PreviewAnalyzer, portraits: dict[str, Rgb]
) -> None:
    frame = frame_with(portraits["grace_hopper.jpg"])
    mask = analyzer.analyze(frame).mask
    assert mask is not None and mask.shape == (256, 256)
    person = cv2.resize(mask, (1280, 720))
    assert person[400:700, 560:720].mean() > 0.8  # the uniform jacket
    assert person[:200, :250].mean() < 0.1  # the wall
    backdrop = np.zeros_like(frame)
    out = replace_background(frame, mask, backdrop)
    assert out[:200, :250].mean() < 20 and out[450:700, 600:680].mean() > 5
