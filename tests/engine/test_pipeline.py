"""The rendered headshot, measured: framing geometry, head size, backgrounds, edges, skin tone, retouch."""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from engine.compose import composite, parse_background
from engine.detect import Face
from engine.errors import NoFace
from engine.framing import PRESETS, frame_face, warp
from engine.imageio import encode_jpeg
from engine.pipeline import HeadshotEngine
from engine.retouch import map_face, skin_patch_mask, smooth_skin
from tests.conftest import PORTRAITS

Rgb = npt.NDArray[np.uint8]


def jpeg_rgb(data: bytes) -> Rgb:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def rotate(rgb: Rgb, degrees: float) -> Rgb:
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT), dtype=np.uint8)


def redetect(engine: HeadshotEngine, rgb: Rgb) -> Face:
    face, _ = engine.find_face(rgb)
    return face


def lab(rgb: Rgb) -> npt.NDArray[np.float32]:
    return np.asarray(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab), dtype=np.float32)


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_eye_line_and_centring_measured_on_the_output(
    engine: HeadshotEngine, portraits: dict[str, Rgb], name: str, preset: str
) -> None:
    shot = engine.render_image(portraits[name], preset=preset, background="white")
    out = jpeg_rgb(shot.jpeg)
    p = PRESETS[preset]
    assert out.shape == (p.height, p.width, 3)
    face = redetect(engine, out)
    (rx, ry), (lx, ly) = face.keypoints["right_eye"], face.keypoints["left_eye"]
    eye_line = (ry + ly) / 2 / p.height
    assert 0.38 <= eye_line <= 0.42, f"eye line at {eye_line:.3f} of the height"
    assert abs((rx + lx) / 2 / p.width - 0.5) < 0.02, "face not centred"


@pytest.mark.parametrize("degrees", [-14.0, 9.0])
def test_roll_is_corrected_from_the_eyes(
    engine: HeadshotEngine, portraits: dict[str, Rgb], degrees: float
) -> None:
    tilted = rotate(portraits["grace_hopper.jpg"], degrees)
    face = redetect(engine, tilted)
    (rx, ry), (lx, ly) = face.keypoints["right_eye"], face.keypoints["left_eye"]
    assert abs(np.degrees(np.arctan2(ly - ry, lx - rx))) > abs(degrees) * 0.6  # the input really is tilted
    out = jpeg_rgb(engine.render_image(tilted, background="white").jpeg)
    f = redetect(engine, out)
    (rx, ry), (lx, ly) = f.keypoints["right_eye"], f.keypoints["left_eye"]
    assert abs(np.degrees(np.arctan2(ly - ry, lx - rx))) < 3.0


def test_head_size_is_consistent_across_photos_and_distances(
    engine: HeadshotEngine, portraits: dict[str, Rgb]
) -> None:
    sizes = []
    for rgb in portraits.values():
        for scale in (1.0, 0.6):  # the same person further from the camera
            small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            out = jpeg_rgb(engine.render_image(small, background="white").jpeg)
            sizes.append(redetect(engine, out).height / out.shape[0])
    assert max(sizes) / min(sizes) < 1.15, sizes


