"""One-time delivery links: the headshot encrypted under a key that only the QR code holds.

The QR shows ``https://<public_host>:<port>/d/<id>.<key>``. The kiosk keeps the ciphertext (in the RAM
store) and forgets the key once the QR screen is gone, so a lost or stolen kiosk holds nothing readable
(DESIGN.md §3 "Delivery"). ``peek`` (the landing page) never spends a link — link-preview bots prefetch —
``spend`` (the POST) does, exactly once, even under concurrent requests: the winner is whoever renames the
file first, an atomic operation on one filesystem. Unknown, expired, spent and wrongly keyed links are
indistinguishable to the caller, by their answer and by the work done for them: every refused link costs
one AES-GCM decryption of a delivery-sized blob, a decoy when there is no real one (issue 20: a known id
with a wrong key took 3.3 ms, an unknown id 2.5 ms).
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

# Used with fullmatch only: with match, "$" also matched before a final newline, so "<token>\n" (a link
# ending in %0A) opened the photo (issue 20). Only the QR's exact spelling may.
_TOKEN = re.compile(r"([0-9a-f]{32})\.([A-Za-z0-9_-]{43})")
_HEADER = struct.Struct("!4sd12s")  # magic, expires (epoch s), nonce
_MAGIC = b"HKD1"
_TAG_BYTES = 16
MAX_DELIVERY_BYTES = 32 * 2**20
# The decoy's JPEG size until the first delivery is made (then it is the last delivery's): a headshot's order.
DECOY_DEFAULT_BYTES = 256 * 1024
# How long a work file may stay before the expiry sweep takes it for a crash's leftover. create() writes
# ".<id>.partial" and renames it; spend() renames the delivery to ".<id>.<rand>.spent" and reads it once:
# each lives for the time of one write or read of at most MAX_DELIVERY_BYTES to RAM, far under a second.
# (The sweep used to delete every dot-file at once, so 16 of 500 creations failed with it running every
# 2 ms: issue 20.) A restart's store sweep removes them regardless.
WORK_FILE_GRACE_SECONDS = 300.0


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
        self,
        directory: Path,
        *,
        window_seconds: float,
        clock: Callable[[], float] = time.time,
        work_file_grace_seconds: float = WORK_FILE_GRACE_SECONDS,
    ) -> None:
        """``clock`` (epoch seconds) sets and checks expiry; the age of work files is measured on the
        filesystem's own clock (their ctime against ``time.time()``), whatever ``clock`` is."""
        self.directory = directory
        self.window_seconds = window_seconds
        self.clock = clock
        self.work_file_grace_seconds = work_file_grace_seconds
        self._lock = threading.Lock()
        self._decoy = _decoy_blob(DECOY_DEFAULT_BYTES)
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
        # Refused links are decrypted against a decoy of the size real ones have (see _open).
        if len(self._decoy) != len(blob):
            self._decoy = _decoy_blob(len(jpeg))
        token = f"{obj_id}.{base64.urlsafe_b64encode(key).rstrip(b'=').decode()}"
        return DeliveryTicket(token=token, expires_at=expires)

    def _parse(self, token: str) -> tuple[str, bytes]:
        m = _TOKEN.fullmatch(token)
        if m is None:
            raise DeliveryGone
        key = base64.urlsafe_b64decode(m.group(2) + "=")
        # 43 characters carry 258 bits for a 256-bit key: four spellings would open the same link. Only the
        # one the QR holds does.
        if base64.urlsafe_b64encode(key).rstrip(b"=").decode() != m.group(2):
            raise DeliveryGone
        return m.group(1), key

    def _open(self, path: Path, obj_id: str, key: bytes) -> bytes:
        """Decrypt the delivery at ``path`` with ``key``, or raise DeliveryGone.

        Every outcome costs the same work: one read attempt, then one AES-GCM decryption of a delivery-sized
        blob. When there is nothing to open (no file, a short or foreign one, an expired one) the decryption
        runs on the decoy, which no key opens, so an unknown id takes as long as a known one with a wrong
        key, and an expired photo is never decrypted into this process."""
        blob: bytes | bytearray
        try:
            blob = path.read_bytes()
        except OSError:
            blob = b""
        usable = len(blob) >= _HEADER.size + _TAG_BYTES
        if usable:
            magic, expires, _ = _HEADER.unpack_from(blob)
            usable = magic == _MAGIC and expires > self.clock()
        if not usable:
            # A copy, as the read above makes one: the same allocation and memory traffic.
            blob = bytearray(self._decoy)
        view = memoryview(blob)
        nonce = _HEADER.unpack_from(view)[2]
        try:
            jpeg = AESGCM(key).decrypt(nonce, view[_HEADER.size :], obj_id.encode() + view[: _HEADER.size])
        except InvalidTag:
            raise DeliveryGone from None
        if not usable:  # the decoy opened: a 2**-128 chance; still nothing to deliver
            raise DeliveryGone
        return jpeg

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
        """Delete expired deliveries and work files a crash left behind; returns how many were removed.

        Only what is complete and finished with: a delivery (a plain ``<id>`` name, which appears only by an
        atomic rename once fully written) whose expiry has passed or whose header is unreadable, and a
        work file (``.<id>.partial`` being written, ``.<id>.<rand>.spent`` being collected) older than
        ``work_file_grace_seconds``. A work file younger than that belongs to a create() or spend() running
        now, and deleting it would fail a guest's delivery or lose the photo of a link being collected."""
        removed = 0
        now = self.clock()
        wall = time.time()  # ctimes are the filesystem's wall-clock time, whatever self.clock is
        with self._lock, os.scandir(self.directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                try:
                    if entry.name.startswith("."):
                        # ctime, not mtime: a rename (to .spent) updates it, and keeps the delivery's mtime.
                        changed = entry.stat(follow_symlinks=False).st_ctime
                        expired = wall - changed > self.work_file_grace_seconds
                    else:
                        with path.open("rb") as f:
                            head = f.read(_HEADER.size)
                        expired = len(head) < _HEADER.size or _HEADER.unpack(head)[1] <= now
                except OSError:
                    continue  # gone meanwhile (collected, revoked), or unreadable: the next tick looks again
                if expired:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
        return removed

    def pending(self) -> int:
        """How many deliveries are waiting to be collected (for the dashboard)."""
        with os.scandir(self.directory) as entries:
            return sum(1 for e in entries if not e.name.startswith("."))


def _decoy_blob(jpeg_bytes: int) -> bytes:
    """A blob shaped like a delivery of ``jpeg_bytes`` (header, ciphertext, tag) under an expired header,
    all zeros: AES-GCM takes as long on zeros as on a photo, and an all-zero tag verifies under no key we
    will meet (a 2**-128 chance per try). Holds nothing of anybody."""
    return _HEADER.pack(_MAGIC, 0.0, bytes(12)) + bytes(jpeg_bytes + _TAG_BYTES)
