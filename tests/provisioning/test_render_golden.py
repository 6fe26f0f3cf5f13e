"""Every rendered file against its golden copy, for three devices: a Jetson Orin on JetPack 6 (kernel 5.15),
a Jetson Thor on JetPack 7 (kernel 6.8, CSI camera, TLS delivery) and a CPU-only box (ONNX Runtime)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from provisioning_helpers import ORIN_DEVICES, THOR_DEVICES, make_target

from appliance.config import KioskConfig, parse_config
from provisioning.configfile import device_config, render_config_toml
from provisioning.hotspot import (
    HotspotSettings,
    render_checks_nft,
    render_checks_unit,
    render_dnsmasq,
    render_hostapd,
    render_networkd,
    render_networkmanager,
)
from provisioning.render import (
    memory_deny_write_execute,
    render_browser_home_mount,
    render_browser_pam,
    render_browser_unit,
    render_chromium_policy,
    render_coredump_conf,
    render_journald_conf,
    render_kiosk_unit,
    render_nvzramconfig_dropin,
    render_sysctl,
    render_sysusers,
    render_zram_generator,
)
from provisioning.target import Target

Golden = Callable[[str, str], None]


def _orin() -> tuple[KioskConfig, Target]:
    target = make_target(Path("/"), "5.15.148-tegra", ORIN_DEVICES)
    return device_config(target), target


def _thor() -> tuple[KioskConfig, Target]:
    target = make_target(Path("/"), "6.8.12-tegra", THOR_DEVICES)
    base = device_config(target, public_host="kiosk-7f3a.example.net", tls=True)
    data = base.model_dump(mode="json", exclude_none=True)
    data["camera"] = {"source": "csi"}
    return parse_config(data), target


def _cpu() -> tuple[KioskConfig, Target]:
    target = make_target(Path("/"), "6.8.0-52-generic", ("/dev/video0",))
    data = device_config(target).model_dump(mode="json", exclude_none=True)
    data["engine"]["backend"] = "onnxruntime"
    return parse_config(data), target


DEVICES = {"orin-jp6": _orin, "thor-jp7": _thor, "cpu": _cpu}


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_kiosk_unit_matches_golden(device: str, golden: Golden) -> None:
    config, target = DEVICES[device]()
    golden(f"{device}/headshot-kiosk.service", render_kiosk_unit(config, target))


@pytest.mark.parametrize("device", sorted(DEVICES))
def test_kiosk_toml_matches_golden(device: str, golden: Golden) -> None:
    config, _ = DEVICES[device]()
    golden(f"{device}/kiosk.toml", render_config_toml(config))


def test_system_policy_files_match_golden(golden: Golden) -> None:
    config, target = _orin()
    golden("common/headshot-kiosk-browser.service", render_browser_unit(config, target))
    golden("common/pam.d-headshot-kiosk-browser", render_browser_pam())
    golden("common/chromium-policy.json", render_chromium_policy(config))
    golden("common/sysusers.conf", render_sysusers(target.supplementary_groups))
    golden("common/sysctl.conf", render_sysctl())
    golden("common/coredump.conf", render_coredump_conf())
    golden("common/journald.conf", render_journald_conf())
    golden("common/zram-generator.conf", render_zram_generator("1.1.2"))
    golden("orin-jp6/zram-generator.conf", render_zram_generator("0.3.2"))
    golden("orin-jp6/home-headshot-kiosk-browser.mount", render_browser_home_mount(target))
    golden("orin-jp6/nvzramconfig.service.d-60-headshot-kiosk.conf", render_nvzramconfig_dropin())


def test_hotspot_files_match_golden(golden: Golden) -> None:
    settings = HotspotSettings(ssid="Headshot kiosk", host_name="kiosk-7f3a.example.net", country="DE")
    golden("hotspot/hostapd.conf", render_hostapd(settings, "abcdefghjkmnpqrstuvw"))
    golden("hotspot/dnsmasq.conf", render_dnsmasq(settings))
    golden("hotspot/networkd.network", render_networkd(settings))
    golden("hotspot/networkmanager.conf", render_networkmanager(settings))
    golden("hotspot/connectivity-checks.nft", render_checks_nft(settings))
    golden("hotspot/headshot-kiosk-connectivity-checks.service", render_checks_unit())


def test_noswap_only_when_the_kernel_has_it() -> None:
    config, _ = _orin()
    old = render_kiosk_unit(config, make_target(Path("/"), "5.15.148-tegra", ORIN_DEVICES))
    new = render_kiosk_unit(config, make_target(Path("/"), "6.8.12-tegra", ORIN_DEVICES))
    store_line = [
        line for line in new.splitlines() if line.startswith("TemporaryFileSystem=/run/headshot-kiosk:")
    ]
    assert store_line and store_line[0].endswith(",noswap")
    assert "noswap" not in old
    assert old.count("TemporaryFileSystem=") == new.count("TemporaryFileSystem=") == 3


def test_tmpfs_belongs_to_the_service_account_numerically() -> None:
    config, target = _orin()
    unit = render_kiosk_unit(config, target.with_ids(1234, 4321))
    for line in unit.splitlines():
        if line.startswith("TemporaryFileSystem="):
            assert "mode=0700" in line and "uid=1234" in line and "gid=4321" in line


def test_device_allow_lists_exactly_the_found_nodes() -> None:
    config, target = _orin()
    unit = render_kiosk_unit(config, target)
    allowed = sorted(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("DeviceAllow="))
    assert allowed == sorted(f"{d} rw" for d in ORIN_DEVICES)
    assert "DevicePolicy=closed" in unit


def test_no_devices_means_no_device_access_and_no_extra_groups() -> None:
    config = KioskConfig()
    unit = render_kiosk_unit(config, make_target(Path("/"), "6.8.0"))
    assert "DeviceAllow=" not in unit
    assert "SupplementaryGroups=" not in unit


def test_private_tmp_is_not_used() -> None:
    config, target = _cpu()
    unit = render_kiosk_unit(config, target)
    assert "PrivateTmp" not in unit.replace("# PrivateTmp= is not used", "")
    assert "TemporaryFileSystem=/tmp:" in unit and "TemporaryFileSystem=/var/tmp:" in unit


@pytest.mark.parametrize(
    ("backend", "gpu", "expected"),
    [
        ("onnxruntime", True, True),
        ("tensorrt", False, False),
        ("auto", True, False),
        ("auto", False, True),
    ],
)
def test_write_xor_execute_is_decided_per_backend(backend: str, gpu: bool, expected: bool) -> None:
    config = parse_config({"engine": {"backend": backend}})
    target = make_target(Path("/"), "6.8.0", ORIN_DEVICES if gpu else ("/dev/video0",))
    assert memory_deny_write_execute(config, target) is expected
    unit = render_kiosk_unit(config, target)
    assert f"MemoryDenyWriteExecute={'yes' if expected else 'no'}" in unit


def test_network_listeners_allow_private_networks_only() -> None:
    config, target = _thor()
    unit = render_kiosk_unit(config, target)
    assert "IPAddressDeny=any" in unit
    allow = next(line for line in unit.splitlines() if line.startswith("IPAddressAllow="))
    assert "192.168.0.0/16" in allow and "0.0.0.0/0" not in allow
    loopback, target2 = _cpu()
    assert "IPAddressAllow=localhost\n" in render_kiosk_unit(loopback, target2)


def test_csi_camera_keeps_the_argus_socket_reachable() -> None:
    config, target = _thor()
    unit = render_kiosk_unit(config, target).splitlines()
    # No "-": a socket missing at start fails the start instead of running without a camera.
    assert "BindPaths=/tmp/argus_socket" in unit
    assert "BindsTo=nvargus-daemon.service" in unit
    wait = next(line for line in unit if line.startswith("ExecStartPre="))
    assert wait.startswith("ExecStartPre=+/usr/bin/timeout ") and "-S /tmp/argus_socket" in wait
    assert "WantedBy=multi-user.target nvargus-daemon.service" in unit
    orin_config, orin = _orin()
    orin_unit = render_kiosk_unit(orin_config, orin)
    assert "argus_socket" not in orin_unit and "BindsTo=" not in orin_unit


def test_browser_keeps_no_profile_on_disk() -> None:
    config, target = _orin()
    unit = render_browser_unit(config, target)
    command = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    for flag in (
        "--kiosk",
        "--incognito",
        "--disk-cache-size=1",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-breakpad",
        "--user-data-dir=/home/headshot-kiosk-browser/",
    ):
        assert flag in command
    assert command.endswith("http://127.0.0.1:8080/")
    # The snap's HOME (and so its whole profile) is the tmpfs the mount unit puts there.
    assert "RequiresMountsFor=/home/headshot-kiosk-browser" in unit
    mount = render_browser_home_mount(target)
    assert "Type=tmpfs" in mount and "Where=/home/headshot-kiosk-browser" in mount
