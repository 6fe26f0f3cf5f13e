"""JPEG structure: walk the marker segments, and keep only the ones a metadata-free headshot needs."""

from __future__ import annotations

from dataclasses import dataclass

SOI = 0xD8
EOI = 0xD9
SOS = 0xDA
APP0 = 0xE0
# Markers without a length field (ITU T.81 B.1.1.3): SOI, EOI, TEM and the restart markers.
_STANDALONE = {SOI, EOI, 0x01, *range(0xD0, 0xD8)}
# What a metadata-free baseline/progressive JPEG needs (DESIGN.md P0-7): frame and scan headers, tables,
# restart interval, and a bare JFIF APP0. Everything else (APP1 EXIF/XMP, APP2 ICC, APP13 IPTC, COM ...) goes.
ALLOWED_MARKERS = {
    APP0,
    0xDB,  # DQT
    0xC4,  # DHT
    0xDD,  # DRI
    0xC0,  # SOF0 baseline
    0xC1,  # SOF1 extended sequential
    0xC2,  # SOF2 progressive
    SOS,
}


class JpegStructureError(ValueError):
    """The bytes are not a well-formed JPEG stream."""


@dataclass(frozen=True)
class Segment:
    """One marker segment. ``start`` is the offset of the 0xFF byte; ``end`` is one past its payload
    (for SOS: one past the entropy-coded data that follows it)."""

    marker: int
    start: int
    end: int


def segments(data: bytes) -> list[Segment]:
    """Walk a JPEG from SOI to EOI. Raises ``JpegStructureError`` on anything malformed, including
    bytes after EOI (which can smuggle data past naive metadata strippers)."""
    if data[:2] != b"\xff\xd8":
        raise JpegStructureError("missing SOI marker")
    out = [Segment(SOI, 0, 2)]
    pos = 2
    n = len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise JpegStructureError(f"expected a marker at offset {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker are legal
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        start = pos - 1
        pos += 1
        if marker == EOI:
            out.append(Segment(EOI, start, pos))
            if pos != n:
                raise JpegStructureError(f"{n - pos} bytes after EOI")
            return out
        if marker in _STANDALONE:
            out.append(Segment(marker, start, pos))
            continue
        if pos + 2 > n:
            raise JpegStructureError("truncated segment length")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > n:
            raise JpegStructureError(f"bad segment length {length} for marker 0x{marker:02X}")
        pos += length
        if marker == SOS:
            # Entropy-coded data runs until a marker that is not a stuffed 0xFF00 or a restart marker.
            # bytes.find jumps between 0xFF bytes in C, where a byte-by-byte Python loop was the slowest part
            # of encoding (BENCHMARKS.md: encode 14 → 4 ms).
            while True:
                ff = data.find(b"\xff", pos)
                if ff < 0 or ff + 1 >= n:
                    pos = n
                    break
                nxt = data[ff + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                    pos = ff + 2
                    continue
                pos = ff
                break
        out.append(Segment(marker, start, pos))
    raise JpegStructureError("missing EOI marker")


def is_bare_jfif(payload: bytes) -> bool:
    """True for an APP0 payload that is exactly a JFIF header with no embedded thumbnail."""
    # Layout: 'JFIF\0', version(2), units(1), Xdensity(2), Ydensity(2), Xthumb(1), Ythumb(1).
    return len(payload) == 14 and payload[:5] == b"JFIF\x00" and payload[12] == 0 and payload[13] == 0


def strip_metadata(data: bytes) -> bytes:
    """Return the JPEG rebuilt from allowed segments only (see ``ALLOWED_MARKERS``).

    Defence in depth: our encoder writes no metadata, but this makes the guarantee independent of
    the Pillow/libjpeg version on the device.
    """
    parts = [b"\xff\xd8"]
    for seg in segments(data)[1:]:
        if seg.marker == EOI:
            parts.append(b"\xff\xd9")
            break
        if seg.marker in range(0xD0, 0xD8):
            parts.append(data[seg.start : seg.end])
            continue
        if seg.marker not in ALLOWED_MARKERS:
            continue
        if seg.marker == APP0 and not is_bare_jfif(data[seg.start + 4 : seg.end]):
            continue
        parts.append(data[seg.start : seg.end])
    return b"".join(parts)
