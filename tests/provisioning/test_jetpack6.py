"""Provisioning for JetPack 6 as it really is (issue 19): a staged L4T r36 root, asserted structurally.

What can be decided from files is checked here (device nodes, groups, policy paths, the nvzramconfig
drop-in, zram-generator versions, packages, dnsmasq); what only a device can settle lives in tests/device.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from provisioning_helpers import (
    BROWSER_UID,
    NVZRAMCONFIG_UNIT,
    ORIN_DEVICES,
    seed_accounts,
    seed_devices,
    seed_dpkg,
    seed_l4t,
)

from provisioning import ProvisioningError
from provisioning.apply import DPKG_KEEP_CONFFILES, LinkSpec, apply, diff
from provisioning.cli import main
from provisioning.hotspot import HotspotSettings, hotspot, render_dnsmasq, render_networkd
from provisioning.render import render_zram_generator, zram_setup_unit
from provisioning.runner import Runner
from provisioning.target import GPU_DEVICE_PATTERNS, detect_target, discover_devices

JP6_KERNEL = "5.15.148-tegra"
SYSTEM = "etc/systemd/system"


def _unit_lines(root: Path, name: str) -> list[str]:
    return (root / SYSTEM / name).read_text(encoding="utf-8").splitlines()


def _values(lines: list[str], key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in lines if line.startswith(key + "=")]


@pytest.fixture
def l4t_root(tmp_path: Path) -> Path:
    """An Orin on JetPack 6: accounts, the GPU nodes CUDA opens, and L4T's own nvzramconfig unit."""
    root = tmp_path / "orin"
    seed_accounts(root)
    seed_devices(root, ORIN_DEVICES)
    seed_l4t(root)
    return root


def _regular_files(root: Path) -> dict[str, bytes]:
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


def test_pinned_cli_renders_the_orin_jetpack6_target(l4t_root: Path) -> None:
    before = _regular_files(l4t_root)
    out = io.StringIO()
    assert main(["apply", "--root", str(l4t_root), "--kernel", JP6_KERNEL], out=out) == 0
    kiosk = _unit_lines(l4t_root, "headshot-kiosk.service")
    assert (l4t_root / SYSTEM / "headshot-kiosk-browser.service").is_file()

    # 1. Every node CUDA opens is allowed, and the service has both groups that own them.
    allowed = {entry.split()[0] for entry in _values(kiosk, "DeviceAllow")}
    for node in ("/dev/dri/renderD128", "/dev/host1x-fence", "/dev/nvmap", "/dev/nvgpu/igpu0/ctrl"):
        assert node in allowed, node
    assert set(discover_devices(l4t_root, GPU_DEVICE_PATTERNS)) <= allowed
    assert _values(kiosk, "SupplementaryGroups") == ["video render"]
    sysusers = (l4t_root / "etc/sysusers.d/headshot-kiosk.conf").read_text(encoding="utf-8")
    assert "m headshot-kiosk video\n" in sysusers and "m headshot-kiosk render\n" in sysusers

    # 2. Ubuntu's Chromium (the snap) and Debian's both find the URL lockdown.
    for path in ("etc/chromium-browser/policies/managed", "etc/chromium/policies/managed"):
        assert (l4t_root / path / "headshot-kiosk.json").is_file(), path
    assert os.readlink(l4t_root / SYSTEM / "default.target") == "/lib/systemd/system/multi-user.target"
    assert (l4t_root / SYSTEM / "home-headshot\\x2dkiosk\\x2dbrowser.mount").is_file()

    # 4. NVIDIA's unit file is untouched; a drop-in neutralises it, and it is disabled.
    assert (l4t_root / SYSTEM / "nvzramconfig.service").read_text(encoding="utf-8") == NVZRAMCONFIG_UNIT
    assert not (l4t_root / SYSTEM / "nvzramconfig.service").is_symlink()
    dropin = (l4t_root / SYSTEM / "nvzramconfig.service.d/60-headshot-kiosk.conf").read_text(encoding="utf-8")
    assert "ConditionPathExists=!/etc/systemd/system/nvzramconfig.service.d/60-headshot-kiosk.conf" in dropin
    assert "would run: systemctl disable nvzramconfig.service" in out.getvalue()
    # No regular file that was there before was replaced by anything (in particular not by /dev/null).
    after = _regular_files(l4t_root)
    for name, content in before.items():
        assert after.get(name) == content, name


