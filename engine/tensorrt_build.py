"""Building TensorRT plans on the device: ONNX in, ``<name>.plan`` plus its sidecar out.

Apart from :mod:`engine.plans` (the sidecar and the check of a plan) and :mod:`engine.tensorrt_backend`
(running one), as Polygraphy keeps its build and run steps apart: the kiosk never builds, and
``build-engines`` never runs a plan. TensorRT and pycuda are imported inside :func:`build_plan`, so
importing this module loads neither.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from engine.errors import BackendUnavailable, ModelError
from engine.plans import (
    PlanSidecar,
    Precision,
    Shape,
    ShapeRange,
    gpu_identity,
    import_tensorrt,
    normalise_shape_range,
    sha256_file,
    trt_logger,
    write_plan_files,
)

__all__ = ["ProgressCallback", "build_plan"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""``progress(phase, step, total)``: ``step`` counts completed steps of ``phase`` (0 when it starts)."""


class _Monitor:
    """Adapts TensorRT's IProgressMonitor (10.x) to a ``progress(phase, step, total)`` callback."""

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress = progress
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()
        self.failed: BaseException | None = None

    def start(self, phase: str, total: int) -> None:
        with self._lock:
            self._totals[phase] = total
        self._call(phase, 0, total)

    def step(self, phase: str, step: int) -> bool:
        with self._lock:
            total = self._totals.get(phase, step + 1)
        self._call(phase, step + 1, total)
        return self.failed is None  # False asks TensorRT to cancel the build

    def finish(self, phase: str) -> None:
        with self._lock:
            total = self._totals.pop(phase, 1)
        self._call(phase, total, total)

    def _call(self, phase: str, step: int, total: int) -> None:
        if self.failed is not None:
            return
        try:
            self._progress(phase, step, total)
        except Exception as exc:  # never let a UI callback crash inside TensorRT's worker threads
            self.failed = exc


