"""The encrypted RAM store: a size-capped tmpfs of AES-256-GCM ciphertext, one subdirectory per session.

Layout (``<dir>`` is the mounted tmpfs, an existing RAM mount, or the /dev/shm fallback)::

    <dir>/<session id>/<object id>     object id = file name = 32 random hex digits; mode 0600, dirs 0700

Who does what (DESIGN.md §3): the main process owns :class:`SessionStore` — it mounts, sweeps at start-up,
reports usage and can wipe a session's files by session id without its key. The per-session worker process
creates a :class:`SessionVault` with :meth:`SessionVault.create` given the store directory and the session
id; the vault generates the session key (:class:`appliance.secretmem.SecretKey`), which never leaves the
worker.

The object file format and the vault: ``appliance.vault``; mountinfo and mount(2): ``appliance.mounts``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType

from appliance.mounts import RAM_FSTYPES, MountEntry, mount_at, mount_containing, mount_tmpfs, unmount
from appliance.vault import (
    OBJECT_ID,
    Clock,
    HeldItem,
    IntegrityError,
    ObjectNotFoundError,
    SessionVault,
    StoreError,
    StoreFullError,
    check_session_id,
    walk_files,
)

# Re-exported: the store's users see objects and failures through this module.
__all__ = [
    "Backing",
    "HeldItem",
    "IntegrityError",
    "ObjectNotFoundError",
    "SessionStore",
    "SessionVault",
    "StoreError",
    "StoreFullError",
    "StoreUsage",
    "new_session_id",
]

logger = logging.getLogger(__name__)

MIB = 1024 * 1024


class Backing(str, Enum):
    """What the store directory is."""

    MOUNTED = "mounted"  # a tmpfs this store mounted (and unmounts on close)
    EXISTING_MOUNT = "existing-mount"  # root was already a tmpfs/ramfs mount point (systemd, fstab)
    SHM_FALLBACK = "shm-fallback"  # private directory under /dev/shm; swap protection depends on the system


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


def new_session_id() -> str:
    """A random session id: 16 hex digits (64 bits), readable through ``RedactFilter``."""
    return secrets.token_hex(8)


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
                if existing.fstype not in RAM_FSTYPES:
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
            mount_tmpfs(self._root, base + ",noswap")
            self._noswap = True
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                logger.warning(
                    "tmpfs refused noswap (needs Linux >= 6.4 and the initial user namespace); RAM store "
                    "pages can reach swap unless swap is off or zram-only"
                )
                try:
                    mount_tmpfs(self._root, base)
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
        if shm_mount is None or shm_mount.fstype not in RAM_FSTYPES:
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
                    unmount(path)
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
        check_session_id(session_id)
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
            for file_path, size in walk_files(path):
                bytes_used += size
                if OBJECT_ID.fullmatch(os.path.basename(file_path)):
                    objects += 1
            return StoreUsage(
                sessions=len(self.session_ids()),
                objects=objects,
                bytes_used=bytes_used,
                capacity_bytes=self.capacity_bytes,
                backing=self.backing,
                noswap=self._noswap,
            )
