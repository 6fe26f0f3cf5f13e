"""Linux mounts for the RAM store: which mount a path is on (``/proc/self/mountinfo``, proc(5)) and mounting
or unmounting a tmpfs through libc's mount(2)/umount2(2) (no ``mount`` binary, no shell). Used by
``appliance.store.SessionStore`` only; needs CAP_SYS_ADMIN to mount (root on the device's unit)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("appliance.store")  # the store's own log name: these are its messages

RAM_FSTYPES = frozenset({"tmpfs", "ramfs"})
# mount(2) flags (include/uapi/linux/mount.h).
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MNT_DETACH = 2


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo (proc(5)), unescaped."""

    mount_point: str
    fstype: str
    source: str
    mount_options: tuple[str, ...]
    super_options: tuple[str, ...]


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


def mount_tmpfs(target: Path, options: str) -> None:
    """mount(2) a tmpfs at ``target`` with ``options``; raises OSError with the kernel's errno."""
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    result = _LIBC.mount(b"headshot-kiosk", os.fsencode(target), b"tmpfs", flags, options.encode("ascii"))
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def unmount(target: Path) -> None:
    """umount(2) ``target``; if it is busy, detach it lazily (logged). Raises OSError otherwise."""
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
