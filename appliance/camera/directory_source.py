"""Image-directory camera: JPEG/PNG files served in name order, decoded by ``engine.imageio``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from appliance.camera.base import (
    CameraError,
    Clock,
    ImageDecodeError,
    ManagedFrameSource,
    RgbImage,
    Sleep,
)
from appliance.config import DirectoryCameraConfig
from engine.errors import ImageError, ImageTooLarge
from engine.imageio import _apply_orientation, decode

__all__ = ["IMAGE_SUFFIXES", "DirectoryFrameSource", "apply_exif_orientation", "decode_image_file"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


def apply_exif_orientation(image: RgbImage, orientation: int) -> RgbImage:
    """Return ``image`` (``HxWxC``) turned upright according to an EXIF Orientation value (1..8).

    Unknown values are treated as 1 (as cameras that write 0 mean "upright"). The result is
    C-contiguous; it is ``image`` itself when nothing needed turning. The one implementation (by hand,
    because ``ImageOps.exif_transpose`` crashed under fuzzing, DESIGN.md P1-5) is ``engine.imageio``'s.
    """
    return np.ascontiguousarray(_apply_orientation(image, orientation))


def decode_image_file(path: Path, *, max_pixels: int, max_bytes: int) -> RgbImage:
    """Decode a JPEG or PNG file into an upright ``uint8`` RGB ``HxWx3`` array the caller owns.

    Refuses files over ``max_bytes`` bytes before reading them and images over ``max_pixels`` pixels
    before decoding any pixel (decompression bombs); decoding, orientation and format limits are
    ``engine.imageio.decode``'s, so the camera accepts exactly what a photo upload would. Raises
    ``ImageDecodeError`` whose reason is short and names no path: ``"file too large"``,
    ``"too many pixels"``, an ``engine.errors`` code, or an exception class name.
    """
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size > max_bytes:
                raise ImageDecodeError("file too large")
            # One byte over the cap is enough to see that a file grew after the check above.
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageDecodeError(type(exc).__name__) from None
    if len(data) > max_bytes:
        raise ImageDecodeError("file too large")
    try:
        photo = decode(data, max_pixels=max_pixels, max_bytes=max_bytes)
    except ImageTooLarge:
        raise ImageDecodeError("too many pixels") from None  # the byte cap was checked above
    except ImageError as exc:
        raise ImageDecodeError(exc.code) from None
    except Exception as exc:
        # decode() documents ImageError only, but a file on disk can be anything: one Pillow fails on in
        # an unforeseen way must be skipped like any other broken file, not stop the camera. Keep the
        # class name only, as messages may quote file contents.
        raise ImageDecodeError(type(exc).__name__) from None
    # decode() may hand back a read-only view of Pillow's buffer; the receiver of a frame may write to it.
    return np.require(photo.rgb, requirements=("C_CONTIGUOUS", "WRITEABLE", "OWNDATA"))


class DirectoryFrameSource(ManagedFrameSource):
    """Serves the ``.jpg/.jpeg/.png`` files of a directory in name order, looping, paced to ``fps``.

    The directory is listed again at the start of every pass, so files may be added while it runs.
    Unreadable files are skipped and counted (``skipped_files``); a log line reports the count, never the
    path. A missing or empty directory, or a pass in which no file decodes, raises ``CameraError``.
    Frames keep each file's own size.
    """

    def __init__(
        self, cfg: DirectoryCameraConfig, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        super().__init__(fps=cfg.fps, clock=clock, sleep=sleep)
        self._directory = cfg.path
        self._frames_per_image = cfg.frames_per_image
        self._max_pixels = int(cfg.max_image_megapixels * 1_000_000)
        self._max_bytes = int(cfg.max_file_mib * 1024 * 1024)
        self._files: list[Path] = []
        self._position = 0
        self._held: RgbImage | None = None
        self._held_frames_left = 0
        self.skipped_files = 0

    def _acquire(self) -> None:
        self._files = self._list_files()
        self._position = 0
        self._held = None
        self._held_frames_left = 0

    def _release(self) -> None:
        self._files = []
        self._held = None

    def _list_files(self) -> list[Path]:
        try:
            files = sorted(
                entry
                for entry in self._directory.iterdir()
                if entry.suffix.lower() in IMAGE_SUFFIXES and entry.is_file()
            )
        except OSError as exc:
            raise CameraError(
                f"the camera.path image directory cannot be listed ({type(exc).__name__}); does it exist?"
            ) from None
        if not files:
            raise CameraError("the camera.path image directory holds no .jpg, .jpeg or .png file")
        return files

    def _grab(self) -> RgbImage:
        if self._held is not None and self._held_frames_left > 0:
            self._held_frames_left -= 1
            return self._held.copy()  # the receiver owns its array; keep ours pristine
        image = self._decode_next()
        if self._frames_per_image > 1:
            self._held = image
            self._held_frames_left = self._frames_per_image - 1
            return image.copy()
        return image

    def _decode_next(self) -> RgbImage:
        tried = 0
        while True:
            if self._position >= len(self._files):
                self._files = self._list_files()
                self._position = 0
            if tried >= len(self._files):
                raise CameraError(
                    f"none of the {len(self._files)} files in the camera.path image directory decodes"
                )
            path = self._files[self._position]
            self._position += 1
            tried += 1
            try:
                return decode_image_file(path, max_pixels=self._max_pixels, max_bytes=self._max_bytes)
            except ImageDecodeError as exc:
                self.skipped_files += 1
                logger.warning(
                    "image directory source skipped an unreadable file (%s); %d skipped so far",
                    exc.reason,
                    self.skipped_files,
                )
