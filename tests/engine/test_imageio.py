"""Photo intake (formats, caps, truncation, orientation) and metadata-free output."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageCms

from engine.errors import ImageTooLarge, UnreadableImage, UnsupportedFormat
from engine.imageio import decode, encode_jpeg, encode_png
from engine.jpeg import (
    ALLOWED_MARKERS,
    APP0,
    EOI,
    SOI,
    JpegStructureError,
    is_bare_jfif,
    segments,
    strip_metadata,
)
from tests.conftest import FACES, load_rgb

CAPS = {"max_pixels": 50_000_000, "max_bytes": 40 * 2**20}


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width``×``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def encoded(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(load_rgb(FACES / "hopper.jpg")).save(buf, fmt, **kw)
    return buf.getvalue()


def test_decodes_jpeg_and_png_to_upright_rgb() -> None:
    jpg = decode((FACES / "grace_hopper.jpg").read_bytes(), **CAPS)
    png = decode((FACES / "astronaut.png").read_bytes(), **CAPS)
    assert (jpg.format, jpg.rgb.shape, jpg.rgb.dtype) == ("JPEG", (600, 512, 3), np.uint8)
    assert (png.format, png.rgb.shape) == ("PNG", (512, 512, 3))


def pillow_pixels(data: bytes) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_a_plain_jpeg_is_decoded_by_opencv_to_pillows_pixels() -> None:
    """A camera JPEG (no colour profile, ends with EOI) takes OpenCV's decoder, which writes the same
    libjpeg-turbo pixels as Pillow straight into one array; orientation is still applied by hand."""
    from unittest import mock

    import cv2

    data = (FACES / "grace_hopper.jpg").read_bytes()
    with mock.patch("engine.imageio.cv2.imdecode", side_effect=cv2.imdecode) as spy:
        photo = decode(data, **CAPS)
    assert spy.call_count == 1
    assert np.array_equal(photo.rgb, pillow_pixels(data))
    rotated = (FACES / "hopper_orientation_6.jpg").read_bytes()
    assert np.array_equal(decode(rotated, **CAPS).rgb, np.rot90(pillow_pixels(rotated), k=-1))


@pytest.mark.parametrize("variant", ["icc_profile", "bytes_after_eoi", "greyscale"])
def test_anything_but_a_plain_jpeg_goes_through_pillow(variant: str) -> None:
    """A colour profile (converted to sRGB by Pillow), trailing bytes, other modes: Pillow's path, as
    before (a file cut short without its EOI marker too: see the truncation cases above)."""
    from unittest import mock

    if variant == "icc_profile":
        data = encoded("JPEG", icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    elif variant == "bytes_after_eoi":
        data = encoded("JPEG") + b"\x00\x00trailer"
    else:
        buf = io.BytesIO()
        Image.fromarray(load_rgb(FACES / "hopper.jpg")[..., 0]).save(buf, "JPEG")
        data = buf.getvalue()
    with mock.patch("engine.imageio.cv2.imdecode") as spy:
        photo = decode(data, **CAPS)
    assert spy.call_count == 0
    assert photo.rgb.shape[2] == 3


def test_a_cut_scan_closed_with_eoi_decodes_as_pillow_decodes_it() -> None:
    """Scan data cut short but closed with an EOI marker: Pillow and OpenCV both fill the rest with grey
    (libjpeg's own behaviour), so the fast path changes nothing here either."""
    data = (FACES / "grace_hopper.jpg").read_bytes()[:20000] + b"\xff\xd9"
    assert np.array_equal(decode(data, **CAPS).rgb, pillow_pixels(data))


def test_jpeg_encoding_writes_pillows_bytes() -> None:
    """OpenCV's encoder (the same libjpeg-turbo, baseline, 4:2:0, standard tables) writes byte for byte
    what Pillow writes, without Pillow's copy of the pixels."""
    rgb = load_rgb(FACES / "grace_hopper.jpg")
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=92, optimize=False, subsampling=2)
    assert encode_jpeg(rgb, quality_percent=92) == strip_metadata(buf.getvalue())


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_is_applied_by_hand(orientation: int) -> None:
    upright = load_rgb(FACES / "hopper.jpg").astype(np.float32)
    photo = decode((FACES / f"hopper_orientation_{orientation}.jpg").read_bytes(), **CAPS)
    assert photo.orientation == orientation
    # Same picture up to JPEG re-compression noise; a wrong rotation differs by ~80 grey levels.
    assert np.abs(photo.rgb.astype(np.float32) - upright).mean() < 8


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty"),
        (b"hello, this is not a photo at all", "not a JPEG or PNG"),
        ((FACES / "grace_hopper.jpg").read_bytes()[:20000], "truncated"),
        ((FACES / "astronaut.png").read_bytes()[:100000], "truncated"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "damaged"),
    ],
)
def test_unreadable_photos_are_refused_clearly(data: bytes, needle: str) -> None:
    with pytest.raises(UnreadableImage, match=needle) as err:
        decode(data, **CAPS)
    assert err.value.code == "unreadable"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP", "TIFF"])
