"""The models the engine runs: file names, pinned checksums (models/SHA256SUMS) and kiosk input shapes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelError
from engine.framing import PRESETS


@dataclass(frozen=True)
class ModelSpec:
    """``shapes`` gives, per input, the (min, opt, max) shapes a TensorRT plan is built for; ONNX Runtime
    accepts any shape in that range."""

    name: str
    filename: str
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def _matte_shapes() -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    hs = [p.matte_size[0] for p in PRESETS.values()]
    ws = [p.matte_size[1] for p in PRESETS.values()]
    sq = PRESETS["square"].matte_size
    return (1, 3, min(hs), min(ws)), (1, 3, *sq), (1, 3, max(hs), max(ws))


FACE_DETECTION = ModelSpec(
    "face_detection", "face_detection_short_range.onnx", {"input": ((1, 128, 128, 3),) * 3}
)
SELFIE_SEGMENTATION = ModelSpec(
    "selfie_segmentation", "selfie_segmentation.onnx", {"input_1": ((1, 256, 256, 3),) * 3}
)
MATTING = ModelSpec("matting", "modnet.onnx", {"input": _matte_shapes()})
ALL_MODELS = (FACE_DETECTION, SELFIE_SEGMENTATION, MATTING)


def read_checksums(models_dir: Path) -> dict[str, str]:
    """Parse ``models_dir/SHA256SUMS`` (sha256sum format) into file name -> hex digest."""
    path = models_dir / "SHA256SUMS"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}; run `make models`") from exc
    sums: dict[str, str] = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            digest, _, name = line.strip().partition("  ")
            sums[name.lstrip("*")] = digest.lower()
    return sums


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified_path(spec: ModelSpec, models_dir: Path) -> Path:
    """The model file, after checking it against the pinned checksum. Raises ``ModelError`` naming the
    fix (``make models``) when it is missing or differs."""
    path = models_dir / spec.filename
    expected = read_checksums(models_dir).get(spec.filename)
    if expected is None:
        raise ModelError(f"{spec.filename} is not listed in {models_dir / 'SHA256SUMS'}")
    if not path.is_file():
        raise ModelError(f"model file {spec.filename} is missing from {models_dir}; run `make models`")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"model file {spec.filename} has sha256 {actual[:12]}…, expected {expected[:12]}…; "
            "run `make models`"
        )
    return path