def _make_progress_monitor(trt: Any, monitor: _Monitor) -> Any | None:
    if not hasattr(trt, "IProgressMonitor"):  # added in TensorRT 10.0; 8.6 gets only our coarse phases
        return None

    class ProgressMonitor(trt.IProgressMonitor):  # type: ignore[misc]
        # Signatures from the TensorRT Python API (infer/Core/ProgressMonitor) and its
        # simple_progress_monitor sample; TensorRT calls these from several threads.
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            monitor.start(phase_name, int(num_steps))

        def step_complete(self, phase_name: str, step: int) -> bool:
            return monitor.step(phase_name, int(step))

        def phase_finish(self, phase_name: str) -> None:
            monitor.finish(phase_name)

    return ProgressMonitor()


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    # TensorRT 10.5 deprecated Builder.platform_has_fast_fp16 and 10.12 deprecated weakly-typed
    # networks (BuilderFlag.FP16); both still work on the JetPack 6/7 releases we support, and the
    # bindings report deprecations as DeprecationWarning, which pytest's filterwarnings=error turns
    # into failures. https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def build_plan(
    onnx_path: Path,
    plan_path: Path,
    *,
    input_shapes: Mapping[str, Sequence[Any]],
    fp16: bool = True,
    workspace_mib: int = 1024,
    progress: ProgressCallback | None = None,
) -> PlanSidecar:
    """Build a TensorRT plan from an ONNX file on this device and write plan + sidecar atomically.

    ``input_shapes`` maps input names to one fixed shape or a (min, opt, max) triple; inputs with
    dynamic dims must be listed, static ones may be. ``fp16`` is used only where TensorRT has the flag
    and the GPU has fast fp16 (the sidecar records what was actually used). ``workspace_mib`` caps the
    builder's scratch memory. ``progress(phase, step, total)`` is called from TensorRT's threads on 10.x
    (its own phases) and for our coarse phases ("parse", "build", "write") on every version.

    Takes minutes for MODNet on an Orin. Raises BackendUnavailable without TensorRT/pycuda/GPU or when
    TensorRT cannot build (with the errors it logged), ModelError when the ONNX file is missing or does
    not parse (every parser error listed), ValueError for bad shapes. Never leaves a partial plan.
    """
    if workspace_mib <= 0:
        raise ValueError(f"workspace_mib must be positive, got {workspace_mib}")
    ranges = {name: normalise_shape_range(name, shape) for name, shape in input_shapes.items()}
    trt = import_tensorrt()
    gpu_name, capability, sms = gpu_identity()
    onnx_sha = sha256_file(onnx_path)  # also the "model file is missing" check
    log = trt_logger()
    monitor = _Monitor(progress) if progress is not None else None

    def phase(name: str, step: int) -> None:
        if monitor is not None:
            monitor._call(name, step, 1)

    started = time.monotonic()
    mark = log.state.mark()
    builder = trt.Builder(log)
    major = int(str(trt.__version__).split(".")[0])
    flags = 0
    # EXPLICIT_BATCH is required on 8.x and deprecated/ignored from 10.0 ("networks are always explicit
    # batch"); asking for it there only earns a deprecation warning, and TensorRT 11 drops it.
    if major < 10 and hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, log)

    phase("parse", 0)
    model_bytes = onnx_path.read_bytes()
    # path= lets the parser find external weight files next to the model (TensorRT >= 8.0 Python API).
    if not parser.parse(model_bytes, path=str(onnx_path)):
        errors = [_parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelError(
            f"TensorRT cannot parse {onnx_path.name}: " + "; ".join(errors or ["no parser error reported"])
        )
    phase("parse", 1)

    profile_ranges = _resolve_input_ranges(network, ranges)
    config = builder.create_builder_config()
    # set_memory_pool_limit replaced max_workspace_size in 8.4; 10.0 removed the latter.
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    # Every input with a dynamic (-1) dim needs a profile entry, even when we pin it to one shape
    # (min = opt = max); a network with only static inputs must not get a profile.
    dynamic = [name for name, dims in _network_inputs(network).items() if any(d < 0 for d in dims)]
    if dynamic:
        profile = builder.create_optimization_profile()
        for name in dynamic:
            lo, opt, hi = profile_ranges[name]
            profile.set_shape(name, lo, opt, hi)  # tuples convert to trt.Dims
        config.add_optimization_profile(profile)

    precision: Precision = "fp32"
    with _quiet_deprecations():
        if (
            fp16
            and hasattr(trt.BuilderFlag, "FP16")  # removed in TensorRT 11 (strong typing only)
            and getattr(builder, "platform_has_fast_fp16", False)
        ):
            config.set_flag(trt.BuilderFlag.FP16)
            precision = "fp16"

    trt_monitor = _make_progress_monitor(trt, monitor) if monitor is not None else None
    if trt_monitor is not None:
        # Must outlive the build (TensorRT docs: "lifetime ... must exceed ... all TensorRT objects
        # that use it"); the local variable keeps it alive until we return.
        config.progress_monitor = trt_monitor

    phase("build", 0)
    logger.info("building TensorRT plan %s (%s, TensorRT %s)", plan_path.name, precision, trt.__version__)
    serialized = builder.build_serialized_network(network, config)  # releases the GIL; minutes
    if monitor is not None and monitor.failed is not None:
        raise BackendUnavailable(
            f"plan build for {onnx_path.name} was cancelled: the progress callback raised "
            f"{type(monitor.failed).__name__}"
        ) from monitor.failed
    if serialized is None:
        errors = log.state.errors_since(mark)
        raise BackendUnavailable(
            f"TensorRT failed to build a plan from {onnx_path.name}: "
            + ("; ".join(errors[-5:]) if errors else "no error was logged (see the engine.tensorrt log)")
        )
    phase("build", 1)

    sidecar = PlanSidecar(
        tensorrt_version=str(trt.__version__),
        gpu_name=gpu_name,
        compute_capability=capability,
        multiprocessor_count=sms,
        onnx_sha256=onnx_sha,
        precision=precision,
        input_shapes=profile_ranges,
        built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    phase("write", 0)
    write_plan_files(plan_path, memoryview(cast(Any, serialized)), sidecar)
    phase("write", 1)
    logger.info("built %s in %.0fs", plan_path.name, time.monotonic() - started)
    return sidecar


def _parser_error_text(err: Any) -> str:
    # IParserError exposes code(), desc() and node() since TensorRT 6 (Python API, parsers/Onnx).
    try:
        return f"node {err.node()}: {err.desc()} ({err.code()})"
    except Exception:  # an older/newer binding without one of these: fall back to its str()
        return str(err)


def _network_inputs(network: Any) -> dict[str, Shape]:
    """Input name -> declared dims (-1 = dynamic) of a parsed INetworkDefinition."""
    inputs = (network.get_input(i) for i in range(network.num_inputs))
    return {str(t.name): tuple(int(d) for d in t.shape) for t in inputs}


def _resolve_input_ranges(network: Any, ranges: Mapping[str, ShapeRange]) -> dict[str, ShapeRange]:
    """Match requested ranges to the network's inputs; static inputs get (shape, shape, shape)."""
    resolved: dict[str, ShapeRange] = {}
    declared = _network_inputs(network)
    names = list(declared)
    for name, dims in declared.items():
        given = ranges.get(name)
        if given is None:
            if any(d < 0 for d in dims):
                raise ValueError(f"input {name!r} has dynamic shape {dims}; give its (min, opt, max) shapes")
            resolved[name] = (dims, dims, dims)
            continue
        for shape in given:
            if len(shape) != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, shape, strict=True)):
                raise ValueError(f"input {name!r}: shape {shape} does not fit the model's {dims}")
        resolved[name] = given
    unknown = sorted(set(ranges) - set(names))
    if unknown:
        raise ValueError(f"shapes given for {unknown}, but the model's inputs are {names}")
    return resolved
