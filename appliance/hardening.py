"""Process hardening: no core dumps, a checkable dumpable flag, a safe worker environment, zeroed buffers.

Every process of the service calls :func:`harden_process` itself, first thing: the dumpable flag is reset by
execve(2) (prctl(2), PR_SET_DUMPABLE), so a parent cannot do it for its children. ``RLIMIT_CORE=0`` alone is
not enough: when ``kernel.core_pattern`` pipes to a handler (systemd-coredump, apport) the kernel ignores the
core size limit (core(5), "Piping core dumps to a program"). A non-dumpable process is never dumped at all:
``do_coredump`` in fs/coredump.c gives up before it looks at ``core_pattern``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

# prctl(2) options (include/uapi/linux/prctl.h).
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4

MALLOC_MMAP_THRESHOLD_BYTES = 131072
"""Allocations at least this large (128 KiB) are served by mmap and returned to the kernel by free()."""

# Environment variables a worker must not inherit: they inject code into the process (LD_*, PYTHONSTARTUP,
# PYTHONINSPECT, PYTHONBREAKPOINT), keep copies or traces of freed memory (PYTHONMALLOC debug hooks,
# PYTHONTRACEMALLOC, MALLOC_CHECK_), or override our allocator settings (GLIBC_TUNABLES, other MALLOC_*).
# NOTIFY_SOCKET / WATCHDOG_* / LISTEN_* belong to the main process: only it talks to systemd.
_DROP_EXACT = frozenset(
    {
        "GLIBC_TUNABLES",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PYTHONBREAKPOINT",
        "PYTHONMALLOC",
        "PYTHONMALLOCSTATS",
        "PYTHONTRACEMALLOC",
        "PYTHONDEVMODE",
        "PYTHONDUMPREFS",
        "PYTHONDEBUG",
        "PYTHONVERBOSE",
        "PYTHONUSERBASE",
        "PYTHONEXECUTABLE",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    }
)
# LD_LIBRARY_PATH is kept: JetPack's CUDA/TensorRT libraries may rely on it.
_DROP_PREFIXES = ("LD_PRELOAD", "LD_AUDIT", "LD_DEBUG", "LD_PROFILE", "LD_SHOW_AUXV", "MALLOC_")


class HardeningError(RuntimeError):
    """A hardening step failed or a process's state could not be determined."""


@dataclass(frozen=True)
class HardeningReport:
    """What :func:`harden_process` established. Limits in bytes (``resource.RLIM_INFINITY``: unlimited)."""

    pid: int
    dumpable: bool
    core_soft_limit: int
    core_hard_limit: int
    core_pattern: str | None
    core_pattern_is_pipe: bool


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl.restype = ctypes.c_int
    return libc


_LIBC = _libc()


def _prctl(option: int, arg: int = 0) -> int:
    result = int(
        _LIBC.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        )
    )
    if result < 0:
        err = ctypes.get_errno()
        raise HardeningError(f"prctl({option}) failed: {os.strerror(err)}")
    return result


def read_core_pattern() -> str | None:
    """``/proc/sys/kernel/core_pattern`` (``None`` if unreadable). A leading ``|`` means a pipe handler."""
    try:
        return Path("/proc/sys/kernel/core_pattern").read_text(encoding="utf-8").strip()
    except OSError:
        return None


def set_non_dumpable() -> None:
    """Only ``PR_SET_DUMPABLE=0``: for a process that embeds the kiosk but whose resource limits are not
    ours to change (a test runner). Not inherited across exec, unlike ``RLIMIT_CORE``. Raises
    :class:`HardeningError` if it does not take effect."""
    _prctl(_PR_SET_DUMPABLE, 0)
    if is_dumpable():
        raise HardeningError("PR_SET_DUMPABLE 0 did not take effect")