def test_other_formats_are_unsupported(fmt: str) -> None:
    with pytest.raises(UnsupportedFormat, match="use JPEG or PNG") as err:
        decode(encoded(fmt), **CAPS)
    assert err.value.code == "unsupported_format"


def test_decompression_bomb_is_refused_from_the_header() -> None:
    with pytest.raises(ImageTooLarge, match="MP") as err:
        decode(bomb_png(100_000, 100_000), **CAPS)
    assert err.value.code == "too_large"


def test_pixel_and_byte_caps() -> None:
    data = (FACES / "astronaut.png").read_bytes()
    with pytest.raises(ImageTooLarge):
        decode(data, max_pixels=512 * 511, max_bytes=2**30)
    with pytest.raises(ImageTooLarge, match="MiB"):
        decode(data, max_pixels=10**8, max_bytes=len(data) - 1)
    assert decode(data, max_pixels=512 * 512, max_bytes=len(data)).rgb.shape == (512, 512, 3)


def test_transparent_png_becomes_white_not_black() -> None:
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    assert decode(buf.getvalue(), **CAPS).rgb.min() == 255


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    grey = np.full((32, 32), 32768, dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    assert 120 < decode(buf.getvalue(), **CAPS).rgb.mean() < 135


def test_malformed_exif_orientation_is_ignored_with_a_warning() -> None:
    exif = Image.Exif()
    exif[0x0112] = 42  # not an orientation
    photo = decode(encoded("JPEG", exif=exif.tobytes()), **CAPS)
    assert photo.orientation == 1
    assert "orientation_ignored" in photo.warnings


def _walk(data: bytes) -> list[int]:
    return [s.marker for s in segments(data)]


def test_encoded_jpeg_has_only_allowed_segments() -> None:
    data = encode_jpeg(load_rgb(FACES / "grace_hopper.jpg"))
    segs = segments(data)
    assert segs[0].marker == SOI and segs[-1].marker == EOI and segs[-1].end == len(data)
    assert {s.marker for s in segs[1:-1]} <= ALLOWED_MARKERS
    app0 = [s for s in segs if s.marker == APP0]
    assert len(app0) <= 1 and all(is_bare_jfif(data[s.start + 4 : s.end]) for s in app0)
    for needle in (b"Exif", b"ICC_PROFILE", b"http://ns.adobe.com", b"Photoshop"):
        assert needle not in data


def test_strip_metadata_removes_exif_icc_comment_and_thumbnail() -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x8825] = {1: "N"}  # GPS IFD
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    dirty = encoded("JPEG", exif=exif.tobytes(), icc_profile=icc, comment=b"planted-comment")
    assert 0xE1 in _walk(dirty) and 0xE2 in _walk(dirty) and 0xFE in _walk(dirty)
    clean = strip_metadata(dirty)
    assert set(_walk(clean)[1:-1]) <= ALLOWED_MARKERS
    for needle in (b"CameraMaker", b"planted-comment", b"Exif", b"ICC_PROFILE"):
        assert needle not in clean
    assert Image.open(io.BytesIO(clean)).size == (128, 128)


def test_bytes_after_eoi_are_a_structure_error() -> None:
    data = encode_jpeg(load_rgb(FACES / "hopper.jpg"))
    with pytest.raises(JpegStructureError, match="after EOI"):
        segments(data + b"smuggled")
    with pytest.raises(JpegStructureError):
        segments(data[:-2])


def test_png_output_has_only_critical_chunks() -> None:
    data = encode_png(load_rgb(FACES / "hopper.jpg"))
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    assert pos == len(data)
    assert set(kinds) <= {b"IHDR", b"PLTE", b"IDAT", b"IEND"} and kinds[-1] == b"IEND"
