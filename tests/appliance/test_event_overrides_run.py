"""Settings that persist, end to end below the web layer: ``run`` starts the kiosk with the config file plus
the event overrides, and every change's audit record carries closed-vocabulary values only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import appliance.__main__ as main_module
import appliance.kiosk
from appliance.audit import AuditError, AuditLog
from appliance.config import KioskConfig
from appliance.overrides import overrides_path, write_overrides


class _Stop(Exception):
    pass


def test_run_starts_the_kiosk_with_the_overrides_and_the_listeners_with_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = KioskConfig.model_validate(
        {
            "staff": {"accounts_path": str(tmp_path / "staff" / "accounts.json")},
            "audit": {"path": str(tmp_path / "audit")},
            "store": {"path": str(tmp_path / "store")},
        }
    )
    path = overrides_path(base.staff.accounts_path)
    path.parent.mkdir(mode=0o700)
    write_overrides(path, {"event": {"name": "Saved Expo"}, "delivery": {"window_minutes": 30}})
    seen: dict[str, Any] = {}

    class FakeKiosk:
        def __init__(self, cfg: KioskConfig, **_: object) -> None:
            seen["kiosk"] = cfg

        def start(self, **_: object) -> None:
            raise _Stop

        def close(self) -> None:
            seen["closed"] = True

    monkeypatch.setattr(appliance.kiosk, "Kiosk", FakeKiosk)
    monkeypatch.setattr(main_module.signal, "signal", lambda *_: None)
    assert main_module.run(base, with_listeners=False) == 1  # stopped by the fake's start
    assert seen["kiosk"].event.name == "Saved Expo" and seen["kiosk"].delivery.window_minutes == 30
    assert seen["kiosk"].camera == base.camera and seen["closed"]


def test_a_change_record_holds_only_allowed_keys_and_values(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    log.append_staff(
        "alice",
        "event.settings",
        changes={"event.name": None, "event.languages": ["de", "en"], "delivery.window_minutes": 25},
    )
    log.append_staff("olga", "event.choices", changes={"event.backgrounds": ["#1F5FBF", "white"]})
    assert log.verify().ok
    for bad in (
        {"event.name": "Jane Doe's birthday"},  # free text: only "changed" (null) is recorded
        {"event.policy_version": "x"},
        {"delivery.window_minutes": "25"},
        {"event.languages": ["en", "jane.doe@example.org"]},
        {"event.backgrounds": ["studio grey with Jane"]},
    ):
        with pytest.raises(AuditError, match="changes"):
            log.append_staff("alice", "event.settings", changes=bad)
    assert log.verify().ok and log.verify().records == 2
