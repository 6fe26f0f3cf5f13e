"""The one atomic file write: readers see the old file or the whole new one, never a part.

It lives in ``engine`` (the leaf) so that every package may use it without an upward import: plans and the
``python -m engine`` output here, the staff accounts, audit head and compliance documents in ``appliance``,
and the files ``provisioning`` installs. The RAM store and the delivery blobs keep their own writes: they
live on a tmpfs (no fsync to make), name their work files ``*.partial`` for the start-up and expiry sweeps,
and the store writes relative to a directory descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_atomic"]

# fsync(2): EINVAL when the file "does not support synchronization"; some network and FUSE filesystems say
# so (or ENOTSUP) for directories. The rename is atomic there all the same; only its durability is up to
# the filesystem, and there is nothing more we could do about it.
_DIR_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def write_atomic(
    path: Path,
    data: bytes | memoryview,
    *,
    mode: int | None = 0o600,
    set_owner: Callable[[int], None] | None = None,
) -> None:
    """Replace ``path`` with ``data`` so that no reader ever sees a partial or half-permitted file.

    Steps: create ``.<name>.<random>.tmp`` in the same directory (same filesystem, so the rename is atomic;
    ``O_EXCL | O_NOFOLLOW``, owner-only), set ``mode`` and call ``set_owner(fd)`` before the first byte is
    written, write everything, fsync (after the chmod/chown, so the mode and owner are as durable as the
    bytes), rename over ``path``, fsync the directory so the rename survives a power cut.

    ``mode`` is the file's permission bits (``0o600`` unless given); ``None`` lets the process umask decide,
    as ``open()`` would (``0o666 & ~umask``). ``set_owner`` receives the temp file's descriptor, e.g.
    ``appliance.fileowner.keep_owner``; the caller owns that policy. ``path.parent`` must exist.

    On a failure before the rename the temp file is removed, ``path`` is untouched, and the error
    propagates. An error from the directory fsync (after the rename) also propagates: the new file is then
    in place but may not survive a power cut.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # 0o600 until fchmod below: with a wider mode the bytes of a secret would be readable by others for a
    # moment if the umask let them through.
    create_mode = 0o666 if mode is None else 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, create_mode)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)  # explicit: the umask filters the mode given to open()
            if set_owner is not None:
                set_owner(fd)
            view = memoryview(data).cast("B")
            while view:  # os.write may write less than asked (a signal, a nearly full filesystem)
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a rename is a change to the directory, not to the file)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(dir_fd)
