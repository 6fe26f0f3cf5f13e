"""One session's encrypted objects (``SessionVault``), the object file format, and what the store's users
see of an object (``HeldItem``) or a failure (``StoreError`` and its kinds).

Object file format (all integers big-endian)::

    b"HKV1" | header nonce (12) | header length (2) | header ciphertext | body nonce (12) | body ciphertext

The header (plaintext size, created, expires, kind) and the body are sealed separately with AES-256-GCM
under the session key and fresh 96-bit random nonces, so :meth:`SessionVault.inventory` reads only headers.
Both AADs bind the session id and the object id (the file name); the body AAD also binds the kind. A blob
renamed, moved to another session or with its kind altered fails authentication.

The vault lives in the session worker and generates the session key (:class:`appliance.secretmem.SecretKey`),
which never leaves the worker. The main process's :class:`appliance.store.SessionStore` mounts the store and
can wipe a session's files by id without the key.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.secretmem import SecretKey

logger = logging.getLogger("appliance.store")  # one log name for the store and its vaults

_MAGIC = b"HKV1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_PREFIX = struct.Struct("!4s12sH")  # magic, header nonce, header ciphertext length
_HEADER = struct.Struct("!Qdd")  # plaintext bytes, created, expires (epoch seconds); kind follows
_MAX_PLAINTEXT_BYTES = 2**31 - 1  # AES-GCM limit in cryptography (and far above any image)

SESSION_ID = re.compile(r"[0-9a-f]{16,64}")
OBJECT_ID = re.compile(r"[0-9a-f]{32}")
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PARTIAL_SUFFIX = ".partial"

Clock = Callable[[], float]


class StoreError(Exception):
    """The RAM store cannot do what was asked; the message says why and what to do."""


class StoreFullError(StoreError):
    """The store's size cap would be exceeded."""


