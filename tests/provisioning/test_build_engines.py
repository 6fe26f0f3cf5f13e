"""build-engines: without TensorRT it says so, exits non-zero and leaves existing plans byte-identical."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from engine.runtime import tensorrt_available
from provisioning import ProvisioningError
from provisioning.cli import EXIT_NO_TENSORRT, main
from provisioning.engines import ProgressBar, build_engines

pytestmark = pytest.mark.skipif(
    tensorrt_available(), reason="TensorRT is installed here; plan builds are covered by tests/device"
)


def test_without_tensorrt_nothing_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    plan, sidecar = plans / "matting.plan", plans / "matting.plan.json"
    plan.write_bytes(b"\x00old plan bytes\xff")
    sidecar.write_text('{"old": true}\n', encoding="utf-8")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (plan, sidecar)}
    code = main(
        ["build-engines", "--plans-dir", str(plans), "--models-dir", str(tmp_path)], out=io.StringIO()
    )
    assert code == EXIT_NO_TENSORRT != 0
    err = capsys.readouterr().err
    assert "TensorRT is not available on this machine" in err and "existing plans were left" in err
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (plan, sidecar)} == before
    assert sorted(plans.iterdir()) == [plan, sidecar]


def test_library_call_raises_the_same_message(tmp_path: Path) -> None:
    with pytest.raises(ProvisioningError, match="only be built on the Jetson"):
        build_engines(tmp_path, tmp_path / "plans", io.StringIO())
    assert not (tmp_path / "plans").exists()


def test_progress_bar_prints_one_line_per_phase_off_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, "[1/3] matting")
    for step in range(5):
        bar("build", step, 4)
    bar("write", 1, 1)
    bar.done("built matting.plan")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/3] matting [") and lines[0].endswith("0% build")
    assert any("100% build" in line for line in lines)
    assert lines[-1] == "[1/3] matting built matting.plan"
