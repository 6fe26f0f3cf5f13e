"""The one seam between the pipeline and an inference runtime (ONNX Runtime on CPUs, TensorRT on a Jetson)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs one model. Pre- and post-processing are not its business: they live with each model's caller
    (``engine.detect.letterbox``/``decode_detections`` for BlazeFace, ``engine.matting.Matter.matte`` for
    MODNet, ``engine.preview.PreviewAnalyzer.segment`` for selfie segmentation).

    ``infer`` takes named float32 input arrays with exactly the shapes in ``input_shapes`` and returns
    named float32 outputs. The returned arrays are owned by the caller (never views of runtime buffers
    that the next call overwrites). ``close()`` releases runtime resources (sessions, CUDA memory,
    streams); it is idempotent, and the backend is unusable afterwards.
    """

    name: str
    """Runtime name: ``"onnxruntime"`` or ``"tensorrt"``."""

    @property
    def input_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """Input tensor name -> fixed shape the backend was built/loaded for."""
        ...

    @property
    def output_names(self) -> tuple[str, ...]: ...

    def infer(self, inputs: Mapping[str, FloatArray]) -> dict[str, FloatArray]: ...

    def close(self) -> None: ...

    def __enter__(self) -> InferenceBackend: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
