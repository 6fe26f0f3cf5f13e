"""An updater's pause request (appliance.maintenance): never interrupts a visit, never overrides staff."""

from __future__ import annotations

import threading
from pathlib import Path

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from appliance.maintenance import MaintenanceWatch


class FakeKiosk:
    def __init__(self) -> None:
        self.paused = False
        self.phase = "idle"

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def is_paused(self) -> bool:
        return self.paused

    def has_visit(self) -> bool:
        return self.phase != "idle"


def test_no_request_changes_nothing(tmp_path: Path) -> None:
    kiosk, watch = FakeKiosk(), MaintenanceWatch(tmp_path / "pause")
    watch.check(kiosk)
    assert not kiosk.paused and not watch.requested and not watch.ready


def test_a_visit_in_progress_finishes_before_the_update(tmp_path: Path) -> None:
    kiosk, watch = FakeKiosk(), MaintenanceWatch(tmp_path / "pause")
    kiosk.phase = "preview"  # a guest is in front of the camera
    (tmp_path / "pause").touch()
    watch.check(kiosk)
    assert kiosk.paused, "no new visit may start once an update is asked for"
    assert kiosk.phase == "preview", "the visit in progress is not touched"
    assert watch.requested and not watch.ready
    kiosk.phase = "idle"  # the guest finished
    watch.check(kiosk)
    assert watch.ready
    (tmp_path / "pause").unlink()
    watch.check(kiosk)
    assert not kiosk.paused and not watch.ready and not watch.requested


def test_a_staff_pause_outlives_the_update(tmp_path: Path) -> None:
    kiosk, watch = FakeKiosk(), MaintenanceWatch(tmp_path / "pause")
    kiosk.pause()  # staff paused the kiosk for their own reasons
    (tmp_path / "pause").touch()
    watch.check(kiosk)
    assert watch.ready
    (tmp_path / "pause").unlink()
    watch.check(kiosk)
    assert kiosk.paused, "the update must not undo a staff pause"


def test_a_resume_during_the_update_is_undone(tmp_path: Path) -> None:
    kiosk, watch = FakeKiosk(), MaintenanceWatch(tmp_path / "pause")
    (tmp_path / "pause").touch()
    watch.check(kiosk)
    kiosk.resume()  # staff pressed resume in the console while the update was pending
    watch.check(kiosk)
    assert kiosk.paused and watch.ready
    (tmp_path / "pause").unlink()
    watch.check(kiosk)
    assert not kiosk.paused


def test_the_watch_and_the_dashboard_never_wait_for_each_other(tmp_path: Path) -> None:
    """The tick asks the facade (its lock) while /metrics reads the watch under the facade's lock: with
    the watch's lock held across the facade calls, the two deadlocked (found in review)."""
    cfg = KioskConfig.model_validate({"store": {"path": str(tmp_path / "store")}})
    request = tmp_path / "pause"
    kiosk = Kiosk(cfg, update_request=request)
    kiosk.start(wait_for_worker=False)
    try:
        request.touch()
        stop = threading.Event()
        reads: list[bool] = []

        def scrape() -> None:
            while not stop.is_set():
                reads.append(kiosk.health().update_ready)

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        for _ in range(200):
            kiosk.maintenance.check(kiosk)
        stop.set()
        scraper.join(10)
        assert not scraper.is_alive(), "health() and the watch deadlocked"
        assert kiosk.health().update_ready and kiosk.is_paused() and reads
        request.unlink()
        kiosk.maintenance.check(kiosk)
        assert not kiosk.is_paused() and not kiosk.health().update_ready
    finally:
        kiosk.close()