def test_no_dev_null_link_ever_replaces_a_unit_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    unit = root / SYSTEM / "swap.target"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Unit]\nDescription=local swap.target\n", encoding="utf-8")
    spec = LinkSpec(Path("/etc/systemd/system/swap.target"), "/dev/null")  # type: ignore[arg-type]
    with pytest.raises(ProvisioningError, match="is a unit file"):
        diff(root, [spec], compare_owner=False)
    assert unit.read_text(encoding="utf-8").startswith("[Unit]")


def test_without_l4t_units_nvzramconfig_is_masked_as_before(tmp_path: Path) -> None:
    root = tmp_path / "root"
    seed_accounts(root)
    apply(detect_target(root, kernel_release=JP6_KERNEL), None, Runner(execute=False), io.StringIO())
    assert os.readlink(root / SYSTEM / "nvzramconfig.service") == "/dev/null"
    assert not (root / SYSTEM / "nvzramconfig.service.d").exists()


@pytest.mark.parametrize(
    ("version", "setup_unit", "expression"),
    [
        ("0.2.0-1", "swap-create@zram0.service", False),
        ("0.3.2-1", "systemd-zram-setup@zram0.service", False),
        ("1.1.2-1", "systemd-zram-setup@zram0.service", True),
    ],
)
def test_zram_config_and_unit_follow_the_generator_version(
    l4t_root: Path, version: str, setup_unit: str, expression: bool
) -> None:
    seed_dpkg(l4t_root, {"systemd-zram-generator": version, "cage": "0.1.4-3"})
    target = detect_target(l4t_root, kernel_release=JP6_KERNEL, swap_policy="zram", browser=False)
    runner = Runner(execute=False)
    apply(target, None, runner, io.StringIO())
    conf = (l4t_root / "etc/systemd/zram-generator.conf").read_text(encoding="utf-8")
    assert any(line.startswith("zram-size = ") for line in conf.splitlines()) is expression
    assert ("zram-fraction = 0.5" in conf) is not expression
    assert "writeback-device" not in conf
    assert ("systemctl", "restart", setup_unit) in runner.commands
    assert ("systemctl", "start", "dev-zram0.swap") in runner.commands
    assert zram_setup_unit(version) == setup_unit
    # Under the zram policy too, L4T's own zram swap is neutralised.
    assert (l4t_root / SYSTEM / "nvzramconfig.service.d/60-headshot-kiosk.conf").is_file()


