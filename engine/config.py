"""Engine configuration: which runtime, where the models and plans live, intake limits, output quality."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Repo checkout layout: models/ sits next to engine/. On a device provisioning installs the
# same files under /opt/headshot-kiosk/models and the config points there.
DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class _Strict(BaseModel):
    # Unknown keys are errors (a typo must not silently fall back to a default); values are immutable.
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Strict):
    """The ``[engine]`` section of the kiosk config."""

    backend: Literal["auto", "onnxruntime", "tensorrt"] = Field(
        "auto", description="auto = TensorRT when importable and a matching plan exists, else ONNX Runtime."
    )
    models_dir: Path = Field(
        DEFAULT_MODELS_DIR, description="Directory holding the ONNX files and SHA256SUMS."
    )
    plans_dir: Path = Field(
        Path("/var/lib/headshot-kiosk/plans"), description="TensorRT plans and their .json sidecars."
    )
    threads: int = Field(
        0, ge=0, le=64, description="ONNX Runtime intra-op threads; 0 = one per physical core."
    )
    max_input_megapixels: float = Field(
        50.0, gt=0, le=200, description="Photos above this pixel count are refused (decompression bombs)."
    )
    max_input_mib: float = Field(
        40.0, gt=0, le=200, description="Encoded photos above this size are refused."
    )
    jpeg_quality_percent: int = Field(92, ge=60, le=100)
    skin_smoothing: bool = Field(True, description="Light smoothing restricted to skin; never reshapes.")
