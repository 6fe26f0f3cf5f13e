"""Event overrides: what staff change in the console is written atomically next to the accounts file,
validated by the same config model, loaded over the config file at start, and a stale file never keeps the
kiosk down."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from appliance.config import ConfigError, KioskConfig
from appliance.overrides import (
    OVERRIDES_NAME,
    OverrideError,
    apply_overrides,
    differences,
    load_with_overrides,
    overrides_path,
    read_overrides,
    remove_overrides,
    write_overrides,
)


@pytest.fixture
def base(tmp_path: Path) -> KioskConfig:
    return KioskConfig.model_validate(
        {
            "staff": {"accounts_path": str(tmp_path / "staff" / "accounts.json")},
            "audit": {"path": str(tmp_path / "audit")},
            "event": {"name": "Expo", "languages": ["en", "de"]},
        }
    )


@pytest.fixture
def path(base: KioskConfig) -> Path:
    found = overrides_path(base.staff.accounts_path)
    found.parent.mkdir(mode=0o700)
    return found


def test_the_file_lives_next_to_the_staff_accounts(base: KioskConfig) -> None:
    assert overrides_path(base.staff.accounts_path) == base.staff.accounts_path.parent / OVERRIDES_NAME
    # On the device: the service's own writable state directory, not /etc (ProtectSystem=strict).
    assert overrides_path(Path("/var/lib/headshot-kiosk/staff/accounts.json")) == Path(
        "/var/lib/headshot-kiosk/staff/event-overrides.json"
    )


def test_written_atomically_owner_only_and_read_back(base: KioskConfig, path: Path) -> None:
    changed = apply_overrides(
        base,
        {"event": {"name": "Career Fair", "backgrounds": ["white"]}, "delivery": {"window_minutes": 25}},
        source="test",
    )
    found = differences(base, changed)
    assert found == {
        "event": {"name": "Career Fair", "backgrounds": ["white"]},
        "delivery": {"window_minutes": 25},
    }
    write_overrides(path, found)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [OVERRIDES_NAME]  # no temp file left behind
    document = json.loads(path.read_text())
    assert document["format"] == "headshot-kiosk-event-overrides" and document["version"] == 1
    assert read_overrides(path) == found
    loaded, problem = load_with_overrides(base)
    assert problem is None and loaded == changed
    assert loaded.event.name == "Career Fair" and loaded.delivery.window_minutes == 25
    assert loaded.event.languages == base.event.languages  # untouched keys come from the config file


def test_no_differences_removes_the_file(base: KioskConfig, path: Path) -> None:
    write_overrides(path, {"delivery": {"window_minutes": 20}})
    write_overrides(path, differences(base, base))
    assert not path.exists()
    remove_overrides(path)  # already gone: fine
    assert load_with_overrides(base) == (base, None)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"delivery": {"window_minutes": 61}}, "delivery.window_minutes"),  # the legal bound holds
        ({"event": {"languages": ["xx"]}}, "event.languages"),
        ({"event": {"backgrounds": ["#00ff00"]}}, "not offered by the config file"),
        ({"event": {"presets": ["square", "square"]}}, "event.presets"),
    ],
)
def test_overrides_are_validated_by_the_config_model(
    base: KioskConfig, path: Path, overrides: dict[str, dict[str, object]], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        apply_overrides(base, overrides, source=str(path))


def test_a_stale_or_broken_file_is_ignored_with_a_warning_never_fatal(
    base: KioskConfig, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    write_overrides(path, {"delivery": {"window_minutes": 61}})  # e.g. written by an older version
    loaded, problem = load_with_overrides(base)
    assert loaded == base and problem is not None and "window_minutes" in problem
    assert "ignored" in caplog.text
    path.write_text("{not json")
    path.chmod(0o600)
    assert load_with_overrides(base)[0] == base


@pytest.mark.parametrize(
    "document",
    [
        {"format": "something else", "version": 1},
        {"format": "headshot-kiosk-event-overrides", "version": 2},
        {"format": "headshot-kiosk-event-overrides", "version": 1, "camera": {"source": "csi"}},
        {"format": "headshot-kiosk-event-overrides", "version": 1, "event": {"policy_version": "x"}},
        {"format": "headshot-kiosk-event-overrides", "version": 1, "staff": {"host": "0.0.0.0"}},
    ],
)
def test_only_the_console_settings_can_be_overridden(path: Path, document: dict[str, object]) -> None:
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    with pytest.raises(OverrideError):
        read_overrides(path)


def test_a_file_others_may_write_or_a_symlink_is_refused(path: Path, tmp_path: Path) -> None:
    write_overrides(path, {"delivery": {"window_minutes": 20}})
    path.chmod(0o666)
    with pytest.raises(OverrideError, match="chmod 600"):
        read_overrides(path)
    path.chmod(0o600)
    target = tmp_path / "elsewhere.json"
    path.rename(target)
    path.symlink_to(target)
    with pytest.raises(OverrideError, match="symlink"):
        read_overrides(path)
