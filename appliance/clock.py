"""Is the system clock plausible? For staff sign-in (TOTP needs the right time) and provisioning's ``doctor``.

An offline Jetson without an RTC battery comes back from a power cut with whatever time systemd restores
(the last time it saved, or its own build date) and no NTP to correct it: TOTP codes then never match.
Nothing on an offline device knows the right time, but some times are certainly wrong:

* earlier than this software was built (the newest modification time of the package's own files: a clock
  before it would have the files come from the future);
* earlier than a file the kiosk itself wrote while the clock was right (the audit trail, the staff
  accounts), by more than ``EVIDENCE_TOLERANCE_SECONDS``;
* moved, while the process runs, by more than ``JUMP_TOLERANCE_SECONDS`` against the monotonic clock (a
  jump means the time was wrong before it or is wrong after it: ``ClockWatch``).

A clock an hour slow after a cut between two saves cannot be detected this way; the sign-in page shows the
kiosk's time so staff can compare it with their phone, and recovery codes sign in whatever the time.
The fix on the device: ``sudo timedatectl set-time 'YYYY-MM-DD HH:MM:SS'`` (``timedatectl set-ntp false``
first if NTP is configured but unreachable), then ``sudo hwclock --systohc`` where an RTC exists.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

from appliance.config import KioskConfig

__all__ = [
    "EVIDENCE_TOLERANCE_SECONDS",
    "FIX_HINT",
    "JUMP_TOLERANCE_SECONDS",
    "ClockWatch",
    "build_time",
    "clock_evidence",
    "clock_problem",
]

EVIDENCE_TOLERANCE_SECONDS = 10 * 60.0  # files on another filesystem, a clock slewed by NTP: some slack
JUMP_TOLERANCE_SECONDS = 120.0  # NTP slews small errors; only a step this large is a jump
FIX_HINT = (
    "set the time on the device: sudo timedatectl set-time 'YYYY-MM-DD HH:MM:SS' (UTC with "
    "timedatectl set-timezone UTC, or local time), then sudo hwclock --systohc if it has an RTC; "
    "until then sign in with a recovery code"
)
_PACKAGES = ("appliance", "engine")


@functools.lru_cache(maxsize=1)
def build_time() -> float:
    """The newest modification time (epoch seconds) of the ``appliance`` and ``engine`` source files.

    Installed from a package, these are the package's build time (dpkg and pip keep the archive's times);
    in a checkout, the last edit. Either way, a correct clock is not earlier. Computed once per process.
    """
    root = Path(__file__).resolve().parent.parent
    newest = 0.0
    for package in _PACKAGES:
        for path in (root / package).rglob("*.py"):
            try:
                newest = max(newest, path.stat().st_mtime)
            except OSError:  # removed while we walked: not evidence of anything
                continue
    return newest


def clock_evidence(cfg: KioskConfig) -> list[Path]:
    """Files the kiosk writes while it runs, whose modification times a correct clock is not earlier than:
    the audit trail and its head, the staff accounts file and the event overrides next to it."""
    from appliance.overrides import overrides_path  # noqa: PLC0415 - overrides imports config, not us

    log = cfg.audit.path
    return [
        log / "audit.jsonl",
        log / "audit.head",
        cfg.staff.accounts_path,
        overrides_path(cfg.staff.accounts_path),
    ]


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def clock_problem(*, now: float | None = None, evidence: Iterable[Path] = ()) -> str | None:
    """Why the system clock (or ``now``, epoch seconds) cannot be right, or None if nothing says so.

    Checks the build time of this software and the modification times of ``evidence`` (files written
    earlier while the clock was right, e.g. ``clock_evidence(cfg)``; missing files are skipped). The
    sentence names the time found and what it is earlier than, never a file's content.
    """
    current = time.time() if now is None else now
    built = build_time()
    if current + EVIDENCE_TOLERANCE_SECONDS < built:
        return (
            f"the clock says {_utc(current)}, earlier than this software was built ({_utc(built)}): it was "
            "probably reset by a power cut"
        )
    newest = 0.0
    for path in evidence:
        try:
            newest = max(newest, os.stat(path).st_mtime)
        except OSError:
            continue
    if current + EVIDENCE_TOLERANCE_SECONDS < newest:
        return (
            f"the clock says {_utc(current)}, earlier than the kiosk's own records were last written "
            f"({_utc(newest)}): it was probably set back by a power cut"
        )
    return None


class ClockWatch:
    """Notices a jump of the wall clock while the process runs, against the monotonic clock.

    ``wall`` is the clock in question (epoch seconds; tests inject theirs), ``monotonic`` the reference.
    ``jump()`` returns the largest step seen so far in seconds (positive: forward), or 0.0. Thread-safe.
    """

    def __init__(
        self, *, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._offset = wall() - monotonic()
        self._largest = 0.0

    def jump(self) -> float:
        offset = self.wall() - self.monotonic()
        with self._lock:
            step = offset - self._offset
            if abs(step) > JUMP_TOLERANCE_SECONDS and abs(step) > abs(self._largest):
                self._largest = step
            return self._largest

    def problem(self) -> str | None:
        """A sentence about the largest jump seen, or None."""
        step = self.jump()
        if not step:
            return None
        direction = "forward" if step > 0 else "back"
        return (
            f"the clock jumped {direction} by {abs(step) / 60:.0f} minutes while the kiosk ran: it was wrong "
            "before or is wrong now"
        )
