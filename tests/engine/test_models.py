"""The model files themselves: provenance (sha256), loadability on CPU ONNX Runtime, I/O contract, and
behaviour on real portraits. Independent of the engine code on purpose: decoding here is a minimal
re-implementation from MediaPipe's published graph options, so a bug in engine/detect.py cannot hide a
bad model (and vice versa).

Optional parity tests compare the committed ONNX conversions with the original MediaPipe tflite files,
run by the LiteRT interpreter (``ai-edge-litert``). They need ``tools/fetch_models.py --with-originals``
and skip with the reason otherwise.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
FACES = REPO / "tests" / "assets" / "faces"
ORIGINALS = MODELS / ".cache" / "original"

FloatArray = npt.NDArray[np.float32]

# The documented I/O contract (models/README.md). Shapes: ints are fixed, strings are symbolic.
CONTRACT: dict[str, dict[str, Any]] = {
    "face_detection_short_range.onnx": {
        "inputs": [("input", [1, 128, 128, 3])],
        "outputs": [("regressors", [1, 896, 16]), ("classificators", [1, 896, 1])],
    },
    "selfie_segmentation.onnx": {
        "inputs": [("input_1", [1, 256, 256, 3])],
        "outputs": [("activation_10", [1, 256, 256, 1])],
    },
    "modnet.onnx": {
        "inputs": [("input", ["batch_size", 3, "height", "width"])],
        "outputs": [("output", ["batch_size", 1, "height", "width"])],
    },
}


def _sums() -> dict[str, str]:
    out = {}
    for line in (MODELS / "SHA256SUMS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            out[name.lstrip("*")] = digest
    return out


def _model_path(name: str) -> Path:
    path = MODELS / name
    if not path.is_file():
        if name == "modnet.onnx":
            pytest.skip("models/modnet.onnx is absent: run `make models` (tools/fetch_models.py)")
        pytest.fail(f"committed model models/{name} is missing")
    return path


def _session(name: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # deterministic and friendly to a 2-core CI machine
    sess = ort.InferenceSession(str(_model_path(name)), opts, providers=["CPUExecutionProvider"])
    # Asking for a provider that the build lacks silently falls back; check what we really got.
    assert sess.get_providers() == ["CPUExecutionProvider"]
    return sess


@pytest.fixture(scope="module")
def blazeface() -> ort.InferenceSession:
    return _session("face_detection_short_range.onnx")


@pytest.fixture(scope="module")
def selfie() -> ort.InferenceSession:
    return _session("selfie_segmentation.onnx")


def _photo(name: str) -> Image.Image:
    path = FACES / name
    if not path.is_file():
        pytest.skip(f"test portrait tests/assets/faces/{name} is absent")
    with Image.open(path) as im:
        return im.convert("RGB")


# ---------------------------------------------------------------------------------------------------
# BlazeFace helpers (MediaPipe face_detection_short_range graph options)
# ---------------------------------------------------------------------------------------------------


def _anchor_centres() -> FloatArray:
    # SsdAnchorsCalculator: 4 layers, strides 8,16,16,16, aspect ratio 1 + interpolated scale -> 2
    # anchors per cell per layer, fixed anchor size (w = h = 1), offset 0.5. Same-stride layers share
    # the 8x8 grid, so it carries 6 anchors per cell: 16*16*2 + 8*8*6 = 896.
    centres: list[tuple[float, float]] = []
    for stride, per_cell in ((8, 2), (16, 6)):
        grid = 128 // stride
        for y in range(grid):
            for x in range(grid):
                centres += [((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell
    return np.asarray(centres, dtype=np.float32)


def _letterbox(im: Image.Image, size: int) -> tuple[Image.Image, float, int, int]:
    """Fit into size x size keeping aspect; returns the canvas, the scale and the padding offsets."""
    scale = size / max(im.size)
    w, h = round(im.width * scale), round(im.height * scale)
    canvas = Image.new("RGB", (size, size))
    px, py = (size - w) // 2, (size - h) // 2
    canvas.paste(im.resize((w, h), Image.Resampling.BILINEAR), (px, py))
    return canvas, scale, px, py


def _blazeface_input(im: Image.Image) -> tuple[FloatArray, float, int, int]:
    canvas, scale, px, py = _letterbox(im, 128)
    x = np.asarray(canvas, dtype=np.float32) / 127.5 - 1.0  # MediaPipe: float range [-1, 1]
    return x[None], scale, px, py


def _best_face(sess: ort.InferenceSession, im: Image.Image) -> dict[str, Any]:
    x, scale, px, py = _blazeface_input(im)
    regressors, classificators = sess.run(["regressors", "classificators"], {"input": x})
    # MediaPipe's score_clipping_thresh; float64 so that exp(100) does not overflow.
    logits = np.clip(classificators[0, :, 0].astype(np.float64), -100.0, 100.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    i = int(np.argmax(scores))
    anchor = _anchor_centres()[i]
    raw = regressors[0, i] / 128.0  # x/y/w/h_scale = 128, anchors have unit size
    cx, cy, w, h = raw[0] + anchor[0], raw[1] + anchor[1], raw[2], raw[3]

    def to_px(u: float, v: float) -> tuple[float, float]:
        return ((u * 128 - px) / scale, (v * 128 - py) / scale)

    x0, y0 = to_px(cx - w / 2, cy - h / 2)
    x1, y1 = to_px(cx + w / 2, cy + h / 2)
    names = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")
    keypoints = {
        n: to_px(raw[4 + 2 * k] + anchor[0], raw[5 + 2 * k] + anchor[1]) for k, n in enumerate(names)
    }
    return {
        "score": float(scores[i]),
        "box": (x0, y0, x1, y1),
        "keypoints": keypoints,
        "n_confident": int(np.sum(scores > 0.5)),
    }


def _selfie_mask(sess: ort.InferenceSession, im: Image.Image) -> FloatArray:
    """Person probability at the photo's resolution (the model sees the photo squashed to 256x256)."""
    x = np.asarray(im.resize((256, 256), Image.Resampling.BILINEAR), dtype=np.float32)[None] / 255.0
    mask = sess.run(["activation_10"], {"input_1": x})[0][0, :, :, 0]
    return np.asarray(Image.fromarray(mask).resize(im.size, Image.Resampling.BILINEAR))


