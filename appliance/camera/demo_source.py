"""Demo camera: the bundled public-domain portraits with gentle motion, so the kiosk runs on any laptop."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2

from appliance.camera.base import (
    CameraError,
    Clock,
    ImageDecodeError,
    ManagedFrameSource,
    RgbImage,
    Sleep,
    as_uint8,
)
from appliance.camera.directory_source import IMAGE_SUFFIXES, decode_image_file
from appliance.config import DemoCameraConfig

__all__ = ["DEMO_ASSETS_DIR", "DemoFrameSource"]

# Package data of `appliance` (pyproject.toml [tool.setuptools.package-data]), beside this package.
DEMO_ASSETS_DIR = Path(__file__).resolve().parent.parent / "demo_assets"


def _compose_scene(portrait: RgbImage, width: int, height: int) -> RgbImage:
    """Place a portrait in a ``height x width`` frame in front of a blurred, dimmed copy of itself.

    The blurred copy reads as an out-of-focus room, so the matting stage has a real background to remove.
    """
    portrait_height, portrait_width = portrait.shape[:2]
    cover = max(width / portrait_width, height / portrait_height)
    backdrop_size = (math.ceil(portrait_width * cover), math.ceil(portrait_height * cover))
    backdrop: RgbImage = as_uint8(cv2.resize(portrait, backdrop_size, interpolation=cv2.INTER_LINEAR))
    top = (backdrop.shape[0] - height) // 2
    left = (backdrop.shape[1] - width) // 2
    backdrop = backdrop[top : top + height, left : left + width]
    # A blur this wide (sigma ~ 1/40 of the frame) done at full size costs ~0.8 s a portrait on a 2-core CPU,
    # paid at every camera open, i.e. after every consent. At 1/8 size and scaled back up it looks the same
    # (nothing sharp survives such a blur) and costs a few milliseconds.
    small_size = (max(1, width // 8), max(1, height // 8))
    small = cv2.resize(backdrop, small_size, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(width, height) / 40 / 8)
    backdrop = as_uint8(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR))
    scene: RgbImage = as_uint8(cv2.convertScaleAbs(backdrop, alpha=0.55))

    # The subject fills the full height, so the zoom below always pushes the portrait's top and bottom
    # edges out of the frame and only its sides (against the blurred backdrop) can show.
    scale = min(height / portrait_height, width / portrait_width)
    subject_size = (max(1, round(portrait_width * scale)), max(1, round(portrait_height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    subject: RgbImage = as_uint8(cv2.resize(portrait, subject_size, interpolation=interpolation))
    x = (width - subject_size[0]) // 2
    y = height - subject_size[1]
    scene[y : y + subject_size[1], x : x + subject_size[0]] = subject
    return scene


class DemoFrameSource(ManagedFrameSource):
    """Bundled public-domain portraits (``appliance/demo_assets/``) with gentle motion, for laptops.

    Frames are ``(cfg.height, cfg.width, 3)`` RGB, paced to ``cfg.fps``. Motion is a slow, smooth drift
    of pan (about 1.5 % of the frame), zoom (5 % ± 3 %), roll (± 0.8°) and brightness (± 5 %), made of
    sines with unrelated periods so it never visibly repeats; it is a function of the frame index, so a
    run is reproducible. Each portrait is shown for ``cfg.seconds_per_portrait`` seconds.
    """

    def __init__(
        self,
        cfg: DemoCameraConfig,
        *,
        assets_dir: Path = DEMO_ASSETS_DIR,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(fps=cfg.fps, clock=clock, sleep=sleep)
        self._cfg = cfg
        self._assets_dir = assets_dir
        self._scenes: list[RgbImage] = []
        self._frame_number = 0

    def _acquire(self) -> None:
        files = sorted(p for p in self._assets_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        scenes = []
        for path in files:
            try:
                portrait = decode_image_file(path, max_pixels=50_000_000, max_bytes=50 * 1024 * 1024)
            except ImageDecodeError as exc:
                raise CameraError(
                    f"a bundled demo portrait is unreadable ({exc.reason}); reinstall"
                ) from None
            scenes.append(_compose_scene(portrait, self._cfg.width, self._cfg.height))
        if not scenes:
            raise CameraError("the bundled demo portraits are missing (appliance/demo_assets); reinstall")
        self._scenes = scenes
        self._frame_number = 0

    def _release(self) -> None:
        self._scenes = []

    def _grab(self) -> RgbImage:
        width, height = self._cfg.width, self._cfg.height
        t = self._frame_number / self._cfg.fps  # seconds of demo time
        self._frame_number += 1
        scene = self._scenes[int(t // self._cfg.seconds_per_portrait) % len(self._scenes)]

        def wave(period_seconds: float, phase: float = 0.0) -> float:
            return math.sin(2 * math.pi * t / period_seconds + phase)

        zoom = 1.05 + 0.03 * wave(9.0)  # never below 1.02: with the pan below, edges stay out of frame
        angle_degrees = 0.8 * wave(13.0, 0.5)
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle_degrees, zoom)
        matrix[0, 2] += 0.015 * width * wave(7.0, 1.0)
        matrix[1, 2] += 0.008 * height * wave(11.0, 2.0)
        # Reflecting the border hides the edge that a pan or roll would otherwise reveal.
        moved = cv2.warpAffine(
            scene, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        # In place: a second full-size buffer costs ~1.3 ms of page faults a frame in the worker (every
        # buffer of 128 KiB or more is a fresh mapping there), a twentieth of a 30 fps frame's time.
        cv2.convertScaleAbs(moved, dst=moved, alpha=1.0 + 0.05 * wave(17.0, 3.0))
        return as_uint8(moved)
