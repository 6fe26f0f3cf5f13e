"""Fixtures for the RAM store tests: a store root, an opened store, a manual clock, tmpfs mount capability."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import SessionStore


class ManualClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    """Where a store should live; not created, not a mount point."""
    return tmp_path / "ram-store"


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def shm_store(store_root: Path, manual_clock: ManualClock) -> Iterator[SessionStore]:
    """An open store in the unprivileged mode (private /dev/shm directory), the same code on every machine."""
    store = SessionStore(store_root, size_mib=16, allow_mount=False, clock=manual_clock)
    store.open()
    yield store
    store.close()


def _probe_tmpfs_mount(target: Path) -> str | None:
    """Try one tmpfs mount; return why mounting is impossible here, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    target.mkdir()
    if libc.mount(b"probe", os.fsencode(target), b"tmpfs", 0, b"size=1m") != 0:
        return f"tmpfs mount refused here: {os.strerror(ctypes.get_errno())}"
    libc.umount2(os.fsencode(target), 0)
    return None


@pytest.fixture
def require_tmpfs_mount(tmp_path: Path) -> None:
    """Skip unless this process can mount a tmpfs (root with CAP_SYS_ADMIN)."""
    reason = _probe_tmpfs_mount(tmp_path / "mount-probe")
    if reason is not None:
        pytest.skip(reason)
