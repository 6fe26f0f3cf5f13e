"""Shared fixtures: repo paths, the test portraits, and one real engine (real models, ONNX Runtime)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engine.config import EngineConfig
from engine.imageio import decode

REPO = Path(__file__).resolve().parent.parent
FACES = REPO / "tests" / "assets" / "faces"
PORTRAITS = ("astronaut.png", "grace_hopper.jpg")


def load_rgb(path: Path) -> npt.NDArray[np.uint8]:
    return decode(path.read_bytes(), max_pixels=10**8, max_bytes=2**30).rgb


@pytest.fixture(scope="session")
def engine_cfg() -> EngineConfig:
    # Pinned to ONNX Runtime: the CPU suite must test the CPU path even on a Jetson.
    return EngineConfig(backend="onnxruntime")


@pytest.fixture(scope="session")
def engine(engine_cfg: EngineConfig) -> Iterator[object]:
    from engine.pipeline import HeadshotEngine

    with HeadshotEngine(engine_cfg) as eng:
        yield eng


@pytest.fixture(scope="session")
def portraits() -> dict[str, npt.NDArray[np.uint8]]:
    return {name: load_rgb(FACES / name) for name in PORTRAITS}
