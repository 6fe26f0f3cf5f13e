"""Plan sidecars and their checks, the builder's pure parts, and choosing a runtime: no TensorRT needed."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engine import plans, runtime, tensorrt_build
from engine.config import EngineConfig
from engine.errors import BackendUnavailable, ModelError, PlanMismatch
from engine.onnx_backend import OnnxRuntimeBackend
from engine.plans import (
    BUILDER_ID,
    REBUILD_COMMAND,
    PlanSidecar,
    check_sidecar,
    normalise_shape_range,
    plan_path_for,
    read_sidecar,
    sha256_file,
    sidecar_path_for,
    verify_plan,
    write_plan_files,
    write_sidecar,
)
from engine.tensorrt_build import build_plan


def make_tiny_model(path: Path) -> Path:
    """x: 1×3×4×4 -> y = x + 1 (tests here only need a model ONNX Runtime can load)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "tiny", [x], [y], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


SHA_A = "a" * 64
SHA_B = "b" * 64


def make_sidecar(**changes: object) -> PlanSidecar:
    base = PlanSidecar(
        tensorrt_version="8.6.2",
        gpu_name="Orin",
        compute_capability="8.7",
        multiprocessor_count=8,
        onnx_sha256=SHA_A,
        precision="fp16",
        input_shapes={"input": ((1, 3, 256, 256), (1, 3, 512, 512), (1, 3, 768, 768))},
        built_at="2025-01-01T00:00:00+00:00",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def matching_runtime(sidecar: PlanSidecar) -> dict[str, object]:
    return {
        "tensorrt_version": sidecar.tensorrt_version,
        "gpu_name": sidecar.gpu_name,
        "compute_capability": sidecar.compute_capability,
        "multiprocessor_count": sidecar.multiprocessor_count,
        "onnx_sha256": sidecar.onnx_sha256,
    }


# ------------------------------------------------------------------------------------------- sidecar


def test_paths() -> None:
    plan = plan_path_for(Path("/plans"), "modnet")
    assert plan == Path("/plans/modnet.plan")
    assert sidecar_path_for(plan) == Path("/plans/modnet.plan.json")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../modnet", "a\\b"])
def test_plan_path_rejects_non_bare_names(bad: str) -> None:
    with pytest.raises(ValueError, match="bare file stem"):
        plan_path_for(Path("/plans"), bad)


def test_sidecar_round_trip(tmp_path: Path) -> None:
    plan = tmp_path / "modnet.plan"
    sidecar = make_sidecar()
    written = write_sidecar(plan, sidecar)
    assert written == tmp_path / "modnet.plan.json"
    assert read_sidecar(plan) == sidecar
    doc = json.loads(written.read_text())
    assert doc["builder"] == BUILDER_ID == "headshot-kiosk plans v1"
    assert doc["input_shapes"]["input"] == {
        "min": [1, 3, 256, 256],
        "opt": [1, 3, 512, 512],
        "max": [1, 3, 768, 768],
    }
    assert stat.S_IMODE(written.stat().st_mode) == 0o644


def test_sidecar_is_immutable() -> None:
    sidecar = make_sidecar()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sidecar.gpu_name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        sidecar.input_shapes["input"] = ((1,), (1,), (1,))  # type: ignore[index]


def test_missing_sidecar_is_a_plan_mismatch(tmp_path: Path) -> None:
    with pytest.raises(PlanMismatch, match=f"modnet.plan has no sidecar modnet.plan.json.*{REBUILD_COMMAND}"):
        read_sidecar(tmp_path / "modnet.plan")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: "{not json", "malformed"),
        (lambda d: json.dumps([1, 2]), "not a JSON object"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "gpu_name"}), r"missing \['gpu_name'\]"),
        (lambda d: json.dumps({**d, "extra": 1}), r"unknown \['extra'\]"),
        (lambda d: json.dumps({**d, "precision": "int8"}), "fp16 or fp32"),
        (lambda d: json.dumps({**d, "tensorrt_version": 8.6}), "must be a string"),
        (
            lambda d: json.dumps({**d, "input_shapes": {"input": {"min": [1], "max": [1]}}}),
            "min, opt and max",
        ),
        (
            lambda d: json.dumps({**d, "input_shapes": {"input": {"min": [2], "opt": [1], "max": [3]}}}),
            "min <= opt",
        ),
        (lambda d: json.dumps({**d, "builder": "trtexec"}), "written by 'trtexec'"),
    ],
)
def test_malformed_sidecar_is_a_plan_mismatch(tmp_path: Path, mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    plan = tmp_path / "modnet.plan"
    doc = json.loads(make_sidecar().to_json())
    sidecar_path_for(plan).write_text(mutate(doc))
    with pytest.raises(PlanMismatch, match=match) as info:
        read_sidecar(plan)
    assert REBUILD_COMMAND in str(info.value)


def test_matching_sidecar_passes() -> None:
    sidecar = make_sidecar()
    check_sidecar(sidecar, **matching_runtime(sidecar))
    # Hex case does not matter.
    check_sidecar(sidecar, **{**matching_runtime(sidecar), "onnx_sha256": SHA_A.upper()})


@pytest.mark.parametrize(
    ("field", "runtime_value", "expected"),
    [
        (
            "tensorrt_version",
            "10.3.0",
            "plan built by TensorRT 8.6.2, runtime is 10.3.0; run python -m provisioning build-engines",
        ),
        (
            "gpu_name",
            "NVIDIA GeForce RTX 4090",
            "plan built for GPU 'Orin', this GPU is 'NVIDIA GeForce RTX 4090'",
        ),
        ("compute_capability", "8.9", "plan built for compute capability 8.7, this GPU has 8.9"),
        (
            "multiprocessor_count",
            16,
            "plan built for a GPU with 8 SMs, this one has 16 (another Jetson module)",
        ),
        (
            "onnx_sha256",
            SHA_B,
            "plan built from ONNX sha256 aaaaaaaaaaaa…, the model file now has bbbbbbbbbbbb…",
        ),
    ],
)
def test_each_mismatch_names_both_values_and_the_fix(
    field: str, runtime_value: object, expected: str
) -> None:
    sidecar = make_sidecar()
    with pytest.raises(PlanMismatch) as info:
        check_sidecar(sidecar, **{**matching_runtime(sidecar), field: runtime_value})
    message = str(info.value)
    assert message.startswith(expected)
    assert message.endswith(f"; run {REBUILD_COMMAND}")
    assert info.value.code == "plan_mismatch"


def test_every_difference_is_listed() -> None:
    with pytest.raises(PlanMismatch) as info:
        check_sidecar(
            make_sidecar(),
            tensorrt_version="10.3.0",
            gpu_name="Thor",
            compute_capability="11.0",
            multiprocessor_count=20,
            onnx_sha256=SHA_B,
        )
    message = str(info.value)
    for part in ("TensorRT 8.6.2, runtime is 10.3.0", "'Thor'", "8.7, this GPU has 11.0", "bbbbbbbbbbbb"):
        assert part in message
    assert message.count(REBUILD_COMMAND) == 1


# ------------------------------------------------------------------------------------------- verify_plan

ORIN = plans.PlanTarget(
    tensorrt_version="8.6.2", gpu_name="Orin", compute_capability="8.7", multiprocessor_count=8
)


def _plan_for(tmp_path: Path, **changes: object) -> tuple[Path, Path]:
    """A plan whose sidecar names the tiny model's real sha256 (plus ``changes``), and that model."""
    onnx_path = make_tiny_model(tmp_path / "tiny.onnx")
    plan = plan_path_for(tmp_path / "plans", "tiny")
    changes.setdefault("onnx_sha256", sha256_file(onnx_path))
    write_plan_files(plan, b"plan bytes", make_sidecar(**changes))
    return plan, onnx_path


def test_verify_plan_accepts_a_matching_plan_and_returns_its_sidecar(tmp_path: Path) -> None:
    plan, onnx_path = _plan_for(tmp_path)
    assert verify_plan(plan, onnx_path, ORIN) == read_sidecar(plan)


def test_verify_plan_names_every_difference_and_the_rebuild_command(tmp_path: Path) -> None:
    plan, onnx_path = _plan_for(tmp_path, onnx_sha256=SHA_B)
    thor = plans.PlanTarget(
        tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7", multiprocessor_count=8
    )
    with pytest.raises(PlanMismatch) as info:
        verify_plan(plan, onnx_path, thor)
    message = str(info.value)
    assert "plan built by TensorRT 8.6.2, runtime is 10.3.0" in message
    assert "ONNX sha256 bbbbbbbbbbbb" in message and message.endswith(REBUILD_COMMAND)


def test_a_plan_from_another_orin_module_is_refused(tmp_path: Path) -> None:
    # A cloned image: an AGX Orin 64 GB (16 SMs) plan on an Orin NX (8 SMs); name and SM 8.7 are the same.
    plan, onnx_path = _plan_for(tmp_path, multiprocessor_count=16)
    with pytest.raises(PlanMismatch, match=r"16 SMs, this one has 8 \(another Jetson module\)"):
        verify_plan(plan, onnx_path, ORIN)


def test_an_old_sidecar_without_the_sm_count_asks_for_a_rebuild(tmp_path: Path) -> None:
    plan, onnx_path = _plan_for(tmp_path)
    doc = json.loads(sidecar_path_for(plan).read_text())
    del doc["multiprocessor_count"]
    sidecar_path_for(plan).write_text(json.dumps(doc))
    with pytest.raises(PlanMismatch) as info:
        verify_plan(plan, onnx_path, ORIN)
    message = str(info.value)
    assert "predates the GPU's multiprocessor count" in message
    assert message.endswith(f"rebuild the plans: run {REBUILD_COMMAND}")


@pytest.mark.parametrize("bad", [0, -1, "8", True, 8.5])
def test_sm_count_must_be_a_positive_integer(tmp_path: Path, bad: object) -> None:
    plan = tmp_path / "m.plan"
    doc = json.loads(make_sidecar().to_json())
    doc["multiprocessor_count"] = bad
    sidecar_path_for(plan).write_text(json.dumps(doc))
    with pytest.raises(PlanMismatch, match="multiprocessor_count must be a positive integer"):
        read_sidecar(plan)


def test_verify_plan_reads_the_sidecar_before_asking_for_tensorrt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No sidecar means "not built" (PlanMismatch, which auto mode treats as "use ONNX Runtime"), even on a
    # machine where TensorRT is missing; with a sidecar, the missing TensorRT is what is reported.
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    plan, onnx_path = _plan_for(tmp_path)
    sidecar_path_for(plan).unlink()
    with pytest.raises(PlanMismatch, match="has no sidecar"):
        verify_plan(plan, onnx_path)
    plan, onnx_path = _plan_for(tmp_path)
    with pytest.raises(BackendUnavailable, match="TensorRT is not installed"):
        verify_plan(plan, onnx_path)


def test_verify_plan_without_the_model_file_is_a_model_error(tmp_path: Path) -> None:
    plan, onnx_path = _plan_for(tmp_path)
    onnx_path.unlink()
    with pytest.raises(ModelError, match="is missing"):
        verify_plan(plan, onnx_path, ORIN)


# -------------------------------------------------------------------------------------- file helpers


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    data = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_of_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model file gone\.onnx is missing") as info:
        sha256_file(tmp_path / "gone.onnx")
    assert str(tmp_path) not in str(info.value)


def test_plan_and_sidecar_are_written_0644_with_no_temp_file_left(tmp_path: Path) -> None:
    # Plans are not secret and the kiosk service user reads what root built (engine.fileio does the write;
    # its own tests cover failures and the directory fsync).
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"old")
    write_plan_files(plan, b"new contents", make_sidecar())
    assert plan.read_bytes() == b"new contents"
    for path in (plan, sidecar_path_for(plan)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.plan", "x.plan.json"]


def test_write_plan_files_never_pairs_a_plan_with_a_stale_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "modnet.plan"
    write_plan_files(plan, b"old plan", make_sidecar(tensorrt_version="8.6.2"))
    assert plan.read_bytes() == b"old plan"
    assert read_sidecar(plan).tensorrt_version == "8.6.2"

    # The plan write fails half-way: the old plan stays, and its sidecar is already gone, so readers see
    # "no plan with a sidecar" (auto falls back to ONNX Runtime) rather than a mismatched pair.
    real_fsync = os.fsync

    def fail_on_plan(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", fail_on_plan)
    with pytest.raises(OSError):
        write_plan_files(plan, b"new plan", make_sidecar(tensorrt_version="10.3.0"))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert plan.read_bytes() == b"old plan"
    assert not sidecar_path_for(plan).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["modnet.plan"]

    write_plan_files(plan, b"new plan", make_sidecar(tensorrt_version="10.3.0"))
    assert plan.read_bytes() == b"new plan"
    assert read_sidecar(plan).tensorrt_version == "10.3.0"


# -------------------------------------------------------------------------------------------- shapes


def test_single_shape_becomes_fixed_range() -> None:
    assert normalise_shape_range("x", (1, 3, 512, 512)) == ((1, 3, 512, 512),) * 3


def test_triple_is_kept() -> None:
    rng = ([1, 3, 256, 256], [1, 3, 512, 512], [1, 3, 1024, 768])
    assert normalise_shape_range("x", rng) == ((1, 3, 256, 256), (1, 3, 512, 512), (1, 3, 1024, 768))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ((1, 0, 4), "positive int"),
        ((1, -1, 4), "positive int"),
        ((1.0, 3), "one shape or a"),
        (((1, 3), (1, 3)), "one shape or a"),
        (((1, 3), (1, 3, 4), (1, 3)), "same rank"),
        (((1, 8), (1, 4), (1, 16)), "min <= opt <= max"),
        (((1, 3), (1, 3), (1, 2)), "min <= opt <= max"),
        (((True, 3), (1, 3), (1, 3)), "positive int"),
        ((), "one shape or a"),
    ],
)
def test_bad_shape_ranges(value: tuple, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        normalise_shape_range("x", value)


def _fake_network(*inputs: tuple[str, tuple[int, ...]]) -> SimpleNamespace:
    # Stand-in with the two INetworkDefinition members _resolve_input_ranges reads (num_inputs,
    # get_input(i).name/.shape); the real thing is exercised by tests/device/test_tensorrt.py.
    tensors = [SimpleNamespace(name=n, shape=s) for n, s in inputs]
    return SimpleNamespace(num_inputs=len(tensors), get_input=tensors.__getitem__)


def test_input_ranges_are_matched_to_the_network() -> None:
    net = _fake_network(("img", (-1, 3, -1, -1)), ("scale", (1,)))
    rng = normalise_shape_range("img", ((1, 3, 256, 256), (1, 3, 512, 512), (1, 3, 768, 768)))
    resolved = tensorrt_build._resolve_input_ranges(net, {"img": rng})
    assert resolved == {"img": rng, "scale": ((1,), (1,), (1,))}
    with pytest.raises(ValueError, match="dynamic shape"):
        tensorrt_build._resolve_input_ranges(net, {})
    with pytest.raises(ValueError, match=r"shapes given for \['other'\]"):
        tensorrt_build._resolve_input_ranges(net, {"img": rng, "other": ((1,), (1,), (1,))})
    with pytest.raises(ValueError, match="does not fit"):
        tensorrt_build._resolve_input_ranges(net, {"img": normalise_shape_range("img", (1, 4, 8, 8))})


def test_progress_adapter_reports_and_cancels_on_callback_error() -> None:
    seen: list[tuple[str, int, int]] = []
    monitor = tensorrt_build._Monitor(lambda phase, step, total: seen.append((phase, step, total)))
    monitor.start("Building", 3)
    assert monitor.step("Building", 0) is True
    monitor.finish("Building")
    assert seen == [("Building", 0, 3), ("Building", 1, 3), ("Building", 3, 3)]

    def broken(phase: str, step: int, total: int) -> None:
        raise KeyError(phase)

    failing = tensorrt_build._Monitor(broken)
    failing.start("Tactics", 10)
    assert failing.step("Tactics", 0) is False  # asks TensorRT to cancel instead of raising in its thread
    assert isinstance(failing.failed, KeyError)


# ----------------------------------------------------------------------------------- without TensorRT


def test_build_plan_without_tensorrt_is_backend_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # absent, even on a Jetson
    onnx_path = make_tiny_model(tmp_path / "tiny.onnx")
    with pytest.raises(BackendUnavailable, match="TensorRT is not installed on this machine"):
        build_plan(onnx_path, tmp_path / "tiny.plan", input_shapes={"x": (1, 3, 4, 4)})
    assert list(tmp_path.iterdir()) == [onnx_path]


def test_build_plan_checks_arguments_before_touching_tensorrt(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workspace_mib"):
        build_plan(tmp_path / "m.onnx", tmp_path / "m.plan", input_shapes={}, workspace_mib=0)
    with pytest.raises(ValueError, match="positive int"):
        build_plan(tmp_path / "m.onnx", tmp_path / "m.plan", input_shapes={"x": (1, 0)})


def test_trt_logger_and_gpu_identity_without_the_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    plans.trt_logger.cache_clear()
    with pytest.raises(BackendUnavailable, match="TensorRT is not installed"):
        plans.trt_logger()
    with pytest.raises(BackendUnavailable, match="pycuda is not installed"):
        plans.gpu_identity()


def test_importing_the_engine_runtime_loads_no_gpu_library() -> None:
    code = (
        "import sys, engine.runtime, engine.plans, engine.tensorrt_build, engine.onnx_backend; "
        "engine.runtime.tensorrt_available(); "
        "bad = [m for m in ('tensorrt', 'pycuda') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# -------------------------------------------------------------------------------------- open_backend


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny_model(tmp_path / "tiny.onnx")


def cfg_for(tmp_path: Path, backend: str) -> EngineConfig:
    return EngineConfig.model_validate(
        {"backend": backend, "models_dir": tmp_path, "plans_dir": tmp_path / "plans", "threads": 1}
    )


def _assert_runs(backend: object) -> None:
    assert isinstance(backend, OnnxRuntimeBackend)
    with backend:
        out = backend.infer({"x": np.zeros((1, 3, 4, 4), np.float32)})
    np.testing.assert_array_equal(out["y"], np.ones((1, 3, 4, 4), np.float32))


def test_onnxruntime_backend_by_name(tmp_path: Path, tiny: Path) -> None:
    _assert_runs(runtime.open_backend("tiny", tiny, cfg_for(tmp_path, "onnxruntime")))


def test_auto_picks_onnxruntime_when_tensorrt_is_absent(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "tensorrt_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="engine.runtime"):
        backend = runtime.open_backend("tiny", tiny, cfg_for(tmp_path, "auto"))
    _assert_runs(backend)
    assert "tiny: using ONNX Runtime: TensorRT is not installed" in caplog.text


def test_auto_picks_onnxruntime_without_a_plan(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "tensorrt_available", lambda: True)
    cfg = cfg_for(tmp_path, "auto")
    cfg.plans_dir.mkdir()
    (cfg.plans_dir / "tiny.plan").write_bytes(b"plan without sidecar")
    with caplog.at_level(logging.INFO, logger="engine.runtime"):
        backend = runtime.open_backend("tiny", tiny, cfg)
    _assert_runs(backend)
    assert f"no TensorRT plan with a sidecar for tiny (build one: {REBUILD_COMMAND})" in caplog.text


def test_auto_falls_back_when_tensorrt_cannot_be_imported(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "tensorrt_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.delitem(sys.modules, "engine.tensorrt_backend", raising=False)
    cfg = cfg_for(tmp_path, "auto")
    write_plan_files(plan_path_for(cfg.plans_dir, "tiny"), b"plan", make_sidecar())
    with caplog.at_level(logging.INFO, logger="engine.runtime"):
        backend = runtime.open_backend("tiny", tiny, cfg)
    _assert_runs(backend)
    assert "TensorRT could not be used (TensorRT is installed but cannot be imported" in caplog.text


def test_tensorrt_by_name_without_tensorrt_names_the_command(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "tensorrt_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="TensorRT and pycuda are not installed") as info:
        runtime.open_backend("tiny", tiny, cfg_for(tmp_path, "tensorrt"))
    assert REBUILD_COMMAND in str(info.value)
    assert info.value.code == "backend_unavailable"


def test_tensorrt_by_name_without_a_plan_names_the_command(
    tmp_path: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "tensorrt_available", lambda: True)
    with pytest.raises(
        BackendUnavailable, match=f"no plan tiny.plan in the plans directory; run {REBUILD_COMMAND}"
    ):
        runtime.open_backend("tiny", tiny, cfg_for(tmp_path, "tensorrt"))


def test_tensorrt_available_is_false_here_and_imports_nothing() -> None:
    if "tensorrt" in sys.modules or importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed on this machine")
    assert runtime.tensorrt_available() is False
    assert "tensorrt" not in sys.modules
