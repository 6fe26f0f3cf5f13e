"""A print-queue purge that fails at a wipe is owed: retried while the kiosk is idle, and no print is
taken until it succeeds, so an ended visit's job never comes out for the next guest (found in review)."""

from __future__ import annotations

from pathlib import Path

from appliance.config import KioskConfig
from appliance.kiosk import PURGE_RETRY_SECONDS, Kiosk
from appliance.print_ipp import IppError
from tests.appliance.conftest import ManualClock


class FlakyQueue:
    def __init__(self) -> None:
        self.fail = True
        self.calls = 0

    def purge_unfinished(self) -> int:
        self.calls += 1
        if self.fail:
            raise IppError("cupsd does not answer")
        return 1


def test_a_failed_purge_is_retried_while_idle(tmp_path: Path) -> None:
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "store")},
            "print": {"enabled": True, "cups_socket": str(tmp_path / "no-cups.sock")},
        }
    )
    clock = ManualClock(1000.0)
    kiosk = Kiosk(cfg, clock=clock, update_request=tmp_path / "pause")
    queue = FlakyQueue()
    kiosk.print_queue = queue  # type: ignore[assignment]
    try:
        kiosk._purge_print_queue("wipe")
        assert kiosk._purge_owed and queue.calls == 1
        kiosk.start(wait_for_worker=False)
        kiosk.print_queue = queue  # type: ignore[assignment]  # start() purged with the real one
        kiosk._purge_owed = True
        kiosk.tick()
        tried = queue.calls
        kiosk.tick()
        assert queue.calls == tried, "retried at most every PURGE_RETRY_SECONDS, not every tick"
        queue.fail = False
        clock.advance(PURGE_RETRY_SECONDS + 1)
        kiosk.tick()
        assert queue.calls == tried + 1 and not kiosk._purge_owed
    finally:
        kiosk.close()
