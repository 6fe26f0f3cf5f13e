"""One-time delivery links: the headshot encrypted under a key that only the QR code holds.

The QR shows ``https://<public_host>:<port>/d/<id>.<key>``. The kiosk keeps the ciphertext (in the RAM
store) and forgets the key once the QR screen is gone, so a lost or stolen kiosk holds nothing readable
(DESIGN.md §3 "Delivery"). ``peek`` (the landing page) never spends a link — link-preview bots prefetch.
The POST takes it in two steps, so a photo lost to a bad connection is not lost (issue 15): ``collect``
claims it, exactly once even under concurrent requests (the winner is whoever renames the file first, an
atomic operation on one filesystem), and ``settle`` then spends it if the photo reached the phone, or puts
it back, collectable again, if the connection broke first. A spent photo stays (still ciphertext, its key
still only in the QR) for ``grace_seconds``, for a repeat of the same attempt from the same phone — a
download the browser lost after it had arrived. ``spend`` is both steps at once. Unknown, expired, spent
and wrongly keyed links are
indistinguishable to the caller, by their answer and by the work done for them: every refused link costs
one AES-GCM decryption of a delivery-sized blob, a decoy when there is no real one (issue 20: a known id
with a wrong key took 3.3 ms, an unknown id 2.5 ms).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import os
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable, Sequence
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
# ".<id>.partial" and renames it (one write to RAM, far under a second); collect() renames the delivery to
# ".<id>.<rand>.sending" for as long as the photo is on its way (the delivery listener's front gives up on
# a phone after 60 s) and settle() to ".<id>.<rand>.repeat" for the repeat grace (15 s), both tracked and
# ended long before this. (The sweep used to delete every dot-file at once, so 16 of 500 creations failed
# with it running every 2 ms: issue 20.) A restart's store sweep removes them regardless.
WORK_FILE_GRACE_SECONDS = 300.0
# How long a photo that reached a phone can be collected again by a repeat of the same attempt from the
# same address: long enough for a guest to tap Save again after a browser lost a finished download, short
# against the delivery window (and under the audit's 20 s wait for an empty store). The page's attempt id
# is what tells a repeat from another request.
REPEAT_GRACE_SECONDS = 15.0
# How long a POST that finds its link on the way to another POST waits for that one to end before it is
# refused: the other may break off (a page closed mid-download, a double tap) and put the link back.
IN_FLIGHT_WAIT_SECONDS = 2.0


# Several photos through one link (issue 15.4: e.g. the square crop and the badge): the plaintext is a
# bundle, ``_BUNDLE_MAGIC`` + a 4-byte big-endian length + a JSON list of [name, size] + the JPEGs in that
# order. One link, one claim, one spend, exactly as for one photo; a plain JPEG stays a plain JPEG.
_BUNDLE_MAGIC = b"HKB1"
_BUNDLE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}\.jpg")
MAX_BUNDLE_PHOTOS = 4
SINGLE_NAME = "headshot.jpg"


def pack_photos(photos: Sequence[tuple[str, bytes]]) -> bytes:
    """One delivery's plaintext for ``photos`` ([(file name, JPEG bytes)], the first is the main one): the
    JPEG itself for one photo, else a bundle. Names are ours (``headshot-<preset>.jpg``), never a guest's:
    they must match ``[a-z0-9][a-z0-9-]*.jpg``."""
    if not 1 <= len(photos) <= MAX_BUNDLE_PHOTOS:
        raise ValueError("a delivery holds 1..4 photos")
    for name, jpeg in photos:
        if not _BUNDLE_NAME.fullmatch(name) or not jpeg:
            raise ValueError("bad photo name or empty photo")
    if len(photos) == 1:
        return photos[0][1]
    index = json.dumps([[name, len(jpeg)] for name, jpeg in photos], separators=(",", ":")).encode()
    return b"".join([_BUNDLE_MAGIC, struct.pack("!I", len(index)), index, *(jpeg for _n, jpeg in photos)])


def unpack_photos(plain: bytes) -> list[tuple[str, bytes]]:
    """The photos of a delivery's plaintext (see :func:`pack_photos`). Raises ValueError on a bad bundle."""
    if not plain.startswith(_BUNDLE_MAGIC):
        return [(SINGLE_NAME, plain)]
    (length,) = struct.unpack_from("!I", plain, len(_BUNDLE_MAGIC))
    start = len(_BUNDLE_MAGIC) + 4
    index = json.loads(plain[start : start + length])
    photos, offset = [], start + length
    for name, size in index:
        if not _BUNDLE_NAME.fullmatch(name) or offset + size > len(plain):
            raise ValueError("bad bundle")
        photos.append((str(name), plain[offset : offset + size]))
        offset += size
    if offset != len(plain) or not 2 <= len(photos) <= MAX_BUNDLE_PHOTOS:
        raise ValueError("bad bundle")
    return photos


class DeliveryGone(Exception):
    """Unknown, expired, spent or wrongly keyed: the caller answers a plain 404 for all of them."""


