"""ONNX Runtime on the CPU: the backend for development, CI, and the fallback on the device."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import numpy as np
import onnxruntime as ort

from engine.backend import FloatArray
from engine.errors import BackendUnavailable, ModelError

logger = logging.getLogger(__name__)

_CPU = "CPUExecutionProvider"
_FLOAT = "tensor(float)"
_MAX_AUTO_THREADS = 8


def _ort_errors() -> tuple[type[BaseException], ...]:
    # ONNX Runtime raises its own pybind11 exception classes (NoSuchFile, InvalidProtobuf, InvalidGraph,
    # Fail, ...), all plain Exception subclasses living in a private module; collect whichever exist.
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state  # noqa: PLC0415
    except ImportError:  # pragma: no cover - layout of every ORT release since 1.0
        return (RuntimeError,)
    names = (
        "Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
        "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail",
    )  # fmt: skip
    found = tuple(c for n in names if isinstance(c := getattr(state, n, None), type))
    return (*found, RuntimeError)


_ORT_ERRORS = _ort_errors()


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings counted once); at least 1.

    Uses the CPU affinity mask (a systemd ``CPUAffinity=`` or container limit wins over the machine's
    core count) and sysfs topology to drop hyper-threads, which do not help conv-heavy ONNX graphs.
    Jetson CPUs have no SMT, so there it is simply the number of allowed cores.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topo / "physical_package_id").read_text().strip()
            core = (topo / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def auto_threads(cores: int | None = None) -> int:
    """Intra-op threads for ``threads=0``: one per physical core, minus one core for the camera and UI
    threads when there are more than 4, capped at 8 (beyond that ORT's conv scaling flattens while
    contention with the rest of the kiosk grows). 2 cores -> 2, 6 -> 5, 12 -> 8."""
    n = physical_cores() if cores is None else max(1, cores)
    if n > 4:
        n -= 1
    return max(1, min(_MAX_AUTO_THREADS, n))


class OnnxRuntimeBackend:
    """One ONNX model on ONNX Runtime's CPU execution provider.

    ``input_shapes`` are the model's declared shapes with dynamic dims (symbolic or unknown) as -1;
    ``infer`` accepts any size there. Inputs and outputs must be float32 tensors (the model is
    rejected otherwise). The returned arrays are fresh copies owned by the caller. Close with
    ``close()`` or a ``with`` block; the backend is unusable afterwards.
    """

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, *, threads: int = 0) -> None:
        """Load ``onnx_path``. ``threads`` = intra-op threads; 0 picks :func:`auto_threads`.

        Raises ModelError for a missing, corrupt or non-float32 model (messages carry the file name,
        not its path), BackendUnavailable if ONNX Runtime would not run it on the CPU provider, and
        ValueError for a negative ``threads``.
        """
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        self._file = onnx_path.name
        if not onnx_path.is_file():
            raise ModelError(f"model file {self._file} is missing")

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or auto_threads()
        # One model runs at a time per backend, and our graphs are single chains: parallelism across
        # nodes (inter-op) only adds threads that compete with the intra-op pool.
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting: by default the pool's threads spin for a while after every run, waiting for
        # the next one. Here the next one is far off (tone, edges, compositing and encoding run in
        # between, and the kiosk's preview and UI share the few cores), so spinning only takes CPU from
        # that work: on the 2-core development machine under load, render overhead fell by a third and
        # MODNet itself got faster (make bench, BENCHMARKS.md).
        # https://onnxruntime.ai/docs/performance/tune-performance/threading.html
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Memory pattern and the CPU arena stay at their defaults (on): they make repeat runs with the
        # same shapes cheaper, and turning them off is only worth it if a benchmark (make bench) shows it.
        try:
            session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=[_CPU])
        except _ORT_ERRORS as exc:
            # ORT's message embeds the full path; keep the file name only (paths may name a person's
            # directory on a laptop, and logs must not carry them).
            detail = str(exc).replace(str(onnx_path), self._file)
            raise ModelError(
                f"model file {self._file} cannot be loaded ({type(exc).__name__}): {detail}"
            ) from None

        # Asking for a provider the build lacks silently falls back (DESIGN.md §4); asking for the CPU
        # cannot, but verify rather than assume.
        providers = list(session.get_providers())
        if _CPU not in providers:
            raise BackendUnavailable(f"ONNX Runtime did not enable {_CPU} for {self._file}: {providers}")

        shapes: dict[str, tuple[int, ...]] = {}
        for arg in session.get_inputs():
            if arg.type != _FLOAT:
                raise ModelError(f"model {self._file}: input {arg.name!r} is {arg.type}, expected {_FLOAT}")
            shapes[arg.name] = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
        outputs = []
        for arg in session.get_outputs():
            if arg.type != _FLOAT:
                raise ModelError(f"model {self._file}: output {arg.name!r} is {arg.type}, expected {_FLOAT}")
            outputs.append(arg.name)

        self._session: Any = session
        self._input_shapes = MappingProxyType(shapes)
        self._output_names = tuple(outputs)
        logger.info(
            "ONNX Runtime %s loaded %s on %s with %d threads",
            ort.__version__, self._file, _CPU, opts.intra_op_num_threads,
        )  # fmt: skip

    @property
    def input_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """Input name -> shape; -1 marks a dynamic dim."""
        return self._input_shapes

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._output_names

    def infer(self, inputs: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        """Run the model once.

        ``inputs`` must name every model input exactly once, each a float32 array whose shape matches
        ``input_shapes`` (any size where that says -1). Raises ValueError for caller mistakes,
        BackendUnavailable after ``close()``, ModelError if ONNX Runtime fails on valid inputs.
        """
        session = self._session
        if session is None:
            raise BackendUnavailable(f"the ONNX Runtime backend for {self._file} is closed")
        feed = validate_inputs(inputs, self._input_shapes)
        try:
            results = session.run(list(self._output_names), feed)
        except _ORT_ERRORS as exc:
            raise ModelError(f"model {self._file} failed to run ({type(exc).__name__}): {exc}") from None
        # ORT already returns fresh arrays; the copy makes ownership explicit and guarantees float32
        # and C order whatever a future ORT does (a 512×512 matte is 1 MiB: negligible next to the run).
        return {
            name: np.array(value, dtype=np.float32, order="C", copy=True)
            for name, value in zip(self._output_names, results, strict=True)
        }

    def close(self) -> None:
        """Release the session. Idempotent."""
        self._session = None

    def __enter__(self) -> OnnxRuntimeBackend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._session is None else "open"
        return f"<OnnxRuntimeBackend {self._file} {state}>"


def validate_inputs(
    inputs: Mapping[str, FloatArray], expected: Mapping[str, tuple[int, ...]]
) -> dict[str, FloatArray]:
    """Check names, dtype (float32 exactly) and shapes (-1 = any size); return C-contiguous arrays.

    Shared by both backends so they reject the same mistakes with the same words. Raises ValueError.
    """
    if not isinstance(inputs, Mapping):
        raise ValueError(f"inputs must be a mapping of name -> array, got {type(inputs).__name__}")
    missing = sorted(set(expected) - set(inputs))
    unknown = sorted(set(inputs) - set(expected))
    if missing or unknown:
        raise ValueError(f"model inputs are {sorted(expected)}; missing {missing}, unexpected {unknown}")
    feed: dict[str, FloatArray] = {}
    for name, want in expected.items():
        arr = inputs[name]
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"input {name!r} must be a numpy array, got {type(arr).__name__}")
        if arr.dtype != np.float32:
            raise ValueError(f"input {name!r} must be float32, got {arr.dtype} (use .astype(np.float32))")
        if arr.ndim != len(want) or any(w not in (-1, g) for w, g in zip(want, arr.shape, strict=True)):
            raise ValueError(f"input {name!r} has shape {arr.shape}, the model expects {want} (-1 = any)")
        feed[name] = np.ascontiguousarray(arr)
    return feed
