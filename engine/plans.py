"""TensorRT plans: the sidecar that says what a plan was built for, and the one check of a plan against
this machine (:func:`verify_plan`), used by the backend, ``build-engines`` and ``doctor``.

Building lives in :mod:`engine.tensorrt_build` and running in :mod:`engine.tensorrt_backend` (Polygraphy
keeps build and run apart too). Everything here except :func:`gpu_identity`, :func:`plan_target` and
:func:`trt_logger` (shared by builder and backend) is pure Python and runs on any machine. Those import
TensorRT / pycuda lazily, inside the call, so importing this module (as provisioning and
``engine.runtime`` do) never loads TensorRT.

A plan only works with the TensorRT version and GPU that built it
(https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/advanced.html#version-compat),
so every ``<name>.plan`` has a ``<name>.plan.json`` sidecar next to it, and the backend refuses a plan whose
sidecar does not match the running TensorRT, the GPU and the ONNX file before it deserialises anything.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from engine.errors import BackendUnavailable, ModelError, PlanMismatch
from engine.fileio import write_atomic

BUILDER_ID = "headshot-kiosk plans v1"
"""Written into every sidecar; a sidecar with another value was made by something else and is refused."""

REBUILD_COMMAND = "python -m provisioning build-engines"
"""What the operator runs to (re)build every plan on the device."""

Shape = tuple[int, ...]
ShapeRange = tuple[Shape, Shape, Shape]
"""(min, opt, max) for one input: one plan serves every shape in between (e.g. several matte sizes)."""

Precision = Literal["fp16", "fp32"]

_PLAN_SUFFIX = ".plan"
_SIDECAR_SUFFIX = ".json"
_FILE_MODE = 0o644  # plans are not secret; the kiosk service user must be able to read them
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------- sidecar


@dataclasses.dataclass(frozen=True)
class PlanSidecar:
    """What a plan was built for. Stored as JSON next to the plan (``<name>.plan.json``).

    ``compute_capability`` is ``"major.minor"`` (Orin is ``"8.7"``); ``multiprocessor_count`` is the GPU's
    SM count, because name and capability are the same on every Orin module (AGX 64 GB has 16 SMs, AGX
    32 GB 14, NX and Nano 8 GB 8, Nano 4 GB 4) and a cloned image must not run another module's plans;
    ``onnx_sha256`` is the lowercase hex digest of the ONNX file the plan was built from;
    ``input_shapes`` maps each input name to its (min, opt, max) shapes; ``built_at`` is an ISO 8601 UTC
    timestamp.
    """

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    multiprocessor_count: int
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
        for key in fields - {"input_shapes", "multiprocessor_count"}:
            if not isinstance(doc[key], str):
                raise ValueError(f"sidecar field {key} must be a string")
        count = doc["multiprocessor_count"]
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            raise ValueError("sidecar field multiprocessor_count must be a positive integer")
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
    if _predates_sm_count(text):
        raise PlanMismatch(
            f"sidecar {path.name} predates the GPU's multiprocessor count (an older build-engines), so it "
            "cannot show the plan was built on this module (every Orin reports 'Orin', SM 8.7); "
            f"rebuild the plans: run {REBUILD_COMMAND}"
        )
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


def _predates_sm_count(text: str) -> bool:
    """True for a sidecar of this builder written before ``multiprocessor_count`` existed."""
    try:
        doc = json.loads(text)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("builder") == BUILDER_ID and "multiprocessor_count" not in doc


def write_sidecar(plan_path: Path, sidecar: PlanSidecar) -> Path:
    """Write ``<plan>.json`` atomically (temp file + rename, mode 0644). Returns the sidecar path."""
    path = sidecar_path_for(plan_path)
    write_atomic(path, sidecar.to_json().encode("utf-8"), mode=_FILE_MODE)
    return path


def write_plan_files(plan_path: Path, plan: bytes | memoryview, sidecar: PlanSidecar) -> None:
    """Replace a plan and its sidecar so no reader ever sees a mismatched pair.

    The old sidecar goes first: while the swap is under way the plan has no sidecar, which every reader
    treats as "not built" (auto falls back to ONNX Runtime), never as a plan to trust. Each file is
    written atomically, so a failure leaves no partial file.
    """
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        sidecar_path_for(plan_path).unlink()
    write_atomic(plan_path, plan, mode=_FILE_MODE)
    write_sidecar(plan_path, sidecar)


def check_sidecar(
    sidecar: PlanSidecar,
    *,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
    onnx_sha256: str,
    multiprocessor_count: int,
) -> None:
    """Raise PlanMismatch unless the plan was built by this TensorRT, for this GPU (name, capability and
    SM count), from this ONNX file.

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
    if sidecar.multiprocessor_count != multiprocessor_count:
        problems.append(
            f"plan built for a GPU with {sidecar.multiprocessor_count} SMs, this one has "
            f"{multiprocessor_count} (another Jetson module)"
        )
    if sidecar.onnx_sha256.lower() != onnx_sha256.lower():
        problems.append(
            f"plan built from ONNX sha256 {sidecar.onnx_sha256[:12]}…, "
            f"the model file now has {onnx_sha256[:12]}…"
        )
    if problems:
        raise PlanMismatch("; ".join(problems) + f"; run {REBUILD_COMMAND}")


