"""One-time delivery links: the headshot encrypted under a key that only the QR code holds.

The QR shows ``https://<public_host>:<port>/d/<id>.<key>``. The kiosk keeps the ciphertext (in the RAM
store) and forgets the key once the QR screen is gone, so a lost or stolen kiosk holds nothing readable
(DESIGN.md §3 "Delivery"). ``peek`` (the landing page) never spends a link — link-preview bots prefetch —
``spend`` (the POST) does, exactly once, even under concurrent requests: the winner is whoever renames the
file first, an atomic operation on one filesystem. Unknown, expired, spent and wrongly keyed links are
indistinguishable to the caller.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"^([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$")
_HEADER = struct.Struct("!4sd12s")  # magic, expires (epoch s), nonce
_MAGIC = b"HKD1"
MAX_DELIVERY_BYTES = 32 * 2**20


class DeliveryGone(Exception):
    """Unknown, expired, spent or wrongly keyed: the caller answers a plain 404 for all of them."""


@dataclass(frozen=True)
class DeliveryTicket:
    """What the QR screen needs. ``token`` is secret: it never goes to a log."""

    token: str
    expires_at: float

    def url(self, public_host: str, port: int) -> str:
        netloc = public_host if port == 443 else f"{public_host}:{port}"
        return f"https://{netloc}/d/{self.token}"


class DeliveryStore:
    """Delivery blobs in ``directory`` (on the RAM store's tmpfs, mode 0700). Thread-safe."""

    def __init__(
        self, directory: Path, *, window_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = directory
        self.window_seconds = window_seconds
        self.clock = clock
        self._lock = threading.Lock()
        directory.mkdir(mode=0o700, parents=False, exist_ok=True)
        os.chmod(directory, 0o700)

    def create(self, jpeg: bytes) -> DeliveryTicket:
        """Encrypt ``jpeg`` under a fresh key and return the ticket; the key exists only in the token."""
        if not jpeg or len(jpeg) > MAX_DELIVERY_BYTES:
            raise ValueError("delivery payload size out of range")
        obj_id = secrets.token_hex(16)
        key = secrets.token_bytes(32)
        nonce = secrets.token_bytes(12)
        expires = self.clock() + self.window_seconds
        header = _HEADER.pack(_MAGIC, expires, nonce)
        blob = header + AESGCM(key).encrypt(nonce, jpeg, obj_id.encode() + header)
        tmp = self.directory / f".{obj_id}.partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, blob)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / obj_id)
        token = f"{obj_id}.{base64.urlsafe_b64encode(key).rstrip(b'=').decode()}"
        return DeliveryTicket(token=token, expires_at=expires)

    def _parse(self, token: str) -> tuple[str, bytes]:
        m = _TOKEN.match(token)
        if m is None:
            raise DeliveryGone
        key = base64.urlsafe_b64decode(m.group(2) + "=")
        # 43 characters carry 258 bits for a 256-bit key: four spellings would open the same link. Only the
        # one the QR holds does.
        if base64.urlsafe_b64encode(key).rstrip(b"=").decode() != m.group(2):
            raise DeliveryGone
        return m.group(1), key

    def _open(self, path: Path, obj_id: str, key: bytes) -> bytes:
        try:
            blob = path.read_bytes()
        except OSError:
            raise DeliveryGone from None
        if len(blob) < _HEADER.size + 16:
            raise DeliveryGone
        magic, expires, nonce = _HEADER.unpack_from(blob)
        if magic != _MAGIC or expires <= self.clock():
            raise DeliveryGone
        try:
            return AESGCM(key).decrypt(nonce, blob[_HEADER.size :], obj_id.encode() + blob[: _HEADER.size])
        except InvalidTag:
            raise DeliveryGone from None

    def peek(self, token: str) -> int:
        """Check a link without spending it; returns the photo's size in bytes. Raises ``DeliveryGone``."""
        obj_id, key = self._parse(token)
        return len(self._open(self.directory / obj_id, obj_id, key))

    def spend(self, token: str) -> bytes:
        """Return the JPEG and make the link unusable, exactly once. Raises ``DeliveryGone``."""
        obj_id, key = self._parse(token)
        path = self.directory / obj_id
        # Check the key before claiming, so a wrong key cannot destroy somebody's delivery.
        self._open(path, obj_id, key)
        claimed = self.directory / f".{obj_id}.{secrets.token_hex(4)}.spent"
        try:
            os.rename(path, claimed)  # atomic: of N concurrent spenders exactly one succeeds
        except FileNotFoundError:
            raise DeliveryGone from None
        try:
            return self._open(claimed, obj_id, key)
        finally:
            claimed.unlink(missing_ok=True)

    def revoke(self, token: str) -> bool:
        """Delete a delivery (the guest pressed Delete now). Returns whether it existed."""
        try:
            obj_id, _ = self._parse(token)
        except DeliveryGone:
            return False
        try:
            (self.directory / obj_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def purge_expired(self) -> int:
        """Delete expired and abandoned blobs; returns how many were removed."""
        removed = 0
        now = self.clock()
        with self._lock, os.scandir(self.directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                expired = True
                if not entry.name.startswith("."):
                    try:
                        with path.open("rb") as f:
                            head = f.read(_HEADER.size)
                        expired = len(head) < _HEADER.size or _HEADER.unpack(head)[1] <= now
                    except OSError:
                        continue
                if expired:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
        return removed

    def pending(self) -> int:
        """How many deliveries are waiting to be collected (for the dashboard)."""
        with os.scandir(self.directory) as entries:
            return sum(1 for e in entries if not e.name.startswith("."))
