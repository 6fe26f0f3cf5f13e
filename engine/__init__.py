"""Headshot engine: photo in, professional headshot out. A leaf package: numpy + inference runtimes only.

Importing ``engine`` loads no inference runtime; ``engine.pipeline.HeadshotEngine`` opens the one the
config names (see ``engine.runtime.open_backend``)."""

from __future__ import annotations

from engine.errors import (
    BackendUnavailable,
    EngineError,
    FaceCutOff,
    FaceTooSmall,
    ImageTooLarge,
    ModelError,
    NoFace,
    PlanMismatch,
    UnreadableImage,
    UnsupportedFormat,
)

__all__ = [
    "BackendUnavailable",
    "EngineError",
    "FaceCutOff",
    "FaceTooSmall",
    "ImageTooLarge",
    "ModelError",
    "NoFace",
    "PlanMismatch",
    "UnreadableImage",
    "UnsupportedFormat",
]