def harden_process() -> HardeningReport:
    """Make the calling process non-dumpable and set its core size limit to 0 (soft and hard).

    Call it in every process of the service, after exec and before any personal data is handled. Raises
    :class:`HardeningError` if either step fails or does not take effect.
    """
    _prctl(_PR_SET_DUMPABLE, 0)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError) as exc:
        raise HardeningError(f"could not set RLIMIT_CORE to 0: {exc}") from exc
    dumpable = is_dumpable()
    if dumpable:
        raise HardeningError("PR_SET_DUMPABLE 0 did not take effect")
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    pattern = read_core_pattern()
    report = HardeningReport(
        pid=os.getpid(),
        dumpable=dumpable,
        core_soft_limit=soft,
        core_hard_limit=hard,
        core_pattern=pattern,
        core_pattern_is_pipe=bool(pattern and pattern.startswith("|")),
    )
    logger.debug("process %d hardened: dumpable=0, RLIMIT_CORE=0", report.pid)
    return report


def dumpable_state(pid: int | None = None) -> bool | None:
    """Whether process ``pid`` (default: this one) may be core-dumped; ``None`` when it cannot be told.

    The kernel exposes the flag only to the process itself (prctl PR_GET_DUMPABLE); /proc/<pid>/status has
    no field for it. From outside, the one reliable signal is ownership: proc(5) says the files in
    /proc/<pid>/ of a non-dumpable process are owned by root (fs/proc/base.c ``task_dump_owner``), whereas a
    dumpable process owns them under its effective uid. That only discriminates for processes whose
    effective uid is not 0 (the kiosk's service user): for a root process both cases look the same and the
    answer is ``None``; such a process must report ``prctl(PR_GET_DUMPABLE)`` itself (e.g. in the worker
    handshake).
    """
    if pid is None or pid == os.getpid():
        return _prctl(_PR_GET_DUMPABLE) == 1
    proc = Path("/proc") / str(pid)
    try:
        status = (proc / "status").read_text(encoding="utf-8")
        owner = os.stat(proc / "status").st_uid
    except FileNotFoundError as exc:
        raise HardeningError(f"no process with pid {pid}") from exc
    euid = _status_euid(status)
    if euid is None:
        raise HardeningError(f"/proc/{pid}/status has no Uid line")
    if euid == 0:
        return None
    # owner == euid: dumpable. owner == root (of the process's user namespace, which is 0 as seen from the
    # initial namespace only when not remapped): non-dumpable.
    return owner == euid


def _status_euid(status: str) -> int | None:
    for line in status.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            return int(fields[2])  # real, effective, saved, filesystem
    return None


def is_dumpable(pid: int | None = None) -> bool:
    """Like :func:`dumpable_state` but raises :class:`HardeningError` when the state cannot be determined."""
    state = dumpable_state(pid)
    if state is None:
        raise HardeningError(
            f"dumpable flag of pid {pid} cannot be read from outside (it runs as root); "
            "ask the process itself"
        )
    return state


def worker_environment(base: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``base`` fit for a session worker: dangerous variables dropped, allocator tuned.

    ``MALLOC_MMAP_THRESHOLD_`` makes glibc serve allocations >= 128 KiB (every image buffer) with mmap, so
    free() returns them to the kernel instead of leaving the pixels in the heap (mallopt(3),
    M_MMAP_THRESHOLD). Setting it explicitly also turns off glibc's dynamic threshold, which otherwise rises
    after such a buffer is freed (up to 32 MiB on 64-bit) and would move later image buffers into the heap.
    """
    env = {
        name: value
        for name, value in base.items()
        if name not in _DROP_EXACT and not name.startswith(_DROP_PREFIXES)
    }
    env["MALLOC_MMAP_THRESHOLD_"] = str(MALLOC_MMAP_THRESHOLD_BYTES)
    return env


def zero_array(a: npt.NDArray[Any]) -> None:
    """Overwrite every element of ``a`` in place with zero bytes, before the buffer is released.

    Works on any writeable numeric, boolean or structured array, contiguous or a view (a view zeroes the
    part of its base it covers). The caller owns ``a``. Raises ``ValueError`` for read-only or object arrays.
    """
    if not a.flags.writeable:
        raise ValueError("zero_array needs a writeable array; this one is read-only")
    if a.dtype.hasobject:
        raise ValueError("zero_array cannot zero object arrays (they hold references, not pixel data)")
    # np.zeros of a non-object dtype is all-zero bytes; assigning it also turns -0.0 into +0.0.
    a[...] = np.zeros((), dtype=a.dtype)
