"""A clock that cannot be right is noticed: earlier than this software's build, earlier than the kiosk's own
records, or jumping while the kiosk runs (an offline Jetson without an RTC battery after a power cut)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from appliance.clock import (
    EVIDENCE_TOLERANCE_SECONDS,
    ClockWatch,
    build_time,
    clock_evidence,
    clock_problem,
)
from appliance.config import KioskConfig
from tests.appliance.conftest import ManualClock

HOUR = 3600.0


def test_the_right_time_has_no_problem(tmp_path: Path) -> None:
    record = tmp_path / "audit.jsonl"
    record.write_text("{}\n")
    assert clock_problem(evidence=[record, tmp_path / "missing"]) is None


def test_a_clock_before_the_build_is_a_problem() -> None:
    assert build_time() > 1_700_000_000  # the package files carry a real time
    problem = clock_problem(now=build_time() - 30 * 24 * HOUR)
    assert problem is not None and "built" in problem
    assert clock_problem(now=0.0) is not None  # 1970: an RTC that lost power


def test_a_clock_hours_behind_the_kiosks_own_records_is_a_problem(tmp_path: Path) -> None:
    record = tmp_path / "audit.jsonl"
    record.write_text("{}\n")
    now = time.time()
    written = now + 5 * HOUR  # the records were written 5 h "later" than the clock now says
    os.utime(record, (written, written))
    problem = clock_problem(now=now, evidence=[record])
    assert problem is not None and "records" in problem
    # A few minutes of difference (another filesystem's times, NTP slewing) is not.
    small = now + EVIDENCE_TOLERANCE_SECONDS / 2
    os.utime(record, (small, small))
    assert clock_problem(now=now, evidence=[record]) is None


def test_evidence_names_the_files_the_kiosk_writes(tmp_path: Path) -> None:
    cfg = KioskConfig.model_validate(
        {"staff": {"accounts_path": str(tmp_path / "staff.json")}, "audit": {"path": str(tmp_path / "a")}}
    )
    names = [p.name for p in clock_evidence(cfg)]
    assert names == ["audit.jsonl", "audit.head", "staff.json", "event-overrides.json"]


def test_a_jump_while_running_is_noticed_and_small_drift_is_not() -> None:
    wall = ManualClock(1_750_000_000.0)
    mono = ManualClock(1000.0)
    watch = ClockWatch(wall=wall, monotonic=mono)
    wall.advance(30)  # 30 s apart: NTP slews this much; no jump
    assert watch.problem() is None
    mono.advance(30)
    wall.advance(3 * HOUR)  # someone (or NTP at last) set the clock
    problem = watch.problem()
    assert problem is not None and "forward by 180 minutes" in problem
    assert watch.jump() > 2 * HOUR  # remembered: the sign-ins before it may have failed for that reason
