"""Ownership of files the service user must keep reading when an admin rewrites them as root."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def keep_owner(fd: int, target: Path) -> None:
    """Give the file behind ``fd`` the owner of ``target`` (the file it replaces, else its directory).

    Provisioning hands these files to the service user; an admin running a command as root must not take
    them back (a 0600 file owned by root is unreadable to the service). Only root can chown; for anyone else
    the owner is already right, so a refusal is ignored.
    """
    try:
        reference = os.stat(target)
    except FileNotFoundError:
        reference = os.stat(target.parent)
    if (reference.st_uid, reference.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(PermissionError):
            os.fchown(fd, reference.st_uid, reference.st_gid)