class ObjectNotFoundError(StoreError, KeyError):
    """No object with that id in this session (never stored, deleted, expired or wiped)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class IntegrityError(StoreError):
    """An object failed authentication: tampered, truncated, renamed or moved from elsewhere."""


@dataclass(frozen=True)
class HeldItem:
    """One stored object as the guest's "What we hold" shows it. ``bytes`` is the plaintext size; ``created``
    and ``expires`` are epoch seconds."""

    id: str
    kind: str
    bytes: int
    created: float
    expires: float


def walk_files(directory: Path) -> Iterator[tuple[str, int]]:
    """(path, size) of every regular file under ``directory``, not following symlinks."""
    for parent, _, filenames in os.walk(directory):
        for name in filenames:
            path = os.path.join(parent, name)
            with contextlib.suppress(FileNotFoundError):
                yield path, os.lstat(path).st_size


def check_session_id(session_id: str) -> None:
    """``StoreError`` unless ``session_id`` is 16-64 lower-case hex digits."""
    if not SESSION_ID.fullmatch(session_id):
        raise StoreError(
            "session id must be 16-64 lower-case hex digits (random, never derived from a person)"
        )


def _aad(part: bytes, session_id: str, obj_id: str, kind: str = "") -> bytes:
    # NUL-separated: ids are hex and kinds match _KIND, so the encoding is unambiguous.
    return b"\0".join((_MAGIC, part, session_id.encode(), obj_id.encode(), kind.encode()))


class SessionVault:
    """One session's encrypted objects and its key. Lives in the session worker; single owner, thread-safe.

    Create with :meth:`create` (or :meth:`SessionStore.begin`). :meth:`wipe` (also on context exit) unlinks
    every object and destroys the key; the vault is unusable afterwards.
    """

    def __init__(
        self,
        directory: Path,
        session_id: str,
        key: SecretKey,
        *,
        clock: Clock = time.time,
        capacity_bytes: int | None = None,
    ) -> None:
        """Internal: use :meth:`create`. Takes ownership of ``key``; ``directory`` must exist (mode 0700)."""
        self._directory = directory
        self._session_id = session_id
        self._key = key
        self._aead: AESGCM | None = key.aesgcm()
        self._clock = clock
        self._capacity_bytes = capacity_bytes
        self._lock = threading.RLock()
        self._dir_fd: int | None = os.open(
            directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )

    @classmethod
    def create(
        cls,
        store_dir: Path,
        session_id: str,
        *,
        clock: Clock = time.time,
        prefer_secret: bool = True,
        capacity_bytes: int | None = None,
    ) -> SessionVault:
        """Create the session directory ``store_dir/session_id`` (mode 0700) and a fresh session key.

        ``store_dir`` is :attr:`SessionStore.path` of an open store (it may belong to another process).
        ``capacity_bytes`` caps the total size of everything under ``store_dir`` (used where no tmpfs size cap
        applies). Raises :class:`StoreError` if the id is malformed or the session already exists.
        """
        check_session_id(session_id)
        st = os.lstat(store_dir)
        if not stat.S_ISDIR(st.st_mode):
            raise StoreError("store directory is not a directory (symlinks are refused)")
        directory = store_dir / session_id
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError as exc:
            raise StoreError(f"session {session_id} already has a directory in the store") from exc
        try:
            key = SecretKey.generate(prefer_secret=prefer_secret)
        except BaseException:
            os.rmdir(directory)
            raise
        vault = cls(directory, session_id, key, clock=clock, capacity_bytes=capacity_bytes)
        logger.info("session %s vault created (key in %s memory)", session_id, key.mechanism.value)
        return vault

    @property
    def session_id(self) -> str:
        """The random session id this vault belongs to."""
        return self._session_id

    @property
    def path(self) -> Path:
        """The session directory."""
        return self._directory

    @property
    def wiped(self) -> bool:
        """True once :meth:`wipe` has run."""
        return self._dir_fd is None

    @property
    def key(self) -> SecretKey:
        """The session key (for tests and diagnostics; destroyed by :meth:`wipe`)."""
        return self._key

    def _live(self) -> tuple[int, AESGCM]:
        if self._dir_fd is None or self._aead is None:
            raise StoreError(f"session {self._session_id} was wiped; start a new session")
        return self._dir_fd, self._aead

    def put(self, kind: str, data: bytes | bytearray | memoryview, *, expires_at: float) -> str:
        """Encrypt and store ``data``; return its new object id (32 random hex digits).

        ``kind`` is a short label such as ``"capture"`` or ``"headshot"`` (``[a-z][a-z0-9_-]{0,31}``, no
        personal data); ``expires_at`` is epoch seconds and must lie in the future. Raises
        :class:`StoreFullError` when the size cap would be exceeded.
        """
        if not _KIND.fullmatch(kind):
            raise StoreError("kind must match [a-z][a-z0-9_-]{0,31}")
        size = memoryview(data).nbytes
        if size > _MAX_PLAINTEXT_BYTES:
            raise StoreError(f"object of {size} bytes is larger than the {_MAX_PLAINTEXT_BYTES}-byte limit")
        with self._lock:
            dir_fd, aead = self._live()
            now = self._clock()
            if not expires_at > now:
                raise StoreError("expires_at must be in the future (epoch seconds)")
            obj_id = secrets.token_hex(16)
            header_nonce = os.urandom(_NONCE_BYTES)
            body_nonce = os.urandom(_NONCE_BYTES)
            header_plain = _HEADER.pack(size, now, float(expires_at)) + kind.encode("ascii")
            header_ct = aead.encrypt(header_nonce, header_plain, _aad(b"hdr", self._session_id, obj_id))
            body_ct = aead.encrypt(body_nonce, data, _aad(b"body", self._session_id, obj_id, kind))
            blob = b"".join(
                (_PREFIX.pack(_MAGIC, header_nonce, len(header_ct)), header_ct, body_nonce, body_ct)
            )
            self._check_capacity(len(blob))
            self._write(dir_fd, obj_id, blob)
            return obj_id

    def _check_capacity(self, new_bytes: int) -> None:
        if self._capacity_bytes is None:
            return
        used = sum(size for _, size in walk_files(self._directory.parent))
        if used + new_bytes > self._capacity_bytes:
            raise StoreFullError(
                f"RAM store full: {used + new_bytes} bytes needed, cap is {self._capacity_bytes}; "
                "wipe finished sessions or raise the store size"
            )

    def _write(self, dir_fd: int, obj_id: str, blob: bytes) -> None:
        # Write under a temporary name and rename, so a crash never leaves a half object under a real id
        # (the start-up sweep removes the partial file).
        partial = obj_id + _PARTIAL_SUFFIX
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(partial, flags, 0o600, dir_fd=dir_fd)
            try:
                view = memoryview(blob)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)
            os.rename(partial, obj_id, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial, dir_fd=dir_fd)
            if exc.errno == errno.ENOSPC:
                raise StoreFullError(
                    "RAM store full (tmpfs size cap reached); wipe finished sessions"
                ) from exc
            if exc.errno == errno.ENOENT:
                raise StoreError(
                    f"session {self._session_id} directory is gone (wiped by the store)"
                ) from exc
            raise StoreError(f"could not write object: {exc.strerror}") from exc

    def _read(self, dir_fd: int, obj_id: str, limit: int | None = None) -> bytes:
        if not OBJECT_ID.fullmatch(obj_id):
            raise ObjectNotFoundError("object id must be 32 hex digits")
        try:
            fd = os.open(obj_id, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no such object in session {self._session_id}") from exc
        try:
            size = os.fstat(fd).st_size
            want = size if limit is None else min(size, limit)
            chunks = []
            while want > 0:
                chunk = os.read(fd, want)
                if not chunk:
                    break
                chunks.append(chunk)
                want -= len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _open_header(self, aead: AESGCM, obj_id: str, blob: bytes) -> tuple[HeldItem, int]:
        """Authenticate and parse the header; return it and the offset of the body nonce."""
        if len(blob) < _PREFIX.size:
            raise IntegrityError(f"object in session {self._session_id} is truncated")
        magic, header_nonce, header_len = _PREFIX.unpack_from(blob)
        if magic != _MAGIC:
            raise IntegrityError(f"object in session {self._session_id} has an unknown format")
        end = _PREFIX.size + header_len
        try:
            plain = aead.decrypt(
                header_nonce, blob[_PREFIX.size : end], _aad(b"hdr", self._session_id, obj_id)
            )
        except InvalidTag as exc:
            raise IntegrityError(
                f"object in session {self._session_id} failed authentication (tampered, renamed or moved)"
            ) from exc
        size, created, expires = _HEADER.unpack_from(plain)
        kind = plain[_HEADER.size :].decode("ascii")
        return HeldItem(id=obj_id, kind=kind, bytes=size, created=created, expires=expires), end

    def get(self, obj_id: str) -> bytes:
        """Decrypt and return an object's plaintext (the caller owns the copy).

        Raises :class:`ObjectNotFoundError` if it does not exist or has expired (an expired object is deleted
        on the spot), :class:`IntegrityError` if it fails authentication.
        """
        with self._lock:
            dir_fd, aead = self._live()
            blob = self._read(dir_fd, obj_id)
            item, offset = self._open_header(aead, obj_id, blob)
            if item.expires <= self._clock():
                self._unlink(dir_fd, obj_id)
                raise ObjectNotFoundError(f"object expired in session {self._session_id}")
            body_nonce = blob[offset : offset + _NONCE_BYTES]
            try:
                return aead.decrypt(
                    body_nonce,
                    memoryview(blob)[offset + _NONCE_BYTES :],
                    _aad(b"body", self._session_id, obj_id, item.kind),
                )
            except InvalidTag as exc:
                raise IntegrityError(
                    f"object in session {self._session_id} failed authentication (tampered, renamed or moved)"
                ) from exc

    def _unlink(self, dir_fd: int, obj_id: str) -> bool:
        try:
            os.unlink(obj_id, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
        return True

    def delete(self, obj_id: str) -> bool:
        """Unlink one object. Returns False if it did not exist (deleting twice is not an error)."""
        if not OBJECT_ID.fullmatch(obj_id):
            raise ObjectNotFoundError("object id must be 32 hex digits")
        with self._lock:
            dir_fd, _ = self._live()
            return self._unlink(dir_fd, obj_id)

    def inventory(self) -> list[HeldItem]:
        """Everything this session holds, read from the files on disk (headers decrypted), oldest first.

        Includes expired objects not yet purged: they are still held. Raises :class:`IntegrityError` if a file
        fails authentication and :class:`StoreError` for any file that is not an object of this vault.
        """
        with self._lock:
            dir_fd, aead = self._live()
            items = []
            for name in sorted(os.listdir(dir_fd)):
                if not OBJECT_ID.fullmatch(name):
                    raise StoreError(f"unexpected file in session {self._session_id} directory")
                blob = self._read(dir_fd, name, limit=_PREFIX.size + 0xFFFF)
                item, offset = self._open_header(aead, name, blob)
                expected = offset + _NONCE_BYTES + item.bytes + _TAG_BYTES
                actual = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size
                if actual != expected:
                    raise IntegrityError(f"object in session {self._session_id} has the wrong length")
                items.append(item)
            items.sort(key=lambda item: (item.created, item.id))
            return items

    def purge_expired(self) -> int:
        """Delete every object whose expiry (by the injected clock) has passed. Returns how many."""
        with self._lock:
            if self.wiped:
                return 0
            now = self._clock()
            dir_fd, _ = self._live()
            expired = [item.id for item in self.inventory() if item.expires <= now]
            removed = sum(self._unlink(dir_fd, obj_id) for obj_id in expired)
        if removed:
            logger.info("session %s: %d expired objects deleted", self._session_id, removed)
        return removed

    def wipe(self) -> int:
        """Unlink every file of the session, remove its directory and destroy the key. Idempotent.

        Returns the number of files removed. What is left in RAM afterwards is unlinked ciphertext under a
        destroyed key (and, until the worker exits, the key schedule inside OpenSSL; see appliance.secretmem).
        """
        with self._lock:
            dir_fd = self._dir_fd
            if dir_fd is None:
                return 0
            removed = 0
            try:
                for name in os.listdir(dir_fd):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=dir_fd)
                        removed += 1
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(self._directory)
            finally:
                os.close(dir_fd)
                self._dir_fd = None
                self._aead = None  # frees cryptography's cipher contexts (OpenSSL clears them on free)
                self._key.destroy()
        logger.info("session %s wiped: %d objects removed, key destroyed", self._session_id, removed)
        return removed

    def __enter__(self) -> SessionVault:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.wipe()

    def __repr__(self) -> str:
        return f"<SessionVault {self._session_id} {'wiped' if self.wiped else 'live'}>"