# ---------------------------------------------------------------------------------------------------
# Provenance and contract
# ---------------------------------------------------------------------------------------------------


def test_sha256sums_lists_every_model() -> None:
    assert set(_sums()) == set(CONTRACT)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_model_matches_sha256sums(name: str) -> None:
    digest = hashlib.sha256(_model_path(name).read_bytes()).hexdigest()
    assert digest == _sums()[name], f"models/{name} does not match models/SHA256SUMS"


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_model_loads_on_cpu_with_documented_io(name: str) -> None:
    sess = _session(name)
    for actual, (want_name, want_shape) in zip(sess.get_inputs(), CONTRACT[name]["inputs"], strict=True):
        assert (actual.name, actual.shape, actual.type) == (want_name, want_shape, "tensor(float)")
    for actual, (want_name, want_shape) in zip(sess.get_outputs(), CONTRACT[name]["outputs"], strict=True):
        assert (actual.name, actual.shape, actual.type) == (want_name, want_shape, "tensor(float)")


def test_converted_models_are_plain_opset17() -> None:
    # TensorRT 8.6 (JetPack 6.0) parses opset <= 17 and no custom domains; the selfie model's MediaPipe
    # custom op must have become a standard ConvTranspose.
    onnx = pytest.importorskip("onnx", reason="onnx (a dev dependency) is not installed")
    for name in ("face_detection_short_range.onnx", "selfie_segmentation.onnx"):
        model = onnx.load(str(MODELS / name))
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)], name
        assert model.ir_version <= 8, name
        assert {n.domain for n in model.graph.node} == {""}, name
        onnx.checker.check_model(model, full_check=True)
    selfie_ops = {n.op_type for n in onnx.load(str(MODELS / "selfie_segmentation.onnx")).graph.node}
    assert "ConvTranspose" in selfie_ops and "HardSwish" in selfie_ops


# ---------------------------------------------------------------------------------------------------
# Behaviour on real portraits (boxes measured on these exact files, asserted with margins)
# ---------------------------------------------------------------------------------------------------