def test_jammy_gets_the_0_3_syntax_without_a_dpkg_entry(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('NAME="Ubuntu"\nVERSION_ID="22.04"\n', encoding="utf-8")
    assert detect_target(root, kernel_release="6.8.0").zram_generator == "0.3.2"
    assert detect_target(tmp_path / "empty", kernel_release=JP6_KERNEL).zram_generator == "0.3.2"
    assert "\nzram-size" not in render_zram_generator("0.3.2")
    assert "zram-size = min(ram / 2, 4096)" in render_zram_generator("1.1.2")


def test_missing_packages_are_installed_once(l4t_root: Path) -> None:
    seed_dpkg(l4t_root, {"systemd": "249.11-0ubuntu3.12", "snapd": "2.66.1"})
    runner = Runner(execute=False)
    target = detect_target(l4t_root, kernel_release=JP6_KERNEL, swap_policy="zram")
    apply(target, None, runner, io.StringIO())
    assert runner.commands[0] == (
        "apt-get",
        "install",
        "--yes",
        "--no-install-recommends",
        *DPKG_KEEP_CONFFILES,
        "cage",
        "systemd-zram-generator",
    )
    assert ("snap", "install", "chromium") in runner.commands
    assert ("snap", "refresh", "--hold=forever", "chromium") in runner.commands
    # Once installed, nothing is planned again.
    seed_dpkg(l4t_root, {"systemd": "249.11", "cage": "0.1.4", "systemd-zram-generator": "0.3.2-1"})
    chromium = l4t_root / "snap/bin/chromium"
    chromium.parent.mkdir(parents=True)
    chromium.touch()
    again = Runner(execute=False)
    apply(detect_target(l4t_root, kernel_release=JP6_KERNEL, swap_policy="zram"), None, again, io.StringIO())
    assert not [c for c in again.commands if c[0] in ("apt-get", "snap")]


def test_staging_tree_lists_the_packages_it_cannot_check(tmp_path: Path) -> None:
    root = tmp_path / "root"
    seed_accounts(root)
    outcome = apply(
        detect_target(root, kernel_release=JP6_KERNEL), None, Runner(execute=False), io.StringIO()
    )
    assert any("cage" in note and "chromium (snap)" in note for note in outcome.notes)


def test_browser_home_mount_belongs_to_the_browser_user(l4t_root: Path) -> None:
    apply(detect_target(l4t_root, kernel_release=JP6_KERNEL), None, Runner(execute=False), io.StringIO())
    mount = (l4t_root / SYSTEM / "home-headshot\\x2dkiosk\\x2dbrowser.mount").read_text(encoding="utf-8")
    assert f"uid={BROWSER_UID}," in mount and "mode=0700" in mount
    browser = _unit_lines(l4t_root, "headshot-kiosk-browser.service")
    assert "Environment=HOME=/home/headshot-kiosk-browser" in browser
    for forbidden in ("NoNewPrivileges=yes", "ProtectHome=yes", "ProtectSystem=strict"):
        assert forbidden not in browser  # each one stops snap-confine
    assert "Conflicts=getty@tty1.service display-manager.service" in browser
    assert _values(browser, "WantedBy") == ["multi-user.target"]


def test_a_debian_chromium_keeps_the_hardened_unit(tmp_path: Path) -> None:
    root = tmp_path / "debian"
    seed_accounts(root)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/chromium").touch()
    target = detect_target(root, kernel_release="6.1.0", browser_binary="/usr/bin/chromium")
    assert not target.browser_is_snap
    apply(target, None, Runner(execute=False), io.StringIO())
    browser = _unit_lines(root, "headshot-kiosk-browser.service")
    assert "NoNewPrivileges=yes" in browser and "RuntimeDirectory=headshot-kiosk-browser" in browser
    assert not (root / SYSTEM / "home-headshot\\x2dkiosk\\x2dbrowser.mount").exists()
    # The CLI's old default is only honoured where that binary exists: Ubuntu gets the snap.
    assert detect_target(
        tmp_path / "ubuntu", kernel_release="5.15.0", browser_binary="/usr/bin/chromium"
    ).browser_is_snap


def test_hotspot_binds_dynamically_and_never_holds_network_online(tmp_path: Path) -> None:
    settings = HotspotSettings(ssid="Kiosk", host_name="kiosk.lan")
    dnsmasq = render_dnsmasq(settings).splitlines()
    assert "bind-dynamic" in dnsmasq and "bind-interfaces" not in dnsmasq
    assert "[Link]\nRequiredForOnline=no\n" in render_networkd(settings)
    seed_dpkg(tmp_path, {"dnsmasq-base": "2.90-0ubuntu0.22.04.1"})  # what JetPack 6 has
    runner = Runner(execute=False)
    hotspot(tmp_path, settings, runner, io.StringIO())
    assert runner.commands[0] == (
        "apt-get",
        "install",
        "--yes",
        "--no-install-recommends",
        *DPKG_KEEP_CONFFILES,
        "hostapd",
        "dnsmasq",
        "nftables",
    )
