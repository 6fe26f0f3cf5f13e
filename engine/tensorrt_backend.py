"""TensorRT on the Jetson GPU: a prebuilt plan, page-locked host buffers, device buffers and one stream.

Imported only when TensorRT is chosen (``engine.runtime`` imports it lazily); it needs ``tensorrt`` and
``pycuda`` at import time. One code path serves TensorRT 8.6 (JetPack 6.0) and 10.x (JetPack 6.1+, 7):
named I/O tensors (``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``, ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``), which 8.5 introduced and 10.0 kept when it removed binding
indices and ``execute_async_v2``
(https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/ and the Python API's
IExecutionContext/ICudaEngine pages).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import numpy as np
import pycuda.driver as cuda
import tensorrt as trt

from engine.backend import FloatArray
from engine.errors import BackendUnavailable, ModelError, PlanMismatch
from engine.plans import REBUILD_COMMAND, ShapeRange, trt_logger, verify_plan

logger = logging.getLogger(__name__)

_PROFILE = 0  # plans are built with at most one optimisation profile (engine.tensorrt_build.build_plan)


def _volume(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


class TensorRtBackend:
    """One TensorRT plan on CUDA device 0.

    On construction the plan's sidecar is checked against the running TensorRT version, this GPU (name
    and compute capability) and the sha256 of ``onnx_path``; any difference raises PlanMismatch before
    anything is deserialised. Buffers are allocated once, for the largest shape of the plan's profile.

    ``input_shapes`` reports each input's shape with dynamic dims as -1 (as ONNX Runtime does);
    ``profile_shapes`` gives the (min, opt, max) range ``infer`` accepts. Inputs and outputs are
    float32. Outputs are fresh numpy copies owned by the caller. ``infer`` may be called from any thread
    (calls are serialised). Close with ``close()`` or a ``with`` block; do not rely on garbage
    collection, which the TensorRT samples note is not guaranteed to run ``__del__``.
    """

    name = "tensorrt"

    def __init__(self, plan_path: Path, onnx_path: Path) -> None:
        """Raises BackendUnavailable (plan file missing, no GPU, CUDA failure), PlanMismatch (sidecar
        missing or for another TensorRT/GPU/model, or the plan does not deserialise), ModelError
        (``onnx_path`` missing, or the plan has non-float32 I/O)."""
        self._file = plan_path.name
        self._lock = threading.Lock()
        self._closed = False
        self._ctx: Any = None
        self._stream: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._host: dict[str, Any] = {}
        self._device: dict[str, Any] = {}

        if not plan_path.is_file():
            raise BackendUnavailable(f"TensorRT plan {self._file} is missing; run {REBUILD_COMMAND}")
        sidecar = verify_plan(plan_path, onnx_path)  # raises before anything is deserialised
        self._precision = sidecar.precision

        # Why the device's primary context (retain_primary_context) and not make_context():
        # - TensorRT allocates through the CUDA runtime API, which always works in the primary context.
        #   With a separate make_context() context our buffers and TensorRT's activations would live
        #   in two contexts, and each extra context costs Jetson's shared RAM and time-slicing.
        # - make_context() leaves the new context current on the creating thread only, and pycuda
        #   aborts the interpreter at exit if a context is still on a thread's stack ("context stack
        #   was not empty upon module cleanup"). The kiosk is long-lived and calls infer from worker
        #   threads, so we push the (reference-counted, shareable) primary context around each call
        #   and pop it again: nothing stays current between calls, and any thread may call.
        # https://docs.nvidia.com/cuda/cuda-driver-api/group__CUDA__PRIMARY__CTX.html
        try:
            self._ctx = cuda.Device(0).retain_primary_context()
            self._ctx.push()
        except cuda.Error as exc:
            self._release()
            raise BackendUnavailable(f"cannot open CUDA device 0 ({type(exc).__name__}: {exc})") from None
        try:
            with _as_engine_errors(f"load {self._file}"):
                try:
                    self._load(plan_path)
                finally:
                    cuda.Context.pop()
        except BaseException:
            self._release()
            raise
        logger.info(
            "TensorRT %s loaded %s (%s) on %s with %d SMs, inputs %s",
            trt.__version__, self._file, self._precision, sidecar.gpu_name, sidecar.multiprocessor_count,
            dict(self._input_shapes),
        )  # fmt: skip

    # ------------------------------------------------------------------------------------------ load

    def _load(self, plan_path: Path) -> None:
        log = trt_logger()
        mark = log.state.mark()
        self._runtime = trt.Runtime(log)
        try:
            engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        except (RuntimeError, TypeError, ValueError):  # some releases raise instead of returning None
            engine = None
        if engine is None:  # TensorRT reports why only through the logger
            errors = log.state.errors_since(mark)
            raise PlanMismatch(
                f"TensorRT {trt.__version__} cannot deserialise {self._file}"
                + (f" ({errors[-1]})" if errors else "")
                + f"; run {REBUILD_COMMAND}"
            )
        self._engine = engine

        inputs: dict[str, tuple[int, ...]] = {}
        ranges: dict[str, ShapeRange] = {}
        outputs: list[str] = []
        for i in range(engine.num_io_tensors):
            name = str(engine.get_tensor_name(i))
            if np.dtype(trt.nptype(engine.get_tensor_dtype(name))) != np.float32:
                raise ModelError(f"plan {self._file}: tensor {name!r} is not float32")
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                inputs[name] = shape
                if any(d < 0 for d in shape):
                    # get_tensor_profile_shape(name, profile) -> [min, opt, max] (8.5+; replaced
                    # get_profile_shape, which 10.0 removed).
                    lo, opt, hi = engine.get_tensor_profile_shape(name, _PROFILE)
                    ranges[name] = (_dims(lo), _dims(opt), _dims(hi))
                else:
                    ranges[name] = (shape, shape, shape)
            else:
                outputs.append(name)
        self._input_shapes = MappingProxyType(inputs)
        self._ranges = MappingProxyType(ranges)
        self._output_names = tuple(outputs)

        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendUnavailable(
                f"TensorRT could not create an execution context for {self._file} (out of GPU memory?)"
            )
        # Size every buffer once, for the largest shapes the profile allows: set each input to its
        # max, then ask the context for the output shapes that implies.
        for name, (_, _, hi) in ranges.items():
            self._set_input_shape(name, hi)
        max_shapes = {name: ranges[name][2] for name in inputs}
        for name in outputs:
            shape = _dims(self._context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise ModelError(f"plan {self._file}: output {name!r} has a data-dependent shape {shape}")
            max_shapes[name] = shape

        self._stream = cuda.Stream()
        for name, shape in max_shapes.items():
            count = max(1, _volume(shape))
            # Page-locked so the async copies really are asynchronous DMA (pycuda docs: async memcpy
            # needs page-locked host memory).
            self._host[name] = cuda.pagelocked_empty(count, np.float32)
            self._device[name] = cuda.mem_alloc(count * np.dtype(np.float32).itemsize)
            if not self._context.set_tensor_address(name, int(self._device[name])):
                raise BackendUnavailable(f"TensorRT refused the buffer address for {name!r}")

    def _set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if not self._context.set_input_shape(name, shape):
            raise BackendUnavailable(f"TensorRT rejected shape {shape} for input {name!r} of {self._file}")

    # ------------------------------------------------------------------------------------ public API

    @property
    def input_shapes(self) -> Mapping[str, tuple[int, ...]]:
        """Input name -> shape; -1 marks a dynamic dim (see ``profile_shapes`` for its range)."""
        return self._input_shapes

    @property
    def profile_shapes(self) -> Mapping[str, ShapeRange]:
        """Input name -> (min, opt, max) shapes this plan accepts."""
        return self._ranges

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._output_names

    @property
    def precision(self) -> str:
        """``"fp16"`` or ``"fp32"``, as recorded when the plan was built."""
        return self._precision

    def infer(self, inputs: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        """Run the plan once: H2D copies, ``execute_async_v3``, D2H copies, one stream sync.

        ``inputs`` must name every input, each float32 with a shape inside ``profile_shapes``. Raises
        ValueError for caller mistakes; BackendUnavailable after ``close()`` or when CUDA/TensorRT
        fails (the message names the pycuda error class).
        """
        with self._lock:
            if self._closed:
                raise BackendUnavailable(f"the TensorRT backend for {self._file} is closed")
            feed = self._check_inputs(inputs)
            log = trt_logger()
            mark = log.state.mark()
            try:
                self._ctx.push()
            except cuda.Error as exc:
                raise BackendUnavailable(
                    f"cannot make the CUDA context current for {self._file} ({type(exc).__name__}: {exc})"
                ) from None
            try:
                with _as_engine_errors(f"run {self._file}"):
                    return self._run(feed, log, mark)
            finally:
                cuda.Context.pop()

    def _run(self, feed: dict[str, FloatArray], log: Any, mark: int) -> dict[str, FloatArray]:
        stream = self._stream
        for name, arr in feed.items():
            self._set_input_shape(name, arr.shape)
            staging = self._host[name][: arr.size]
            np.copyto(staging, arr.reshape(-1))
            cuda.memcpy_htod_async(self._device[name], staging, stream)
        # Output shapes follow from the input shapes just set.
        shapes = {name: _dims(self._context.get_tensor_shape(name)) for name in self._output_names}
        if not self._context.execute_async_v3(stream_handle=stream.handle):
            stream.synchronize()  # let queued copies finish before the buffers can be reused
            errors = log.state.errors_since(mark)
            raise BackendUnavailable(
                f"TensorRT failed to run {self._file}" + (f": {errors[-1]}" if errors else "")
            )
        views = {}
        for name, shape in shapes.items():
            views[name] = self._host[name][: _volume(shape)]
            cuda.memcpy_dtoh_async(views[name], self._device[name], stream)
        stream.synchronize()
        # Copies: the staging buffers are overwritten by the next call.
        return {name: view.reshape(shapes[name]).copy() for name, view in views.items()}

    def _check_inputs(self, inputs: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        if not isinstance(inputs, Mapping):
            raise ValueError(f"inputs must be a mapping of name -> array, got {type(inputs).__name__}")
        missing = sorted(set(self._ranges) - set(inputs))
        unknown = sorted(set(inputs) - set(self._ranges))
        if missing or unknown:
            raise ValueError(
                f"model inputs are {sorted(self._ranges)}; missing {missing}, unexpected {unknown}"
            )
        feed: dict[str, FloatArray] = {}
        for name, (lo, _, hi) in self._ranges.items():
            arr = inputs[name]
            if not isinstance(arr, np.ndarray):
                raise ValueError(f"input {name!r} must be a numpy array, got {type(arr).__name__}")
            if arr.dtype != np.float32:
                raise ValueError(f"input {name!r} must be float32, got {arr.dtype} (use .astype(np.float32))")
            if arr.ndim != len(lo) or any(not a <= g <= b for a, g, b in zip(lo, arr.shape, hi, strict=True)):
                raise ValueError(
                    f"input {name!r} has shape {arr.shape}; this plan accepts {lo} to {hi} "
                    f"(rebuild with other shapes: {REBUILD_COMMAND})"
                )
            feed[name] = np.ascontiguousarray(arr)
        return feed

    def close(self) -> None:
        """Free device and page-locked memory, the stream, the TensorRT objects, and release the primary
        context. Idempotent; waits for a running ``infer`` to finish."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Tear down whatever was created, in reverse order; safe on a half-built instance."""
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        errors: list[str] = []
        pushed = False
        try:
            ctx.push()
            pushed = True
        except cuda.Error as exc:
            errors.append(f"push {type(exc).__name__}")
        try:
            if pushed and self._stream is not None:
                self._stream.synchronize()
            for alloc in self._device.values():
                alloc.free()
            for host in self._host.values():
                base = getattr(host, "base", None)  # pycuda HostAllocation behind the numpy view
                if base is not None and hasattr(base, "free"):
                    base.free()
        except cuda.Error as exc:
            errors.append(f"free {type(exc).__name__}")
        finally:
            self._device.clear()
            self._host.clear()
            # TensorRT objects go child first (context, engine, runtime) while our context is current,
            # so TensorRT frees its activation memory in it. Python drops them at refcount zero.
            self._context = None
            self._engine = None
            self._runtime = None
            self._stream = None
            if pushed:
                cuda.Context.pop()
            try:
                # cuDevicePrimaryCtxRelease. pycuda releases only from the thread that retained; from
                # another thread this is skipped, which is harmless: the CUDA runtime inside TensorRT
                # holds its own reference to the primary context for the life of the process.
                ctx.detach()
            except cuda.Error as exc:
                errors.append(f"detach {type(exc).__name__}")
        if errors:
            logger.warning("TensorRT backend %s closed with CUDA errors: %s", self._file, ", ".join(errors))

    def __enter__(self) -> TensorRtBackend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TensorRtBackend {self._file} {'closed' if self._closed else 'open'}>"


@contextlib.contextmanager
def _as_engine_errors(action: str) -> Iterator[None]:
    """Turn pycuda and TensorRT binding failures into BackendUnavailable naming the error class.

    pycuda raises ``pycuda.driver.Error`` subclasses (MemoryError, LogicError, LaunchError,
    RuntimeError); TensorRT's bindings raise Python RuntimeError from their internal asserts. Our own
    EngineErrors and ValueErrors pass through untouched.
    """
    try:
        yield
    except cuda.Error as exc:
        raise BackendUnavailable(f"CUDA failed to {action} ({type(exc).__name__}: {exc})") from None
    except RuntimeError as exc:
        raise BackendUnavailable(f"TensorRT failed to {action} ({type(exc).__name__}: {exc})") from None


def _dims(dims: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)