def test_blazeface_finds_the_astronauts_face(blazeface: ort.InferenceSession) -> None:
    face = _best_face(blazeface, _photo("astronaut.png"))
    assert face["score"] > 0.85  # measured 0.92
    x0, y0, x1, y1 = face["box"]  # measured about (179, 82, 274, 176) on the 512x512 photo
    assert 155 < x0 < 200 and 255 < x1 < 300, face["box"]
    assert 55 < y0 < 110 and 150 < y1 < 200, face["box"]
    kp = face["keypoints"]
    # The subject's right eye is on the image's left; eyes above the nose, nose above the mouth.
    assert kp["right_eye"][0] < kp["nose_tip"][0] < kp["left_eye"][0]
    assert max(kp["right_eye"][1], kp["left_eye"][1]) < kp["nose_tip"][1] < kp["mouth_center"][1]
    for u, v in (kp[n] for n in ("right_eye", "left_eye", "nose_tip", "mouth_center")):
        assert x0 <= u <= x1 and y0 <= v <= y1


def test_blazeface_finds_grace_hoppers_face(blazeface: ort.InferenceSession) -> None:
    face = _best_face(blazeface, _photo("grace_hopper.jpg"))
    assert face["score"] > 0.85  # measured 0.95
    x0, y0, x1, y1 = face["box"]  # measured about (170, 147, 365, 342) on the 512x600 photo
    assert 145 < x0 < 195 and 340 < x1 < 390, face["box"]
    assert 120 < y0 < 175 and 315 < y1 < 370, face["box"]
    kp = face["keypoints"]
    assert kp["right_eye"][0] < kp["nose_tip"][0] < kp["left_eye"][0]


def test_blazeface_no_face_in_flat_grey(blazeface: ort.InferenceSession) -> None:
    face = _best_face(blazeface, Image.new("RGB", (256, 256), (128, 128, 128)))
    assert face["score"] < 0.5 and face["n_confident"] == 0


def test_selfie_mask_covers_the_astronaut(selfie: ort.InferenceSession) -> None:
    mask = _selfie_mask(selfie, _photo("astronaut.png"))
    assert mask.shape == (512, 512) and mask.min() >= 0.0 and mask.max() <= 1.0
    # Face and torso inside, the backdrop above the shoulders on both sides outside (measured 0.00);
    # the bottom corners are the suit and the helmet (person or held object), so they are not asserted.
    assert mask[70:180, 190:270].mean() > 0.9  # face (measured 0.96)
    assert mask[250:450, 100:300].mean() > 0.9  # torso (measured 1.00)
    assert mask[0:100, 0:100].mean() < 0.1
    assert mask[0:120, 360:512].mean() < 0.1


def test_selfie_mask_covers_grace_hopper(selfie: ort.InferenceSession) -> None:
    mask = _selfie_mask(selfie, _photo("grace_hopper.jpg"))
    assert mask.shape == (600, 512)
    assert mask[160:330, 190:340].mean() > 0.9  # face (measured 0.99)
    assert mask[450:600, 100:400].mean() > 0.9  # uniform (measured 1.00)
    assert mask[0:150, 0:80].mean() < 0.1  # flag (measured 0.00)
    assert mask[0:150, 432:512].mean() < 0.1  # sky (measured 0.00)


def test_modnet_matte_on_astronaut() -> None:
    sess = _session("modnet.onnx")
    im = _photo("astronaut.png")
    # MODNet: RGB, (x - 127.5) / 127.5, NCHW, H and W multiples of 32.
    x = (np.asarray(im, dtype=np.float32) - 127.5) / 127.5
    matte = sess.run(["output"], {"input": x.transpose(2, 0, 1)[None]})[0][0, 0]
    assert matte.shape == (512, 512) and matte.min() >= 0.0 and matte.max() <= 1.0
    assert matte[70:180, 190:270].mean() > 0.9
    assert matte[0:100, 0:100].mean() < 0.1


# ---------------------------------------------------------------------------------------------------
# Optional: parity with the original MediaPipe tflite files
# ---------------------------------------------------------------------------------------------------


def _litert() -> Any:
    module = pytest.importorskip(
        "ai_edge_litert.interpreter",
        reason="ai-edge-litert (tflite interpreter) is not installed; parity with the originals not checked",
    )
    return module.Interpreter


