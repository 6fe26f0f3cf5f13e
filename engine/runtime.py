"""Choosing an inference runtime: the factory that imports only the backend the config names."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from engine.backend import InferenceBackend
from engine.config import EngineConfig
from engine.errors import BackendUnavailable, PlanMismatch
from engine.plans import REBUILD_COMMAND, plan_path_for, sidecar_path_for

logger = logging.getLogger(__name__)


def tensorrt_available() -> bool:
    """True when the ``tensorrt`` and ``pycuda`` packages are installed.

    Uses ``importlib.util.find_spec`` on the top-level names only, so nothing is imported (finding a
    submodule would import its parent). An installed package can still fail to load (e.g. a CUDA
    library missing); callers that need certainty import it and handle ImportError.
    """
    return all(importlib.util.find_spec(name) is not None for name in ("tensorrt", "pycuda"))


def open_backend(model_name: str, onnx_path: Path, cfg: EngineConfig) -> InferenceBackend:
    """Open ``model_name`` on the runtime ``cfg.backend`` asks for. The caller owns (and closes) it.

    - ``onnxruntime``: :class:`~engine.onnx_backend.OnnxRuntimeBackend` on ``onnx_path``.
    - ``tensorrt``: :class:`~engine.tensorrt_backend.TensorRtBackend` on
      ``cfg.plans_dir/<model_name>.plan``; BackendUnavailable when TensorRT/pycuda are missing or the
      plan is, PlanMismatch when the plan was built for something else. Both name the build command.
    - ``auto``: TensorRT when it is installed and a plan with its sidecar exists and matches; otherwise
      ONNX Runtime. The choice and the reason are logged at INFO (WARNING for a stale plan).

    Backend modules are imported here, lazily, so ``import engine`` never loads TensorRT.
    """
    if cfg.backend == "onnxruntime":
        return _open_onnxruntime(onnx_path, cfg)
    plan = plan_path_for(cfg.plans_dir, model_name)
    if cfg.backend == "tensorrt":
        if not tensorrt_available():
            raise BackendUnavailable(
                "backend = tensorrt, but TensorRT and pycuda are not installed on this machine "
                "(they come with JetPack on the Jetson: use a --system-site-packages venv and "
                f"pip install '.[jetson]'); then run {REBUILD_COMMAND}"
            )
        if not plan.is_file():
            raise BackendUnavailable(
                f"backend = tensorrt, but there is no plan {plan.name} in the plans directory; "
                f"run {REBUILD_COMMAND}"
            )
        return _open_tensorrt(plan, onnx_path)

    # auto
    if not tensorrt_available():
        reason = "TensorRT is not installed"
    elif not plan.is_file() or not sidecar_path_for(plan).is_file():
        reason = f"no TensorRT plan with a sidecar for {model_name} (build one: {REBUILD_COMMAND})"
    else:
        try:
            backend = _open_tensorrt(plan, onnx_path)
        except PlanMismatch as exc:
            # A stale plan must not stop the kiosk; it runs slower on the CPU until someone rebuilds.
            logger.warning("%s: TensorRT plan not usable, using ONNX Runtime: %s", model_name, exc)
            return _open_onnxruntime(onnx_path, cfg)
        except BackendUnavailable as exc:
            reason = f"TensorRT could not be used ({exc})"
        else:
            logger.info("%s: using TensorRT (plan %s matches this device)", model_name, plan.name)
            return backend
    logger.info("%s: using ONNX Runtime: %s", model_name, reason)
    return _open_onnxruntime(onnx_path, cfg)


def _open_onnxruntime(onnx_path: Path, cfg: EngineConfig) -> InferenceBackend:
    from engine.onnx_backend import OnnxRuntimeBackend  # noqa: PLC0415 - lazy: see module docstring

    return OnnxRuntimeBackend(onnx_path, threads=cfg.threads)


def _open_tensorrt(plan: Path, onnx_path: Path) -> InferenceBackend:
    try:
        from engine.tensorrt_backend import TensorRtBackend  # noqa: PLC0415 - needs tensorrt + CUDA
    except ImportError as exc:  # installed but not loadable, e.g. libnvinfer or libcuda missing
        raise BackendUnavailable(
            f"TensorRT is installed but cannot be imported ({type(exc).__name__}: {exc})"
        ) from None
    except OSError as exc:
        raise BackendUnavailable(f"TensorRT's libraries cannot be loaded ({type(exc).__name__})") from None
    return TensorRtBackend(plan, onnx_path)