@dataclasses.dataclass(frozen=True)
class PlanTarget:
    """What a plan must have been built for to run here: the TensorRT version and the GPU (its name,
    ``"major.minor"`` compute capability and SM count). :func:`plan_target` reads this machine's."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    multiprocessor_count: int


def verify_plan(plan_path: Path, onnx_path: Path, target: PlanTarget | None = None) -> PlanSidecar:
    """The one check of a plan before it is trusted: its sidecar must name ``target`` and ``onnx_path``.

    ``target`` defaults to this machine (:func:`plan_target`, only queried once the sidecar has been
    read); pass one to check many plans against one query. Returns the sidecar. Raises PlanMismatch
    (sidecar missing, malformed, by another builder, or for another TensorRT/GPU/ONNX file; the message
    names the rebuild command), ModelError when ``onnx_path`` cannot be read, BackendUnavailable when
    ``target`` is ``None`` and TensorRT, pycuda or the GPU is missing. Does not look at the plan's bytes:
    whether they deserialise is for the runtime to say.
    """
    sidecar = read_sidecar(plan_path)
    if target is None:
        target = plan_target()
    check_sidecar(
        sidecar,
        tensorrt_version=target.tensorrt_version,
        gpu_name=target.gpu_name,
        compute_capability=target.compute_capability,
        multiprocessor_count=target.multiprocessor_count,
        onnx_sha256=sha256_file(onnx_path),
    )
    return sidecar


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


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, imported now. Raises BackendUnavailable (with the fix) without it."""
    try:
        import tensorrt as trt  # noqa: PLC0415 - lazy on purpose: CI machines have no TensorRT
    except ImportError:
        raise BackendUnavailable(
            "TensorRT is not installed on this machine (it ships with JetPack on the Jetson; use a "
            "--system-site-packages venv there); plans can only be built and run on the device"
        ) from None
    return trt


def gpu_identity() -> tuple[str, str, int]:
    """(GPU name, ``"major.minor"`` compute capability, SM count) of CUDA device 0, via pycuda (imported
    lazily). The SM count (``CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT``) tells Orin modules apart.

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
        sms = int(device.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT))
        return str(device.name()), f"{major}.{minor}", sms
    except cuda.Error as exc:
        raise BackendUnavailable(f"no usable CUDA GPU ({type(exc).__name__}: {exc})") from None


def plan_target() -> PlanTarget:
    """This machine's TensorRT version and GPU 0 (see :func:`gpu_identity`): what a plan must match.

    Raises BackendUnavailable without TensorRT, pycuda or a usable GPU.
    """
    trt = import_tensorrt()
    gpu_name, capability, sms = gpu_identity()
    return PlanTarget(str(trt.__version__), gpu_name, capability, sms)


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
    trt = import_tensorrt()
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
