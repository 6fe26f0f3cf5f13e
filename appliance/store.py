"""The encrypted RAM store: a size-capped tmpfs of AES-256-GCM ciphertext, one subdirectory per session.

Layout (``<dir>`` is the mounted tmpfs, an existing RAM mount, or the /dev/shm fallback)::

    <dir>/<session id>/<object id>     object id = file name = 32 random hex digits; mode 0600, dirs 0700

Who does what (DESIGN.md §3): the main process owns :class:`SessionStore` — it mounts, sweeps at start-up,
reports usage and can wipe a session's files by session id without its key. The per-session worker process
creates a :class:`SessionVault` with :meth:`SessionVault.create` given the store directory and the session
id; the vault generates the session key (:class:`appliance.secretmem.SecretKey`), which never leaves the
worker.

Object file format (all integers big-endian)::

    b"HKV1" | header nonce (12) | header length (2) | header ciphertext | body nonce (12) | body ciphertext

The header (plaintext size, created, expires, kind) and the body are sealed separately with AES-256-GCM
under the session key and fresh 96-bit random nonces, so :meth:`SessionVault.inventory` reads only headers.
Both AADs bind the session id and the object id (the file name); the body AAD also binds the kind. A blob
renamed, moved to another session or with its kind altered fails authentication.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
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
from enum import Enum
from pathlib import Path
from types import TracebackType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.secretmem import SecretKey

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
_MAGIC = b"HKV1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_PREFIX = struct.Struct("!4s12sH")  # magic, header nonce, header ciphertext length
_HEADER = struct.Struct("!Qdd")  # plaintext bytes, created, expires (epoch seconds); kind follows
_MAX_PLAINTEXT_BYTES = 2**31 - 1  # AES-GCM limit in cryptography (and far above any image)

_SESSION_ID = re.compile(r"[0-9a-f]{16,64}")
_OBJECT_ID = re.compile(r"[0-9a-f]{32}")
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PARTIAL_SUFFIX = ".partial"

_TMPFS_MAGIC_TYPES = frozenset({"tmpfs", "ramfs"})
# mount(2) flags (include/uapi/linux/mount.h).
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MNT_DETACH = 2

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


class Backing(str, Enum):
    """What the store directory is."""

    MOUNTED = "mounted"  # a tmpfs this store mounted (and unmounts on close)
    EXISTING_MOUNT = "existing-mount"  # root was already a tmpfs/ramfs mount point (systemd, fstab)
    SHM_FALLBACK = "shm-fallback"  # private directory under /dev/shm; swap protection depends on the system


@dataclass(frozen=True)
class HeldItem:
    """One stored object as the guest's "What we hold" shows it. ``bytes`` is the plaintext size; ``created``
    and ``expires`` are epoch seconds."""

    id: str
    kind: str
    bytes: int
    created: float
    expires: float


@dataclass(frozen=True)
class StoreUsage:
    """Store statistics for the staff dashboard: counts and sizes only, never contents or ids.

    ``bytes_used`` is the total size of stored files (ciphertext); ``capacity_bytes`` the size cap.
    """

    sessions: int
    objects: int
    bytes_used: int
    capacity_bytes: int
    backing: Backing
    noswap: bool


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo (proc(5)), unescaped."""

    mount_point: str
    fstype: str
    source: str
    mount_options: tuple[str, ...]
    super_options: tuple[str, ...]


def new_session_id() -> str:
    """A random session id: 16 hex digits (64 bits), readable through ``RedactFilter``."""
    return secrets.token_hex(8)


