"""TensorRT on the Jetson: build plans, load them, ORT-vs-TRT parity, stale sidecars, close().

Runs only where TensorRT and pycuda import (``make test-device`` on a Jetson); elsewhere the whole module
is skipped with the reason. Nothing here is mocked: a green run means the real plan and GPU path works.
Parity follows Polygraphy's approach: run the same inputs through ONNX Runtime (the reference) and
TensorRT and compare elementwise with a tolerance set by precision (fp16 ~1e-2, fp32 ~1e-4), reporting
the max and mean absolute difference.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.backend import FloatArray
from engine.config import DEFAULT_MODELS_DIR, EngineConfig
from engine.errors import BackendUnavailable, PlanMismatch
from engine.onnx_backend import OnnxRuntimeBackend
from engine.plans import (
    REBUILD_COMMAND,
    PlanSidecar,
    plan_path_for,
    read_sidecar,
    sidecar_path_for,
    write_sidecar,
)
from engine.tensorrt_build import build_plan

pytestmark = pytest.mark.device

trt = pytest.importorskip(
    "tensorrt", reason="TensorRT is only available on a Jetson (JetPack); run make test-device there"
)
cuda = pytest.importorskip(
    "pycuda.driver", reason="pycuda is needed next to TensorRT (pip install '.[jetson]' on the Jetson)"
)

TOLERANCE = {"fp16": 1e-2, "fp32": 1e-4}  # atol = rtol, numpy.allclose semantics
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "faces"

# Real models and the shape each is tested at (dynamic dims need one). A model file that is absent is
# skipped with a reason; other *.onnx files in models/ are tested at their static shapes.
REAL_MODELS: dict[str, tuple[int, ...]] = {"modnet.onnx": (1, 3, 512, 512)}


def make_tiny_model(path: Path, *, batch: int | str = 1) -> Path:
    """x: N×3×4×4 -> y = 2x + 1 and s = 1×1 conv with weights 1 (sum over channels, N×1×4×4)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, 4, 4])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [batch, 1, 4, 4])
    inits = [
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.ones((1, 3, 1, 1), dtype=np.float32), "w"),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Add", ["x2", "one"], ["y"]),
        helper.make_node("Conv", ["x", "w"], ["s"], kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y, s], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def open_trt(plan: Path, onnx_path: Path) -> Any:
    from engine.tensorrt_backend import TensorRtBackend

    return TensorRtBackend(plan, onnx_path)


def assert_parity(
    ref: dict[str, FloatArray], got: dict[str, FloatArray], precision: str, record: Any
) -> None:
    tol = TOLERANCE[precision]
    assert set(got) == set(ref)
    for name, want in ref.items():
        have = got[name]
        assert have.shape == want.shape and have.dtype == np.float32
        diff = np.abs(have - want)
        record(f"max_abs_diff[{name}]", float(diff.max()))
        record(f"mean_abs_diff[{name}]", float(diff.mean()))
        print(f"{name}: {precision} max abs diff {diff.max():.3g}, mean {diff.mean():.3g}")
        np.testing.assert_allclose(have, want, atol=tol, rtol=tol, err_msg=f"output {name} ({precision})")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="module", params=["fp16", "fp32"])
def tiny_plan(request: pytest.FixtureRequest, tiny_dir: Path) -> tuple[Path, Path, PlanSidecar]:
    """A plan for a dynamic-batch tiny model (batch 1..4), built once per precision."""
    onnx_path = make_tiny_model(tiny_dir / f"tiny-{request.param}.onnx", batch="N")
    plan = plan_path_for(tiny_dir, f"tiny-{request.param}")
    phases: list[str] = []
    sidecar = build_plan(
        onnx_path,
        plan,
        input_shapes={"x": ((1, 3, 4, 4), (2, 3, 4, 4), (4, 3, 4, 4))},
        fp16=request.param == "fp16",
        workspace_mib=64,
        progress=lambda phase, step, total: phases.append(phase),
    )
    assert {"parse", "build", "write"} <= set(phases)
    return onnx_path, plan, sidecar


