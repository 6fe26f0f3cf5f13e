"""QR codes for delivery links, as bare PNGs (segno writes IHDR, PLTE, IDAT, IEND only — no metadata)."""

from __future__ import annotations

import io

import segno

# Big modules and the standard quiet zone: phones read the code from a metre away off a touch screen.
QR_SCALE = 10
QR_BORDER = 4


def png(text: str) -> bytes:
    """Encode ``text`` (a delivery URL) as a black-on-white QR PNG with error correction level M."""
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=QR_SCALE, border=QR_BORDER)
    return out.getvalue()
