"""The kiosk's own Wi-Fi as the delivery screen shows it: "join this network" before "scan for your photo".

``python -m provisioning hotspot`` writes the network's ``WIFI:`` text (the scheme phone cameras turn into
"join this network", from ZXing, read by Android and iOS) to ``/etc/headshot-kiosk/wifi.qr`` (0600, the
service user's). The passphrase is meant to be read off the screen by guests at the booth, so showing it is
not a leak; it is still never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["WifiJoin", "parse_wifi_qr", "read_wifi_join"]

# A WIFI: text longer than this is not one provisioning wrote (SSID ≤ 32 bytes, passphrase ≤ 63).
_MAX_PAYLOAD = 512


@dataclass(frozen=True)
class WifiJoin:
    """What a guest needs to join: the ``WIFI:`` text for the QR code, and the network name and password
    for a phone that cannot scan (``password`` is empty for an open network)."""

    payload: str
    ssid: str
    password: str


def _fields(body: str) -> dict[str, str]:
    """``T:WPA;S:name;P:pass;;`` -> {"T": "WPA", "S": "name", "P": "pass"}; ``\\`` escapes ``\\ ; , : "``."""
    fields: dict[str, str] = {}
    key: str | None = None
    value: list[str] = []
    escaped = False
    for ch in body:
        if escaped:
            value.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif key is None and ch == ":":
            key = "".join(value)
            value = []
        elif ch == ";":
            if key is not None:
                fields[key] = "".join(value)
            key, value = None, []
        else:
            value.append(ch)
    return fields


def parse_wifi_qr(text: str) -> WifiJoin | None:
    """The network in a ``WIFI:`` text, or None if ``text`` is not one (no ``S:``, or too long)."""
    payload = text.strip()
    if len(payload) > _MAX_PAYLOAD or not payload.startswith("WIFI:"):
        return None
    fields = _fields(payload[len("WIFI:") :])
    ssid = fields.get("S", "")
    if not ssid:
        return None
    return WifiJoin(payload, ssid, fields.get("P", ""))


def read_wifi_join(path: Path | None) -> WifiJoin | None:
    """The hotspot's network from ``path`` (``[delivery] wifi_qr_path``), or None when there is no file
    (no hotspot: guests use the venue's network) or it cannot be used (logged without its contents)."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning(
            "cannot read the Wi-Fi QR file (%s); the delivery screen shows no Wi-Fi step", type(exc).__name__
        )
        return None
    join = parse_wifi_qr(text)
    if join is None:
        logger.warning("the Wi-Fi QR file is not a WIFI: text; the delivery screen shows no Wi-Fi step")
    return join
