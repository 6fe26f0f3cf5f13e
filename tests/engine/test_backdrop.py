"""The event's backdrop image as a background (engine.compose, issue 14.3): scaled and cropped to cover
the headshot, its pixels where the guest is not."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from engine.compose import BACKDROP, Background, background_image, cover, parse_background


def _coordinates(h: int, w: int) -> npt.NDArray[np.uint8]:
    """Red grows left to right, green top to bottom: each pixel says where it came from."""
    ys, xs = np.mgrid[0:h, 0:w]
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[..., 0] = (xs * 255 // max(1, w - 1)).astype(np.uint8)
    rgb[..., 1] = (ys * 255 // max(1, h - 1)).astype(np.uint8)
    rgb[..., 2] = 90
    return rgb


def test_backdrop_needs_its_image() -> None:
    with pytest.raises(ValueError, match="backdrop"):
        parse_background(BACKDROP)
    with pytest.raises(ValueError, match="H×W×3"):
        parse_background(BACKDROP, backdrop=np.zeros((8, 8), dtype=np.uint8))
    image = _coordinates(40, 60)
    bg = parse_background(BACKDROP, backdrop=image)
    assert bg.kind == "image" and bg.name == "backdrop" and bg.image is image
    assert bg == Background("image")  # the pixels take no part in equality or hashing
    hash(bg)
    assert parse_background("white", backdrop=image).kind == "white"  # other choices ignore it


@pytest.mark.parametrize(
    ("src", "dst"), [((600, 800), (1024, 1024)), ((3000, 1000), (1080, 1350)), ((200, 400), (600, 800))]
)
def test_cover_fills_the_frame_without_distortion(src: tuple[int, int], dst: tuple[int, int]) -> None:
    image = _coordinates(*src)
    w, h = dst
    out = cover(image, w, h)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    # Cropped centrally along one axis, whole along the other: the centre stays the centre.
    centre = out[h // 2, w // 2].astype(int)
    assert abs(centre[0] - 127) <= 3 and abs(centre[1] - 127) <= 3
    red_span = int(out[h // 2, -1, 0]) - int(out[h // 2, 0, 0])
    green_span = int(out[-1, w // 2, 1]) - int(out[0, w // 2, 1])
    assert max(red_span, green_span) >= 250  # one axis keeps the whole image edge to edge
    src_aspect, dst_aspect = src[1] / src[0], w / h
    if src_aspect > dst_aspect:  # wider: the sides are cut
        assert green_span >= 250 and red_span < 250
    elif src_aspect < dst_aspect:
        assert red_span >= 250 and green_span < 250


def test_background_image_of_the_backdrop_is_the_covered_image() -> None:
    image = _coordinates(300, 300)
    bg = parse_background(BACKDROP, backdrop=image)
    out = background_image(bg, 200, 100, plate=None)
    np.testing.assert_array_equal(out, cover(image, 200, 100))
    with pytest.raises(ValueError, match="no image"):
        background_image(Background("image"), 10, 10, plate=None)


def test_a_headshot_on_the_backdrop_shows_it_around_the_guest(
    engine: Any, portraits: dict[str, npt.NDArray[np.uint8]]
) -> None:
    rgb = portraits["grace_hopper.jpg"]
    face, _ = engine.find_face(rgb)
    cut = engine.cutout(rgb, face, "square")
    image = _coordinates(700, 900)
    try:
        pixels = engine.compose(cut, parse_background(BACKDROP, backdrop=image))
    finally:
        cut_alpha = cut.alpha.copy()
        cut.release()
    expected = cover(image, 1024, 1024)
    assert pixels.shape == expected.shape
    # The border band (top rows and the upper sides), where the matte is empty, is the backdrop exactly.
    band = np.zeros(cut_alpha.shape, dtype=bool)
    band[:48, :] = True
    band[:400, :48] = True
    band[:400, -48:] = True
    empty = band & (cut_alpha == 0)
    assert empty.sum() > 0.8 * band.sum()
    np.testing.assert_array_equal(pixels[empty], expected[empty])
    # ...and the guest is not: where the matte is solid, the pixels are not the backdrop's.
    solid = cut_alpha > 0.99
    assert solid.sum() > 1000
    assert np.abs(pixels[solid].astype(int) - expected[solid].astype(int)).mean() > 20
