"""Errors raised by the engine; each carries a stable machine code and a human sentence."""

from __future__ import annotations


class EngineError(Exception):
    """Base class. ``code`` is stable (used by the CLI's JSON and the kiosk UI); the message is for people."""

    code = "engine_error"


class ImageError(EngineError):
    """The input photo cannot be used."""


class UnreadableImage(ImageError):
    code = "unreadable"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"


class ImageTooLarge(ImageError):
    code = "too_large"


class NoFace(EngineError):
    code = "no_face"


class ModelError(EngineError):
    """A model file is missing, corrupt or does not match its pinned checksum."""

    code = "model_error"


class BackendUnavailable(EngineError):
    """The requested inference runtime cannot be used on this machine."""

    code = "backend_unavailable"


class PlanMismatch(EngineError):
    """A TensorRT plan was built for another TensorRT version, GPU, model file or precision."""

    code = "plan_mismatch"