class _Missing(DeliveryGone):
    """No readable delivery under that id right now (for ``collect``: it may be on its way to a phone)."""


@dataclass(frozen=True)
class DeliveryTicket:
    """What the QR screen needs. ``token`` is secret: it never goes to a log."""

    token: str
    expires_at: float

    def url(self, public_host: str, port: int) -> str:
        netloc = public_host if port == 443 else f"{public_host}:{port}"
        return f"https://{netloc}/d/{self.token}"


@dataclass
class Collection:
    """A delivery claimed by one POST while its photo is on the way to the phone; ``DeliveryStore.settle``
    spends it or puts it back. Holds no key and no photo."""

    obj_id: str
    path: Path
    client: str
    attempt: str | None
    settled: bool = False


@dataclass(frozen=True)
class _Repeat:
    """A spent photo kept for a repeat: who may repeat, until when (monotonic seconds), and where it is."""

    client: str
    attempt: str
    until: float
    path: Path


class DeliveryStore:
    """Delivery blobs in ``directory`` (on the RAM store's tmpfs, mode 0700). Thread-safe."""

    def __init__(
        self,
        directory: Path,
        *,
        window_seconds: float,
        clock: Callable[[], float] = time.time,
        work_file_grace_seconds: float = WORK_FILE_GRACE_SECONDS,
        repeat_grace_seconds: float = REPEAT_GRACE_SECONDS,
    ) -> None:
        """``clock`` (epoch seconds) sets and checks expiry; the age of work files is measured on the
        filesystem's own clock (their ctime against ``time.time()``), whatever ``clock`` is, and the
        repeat grace on ``time.monotonic()``."""
        self.directory = directory
        self.window_seconds = window_seconds
        self.clock = clock
        self.work_file_grace_seconds = work_file_grace_seconds
        self.repeat_grace_seconds = repeat_grace_seconds
        self.in_flight_wait_seconds = IN_FLIGHT_WAIT_SECONDS
        self._lock = threading.Lock()
        self._repeats: dict[str, _Repeat] = {}
        self._in_flight: dict[str, threading.Event] = {}  # claims not yet settled, by id
        self._decoy = _decoy_blob(DECOY_DEFAULT_BYTES)
        directory.mkdir(mode=0o700, parents=False, exist_ok=True)
        os.chmod(directory, 0o700)

    def create(self, jpeg: bytes) -> DeliveryTicket:
        """Encrypt ``jpeg`` (a JPEG, or several packed by :func:`pack_photos`) under a fresh key and return
        the ticket; the key exists only in the token."""
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
            raise (DeliveryGone if usable else _Missing) from None
        if not usable:  # the decoy opened: a 2**-128 chance; still nothing to deliver
            raise _Missing
        return jpeg

    def peek(self, token: str) -> int:
        """Check a link without spending it; returns the photo's size in bytes. Raises ``DeliveryGone``."""
        obj_id, key = self._parse(token)
        return len(self._open(self.directory / obj_id, obj_id, key))

    def peek_photos(self, token: str) -> list[tuple[str, int]]:
        """Check a link without spending it; returns each photo's file name and size in bytes (one entry
        for a plain JPEG). Raises ``DeliveryGone``."""
        obj_id, key = self._parse(token)
        plain = self._open(self.directory / obj_id, obj_id, key)
        return [(name, len(jpeg)) for name, jpeg in unpack_photos(plain)]

    def spend(self, token: str) -> bytes:
        """Return the JPEG and make the link unusable, exactly once, with no repeat. Raises
        ``DeliveryGone``."""
        jpeg, collection = self.collect(token)
        self.settle(collection, delivered=True)
        return jpeg

    def collect(
        self, token: str, *, client: str = "", attempt: str | None = None
    ) -> tuple[bytes, Collection]:
        """Claim the link for one POST and return the JPEG with the claim; exactly one of concurrent
        callers gets it, the others ``DeliveryGone`` — as does everyone once it is spent, except a repeat
        of the same ``attempt`` (the page's id for one Save) from the same ``client`` address within the
        repeat grace. A caller that finds the link claimed by a collection still in flight waits for it
        to settle (at most ``in_flight_wait_seconds``) and tries once more: the link may come back. Settle
        the claim with ``settle`` whatever happens next."""
        obj_id, key = self._parse(token)
        try:
            return self._collect(obj_id, key, client, attempt)
        except _Missing:
            # Not there: never made, spent, expired — or claimed by a collection still in flight, which
            # may put it back. (A wrong key is not _Missing: refused at once, after the same one
            # decryption as every refusal.)
            with self._lock:
                in_flight = self._in_flight.get(obj_id)
            if in_flight is None:
                raise
            in_flight.wait(self.in_flight_wait_seconds)
            if not (self.directory / obj_id).exists():
                raise
        return self._collect(obj_id, key, client, attempt)

    def _collect(self, obj_id: str, key: bytes, client: str, attempt: str | None) -> tuple[bytes, Collection]:
        path = self.directory / obj_id
        with self._lock:
            repeat = self._repeats.get(obj_id)
        if (
            repeat is not None
            and attempt is not None
            and repeat.client == client
            and hmac.compare_digest(repeat.attempt, attempt)
            and repeat.until > time.monotonic()
        ):
            path = repeat.path
        # Check the key before claiming, so a wrong key cannot destroy somebody's delivery.
        self._open(path, obj_id, key)
        claimed = self.directory / f".{obj_id}.{secrets.token_hex(4)}.sending"
        # Atomic: of N concurrent collectors exactly one succeeds. Under the lock, so that whoever finds
        # the link gone also finds the claim in flight (a few microseconds on the tmpfs).
        with self._lock:
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                raise _Missing from None
            self._in_flight[obj_id] = in_flight = threading.Event()
        if repeat is not None and path == repeat.path:
            with self._lock:
                if self._repeats.get(obj_id) is repeat:
                    del self._repeats[obj_id]
        try:
            jpeg = self._open(claimed, obj_id, key)
        except DeliveryGone:  # expired between the two reads: nothing to deliver, nothing to keep
            claimed.unlink(missing_ok=True)
            with self._lock:
                if self._in_flight.get(obj_id) is in_flight:
                    del self._in_flight[obj_id]
            in_flight.set()
            raise DeliveryGone from None
        return jpeg, Collection(obj_id=obj_id, path=claimed, client=client, attempt=attempt)

    def settle(self, collection: Collection, *, delivered: bool) -> None:
        """End a claim: ``delivered`` spends the link (its photo kept for a repeat of the same attempt for
        the repeat grace, when there was an attempt), otherwise the link is collectable again. Once per
        claim; later calls, and calls after the link was revoked, do nothing."""
        with self._lock:
            if collection.settled:
                return
            collection.settled = True
        try:
            self._settle(collection, delivered)
        finally:
            with self._lock:
                in_flight = self._in_flight.pop(collection.obj_id, None)
            if in_flight is not None:
                in_flight.set()

    def _settle(self, collection: Collection, delivered: bool) -> None:
        if not delivered:
            with contextlib.suppress(FileNotFoundError):  # revoked meanwhile: it stays gone
                os.rename(collection.path, self.directory / collection.obj_id)
            return
        if collection.attempt is None or self.repeat_grace_seconds <= 0:
            collection.path.unlink(missing_ok=True)
            return
        kept = self.directory / f".{collection.obj_id}.{secrets.token_hex(4)}.repeat"
        try:
            os.rename(collection.path, kept)
        except FileNotFoundError:
            return
        repeat = _Repeat(
            collection.client, collection.attempt, time.monotonic() + self.repeat_grace_seconds, kept
        )
        with self._lock:
            previous = self._repeats.get(collection.obj_id)
            self._repeats[collection.obj_id] = repeat
        if previous is not None:
            previous.path.unlink(missing_ok=True)

    def revoke(self, token: str) -> bool:
        """Delete a delivery (the guest pressed Delete now), also while it is being sent and during its
        repeat grace. Returns whether it was still to be collected or on its way."""
        try:
            obj_id, _ = self._parse(token)
        except DeliveryGone:
            return False
        existed = False
        with contextlib.suppress(FileNotFoundError):
            (self.directory / obj_id).unlink()
            existed = True
        with self._lock:
            self._repeats.pop(obj_id, None)
        prefix = f".{obj_id}."
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and not entry.name.endswith(".partial"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        existed = existed or entry.name.endswith(".sending")
        return existed

    def purge_expired(self) -> int:
        """Delete expired deliveries and work files a crash left behind; returns how many were removed.

        Only what is complete and finished with: a delivery (a plain ``<id>`` name, which appears only by an
        atomic rename once fully written) whose expiry has passed or whose header is unreadable, a spent
        photo whose repeat grace is over, and a work file (``.<id>.partial`` being written,
        ``.<id>.<rand>.sending`` on its way to a phone, ``.<id>.<rand>.repeat`` kept for a repeat) older
        than ``work_file_grace_seconds``. A work file younger than that belongs to a create() or a
        collection running now, and deleting it would fail a guest's delivery or lose the photo of a link
        being collected."""
        removed = 0
        now = self.clock()
        wall = time.time()  # ctimes are the filesystem's wall-clock time, whatever self.clock is
        monotonic = time.monotonic()
        with self._lock:
            over = [obj_id for obj_id, r in self._repeats.items() if r.until <= monotonic]
            ended = [self._repeats.pop(obj_id) for obj_id in over]
        for repeat in ended:
            with contextlib.suppress(FileNotFoundError):
                repeat.path.unlink()
                removed += 1
        with self._lock, os.scandir(self.directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                try:
                    if entry.name.startswith("."):
                        # ctime, not mtime: a rename (to .sending) updates it, and keeps the delivery's mtime.
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