def _check_session_id(session_id: str) -> None:
    if not _SESSION_ID.fullmatch(session_id):
        raise StoreError(
            "session id must be 16-64 lower-case hex digits (random, never derived from a person)"
        )


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mountinfo(path: Path = Path("/proc/self/mountinfo")) -> list[MountEntry]:
    """Parse mountinfo (proc(5)): ``id parent maj:min root mount-point options [optional...] - fstype source
    super-options``. Later lines are mounts stacked on top of earlier ones."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 6 or len(tail) < 3:
            continue
        entries.append(
            MountEntry(
                mount_point=_unescape_mountinfo(fields[4]),
                fstype=tail[0],
                source=_unescape_mountinfo(tail[1]),
                mount_options=tuple(fields[5].split(",")),
                super_options=tuple(tail[2].split(",")),
            )
        )
    return entries


def mount_at(path: Path) -> MountEntry | None:
    """The mount whose mount point is exactly ``path`` (topmost if stacked), else ``None``."""
    target = os.path.realpath(path)
    found = None
    for entry in read_mountinfo():
        if entry.mount_point == target:
            found = entry
    return found


def mount_containing(path: Path) -> MountEntry | None:
    """The mount ``path`` lives on: the longest mount point that is a prefix of it (topmost if stacked)."""
    target = os.path.realpath(path)
    best: MountEntry | None = None
    for entry in read_mountinfo():
        mp = entry.mount_point
        if (target == mp or target.startswith(mp.rstrip("/") + "/")) and (
            best is None or len(mp) >= len(best.mount_point)
        ):
            best = entry
    return best


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.mount.restype = ctypes.c_int
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.umount2.restype = ctypes.c_int
    return libc


_LIBC = _libc()


def _mount_tmpfs(target: Path, options: str) -> None:
    """mount(2) a tmpfs at ``target`` with ``options``; raises OSError with the kernel's errno."""
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    result = _LIBC.mount(b"headshot-kiosk", os.fsencode(target), b"tmpfs", flags, options.encode("ascii"))
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _umount(target: Path) -> None:
    if _LIBC.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err != errno.EBUSY:
        raise OSError(err, os.strerror(err))
    # Something still has a file open (a worker that has not exited yet): detach now, the kernel frees the
    # tmpfs when the last reference goes (umount(2), MNT_DETACH).
    logger.warning("RAM store busy at close; detaching the mount lazily")
    if _LIBC.umount2(os.fsencode(target), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _remove_tree_contents(directory: Path, *, keep: frozenset[str] = frozenset()) -> int:
    """Delete everything inside ``directory`` except top-level names in ``keep``, never following symlinks.
    Returns the number of non-directory entries removed."""
    removed = 0
    with os.scandir(directory) as it:
        entries = list(it)  # close the directory handle before deleting (and on any error)
    for entry in entries:
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            for parent, dirnames, filenames in os.walk(entry.path, topdown=False):
                for name in filenames:
                    os.unlink(os.path.join(parent, name))
                    removed += 1
                for name in dirnames:
                    child = os.path.join(parent, name)
                    if os.path.islink(child):
                        os.unlink(child)
                        removed += 1
                    else:
                        os.rmdir(child)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)
            removed += 1
    return removed


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
        _check_session_id(session_id)
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
        used = sum(size for _, size in _walk_files(self._directory.parent))
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
        if not _OBJECT_ID.fullmatch(obj_id):
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
        if not _OBJECT_ID.fullmatch(obj_id):
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
                if not _OBJECT_ID.fullmatch(name):
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


def _walk_files(directory: Path) -> Iterator[tuple[str, int]]:
    """(path, size) of every regular file under ``directory``, not following symlinks."""
    for parent, _, filenames in os.walk(directory):
        for name in filenames:
            path = os.path.join(parent, name)
            with contextlib.suppress(FileNotFoundError):
                yield path, os.lstat(path).st_size


