"""TensorRT plans: the sidecar that says what a plan was built for, its checks, and the builder.

Everything here except :func:`build_plan`, :func:`gpu_identity` and :func:`trt_logger` is pure Python and
runs on any machine. Those three import TensorRT / pycuda lazily, inside the call, so importing this
module (as provisioning and ``engine.runtime`` do) never loads TensorRT.

A plan only works with the TensorRT version and GPU that built it
(https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/advanced.html#version-compat),
so every ``<name>.plan`` has a ``<name>.plan.json`` sidecar next to it, and the backend refuses a plan whose
sidecar does not match the running TensorRT, the GPU and the ONNX file before it deserialises anything.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from engine.errors import BackendUnavailable, ModelError, PlanMismatch

logger = logging.getLogger(__name__)

BUILDER_ID = "headshot-kiosk plans v1"
"""Written into every sidecar; a sidecar with another value was made by something else and is refused."""

REBUILD_COMMAND = "python -m provisioning build-engines"
"""What the operator runs to (re)build every plan on the device."""

Shape = tuple[int, ...]
ShapeRange = tuple[Shape, Shape, Shape]
"""(min, opt, max) for one input: one plan serves every shape in between (e.g. several matte sizes)."""

Precision = Literal["fp16", "fp32"]
ProgressCallback = Callable[[str, int, int], None]
"""``progress(phase, step, total)``: ``step`` counts completed steps of ``phase`` (0 when it starts)."""

_PLAN_SUFFIX = ".plan"
_SIDECAR_SUFFIX = ".json"
_FILE_MODE = 0o644  # plans are not secret; the kiosk service user must be able to read them
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------- sidecar


@dataclasses.dataclass(frozen=True)
class PlanSidecar:
    """What a plan was built for. Stored as JSON next to the plan (``<name>.plan.json``).

    ``compute_capability`` is ``"major.minor"`` (Orin is ``"8.7"``); ``onnx_sha256`` is the lowercase hex
    digest of the ONNX file the plan was built from; ``input_shapes`` maps each input name to its
    (min, opt, max) shapes; ``built_at`` is an ISO 8601 UTC timestamp.
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    onnx_sha256: str
    precision: Precision
    input_shapes: Mapping[str, ShapeRange]
    built_at: str
    builder: str = BUILDER_ID

    def __post_init__(self) -> None:
        # Frozen means "no attribute assignment"; make the one mutable-looking field read-only as well.
        object.__setattr__(self, "input_shapes", MappingProxyType(dict(self.input_shapes)))

    def to_json(self) -> str:
        """The sidecar file's text (sorted keys, shapes as lists)."""
        doc: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["input_shapes"] = {
            name: {"min": list(rng[0]), "opt": list(rng[1]), "max": list(rng[2])}
            for name, rng in self.input_shapes.items()
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PlanSidecar:
        """Parse sidecar text. Raises ValueError (with the reason) on anything malformed."""
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("sidecar is not a JSON object")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(fields - doc.keys())
        unknown = sorted(doc.keys() - fields)
        if missing or unknown:
            raise ValueError(f"sidecar fields missing {missing} / unknown {unknown}")
        for key in fields - {"input_shapes"}:
            if not isinstance(doc[key], str):
                raise ValueError(f"sidecar field {key} must be a string")
        if doc["precision"] not in ("fp16", "fp32"):
            raise ValueError(f"sidecar precision must be fp16 or fp32, not {doc['precision']!r}")
        raw = doc["input_shapes"]
        if not isinstance(raw, dict):
            raise ValueError("sidecar input_shapes must be an object")
        shapes: dict[str, ShapeRange] = {}
        for name, rng in raw.items():
            if not isinstance(rng, dict) or set(rng) != {"min", "opt", "max"}:
                raise ValueError(f"sidecar input_shapes[{name!r}] must have min, opt and max")
            shapes[name] = normalise_shape_range(name, (rng["min"], rng["opt"], rng["max"]))
        return cls(**{**doc, "input_shapes": shapes})


def plan_path_for(plans_dir: Path, model_name: str) -> Path:
    """``plans_dir / "<model_name>.plan"``. ``model_name`` is a bare name such as ``"modnet"``."""
    if not model_name or model_name in (".", "..") or "/" in model_name or "\\" in model_name:
        raise ValueError(f"model name must be a bare file stem, got {model_name!r}")
    return plans_dir / f"{model_name}{_PLAN_SUFFIX}"


def sidecar_path_for(plan_path: Path) -> Path:
    """``modnet.plan`` -> ``modnet.plan.json`` (same directory)."""
    return plan_path.with_name(plan_path.name + _SIDECAR_SUFFIX)


def read_sidecar(plan_path: Path) -> PlanSidecar:
    """Read the sidecar of ``plan_path``.

    Raises PlanMismatch when it is missing, unreadable, malformed or written by another builder: in
    every case the plan cannot be trusted and the fix is the same rebuild.
    """
    path = sidecar_path_for(plan_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanMismatch(
            f"plan {plan_path.name} has no sidecar {path.name}, so what it was built for is unknown; "
            f"run {REBUILD_COMMAND}"
        ) from None
    except OSError as exc:
        raise PlanMismatch(
            f"cannot read sidecar {path.name} ({type(exc).__name__}); run {REBUILD_COMMAND}"
        ) from None
    try:
        sidecar = PlanSidecar.from_json(text)
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise PlanMismatch(f"sidecar {path.name} is malformed ({exc}); run {REBUILD_COMMAND}") from None
    if sidecar.builder != BUILDER_ID:
        raise PlanMismatch(
            f"sidecar {path.name} was written by {sidecar.builder!r}, expected {BUILDER_ID!r}; "
            f"run {REBUILD_COMMAND}"
        )
    return sidecar


def write_sidecar(plan_path: Path, sidecar: PlanSidecar) -> Path:
    """Write ``<plan>.json`` atomically (temp file + rename, mode 0644). Returns the sidecar path."""
    path = sidecar_path_for(plan_path)
    atomic_write_bytes(path, sidecar.to_json().encode("utf-8"))
    return path


def check_sidecar(
    sidecar: PlanSidecar,
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    onnx_sha256: str,
) -> None:
    """Raise PlanMismatch unless the plan was built by this TensorRT, for this GPU, from this ONNX file.

    The message names every difference with both values and the rebuild command, e.g.
    ``plan built by TensorRT 8.6.2, runtime is 10.3.0; run python -m provisioning build-engines``.
    """
    problems: list[str] = []
    if sidecar.tensorrt_version != tensorrt_version:
        problems.append(f"plan built by TensorRT {sidecar.tensorrt_version}, runtime is {tensorrt_version}")
    if sidecar.gpu_name != gpu_name:
        problems.append(f"plan built for GPU {sidecar.gpu_name!r}, this GPU is {gpu_name!r}")
    if sidecar.compute_capability != compute_capability:
        problems.append(
            f"plan built for compute capability {sidecar.compute_capability}, "
            f"this GPU has {compute_capability}"
        )
    if sidecar.onnx_sha256.lower() != onnx_sha256.lower():
        problems.append(
            f"plan built from ONNX sha256 {sidecar.onnx_sha256[:12]}…, "
            f"the model file now has {onnx_sha256[:12]}…"
        )
    if problems:
        raise PlanMismatch("; ".join(problems) + f"; run {REBUILD_COMMAND}")


# ----------------------------------------------------------------------------------------- file helpers


def sha256_file(path: Path) -> str:
    """Lowercase hex SHA-256 of a file, read in 1 MiB chunks. Raises ModelError if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise ModelError(f"model file {path.name} is missing") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path.name} ({type(exc).__name__})") from None
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes | memoryview, *, mode: int = _FILE_MODE) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The bytes go to a temp file in the same directory (same filesystem, so ``os.replace`` is atomic),
    are fsynced, get ``mode``, and are renamed over ``path``; the directory is fsynced so the rename
    survives a power cut. On any failure the temp file is removed and the error propagates.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            # mkstemp creates 0600; plans are read by the kiosk service user.
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not every filesystem lets a directory be opened; the rename is still atomic
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------------------------- shapes


def normalise_shape_range(name: str, value: Sequence[Any]) -> ShapeRange:
    """Accept one shape (fixed input) or a (min, opt, max) triple of shapes; return the triple.

    Raises ValueError unless every dim is a positive int, the three shapes have the same rank, and
    min <= opt <= max in every dim.
    """
    seq = list(value)
    if seq and all(isinstance(d, int) and not isinstance(d, bool) for d in seq):
        fixed = _shape(name, seq)
        return (fixed, fixed, fixed)
    if len(seq) != 3:
        raise ValueError(f"input {name!r}: give one shape or a (min, opt, max) triple, got {value!r}")
    lo, opt, hi = (_shape(name, s) for s in seq)
    if not len(lo) == len(opt) == len(hi):
        raise ValueError(f"input {name!r}: min/opt/max must have the same rank, got {lo}, {opt}, {hi}")
    if any(not a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
        raise ValueError(f"input {name!r}: need min <= opt <= max in every dim, got {lo}, {opt}, {hi}")
    return (lo, opt, hi)


def _shape(name: str, dims: Any) -> Shape:
    try:
        seq = list(dims)
    except TypeError:
        raise ValueError(f"input {name!r}: a shape must be a sequence of ints, got {dims!r}") from None
    if not seq or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in seq):
        raise ValueError(f"input {name!r}: a shape needs positive int dims, got {dims!r}")
    return tuple(seq)


# ------------------------------------------------------------------------------------ TensorRT, lazily


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt  # noqa: PLC0415 - lazy on purpose: CI machines have no TensorRT
    except ImportError:
        raise BackendUnavailable(
            "TensorRT is not installed on this machine (it ships with JetPack on the Jetson; use a "
            "--system-site-packages venv there); plans can only be built and run on the device"
        ) from None
    return trt


def gpu_identity() -> tuple[str, str]:
    """(GPU name, ``"major.minor"`` compute capability) of CUDA device 0, via pycuda (imported lazily).

    Only device queries: no CUDA context is created. Raises BackendUnavailable without pycuda or a GPU.
    """
    try:
        import pycuda.driver as cuda  # noqa: PLC0415 - lazy on purpose, see module docstring
    except ImportError:
        raise BackendUnavailable("pycuda is not installed (pip install '.[jetson]' on the device)") from None
    try:
        cuda.init()
        device = cuda.Device(0)
        major, minor = device.compute_capability()
        return str(device.name()), f"{major}.{minor}"
    except cuda.Error as exc:
        raise BackendUnavailable(f"no usable CUDA GPU ({type(exc).__name__}: {exc})") from None


class _TrtLogState:
    """Recent TensorRT errors, so a failed call can quote what TensorRT logged (it only returns None)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._errors: collections.deque[tuple[int, str]] = collections.deque(maxlen=64)

    def mark(self) -> int:
        with self._lock:
            return self._count

    def add_error(self, msg: str) -> None:
        with self._lock:
            self._count += 1
            self._errors.append((self._count, msg))

    def errors_since(self, mark: int) -> list[str]:
        with self._lock:
            return [msg for n, msg in self._errors if n > mark]


@functools.cache
def trt_logger() -> Any:
    """The process-wide ``TrtLogger(trt.ILogger)`` that forwards TensorRT's log into ``logging``.

    One instance per process: TensorRT keeps a single global logger and warns when a later Builder or
    Runtime is handed a different one (``nvinfer1::getLogger()`` returns the first). Raises
    BackendUnavailable without TensorRT.
    """
    trt = _import_tensorrt()
    trt_log = logging.getLogger("engine.tensorrt")
    severity = trt.ILogger.Severity
    levels = {
        severity.INTERNAL_ERROR: logging.CRITICAL,
        severity.ERROR: logging.ERROR,
        severity.WARNING: logging.WARNING,
        severity.INFO: logging.INFO,
        severity.VERBOSE: logging.DEBUG,
    }

    ilogger: Any = trt.ILogger

    class TrtLogger(ilogger):  # type: ignore[misc]  # subclassing an untyped pybind11 class
        """Forwards TensorRT messages to the ``engine.tensorrt`` logger; remembers recent errors.

        TensorRT calls ``log`` from its own threads (the builder is multi-threaded), so it must be
        thread-safe: ``logging`` is, and the error list has a lock.
        """

        def __init__(self) -> None:
            # pybind11 trampolines need the base __init__ called explicitly (TensorRT Python docs).
            ilogger.__init__(self)
            self.state = _TrtLogState()

        def log(self, sev: Any, msg: str) -> None:
            level = levels.get(sev, logging.DEBUG)
            if level >= logging.ERROR:
                self.state.add_error(str(msg))
            # The builder emits thousands of VERBOSE lines; skip formatting what nobody will see.
            if trt_log.isEnabledFor(level):
                trt_log.log(level, "%s", msg)

    return TrtLogger()


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
    trt = _import_tensorrt()
    gpu_name, capability = gpu_identity()
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


def write_plan_files(plan_path: Path, plan: bytes | memoryview, sidecar: PlanSidecar) -> None:
    """Replace a plan and its sidecar so no reader ever sees a mismatched pair.

    The old sidecar goes first: while the swap is under way the plan has no sidecar, which every reader
    treats as "not built" (auto falls back to ONNX Runtime), never as a plan to trust. Each file is
    written atomically, so a failure leaves no partial file.
    """
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        sidecar_path_for(plan_path).unlink()
    atomic_write_bytes(plan_path, plan)
    write_sidecar(plan_path, sidecar)


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
