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
    """No face that can make a headshot. The subclasses say why a face that *was* found cannot; the
    kiosk skips a burst frame on any of them, exactly as the CLI refuses the photo."""

    code = "no_face"


class FaceTooSmall(NoFace):
    """The guest's face is below ``engine.scene.MIN_FACE_FRACTION`` of the frame (or
    ``MIN_FACE_PIXELS``): a scene, not a portrait."""

    code = "face_too_small"


class FaceCutOff(NoFace):
    """The guest's face box or an eye is cut by the photo's edge."""

    code = "face_cut_off"


class ModelError(EngineError):
    """A model file is missing, corrupt or does not match its pinned checksum."""

    code = "model_error"


class BackendUnavailable(EngineError):
    """The requested inference runtime cannot be used on this machine."""

    code = "backend_unavailable"


class PlanMismatch(EngineError):
    """A TensorRT plan was built for another TensorRT version, GPU, model file or precision."""

    code = "plan_mismatch"