class SessionStore:
    """The RAM store as the main process sees it: mount, sweep, per-session wipe, usage. Thread-safe.

    ``root`` is where the store should live (``/run/headshot-kiosk`` on the device). On :meth:`open`:

    * ``root`` already a tmpfs/ramfs mount point (systemd ``TemporaryFileSystem=``, fstab): used as is;
    * else, as root and with ``allow_mount``: a tmpfs of ``size_mib`` MiB is mounted there (mode 0700, nosuid,
      nodev, noexec, ``noswap`` if the kernel accepts it — Linux >= 6.4) and unmounted by :meth:`close`;
    * else: a private directory under ``shm_dir`` (mode 0700), with a WARNING, and ``size_mib`` enforced by
      the store itself.

    Then :meth:`sweep` removes anything a crash left behind. ``clock`` returns epoch seconds (injectable for
    tests). A root mount point that is not RAM-backed is refused with :class:`StoreError`.
    """

    def __init__(
        self,
        root: Path,
        *,
        size_mib: int = 256,
        allow_mount: bool = True,
        shm_dir: Path = Path("/dev/shm"),  # noqa: S108 - a private 0700 directory is made and checked
        clock: Clock = time.time,
        prefer_secret: bool = True,
    ) -> None:
        if size_mib <= 0:
            raise StoreError(f"size_mib must be positive, got {size_mib}")
        self._root = Path(os.path.abspath(root))
        self._size_mib = size_mib
        self._allow_mount = allow_mount
        self._shm_dir = shm_dir
        self._clock = clock
        self._prefer_secret = prefer_secret
        self._lock = threading.RLock()
        self._path: Path | None = None
        self._backing: Backing | None = None
        self._noswap = False
        self._created_root = False
        self._vaults: dict[str, SessionVault] = {}

    # -- lifecycle -------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Prepare the store directory (see the class docstring) and sweep it. Idempotent."""
        with self._lock:
            if self._path is not None:
                return
            existing = mount_at(self._root) if self._root.exists() else None
            if existing is not None:
                if existing.fstype not in _TMPFS_MAGIC_TYPES:
                    raise StoreError(
                        f"store root is a {existing.fstype} mount, not RAM-backed; mount a tmpfs there or "
                        "choose another directory"
                    )
                self._use_existing_mount(existing)
            elif self._allow_mount and os.geteuid() == 0 and self._try_mount():
                pass
            else:
                self._use_shm_fallback()
            removed = self.sweep()
            if removed:
                logger.warning("RAM store sweep removed %d files left by an earlier run", removed)

    def _use_existing_mount(self, entry: MountEntry) -> None:
        os.chmod(self._root, 0o700)
        self._path = self._root
        self._backing = Backing.EXISTING_MOUNT
        # ramfs never swaps; a tmpfs swaps unless mounted noswap.
        self._noswap = entry.fstype == "ramfs" or "noswap" in entry.super_options
        if not self._noswap:
            logger.warning("RAM store mount lacks noswap; keep swap off or use zram without a backing device")
        logger.info("RAM store on existing %s mount", entry.fstype)

    def _try_mount(self) -> bool:
        """Mount a tmpfs at root. Returns False (after logging) if this process may not mount."""
        if not self._root.exists():
            self._root.mkdir(mode=0o700, parents=True)
            self._created_root = True
        base = f"size={self._size_mib}m,mode=0700"
        try:
            # noswap: tmpfs(5), Linux >= 6.4. Older kernels reject the unknown option with EINVAL, and so does
            # a mount from inside a user namespace (mm/shmem.c allows noswap only to the initial namespace).
            _mount_tmpfs(self._root, base + ",noswap")
            self._noswap = True
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                logger.warning(
                    "tmpfs refused noswap (needs Linux >= 6.4 and the initial user namespace); RAM store "
                    "pages can reach swap unless swap is off or zram-only"
                )
                try:
                    _mount_tmpfs(self._root, base)
                except OSError as retry_exc:
                    return self._mount_failed(retry_exc)
            else:
                return self._mount_failed(exc)
        self._path = self._root
        self._backing = Backing.MOUNTED
        logger.info("RAM store: tmpfs mounted, %d MiB cap, noswap=%s", self._size_mib, self._noswap)
        return True

    def _mount_failed(self, exc: OSError) -> bool:
        if exc.errno in (errno.EPERM, errno.EACCES):
            # Root without CAP_SYS_ADMIN (containers): fall back like an unprivileged process.
            logger.warning("cannot mount tmpfs for the RAM store (%s); falling back", exc.strerror)
            self._cleanup_created_root()
            return False
        raise StoreError(f"mounting the RAM store tmpfs failed: {exc.strerror}") from exc

    def _cleanup_created_root(self) -> None:
        if self._created_root:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(self._root)
            self._created_root = False

    def _use_shm_fallback(self) -> None:
        shm_mount = mount_containing(self._shm_dir)
        if shm_mount is None or shm_mount.fstype not in _TMPFS_MAGIC_TYPES:
            raise StoreError(f"{self._shm_dir} is not a tmpfs; cannot keep the RAM store in memory")
        # Stable name per (user, root), so a restart sweeps what a crashed run left.
        digest = hashlib.sha256(os.fsencode(self._root)).hexdigest()[:12]
        path = self._shm_dir / f"headshot-kiosk-{os.geteuid()}-{digest}"
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        st = os.lstat(path)
        # /dev/shm is world-writable: refuse anything we did not create ourselves (symlink or squatting).
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
            raise StoreError(
                f"{path} exists but is not a private directory of this user; remove it and restart"
            )
        self._path = path
        self._backing = Backing.SHM_FALLBACK
        self._noswap = False
        logger.warning(
            "RAM store in a private /dev/shm directory (no tmpfs mount): protection from swap depends on the "
            "system (swap off or zram without a backing device)"
        )

    def close(self) -> None:
        """Wipe every vault opened here, remove all session files, unmount if this store mounted."""
        with self._lock:
            if self._path is None:
                return
            for vault in list(self._vaults.values()):
                vault.wipe()
            self._vaults.clear()
            path, backing = self._path, self._backing
            self.sweep()
            self._path = None
            self._backing = None
            if backing is Backing.MOUNTED:
                try:
                    _umount(path)
                except OSError as exc:
                    raise StoreError(f"unmounting the RAM store failed: {exc.strerror}") from exc
                self._cleanup_created_root()
            elif backing is Backing.SHM_FALLBACK:
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(path)
            logger.info("RAM store closed")

    def __enter__(self) -> SessionStore:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- properties ------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The directory of session subdirectories (give it to :meth:`SessionVault.create` in a worker)."""
        if self._path is None:
            raise StoreError("RAM store is not open; call open() first")
        return self._path

    @property
    def backing(self) -> Backing:
        """What :attr:`path` is (mounted tmpfs, existing mount, /dev/shm fallback)."""
        if self._backing is None:
            raise StoreError("RAM store is not open; call open() first")
        return self._backing

    @property
    def noswap(self) -> bool:
        """True when the kernel guarantees the store's pages never reach swap (tmpfs noswap, or ramfs)."""
        return self._noswap

    @property
    def capacity_bytes(self) -> int:
        """The size cap in bytes."""
        return self._size_mib * MIB

    # -- operations ------------------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Remove everything in the store except sessions of vaults open in this process. Returns the number
        of files removed. Run at start-up, when no session can be live."""
        with self._lock:
            path = self.path
            live = frozenset(sid for sid, vault in self._vaults.items() if not vault.wiped)
            return _remove_tree_contents(path, keep=live)

    def begin(self, session_id: str) -> SessionVault:
        """Create a vault for ``session_id`` in this process (tests, single-process mode). In the product the
        worker calls ``SessionVault.create(store.path, session_id)`` itself."""
        with self._lock:
            existing = self._vaults.get(session_id)
            if existing is not None and not existing.wiped:
                raise StoreError(f"session {session_id} is already active")
            capacity = self.capacity_bytes if self.backing is Backing.SHM_FALLBACK else None
            vault = SessionVault.create(
                self.path,
                session_id,
                clock=self._clock,
                prefer_secret=self._prefer_secret,
                capacity_bytes=capacity,
            )
            self._vaults[session_id] = vault
            return vault

    def session_ids(self) -> list[str]:
        """Ids of sessions with a directory in the store (from any process)."""
        with os.scandir(self.path) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))

    def wipe_session(self, session_id: str) -> int:
        """Remove a session's files and directory by id, without its key (the worker may be gone). If the
        vault lives in this process its key is destroyed too. Returns the number of files removed."""
        _check_session_id(session_id)
        with self._lock:
            vault = self._vaults.pop(session_id, None)
            if vault is not None and not vault.wiped:
                return vault.wipe()
            directory = self.path / session_id
            try:
                st = os.lstat(directory)
            except FileNotFoundError:
                return 0
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(directory)
                return 1
            removed = _remove_tree_contents(directory)
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(directory)
        logger.info("session %s wiped by the store: %d files removed", session_id, removed)
        return removed

    def purge_expired(self) -> int:
        """Purge expired objects in every vault open in this process. Returns how many were deleted."""
        with self._lock:
            return sum(vault.purge_expired() for vault in self._vaults.values() if not vault.wiped)

    def usage(self) -> StoreUsage:
        """Counts and sizes for the staff dashboard (no ids, no contents)."""
        with self._lock:
            path = self.path
            objects = 0
            bytes_used = 0
            for file_path, size in _walk_files(path):
                bytes_used += size
                if _OBJECT_ID.fullmatch(os.path.basename(file_path)):
                    objects += 1
            return StoreUsage(
                sessions=len(self.session_ids()),
                objects=objects,
                bytes_used=bytes_used,
                capacity_bytes=self.capacity_bytes,
                backing=self.backing,
                noswap=self._noswap,
            )