def test_sidecar_describes_the_build(tiny_plan: tuple[Path, Path, PlanSidecar]) -> None:
    _, plan, sidecar = tiny_plan
    assert read_sidecar(plan) == sidecar
    assert sidecar.tensorrt_version == trt.__version__
    assert sidecar.input_shapes["x"] == ((1, 3, 4, 4), (2, 3, 4, 4), (4, 3, 4, 4))
    assert plan.stat().st_size > 0 and oct(plan.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("batch", [1, 2, 4])
def test_tiny_parity_across_profile_shapes(
    tiny_plan: tuple[Path, Path, PlanSidecar], batch: int, record_property: Any
) -> None:
    onnx_path, plan, sidecar = tiny_plan
    x = np.random.default_rng(batch).standard_normal((batch, 3, 4, 4)).astype(np.float32)
    with OnnxRuntimeBackend(onnx_path) as ort_backend, open_trt(plan, onnx_path) as trt_backend:
        assert trt_backend.input_shapes == {"x": (-1, 3, 4, 4)} == dict(ort_backend.input_shapes)
        assert trt_backend.output_names == ort_backend.output_names
        assert_parity(
            ort_backend.infer({"x": x}), trt_backend.infer({"x": x}), sidecar.precision, record_property
        )


def test_outputs_are_owned_copies(tiny_plan: tuple[Path, Path, PlanSidecar]) -> None:
    onnx_path, plan, _ = tiny_plan
    with open_trt(plan, onnx_path) as backend:
        first = backend.infer({"x": np.zeros((1, 3, 4, 4), np.float32)})["y"]
        second = backend.infer({"x": np.full((1, 3, 4, 4), 5.0, np.float32)})["y"]
    np.testing.assert_allclose(first, 1.0, atol=1e-2)  # not overwritten by the second call
    np.testing.assert_allclose(second, 11.0, atol=5e-2)


def test_out_of_profile_and_wrong_inputs_are_value_errors(tiny_plan: tuple[Path, Path, PlanSidecar]) -> None:
    onnx_path, plan, _ = tiny_plan
    with open_trt(plan, onnx_path) as backend:
        with pytest.raises(ValueError, match="accepts"):
            backend.infer({"x": np.zeros((5, 3, 4, 4), np.float32)})
        with pytest.raises(ValueError, match="float32"):
            backend.infer({"x": np.zeros((1, 3, 4, 4), np.float64)})
        with pytest.raises(ValueError, match="missing"):
            backend.infer({"y": np.zeros((1, 3, 4, 4), np.float32)})
        backend.infer({"x": np.zeros((1, 3, 4, 4), np.float32)})  # still usable afterwards


def test_tampered_sidecar_raises_plan_mismatch(
    tiny_plan: tuple[Path, Path, PlanSidecar], tmp_path: Path
) -> None:
    onnx_path, plan, sidecar = tiny_plan
    copy = tmp_path / plan.name
    copy.write_bytes(plan.read_bytes())

    write_sidecar(copy, dataclasses.replace(sidecar, tensorrt_version="0.0.1"))
    with pytest.raises(PlanMismatch, match=f"plan built by TensorRT 0.0.1, runtime is {trt.__version__}"):
        open_trt(copy, onnx_path)

    write_sidecar(copy, dataclasses.replace(sidecar, gpu_name="Some Other GPU", compute_capability="1.0"))
    with pytest.raises(PlanMismatch, match=f"'Some Other GPU'.*{REBUILD_COMMAND}"):
        open_trt(copy, onnx_path)

    write_sidecar(copy, sidecar)
    changed = tmp_path / onnx_path.name
    changed.write_bytes(onnx_path.read_bytes() + b"\n")  # same model, different file: the hash must differ
    with pytest.raises(PlanMismatch, match="ONNX sha256"):
        open_trt(copy, changed)

    sidecar_path_for(copy).unlink()
    with pytest.raises(PlanMismatch, match="no sidecar"):
        open_trt(copy, onnx_path)


def test_corrupt_plan_with_valid_sidecar_is_a_plan_mismatch(
    tiny_plan: tuple[Path, Path, PlanSidecar], tmp_path: Path
) -> None:
    onnx_path, plan, sidecar = tiny_plan
    bad = tmp_path / plan.name
    bad.write_bytes(plan.read_bytes()[: plan.stat().st_size // 2])
    write_sidecar(bad, sidecar)
    with pytest.raises(PlanMismatch, match="cannot deserialise"):
        open_trt(bad, onnx_path)


def test_close_frees_and_is_idempotent(tiny_plan: tuple[Path, Path, PlanSidecar]) -> None:
    onnx_path, plan, _ = tiny_plan
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    try:
        free_before = cuda.mem_get_info()[0]
        backend = open_trt(plan, onnx_path)
        backend.infer({"x": np.zeros((4, 3, 4, 4), np.float32)})
        backend.close()
        backend.close()
        free_after = cuda.mem_get_info()[0]
    finally:
        cuda.Context.pop()
        ctx.detach()
    assert not backend._device and not backend._host and backend._context is None
    with pytest.raises(BackendUnavailable, match="closed"):
        backend.infer({"x": np.zeros((1, 3, 4, 4), np.float32)})
    # Jetson memory is shared with the CPU, so other processes move this number: allow 32 MiB of noise.
    assert free_after >= free_before - (32 << 20)


def test_open_backend_auto_picks_tensorrt_with_a_matching_plan(
    tiny_plan: tuple[Path, Path, PlanSidecar],
) -> None:
    from engine.runtime import open_backend

    onnx_path, plan, _ = tiny_plan
    cfg = EngineConfig.model_validate({"backend": "auto", "plans_dir": plan.parent})
    with open_backend(plan.name.removesuffix(".plan"), onnx_path, cfg) as backend:
        assert backend.name == "tensorrt"


# ---------------------------------------------------------------------------------------- real models


def _real_model_params() -> list[Any]:
    params = [
        pytest.param(name, shape, id=name.removesuffix(".onnx"))
        if (DEFAULT_MODELS_DIR / name).is_file()
        else pytest.param(
            name,
            shape,
            id=name.removesuffix(".onnx"),
            marks=pytest.mark.skip(reason=f"models/{name} is absent"),
        )
        for name, shape in REAL_MODELS.items()
    ]
    for path in sorted(DEFAULT_MODELS_DIR.glob("*.onnx")):
        if path.name not in REAL_MODELS:
            params.append(pytest.param(path.name, None, id=path.stem))
    return params


def _real_image(shape: tuple[int, ...]) -> FloatArray | None:
    """A public-domain portrait resized to the input, RGB in [-1, 1], in the input's layout."""
    from PIL import Image

    images = sorted(ASSETS.glob("*.png")) + sorted(ASSETS.glob("*.jpg"))
    if len(shape) != 4 or not images:
        return None
    if shape[1] == 3:
        h, w, nchw = shape[2], shape[3], True
    elif shape[3] == 3:
        h, w, nchw = shape[1], shape[2], False
    else:
        return None
    with Image.open(images[0]) as img:
        rgb = np.asarray(img.convert("RGB").resize((w, h)), dtype=np.float32) / 127.5 - 1.0
    tensor = rgb.transpose(2, 0, 1)[None] if nchw else rgb[None]
    return np.ascontiguousarray(np.broadcast_to(tensor, shape), dtype=np.float32)


@pytest.mark.parametrize(("name", "shape"), _real_model_params())
def test_real_model_parity(
    name: str,
    shape: tuple[int, ...] | None,
    tmp_path_factory: pytest.TempPathFactory,
    record_property: Any,
) -> None:
    onnx_path = DEFAULT_MODELS_DIR / name
    with OnnxRuntimeBackend(onnx_path) as ort_backend:
        shapes = dict(ort_backend.input_shapes)
        if shape is not None and len(shapes) == 1:
            shapes = {next(iter(shapes)): shape}
        if any(d < 0 for s in shapes.values() for d in s):
            pytest.skip(f"{name} has dynamic inputs {shapes}; add its test shape to REAL_MODELS")
        plan = plan_path_for(tmp_path_factory.mktemp("real"), onnx_path.stem)
        sidecar = build_plan(onnx_path, plan, input_shapes=shapes, fp16=True)
        rng = np.random.default_rng(0)
        cases = {"random": {n: rng.uniform(-1, 1, s).astype(np.float32) for n, s in shapes.items()}}
        if len(shapes) == 1:
            ((input_name, input_shape),) = shapes.items()
            image = _real_image(input_shape)
            if image is not None:
                cases["portrait"] = {input_name: image}
        with open_trt(plan, onnx_path) as trt_backend:
            for case, feed in cases.items():
                print(f"{name} / {case}:")
                assert_parity(
                    ort_backend.infer(feed),
                    trt_backend.infer(feed),
                    sidecar.precision,
                    lambda key, value, case=case: record_property(f"{case}:{key}", value),
                )
