"""Photo intake and headshot output: JPEG/PNG only, size caps, orientation by hand, no metadata out."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms, UnidentifiedImageError

from engine.errors import ImageTooLarge, UnreadableImage, UnsupportedFormat
from engine.jpeg import strip_metadata

RgbImage = npt.NDArray[np.uint8]
"""H×W×3 uint8, RGB order, C-contiguous."""

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Formats we recognise only to say "not supported" instead of "unreadable".
_OTHER_FORMATS = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x01\x00": "ICO",
    b"8BPS": "PSD",
}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class DecodedPhoto:
    """An upright RGB photo. ``rgb`` is owned by the receiver. ``orientation`` is the EXIF value that
    was applied (1 = none). ``warnings`` are stable codes, e.g. ``"orientation_ignored"``."""

    rgb: RgbImage
    format: str
    orientation: int = 1
    warnings: tuple[str, ...] = field(default_factory=tuple)


def sniff_format(data: bytes) -> str:
    """Return ``"JPEG"`` or ``"PNG"``; raise ``UnsupportedFormat`` for other image formats and
    ``UnreadableImage`` for bytes that are not an image at all."""
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    for magic, name in _OTHER_FORMATS.items():
        if data.startswith(magic):
            raise UnsupportedFormat(f"{name} photos are not supported; use JPEG or PNG")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise UnsupportedFormat("WebP photos are not supported; use JPEG or PNG")
    if data[4:8] == b"ftyp":
        raise UnsupportedFormat("HEIC/AVIF photos are not supported; use JPEG or PNG")
    if not data:
        raise UnreadableImage("the file is empty")
    raise UnreadableImage("the file is not a JPEG or PNG image")


def _apply_orientation(rgb: RgbImage, orientation: int) -> RgbImage:
    """Rotate/flip per EXIF orientation (values 1–8, TIFF 6.0 / Exif 2.32 §4.6.4). Done by hand because
    ``ImageOps.exif_transpose`` crashed under fuzzing (DESIGN.md P1-5) and also copies metadata around."""
    if orientation == 2:
        out = rgb[:, ::-1]
    elif orientation == 3:
        out = rgb[::-1, ::-1]
    elif orientation == 4:
        out = rgb[::-1, :]
    elif orientation == 5:
        out = rgb.transpose(1, 0, 2)
    elif orientation == 6:
        out = np.rot90(rgb, k=-1)
    elif orientation == 7:
        out = rgb.transpose(1, 0, 2)[::-1, ::-1]  # transverse: transpose across the anti-diagonal
    elif orientation == 8:
        out = np.rot90(rgb, k=1)
    else:
        return rgb
    return np.ascontiguousarray(out)


def _read_orientation(img: Image.Image) -> tuple[int, tuple[str, ...]]:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a malformed EXIF block must not cost the guest their photo
        return 1, ("orientation_ignored",)
    if isinstance(value, int) and 1 <= value <= 8:
        return value, ()
    return 1, ("orientation_ignored",)


_SRGB = ImageCms.createProfile("sRGB")


def _to_srgb(img: Image.Image) -> tuple[Image.Image, tuple[str, ...]]:
    """Convert pixels tagged with an ICC profile to sRGB so colours survive dropping the profile."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode != "RGB":
        return img, ()
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(img, src, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img, ("colour_profile_ignored",)
    return (converted if converted is not None else img), ()


def decode(data: bytes, *, max_pixels: int, max_bytes: int) -> DecodedPhoto:
    """Decode an encoded photo into an upright sRGB ``DecodedPhoto``.

    Raises ``ImageTooLarge`` (bytes or pixel count over the caps — checked from the header before any
    pixel is decoded), ``UnsupportedFormat``, or ``UnreadableImage`` (corrupt or truncated data).
    """
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"the file is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB"
        )
    fmt = sniff_format(data)
    fast: RgbImage | None = None
    try:
        with warnings.catch_warnings():
            # Our own cap below is stricter than Pillow's bomb warning; don't let the warning escape.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"the photo is {width}×{height} ({width * height / 1e6:.0f} MP); "
                    f"the limit is {max_pixels / 1e6:.0f} MP"
                )
            if width < 16 or height < 16:
                raise UnreadableImage(f"the photo is only {width}×{height} pixels")
            fast = _decode_plain_jpeg(data, img)
            if fast is None:
                img.load()  # truncated data raises OSError here (LOAD_TRUNCATED_IMAGES stays False)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the photo has too many pixels; the limit is {max_pixels / 1e6:.0f} MP") from exc
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, EOFError) as exc:
        raise UnreadableImage(f"the {fmt} data is damaged or truncated ({exc.__class__.__name__})") from exc
    orientation, notes = _read_orientation(img)
    icc_notes: tuple[str, ...]
    if fast is not None:
        rgb, icc_notes = fast, ()
    else:
        rgb_img, icc_notes = _convert_mode(img)
        rgb = np.asarray(rgb_img, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UnreadableImage("the photo has an unexpected pixel layout")
    return DecodedPhoto(
        rgb=_apply_orientation(np.ascontiguousarray(rgb), orientation),
        format=fmt,
        orientation=orientation,
        warnings=notes + icc_notes,
    )


_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10; JetPack's 4.x builds may lack it


def _decode_plain_jpeg(data: bytes, img: Image.Image) -> RgbImage | None:
    """The pixels of a plain colour JPEG (what every camera and phone sends: YCbCr, no ICC profile, ending
    in its EOI marker) decoded by OpenCV, or None to let Pillow decode it. Both use libjpeg-turbo and give
    the same pixels, but OpenCV writes them straight into one RGB array: about a third of Pillow's time
    for a 1080p frame, which repacks its 4-byte pixels into a new array (``np.asarray``). ``img`` is the
    opened, not yet loaded, Pillow image whose header (size caps, mode, profile) has been checked.

    Anything else goes to Pillow, which refuses truncated data (OpenCV would pad it with grey): a file
    that does not end with EOI, or whose decoded size differs from the header's."""
    if _IMREAD_RGB is None or img.format != "JPEG" or img.mode != "RGB" or img.info.get("icc_profile"):
        return None
    if not data.endswith(b"\xff\xd9"):
        return None
    # IGNORE_ORIENTATION: EXIF orientation is applied by hand, once (``_apply_orientation``).
    flags = _IMREAD_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    rgb = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if rgb is None or rgb.shape != (img.height, img.width, 3) or rgb.dtype != np.uint8:
        return None
    return np.asarray(rgb, dtype=np.uint8)


def _convert_mode(img: Image.Image) -> tuple[Image.Image, tuple[str, ...]]:
    """Any supported mode -> 8-bit RGB. Transparent PNG areas become white (what a print shop does)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNG: scale to 8 bits rather than clipping at 255.
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr * (255.0 / peak), 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif img.mode == "CMYK":
        return _to_srgb(img.convert("RGB"))
    elif img.mode != "RGB":
        img = img.convert("RGB")
    else:
        return _to_srgb(img)
    return img, ()


def encode_jpeg(rgb: RgbImage, *, quality_percent: int = 92) -> bytes:
    """Encode H×W×3 uint8 sRGB as a baseline JPEG with no metadata at all (a bare JFIF APP0 only:
    no EXIF, XMP, ICC, IPTC, comments or thumbnails, nothing after EOI)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected H×W×3 uint8, got {rgb.shape} {rgb.dtype}")
    if _JPEG_SAMPLING_420 is not None:
        # OpenCV and Pillow run the same libjpeg-turbo with the same settings (baseline, standard Huffman
        # tables, 4:2:0) and write the same bytes; OpenCV skips Pillow's copy into its own image, about
        # a fifth of the encode. It writes no metadata; strip_metadata below checks that anyway.
        params = [
            cv2.IMWRITE_JPEG_QUALITY,
            quality_percent,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            _JPEG_SAMPLING_420,
        ]
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        if ok:
            return strip_metadata(encoded.tobytes())
    buf = io.BytesIO()
    # No exif=/icc_profile=/comment= arguments: Pillow then writes none. 4:2:0 keeps files phone-sized.
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=quality_percent, optimize=False, subsampling=2)
    return strip_metadata(buf.getvalue())


_JPEG_SAMPLING_420 = getattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR_420", None)


def encode_png(rgb: RgbImage) -> bytes:
    """Encode as PNG with only IHDR/IDAT/IEND (Pillow adds no text chunks when given no pnginfo)."""
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG", compress_level=1)
    return buf.getvalue()