def _original(name: str) -> Path:
    path = ORIGINALS / name
    if not path.is_file():
        pytest.skip(
            f"original {name} absent: run `tools/fetch_models.py --with-originals` for the parity test"
        )
    return path


def _portrait_batches(size: int, lo: float, hi: float) -> list[FloatArray]:
    batches = []
    for name in ("astronaut.png", "grace_hopper.jpg"):
        if (FACES / name).is_file():
            arr = np.asarray(_photo(name).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
            batches.append((lo + arr / 255.0 * (hi - lo))[None])
    batches.append(np.random.default_rng(0).uniform(lo, hi, (1, size, size, 3)).astype(np.float32))
    return batches


def test_blazeface_matches_original_tflite(blazeface: ort.InferenceSession) -> None:
    interpreter_cls = _litert()
    interp = interpreter_cls(model_path=str(_original("face_detection_short_range.tflite")), num_threads=1)
    interp.allocate_tensors()
    out_index = {d["name"]: d["index"] for d in interp.get_output_details()}
    for x in _portrait_batches(128, -1.0, 1.0):
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        reg, cls = blazeface.run(["regressors", "classificators"], {"input": x})
        # Measured at conversion: <= 4e-4 on box regressors (pixels of a 128 input), <= 1.3e-3 on
        # logits of magnitude up to ~365; float summation order differs between the runtimes.
        np.testing.assert_allclose(reg, interp.get_tensor(out_index["regressors"]), rtol=1e-4, atol=2e-3)
        np.testing.assert_allclose(cls, interp.get_tensor(out_index["classificators"]), rtol=1e-4, atol=5e-3)


def _truncate_before_custom_op(src: Path) -> tuple[bytes, FloatArray, FloatArray]:
    """The selfie tflite cut right before Convolution2DTransposeBias, plus that op's OHWI weights/bias.

    No stock interpreter implements MediaPipe's custom op, so the reference output is the original
    graph up to the op (run by LiteRT) followed by a numpy implementation of the op.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(src.read_bytes(), 0))
    sg = model.subgraphs[0]
    idx = next(
        i
        for i, op in enumerate(sg.operators)
        if model.operatorCodes[op.opcodeIndex].customCode == b"Convolution2DTransposeBias"
    )
    op = sg.operators[idx]
    assert bytes(np.asarray(op.customOptions, dtype=np.uint8)) == np.array([1, 2, 2], "<i4").tobytes()

    def fp16_const(tensor: int) -> FloatArray:
        producer = next(p for p in sg.operators if tensor in list(p.outputs))  # a DEQUANTIZE of fp16 data
        t = sg.tensors[int(producer.inputs[0])]
        raw = np.asarray(model.buffers[t.buffer].data, dtype=np.uint8).tobytes()
        return np.frombuffer(raw, dtype=np.float16).reshape(list(t.shape)).astype(np.float32)

    weight, bias = fp16_const(int(op.inputs[1])), fp16_const(int(op.inputs[2]))
    sg.outputs = [int(op.inputs[0])]
    sg.operators = sg.operators[:idx]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), weight, bias


def test_selfie_matches_original_tflite(selfie: ort.InferenceSession) -> None:
    interpreter_cls = _litert()
    content, weight, bias = _truncate_before_custom_op(_original("selfie_segmentation.tflite"))
    interp = interpreter_cls(model_content=content, num_threads=1)
    interp.allocate_tensors()
    for x in _portrait_batches(256, 0.0, 1.0):
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        feats = interp.get_tensor(interp.get_output_details()[0]["index"])  # 1x128x128x16 NHWC
        # Convolution2DTransposeBias, 2x2 kernel, stride 2, SAME (= no padding here), OHWI weights:
        # out[2y+i, 2x+j, o] = sum_c in[y, x, c] * W[o, i, j, c] + b[o]; then the model's sigmoid.
        n, h, w, _ = feats.shape
        logits = np.einsum("nhwc,oijc->nhiwjo", feats, weight).reshape(n, 2 * h, 2 * w, -1) + bias
        ref = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        got = selfie.run(["activation_10"], {"input_1": x})[0]
        # Measured at conversion: max 3.8e-5, mean 1.3e-7.
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-4)
