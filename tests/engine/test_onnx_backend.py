"""OnnxRuntimeBackend on tiny models built with onnx.helper: known outputs and every way to misuse it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.backend import InferenceBackend
from engine.errors import BackendUnavailable, EngineError, ModelError
from engine.onnx_backend import OnnxRuntimeBackend, auto_threads, physical_cores


def make_tiny_model(path: Path, *, batch: int | str = 1) -> Path:
    """x: N×3×4×4 -> y = 2x + 1 (same shape) and s = 1×1 conv with weights 1 (sum over channels, N×1×4×4)."""
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
    model.ir_version = 8  # ONNX Runtime 1.23 reads IR <= 11; 8 also suits TensorRT 8.6's parser
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny_model(tmp_path / "tiny.onnx")


@pytest.fixture
def backend(tiny: Path) -> Iterator[OnnxRuntimeBackend]:
    b = OnnxRuntimeBackend(tiny, threads=1)
    yield b
    b.close()


def test_known_outputs(backend: OnnxRuntimeBackend) -> None:
    x = (np.arange(48) / 10).reshape(1, 3, 4, 4).astype(np.float32)
    out = backend.infer({"x": x})
    assert set(out) == {"y", "s"}
    np.testing.assert_allclose(out["y"], 2 * x + 1, rtol=1e-6)
    np.testing.assert_allclose(out["s"], x.sum(axis=1, keepdims=True), rtol=1e-5)
    assert out["y"].dtype == np.float32 and out["y"].flags.c_contiguous


def test_metadata_and_protocol(backend: OnnxRuntimeBackend) -> None:
    assert isinstance(backend, InferenceBackend)
    assert backend.name == "onnxruntime"
    assert dict(backend.input_shapes) == {"x": (1, 3, 4, 4)}
    assert backend.output_names == ("y", "s")
    with pytest.raises(TypeError):
        backend.input_shapes["x"] = (2, 3, 4, 4)  # type: ignore[index]


def test_pool_threads_do_not_spin_between_runs(backend: OnnxRuntimeBackend) -> None:
    """Busy-waiting pool threads would take the CPU from the work between two runs (and the kiosk's
    preview and UI): spinning is off (BENCHMARKS.md, issue 13)."""
    options = backend._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_dynamic_dims_are_minus_one_and_accept_any_size(tmp_path: Path) -> None:
    with OnnxRuntimeBackend(make_tiny_model(tmp_path / "dyn.onnx", batch="N")) as b:
        assert b.input_shapes["x"] == (-1, 3, 4, 4)
        x = np.ones((3, 3, 4, 4), dtype=np.float32)
        out = b.infer({"x": x})
        assert out["y"].shape == (3, 3, 4, 4)
        np.testing.assert_allclose(out["s"], np.full((3, 1, 4, 4), 3.0, dtype=np.float32))


def test_outputs_are_owned_copies(backend: OnnxRuntimeBackend) -> None:
    x = np.zeros((1, 3, 4, 4), dtype=np.float32)
    first = backend.infer({"x": x})["y"]
    first[...] = 42.0
    second = backend.infer({"x": x})["y"]
    np.testing.assert_array_equal(second, np.ones_like(second))
    assert first.base is None or first.base is not second.base


def test_non_contiguous_input_is_accepted(backend: OnnxRuntimeBackend) -> None:
    x = np.asfortranarray(np.random.default_rng(0).random((1, 3, 4, 4), dtype=np.float32))
    np.testing.assert_allclose(backend.infer({"x": x})["y"], 2 * x + 1, rtol=1e-6)


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"wrong": np.zeros((1, 3, 4, 4), np.float32)}, r"missing \['x'\], unexpected \['wrong'\]"),
        ({}, r"missing \['x'\]"),
        (
            {"x": np.zeros((1, 3, 4, 4), np.float32), "extra": np.zeros(1, np.float32)},
            r"unexpected \['extra'\]",
        ),
        ({"x": np.zeros((1, 3, 4, 4), np.float64)}, r"must be float32, got float64"),
        ({"x": np.zeros((1, 3, 4, 4), np.uint8)}, r"must be float32, got uint8"),
        ({"x": np.zeros((1, 3, 4, 5), np.float32)}, r"shape \(1, 3, 4, 5\).*expects \(1, 3, 4, 4\)"),
        ({"x": np.zeros((3, 4, 4), np.float32)}, r"shape \(3, 4, 4\)"),
        ({"x": [[0.0]]}, r"must be a numpy array"),
    ],
)
def test_caller_mistakes_raise_value_error(
    backend: OnnxRuntimeBackend, inputs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        backend.infer(inputs)


def test_inputs_must_be_a_mapping(backend: OnnxRuntimeBackend) -> None:
    with pytest.raises(ValueError, match="mapping"):
        backend.infer([np.zeros((1, 3, 4, 4), np.float32)])  # type: ignore[arg-type]


def test_missing_file_names_the_file_only(tmp_path: Path) -> None:
    path = tmp_path / "secret-dir" / "absent.onnx"
    with pytest.raises(ModelError, match=r"absent\.onnx is missing") as info:
        OnnxRuntimeBackend(path)
    assert str(tmp_path) not in str(info.value)
    assert info.value.code == "model_error"


def test_corrupt_file_is_a_model_error_without_the_path(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07 not a protobuf " * 20)
    with pytest.raises(ModelError, match=r"corrupt\.onnx cannot be loaded") as info:
        OnnxRuntimeBackend(path)
    assert str(tmp_path) not in str(info.value)
    assert info.value.__cause__ is None  # the ORT exception (with the full path) is not chained


def test_truncated_model_is_a_model_error(tiny: Path) -> None:
    data = tiny.read_bytes()
    tiny.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"tiny\.onnx"):
        OnnxRuntimeBackend(tiny)


def test_non_float_input_model_is_rejected(tmp_path: Path) -> None:
    # A valid model ORT loads fine; the backend refuses it because the engine only feeds float32.
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "u8", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / "u8.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"u8.onnx: input 'x' is tensor\(uint8\), expected tensor\(float\)"):
        OnnxRuntimeBackend(path)


def test_close_is_idempotent_and_use_after_close_raises(tiny: Path) -> None:
    b = OnnxRuntimeBackend(tiny)
    b.close()
    b.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        b.infer({"x": np.zeros((1, 3, 4, 4), np.float32)})
    assert "closed" in repr(b)


def test_context_manager_closes_even_on_error(tiny: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), OnnxRuntimeBackend(tiny) as b:
        raise RuntimeError("boom")
    with pytest.raises(EngineError):
        b.infer({"x": np.zeros((1, 3, 4, 4), np.float32)})


def test_negative_threads_rejected(tiny: Path) -> None:
    with pytest.raises(ValueError, match="threads"):
        OnnxRuntimeBackend(tiny, threads=-1)


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 2), (4, 4), (6, 5), (8, 7), (12, 8), (64, 8)])
def test_auto_threads_policy(cores: int, threads: int) -> None:
    assert auto_threads(cores) == threads


def test_physical_cores_is_within_affinity() -> None:
    import os

    assert 1 <= physical_cores() <= len(os.sched_getaffinity(0))