def test_crop_leaving_the_photo_is_padded_with_background(
    engine: HeadshotEngine, portraits: dict[str, Rgb]
) -> None:
    # Put the face against the left edge: the square crop must extend past it.
    rgb = portraits["astronaut.png"][:, 150:]
    shot = engine.render_image(rgb, background="#1F4E79")
    assert "face_partly_out_of_frame" in shot.warnings
    out = jpeg_rgb(shot.jpeg).astype(np.int16)
    left_strip = out[: out.shape[0] // 3, :40].reshape(-1, 3)
    assert np.abs(left_strip.mean(0) - (0x1F, 0x4E, 0x79)).max() < 6


@pytest.mark.parametrize(
    ("background", "expected"),
    [("white", (255, 255, 255)), ("#1F4E79", (0x1F, 0x4E, 0x79)), ("#E4002B", (0xE4, 0x00, 0x2B))],
)
def test_flat_backgrounds_fill_the_corners(
    engine: HeadshotEngine, portraits: dict[str, Rgb], background: str, expected: tuple[int, int, int]
) -> None:
    out = jpeg_rgb(engine.render_image(portraits["grace_hopper.jpg"], background=background).jpeg).astype(
        np.int16
    )
    for corner in (out[:24, :24], out[:24, -24:]):
        assert np.abs(corner.reshape(-1, 3).mean(0) - expected).max() < 4


def test_studio_grey_is_a_lit_gradient_with_vignette(
    engine: HeadshotEngine, portraits: dict[str, Rgb]
) -> None:
    out = jpeg_rgb(engine.render_image(portraits["astronaut.png"], background="studio-grey").jpeg).astype(
        np.float32
    )
    corner = out[:40, :40].mean()
    upper_side = out[200:260, 60:100].mean()  # beside the head, in the pool of light
    assert 60 < corner < upper_side < 200
    rgb_corner = out[:40, :40].reshape(-1, 3).mean(0)
    assert np.ptp(rgb_corner) < 12, "studio grey must stay neutral"


def test_blur_background_comes_from_the_original_scene(
    engine: HeadshotEngine, portraits: dict[str, Rgb]
) -> None:
    out = jpeg_rgb(engine.render_image(portraits["astronaut.png"], background="blur").jpeg).astype(np.float32)
    top = out[:60].reshape(-1, 3)
    assert top.std(0).mean() > 8, "a blurred scene, not a flat fill"
    lap = cv2.Laplacian(cv2.cvtColor(out[:60].astype(np.uint8), cv2.COLOR_RGB2GRAY), cv2.CV_32F)
    assert np.abs(lap).mean() < 3, "background must be blurred"


def test_unknown_background_names_the_choices() -> None:
    with pytest.raises(ValueError, match="studio-grey, white, blur"):
        parse_background("chartreuse")


def test_no_face_is_reported(engine: HeadshotEngine) -> None:
    ys, xs = np.mgrid[0:480, 0:640]
    scenery = np.stack([xs % 256, ys % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)
    with pytest.raises(NoFace) as err:
        engine.render_image(scenery)
    assert err.value.code == "no_face"


def test_several_faces_pick_the_main_guest(engine: HeadshotEngine, portraits: dict[str, Rgb]) -> None:
    big = portraits["grace_hopper.jpg"]
    small = cv2.resize(big, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 900, 3), 90, dtype=np.uint8)
    canvas[:, :512] = big
    canvas[100:400, 600:856] = small
    face, notes = engine.find_face(canvas)
    assert "several_faces" in notes
    assert (face.bbox[0] + face.bbox[2]) / 2 < 512, "the large face in front is the guest"


def green_screen_photo(engine: HeadshotEngine, rgb: Rgb) -> Rgb:
    """The portrait re-composited on saturated green, using the engine's own matte of it."""
    face, _ = engine.find_face(rgb)
    cut = engine.cutout(rgb, face, "square")
    green = np.zeros_like(cut.foreground)
    green[..., 1] = 255
    return composite(cut.foreground, green, cut.alpha)


def test_hair_edges_carry_no_old_background_colour(engine: HeadshotEngine, portraits: dict[str, Rgb]) -> None:
    photo = green_screen_photo(engine, portraits["astronaut.png"])
    face, _ = engine.find_face(photo)
    cut = engine.cutout(photo, face, "square")
    band = (cut.alpha > 0.1) & (cut.alpha < 0.9)
    assert band.sum() > 2000
    white = np.full_like(cut.foreground, 255)
    ours = composite(cut.foreground, white, cut.alpha).astype(np.float32)
    naive = composite(warp(photo, cut.framing), white, cut.alpha).astype(np.float32)

    def green_excess(img: npt.NDArray[np.float32]) -> float:
        px = img[band]
        return float((px[:, 1] - (px[:, 0] + px[:, 2]) / 2).mean())

    assert green_excess(naive) > 25, "the test photo must actually have a green fringe to remove"
    assert green_excess(ours) < 0.3 * green_excess(naive)
    assert green_excess(ours) < 12


def skin_lab(engine: HeadshotEngine, rgb: Rgb) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Mean Lab of the cheek/nose patch: in the framed original, and in the finished headshot."""
    face, _ = engine.find_face(rgb)
    cut = engine.cutout(rgb, face, "square")
    before = warp(rgb, cut.framing)
    after = jpeg_rgb(encode_jpeg(engine.compose(cut, "studio-grey")))
    mask = skin_patch_mask(map_face(face, cut.framing), before.shape[:2], cut.alpha)
    assert mask.sum() > 1000
    return lab(before)[mask].mean(0), lab(after)[mask].mean(0)


def _variants(rgb: Rgb) -> dict[str, Rgb]:
    f = rgb.astype(np.float32)
    return {
        "as-is": rgb,
        "darker-skin": np.clip(f * 0.45, 0, 255).astype(np.uint8),
        "very-dark": np.clip(f * 0.25, 0, 255).astype(np.uint8),
        "warm-cast": np.clip(f * (1.12, 1.0, 0.82), 0, 255).astype(np.uint8),
        "cool-cast": np.clip(f * (0.85, 1.0, 1.15), 0, 255).astype(np.uint8),
        "bright": np.clip(f * 1.25 + 10, 0, 255).astype(np.uint8),
    }


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("variant", ["as-is", "darker-skin", "very-dark", "bright"])
def test_skin_lightness_and_colour_are_preserved(
    engine: HeadshotEngine, portraits: dict[str, Rgb], name: str, variant: str
) -> None:
    before, after = skin_lab(engine, _variants(portraits[name])[variant])
    d_lightness = after[0] - before[0]
    d_chroma = float(np.hypot(after[1] - before[1], after[2] - before[2]))
    assert abs(d_lightness) <= 1.0, f"skin lightness moved by {d_lightness:+.2f} L*"
    assert d_chroma <= 2.5, f"skin colour moved by ΔE(ab) {d_chroma:.2f}"


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("variant", ["warm-cast", "cool-cast"])
def test_colour_cast_is_reduced_without_lightening_skin(
    engine: HeadshotEngine, portraits: dict[str, Rgb], name: str, variant: str
) -> None:
    true_skin, _ = skin_lab(engine, portraits[name])
    before, after = skin_lab(engine, _variants(portraits[name])[variant])
    assert abs(after[0] - before[0]) <= 1.0, f"skin lightness moved by {after[0] - before[0]:+.2f} L*"
    cast_before = float(np.hypot(*(before[1:] - true_skin[1:])))
    cast_after = float(np.hypot(*(after[1:] - true_skin[1:])))
    assert cast_after < cast_before, "white balance must move skin towards its true colour, not away"
    assert float(np.hypot(*(after[1:] - before[1:]))) <= 2.5, "white balance correction is bounded"


def test_skin_smoothing_touches_skin_only(engine: HeadshotEngine, portraits: dict[str, Rgb]) -> None:
    rgb = portraits["grace_hopper.jpg"]
    face, _ = engine.find_face(rgb)
    framing = frame_face(face, (rgb.shape[1], rgb.shape[0]), PRESETS["square"])
    crop = warp(rgb, framing)
    geom = map_face(face, framing)
    alpha = np.ones(crop.shape[:2], dtype=np.float32)
    smoothed = smooth_skin(crop, geom, alpha)
    changed = np.abs(smoothed.astype(np.int16) - crop).max(-1) > 2
    assert changed.sum() > 500, "smoothing must do something on skin"
    d = geom.eye_distance
    for x, y in (geom.right_eye, geom.left_eye, geom.mouth):
        yy, xx = np.ogrid[: crop.shape[0], : crop.shape[1]]
        disc = (xx - x) ** 2 + (yy - y) ** 2 < (0.2 * d) ** 2
        assert changed[disc].mean() < 0.05, "eyes and lips keep their detail"
    x0, y0, x1, y1 = geom.bbox
    outside = np.ones_like(changed)
    outside[
        max(0, int(y0 - 0.3 * (y1 - y0))) : int(y1 + 0.3 * (y1 - y0)),
        max(0, int(x0 - 0.3 * (x1 - x0))) : int(x1 + 0.3 * (x1 - x0)),
    ] = False
    assert not changed[outside].any(), "nothing outside the face changes"


def test_render_reports_face_timings_and_backend(engine: HeadshotEngine, portraits: dict[str, Rgb]) -> None:
    shot = engine.render(encode_jpeg(portraits["grace_hopper.jpg"]))
    assert shot.backend == "onnxruntime"
    assert set(shot.timings_ms) >= {"decode", "detect", "matte", "compose", "encode", "total", "inference"}
    x0, y0, x1, y1 = shot.face.bbox
    assert 150 < x0 < x1 < 380 and 120 < y0 < y1 < 360
