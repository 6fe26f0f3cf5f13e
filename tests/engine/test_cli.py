"""`python -m engine render`: the exact interface other issues and our checks depend on."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from engine.jpeg import ALLOWED_MARKERS, segments
from tests.conftest import FACES, REPO
from tests.engine.test_imageio import bomb_png


def run_cli(
    *args: str, cwd: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    files = {
        "ok_jpg": d / "hopper_portrait.jpg",
        "ok_png": d / "astronaut.png",
        "unreadable": d / "broken.jpg",
        "unsupported": d / "animation.gif",
        "too_large": d / "bomb.png",
        "no_face": d / "landscape.png",
    }
    files["ok_jpg"].write_bytes((FACES / "grace_hopper.jpg").read_bytes())
    files["ok_png"].write_bytes((FACES / "astronaut.png").read_bytes())
    files["unreadable"].write_bytes((FACES / "grace_hopper.jpg").read_bytes()[:5000])
    Image.new("RGB", (64, 64), "red").save(files["unsupported"], "GIF")
    files["too_large"].write_bytes(bomb_png(60_000, 60_000))
    Image.new("RGB", (640, 480), (40, 120, 60)).save(files["no_face"], "PNG")
    return files


def test_json_output_for_a_good_photo(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_cli(
        "render", str(inputs["ok_jpg"]), "-o", str(out), "--json", "--backend", "onnxruntime", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()
    obj = json.loads(line)
    assert obj["ok"] is True and obj["input"] == str(inputs["ok_jpg"])
    assert obj["output"] == str(out / "hopper_portrait.jpg") and obj["backend"] == "onnxruntime"
    assert set(obj["face"]) == {"bbox", "keypoints", "score"} and len(obj["face"]["bbox"]) == 4
    assert {"right_eye", "left_eye", "nose_tip", "mouth_center"} <= set(obj["face"]["keypoints"])
    assert {"decode", "detect", "matte", "compose", "encode", "total"} <= set(obj["timings_ms"])
    assert isinstance(obj["warnings"], list)
    data = (out / "hopper_portrait.jpg").read_bytes()
    assert Image.open(io.BytesIO(data)).size == (1024, 1024)
    assert {s.marker for s in segments(data)[1:-1]} <= ALLOWED_MARKERS


@pytest.mark.parametrize("preset,size", [("portrait", (1080, 1350)), ("badge", (600, 800))])
def test_presets_and_backgrounds(
    inputs: dict[str, Path], tmp_path: Path, preset: str, size: tuple[int, int]
) -> None:
    out = tmp_path / "out"
    res = run_cli(
        "render",
        str(inputs["ok_png"]),
        "-o",
        str(out),
        "--preset",
        preset,
        "--background",
        "#1F4E79",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    with Image.open(out / "astronaut.jpg") as im:
        assert im.size == size


def test_every_error_code_and_the_others_still_render(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    order = ["unreadable", "ok_jpg", "unsupported", "too_large", "no_face", "ok_png"]
    missing = tmp_path / "does-not-exist.jpg"
    args = [str(inputs[k]) for k in order] + [str(missing)]
    res = run_cli("render", *args, "-o", str(out), "--json", cwd=tmp_path)
    assert res.returncode == 2
    results = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["input"] for r in results] == args
    codes = [r.get("error") for r in results]
    assert codes == ["unreadable", None, "unsupported_format", "too_large", "no_face", None, "unreadable"]
    for r in results:
        if not r["ok"]:
            assert set(r) == {"input", "ok", "error", "message"} and len(r["message"]) > 10
    # Failed inputs leave nothing behind; good ones are there.
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.jpg", "hopper_portrait.jpg"]


def test_render_writes_nothing_outside_outdir(inputs: dict[str, Path], tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    out = tmp_path / "out"
    before = {p for p in tmp_path.rglob("*")}
    res = run_cli(
        "render",
        str(inputs["ok_jpg"]),
        str(inputs["unreadable"]),
        "-o",
        str(out),
        cwd=work,
        env_extra={"HOME": str(home), "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(home / ".cache")},
    )
    assert res.returncode == 2
    after = {p for p in tmp_path.rglob("*")}
    assert after - before == {out, out / "hopper_portrait.jpg"}


def test_same_stem_twice_does_not_overwrite(inputs: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "b"
    other.mkdir()
    (other / "hopper_portrait.png").write_bytes((FACES / "astronaut.png").read_bytes())
    out = tmp_path / "out"
    res = run_cli(
        "render", str(inputs["ok_jpg"]), str(other / "hopper_portrait.png"), "-o", str(out), cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["hopper_portrait-2.jpg", "hopper_portrait.jpg"]


def test_bad_background_is_a_usage_error(inputs: dict[str, Path], tmp_path: Path) -> None:
    res = run_cli("render", str(inputs["ok_jpg"]), "-o", str(tmp_path), "--background", "teal", cwd=tmp_path)
    assert res.returncode == 2 and "use studio-grey, white, blur" in res.stderr


def test_tensorrt_backend_without_tensorrt_names_the_fix(inputs: dict[str, Path], tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here; this checks the message on machines without it")
    res = run_cli(
        "render", str(inputs["ok_jpg"]), "-o", str(tmp_path / "o"), "--backend", "tensorrt", cwd=tmp_path
    )
    assert res.returncode == 1 and "TensorRT" in res.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
