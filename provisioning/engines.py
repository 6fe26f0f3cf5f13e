"""``build-engines``: TensorRT plans for every model, built on the device, with a progress bar.

A plan only runs on the TensorRT version and GPU that built it, so plans are never shipped: they are built
here (``engine.tensorrt_build``), next to a sidecar that ``engine.plans.verify_plan`` checks, both here (to
skip what is up to date) and at load. Without TensorRT (every x86 CI machine) the command says so and exits
non-zero *before* touching anything, so existing plans stay byte-identical.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from engine.errors import BackendUnavailable, EngineError, PlanMismatch
from engine.models import ALL_MODELS, ModelSpec, verified_path
from engine.plans import plan_path_for, verify_plan
from engine.runtime import tensorrt_available
from engine.tensorrt_build import build_plan
from provisioning import ProvisioningError

__all__ = ["NO_TENSORRT_MESSAGE", "ProgressBar", "build_engines"]

NO_TENSORRT_MESSAGE = (
    "TensorRT is not available on this machine (the tensorrt and pycuda packages are not importable). "
    "Plans can only be built on the Jetson itself, in the --system-site-packages venv that sees JetPack's "
    "TensorRT. Nothing was changed: existing plans were left as they are, and the kiosk runs on the CPU "
    "(ONNX Runtime) until plans are built."
)
_BAR_WIDTH = 30


class ProgressBar:
    """A one-line text bar for ``engine.tensorrt_build.ProgressCallback`` (``progress(phase, step, total)``).

    On a terminal the line is redrawn in place; otherwise (a log, ``make provision | tee``) one line is
    printed per phase start and end, so the output stays readable.
    """

    def __init__(self, out: TextIO, label: str) -> None:
        self._out = out
        self._label = label
        self._tty = out.isatty()
        self._last_phase = ""

    def __call__(self, phase: str, step: int, total: int) -> None:
        """Report ``step`` of ``total`` in ``phase``."""
        fraction = 0.0 if total <= 0 else min(1.0, step / total)
        filled = int(fraction * _BAR_WIDTH)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        line = f"{self._label} [{bar}] {fraction * 100:3.0f}% {phase}"
        if self._tty:
            print("\r" + line.ljust(100)[:100], end="", file=self._out, flush=True)
        elif phase != self._last_phase or fraction >= 1.0:
            print(line, file=self._out)
        self._last_phase = phase

    def done(self, text: str) -> None:
        """Finish the line with ``text``."""
        if self._tty:
            print("\r" + f"{self._label} {text}".ljust(100)[:100], file=self._out)
        else:
            print(f"{self._label} {text}", file=self._out)


@dataclass(frozen=True)
class BuildResult:
    """One model's outcome: ``built``, ``up-to-date`` (sidecar matched, skipped) or ``failed``."""

    model: str
    status: str
    detail: str = ""


def _up_to_date(onnx: Path, plan: Path) -> bool:
    """True when ``plan`` exists and its sidecar matches this TensorRT, GPU and ``onnx`` (no rebuild)."""
    if not plan.is_file():
        return False
    try:
        verify_plan(plan, onnx)
    except PlanMismatch:
        return False
    return True


def build_engines(
    models_dir: Path,
    plans_dir: Path,
    out: TextIO,
    *,
    force: bool = False,
    models: Sequence[ModelSpec] = ALL_MODELS,
    workspace_mib: int = 1024,
) -> list[BuildResult]:
    """Build a plan for each of ``models`` from ``models_dir`` into ``plans_dir``.

    Skips models whose plan's sidecar matches this TensorRT, GPU and ONNX file unless ``force``. Raises
    ProvisioningError (:data:`NO_TENSORRT_MESSAGE`) before touching anything when TensorRT is missing;
    a failed model is reported and the others are still built.
    """
    if not tensorrt_available():
        raise ProvisioningError(NO_TENSORRT_MESSAGE)
    results: list[BuildResult] = []
    total = len(models)
    for index, spec in enumerate(models, start=1):
        label = f"[{index}/{total}] {spec.name:<20}"
        try:
            onnx = verified_path(spec, models_dir)
            plan = plan_path_for(plans_dir, spec.name)
            if not force and _up_to_date(onnx, plan):
                print(f"{label} up to date ({plan.name})", file=out)
                results.append(BuildResult(spec.name, "up-to-date"))
                continue
            bar = ProgressBar(out, label)
            started = time.monotonic()
            sidecar = build_plan(
                onnx, plan, input_shapes=spec.shapes, workspace_mib=workspace_mib, progress=bar
            )
        except BackendUnavailable as exc:
            # No GPU or TensorRT cannot build at all: the next model would fail the same way.
            raise ProvisioningError(f"{spec.name}: {exc}") from None
        except (EngineError, ValueError, OSError) as exc:
            print(f"{label} FAILED: {exc}", file=out)
            results.append(BuildResult(spec.name, "failed", str(exc)))
            continue
        bar.done(
            f"built {plan.name} ({sidecar.precision}, TensorRT {sidecar.tensorrt_version}) "
            f"in {time.monotonic() - started:.0f}s"
        )
        results.append(BuildResult(spec.name, "built"))
    return results
