"""plan/apply into a staging root: idempotence, order of the recorded commands, config handling, swap."""

from __future__ import annotations

import io
import os
import stat
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from provisioning_helpers import UID, seed_accounts

from appliance.config import ConfigError, load_config
from provisioning import ProvisioningError
from provisioning.apply import _validate_installed_config, apply, plan
from provisioning.cli import main
from provisioning.runner import Runner
from provisioning.target import detect_target, systemd_escape_path

KERNEL = "6.8.12-tegra"


def _snapshot(root: Path) -> dict[str, tuple[int, int, str | None]]:
    """Every path under root with its mtime (ns), mode and symlink target."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            found[str(path.relative_to(root))] = (
                st.st_mtime_ns,
                stat.S_IMODE(st.st_mode),
                os.readlink(path) if path.is_symlink() else None,
            )
    return found


def _apply(root: Path, **kwargs: object) -> tuple[Runner, str]:
    out = io.StringIO()
    runner = Runner(execute=False, echo=out)
    target = detect_target(root, kernel_release=KERNEL, **kwargs)  # type: ignore[arg-type]
    apply(target, None, runner, out)
    return runner, out.getvalue()


def test_second_apply_changes_nothing_and_touches_nothing(staged_root: Path) -> None:
    first, _ = _apply(staged_root)
    assert first.commands
    before = _snapshot(staged_root)
    second, _ = _apply(staged_root)
    assert second.commands == []
    assert _snapshot(staged_root) == before
    # The command line says so too.
    out = io.StringIO()
    assert main(["apply", "--root", str(staged_root), "--kernel", KERNEL], out=out) == 0
    assert "nothing changed: the device already matches" in out.getvalue()
    assert _snapshot(staged_root) == before


def test_commands_are_recorded_in_order_and_nothing_is_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a command was executed: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    root = tmp_path / "fresh"  # no passwd entry yet: the account must be created first
    runner, _ = _apply(root)
    names = [" ".join(c[:2]) for c in runner.commands]
    assert names[0] == "systemd-sysusers /etc/sysusers.d/headshot-kiosk.conf"
    order = [
        "chown",
        "systemctl daemon-reload",
        "sysctl --system",
        "systemctl restart",
        "swapoff --all",
        "systemctl try-restart",
    ]
    positions = [next(i for i, n in enumerate(names) if n.startswith(step)) for step in order]
    assert positions == sorted(positions), names
    assert (
        "chown",
        "headshot-kiosk:headshot-kiosk",
        str(root / "var/lib/headshot-kiosk/audit"),
    ) in runner.commands


def test_config_is_validated_before_units_are_enabled(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[store]\npath = "relative"\n', encoding="utf-8")
    root = tmp_path / "root"
    seed_accounts(root)
    err = io.StringIO()
    assert main(["apply", "--root", str(root), "--kernel", KERNEL, "--config", str(bad)], out=err) == 2
    assert not (root / "etc/systemd").exists()
    target = detect_target(root, kernel_release=KERNEL)
    with pytest.raises(ConfigError, match=r"store\.path"):
        apply(target, bad, Runner(execute=False), io.StringIO())


def test_given_config_is_installed_byte_for_byte_with_mode_0640(staged_root: Path, tmp_path: Path) -> None:
    source = tmp_path / "kiosk.toml"
    source.write_text('# ours\n[store]\npath = "/run/kiosk-store"\nsize_mib = 128\n', encoding="utf-8")
    target = detect_target(staged_root, kernel_release=KERNEL)
    apply(target, source, Runner(execute=False), io.StringIO())
    installed = staged_root / "etc/headshot-kiosk/kiosk.toml"
    assert installed.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o640
    unit = (staged_root / "etc/systemd/system/headshot-kiosk.service").read_text(encoding="utf-8")
    assert f"TemporaryFileSystem=/run/kiosk-store:size=128m,mode=0700,uid={UID}," in unit


def test_an_edited_config_survives_reapply(staged_root: Path) -> None:
    _apply(staged_root)
    installed = staged_root / "etc/headshot-kiosk/kiosk.toml"
    edited = installed.read_text(encoding="utf-8").replace("size_mib = 256", "size_mib = 512")
    installed.write_text(edited, encoding="utf-8")
    runner, _ = _apply(staged_root)
    assert installed.read_text(encoding="utf-8") == edited
    assert load_config(installed).store.size_mib == 512
    assert ("systemctl", "daemon-reload") in runner.commands  # the unit's tmpfs size followed


def test_mode_drift_is_repaired_without_reloading_anything(staged_root: Path) -> None:
    _apply(staged_root)
    installed = staged_root / "etc/headshot-kiosk/kiosk.toml"
    installed.chmod(0o644)
    runner, text = _apply(staged_root)
    assert stat.S_IMODE(installed.stat().st_mode) == 0o640
    assert "mode    /etc/headshot-kiosk/kiosk.toml (0644 -> 0640)" in text
    assert runner.commands == []


def test_plan_changes_nothing(staged_root: Path) -> None:
    before = _snapshot(staged_root)
    outcome = plan(detect_target(staged_root, kernel_release=KERNEL), None)
    assert outcome.changed and _snapshot(staged_root) == before
    paths = {str(c.spec.path) for c in outcome.changes}
    assert "/etc/systemd/system/headshot-kiosk.service" in paths
    assert ("sysctl", "--system") in outcome.commands


def test_apply_renders_every_policy_file(staged_root: Path) -> None:
    _apply(staged_root)
    expected = [
        "etc/sysusers.d/headshot-kiosk.conf",
        "etc/systemd/system/headshot-kiosk.service",
        "etc/systemd/system/headshot-kiosk-browser.service",
        "etc/sysctl.d/60-headshot-kiosk.conf",
        "etc/systemd/coredump.conf.d/60-headshot-kiosk.conf",
        "etc/systemd/journald.conf.d/60-headshot-kiosk.conf",
        "etc/headshot-kiosk/kiosk.toml",
        "etc/pam.d/headshot-kiosk-browser",
        "etc/chromium/policies/managed/headshot-kiosk.json",
    ]
    for name in expected:
        assert (staged_root / name).is_file(), name
    assert os.readlink(staged_root / "etc/systemd/system/swap.target") == "/dev/null"
    wants = staged_root / "etc/systemd/system/multi-user.target.wants/headshot-kiosk.service"
    assert os.readlink(wants) == "/etc/systemd/system/headshot-kiosk.service"
    modes = {
        "var/lib/headshot-kiosk": 0o700,
        "var/lib/headshot-kiosk/audit": 0o700,
        "etc/headshot-kiosk": 0o750,
    }
    for name, mode in modes.items():
        assert stat.S_IMODE((staged_root / name).stat().st_mode) == mode, name
    assert "|/bin/false" in (staged_root / "etc/sysctl.d/60-headshot-kiosk.conf").read_text(encoding="utf-8")
    # The device defaults found the camera under the root's /dev.
    config = load_config(staged_root / "etc/headshot-kiosk/kiosk.toml")
    assert config.camera.source == "v4l2" and str(config.store.path) == "/run/headshot-kiosk"


def test_zram_policy_masks_disk_swap_and_keeps_zram(staged_root: Path) -> None:
    (staged_root / "etc/fstab").write_text(
        "UUID=1234-abcd / ext4 defaults 0 1\n/swap.img none swap sw 0 0\nUUID=5-6 none swap sw 0 0\n",
        encoding="utf-8",
    )
    runner, _ = _apply(staged_root, swap_policy="zram")
    system = staged_root / "etc/systemd/system"
    assert os.readlink(system / "swap.img.swap") == "/dev/null"
    assert os.readlink(system / "dev-disk-by\\x2duuid-5\\x2d6.swap") == "/dev/null"
    assert not (system / "swap.target").exists()
    conf = (staged_root / "etc/systemd/zram-generator.conf").read_text(encoding="utf-8")
    assert "writeback-device" not in conf
    assert ("swapoff", "/swap.img") in runner.commands
    assert ("systemctl", "restart", "systemd-zram-setup@zram0.service") in runner.commands


@pytest.mark.parametrize(
    ("path", "escaped"),
    [
        ("/swap.img", "swap.img"),
        ("/dev/sda2", "dev-sda2"),
        ("/dev/disk/by-uuid/a-b", "dev-disk-by\\x2duuid-a\\x2db"),
        ("/.hidden", "\\x2ehidden"),
    ],
)
def test_systemd_escape_path(path: str, escaped: str) -> None:
    assert systemd_escape_path(path) == escaped


def test_a_checkout_under_home_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProvisioningError, match="ProtectHome"):
        detect_target(tmp_path, kernel_release=KERNEL, prefix=PurePosixPath("/home/alice/kiosk"))


def test_devices_are_discovered_under_the_root(staged_root: Path) -> None:
    target = detect_target(staged_root, kernel_release=KERNEL)
    assert "/dev/video0" in target.camera_devices
    assert "/dev/nvmap" in target.gpu_devices and "/dev/nvgpu/igpu0/ctrl" in target.gpu_devices


def test_cli_plan_lists_changes_and_writes_nothing(staged_root: Path) -> None:
    before = _snapshot(staged_root)
    out = io.StringIO()
    assert main(["plan", "--root", str(staged_root), "--kernel", "5.15.148-tegra"], out=out) == 0
    text = out.getvalue()
    assert "tmpfs noswap: no" in text and "create  /etc/systemd/system/headshot-kiosk.service" in text
    assert "then run: systemctl daemon-reload" in text
    assert _snapshot(staged_root) == before


def test_an_installed_config_that_fails_check_config_stops_apply_with_every_problem(tmp_path: Path) -> None:
    # resolve_config validates the source first, so this guards the installed copy (what the unit reads).
    installed = tmp_path / "etc/headshot-kiosk/kiosk.toml"
    installed.parent.mkdir(parents=True)
    installed.write_text('[store]\nsize_mib = 1\n[camera]\nsource = "usb"\n', encoding="utf-8")
    with pytest.raises(ProvisioningError) as info:
        _validate_installed_config(tmp_path)
    lines = str(info.value).splitlines()
    assert lines[0] == "the installed kiosk.toml does not pass check-config; units were not enabled:"
    assert lines[1] == f"invalid kiosk config {installed}:"
    assert [line[:16] for line in lines[2:]] == ["  camera: Input ", "  store.size_mib"]
    installed.write_text("", encoding="utf-8")
    assert _validate_installed_config(tmp_path).startswith("config OK: ")
