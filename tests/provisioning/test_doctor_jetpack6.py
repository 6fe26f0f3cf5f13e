"""doctor's JetPack 6 checks on staged roots that fake each failure: GPU nodes the sandbox hides or the
service user cannot open, an OpenCV without GStreamer, a zram config the generator cannot read, L4T's
nvzramconfig left running, and the systemd version deciding how the exposure is scored."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from provisioning_helpers import ORIN_DEVICES, seed_accounts, seed_devices, seed_dpkg, seed_l4t

from appliance.config import parse_config
from provisioning.apply import apply
from provisioning.configfile import device_config, render_config_toml
from provisioning.doctor import Check, Status, run_doctor
from provisioning.runner import Runner
from provisioning.target import detect_target

JP6_KERNEL = "5.15.148-tegra"
UNIT = "etc/systemd/system/headshot-kiosk.service"


def _doctor(root: Path) -> dict[str, Check]:
    return {c.name: c for c in run_doctor(root, Runner(execute=False), kernel_release=JP6_KERNEL)}


@pytest.fixture
def orin(tmp_path: Path) -> Path:
    root = tmp_path / "orin"
    seed_accounts(root)
    seed_devices(root, ORIN_DEVICES)
    seed_l4t(root)
    apply(detect_target(root, kernel_release=JP6_KERNEL), None, Runner(execute=False), io.StringIO())
    return root


def test_provisioned_orin_passes_the_jetpack6_checks(orin: Path) -> None:
    got = _doctor(orin)
    assert got["gpu-access"].status is Status.OK, got["gpu-access"]
    assert "groups render, video" in got["gpu-access"].detail
    assert got["nvzramconfig"].status is Status.OK
    assert got["zram-generator"].status is Status.SKIP  # swap policy off


def test_a_gpu_node_the_unit_does_not_allow_fails(orin: Path) -> None:
    unit = orin / UNIT
    unit.write_text(
        unit.read_text(encoding="utf-8").replace("DeviceAllow=/dev/dri/renderD128 rw\n", ""), encoding="utf-8"
    )
    check = _doctor(orin)["gpu-access"]
    assert check.status is Status.FAIL
    assert "/dev/dri/renderD128" in check.detail and "DevicePolicy=closed" in check.detail
    assert "silently runs on the CPU" in check.detail  # backend = auto
    assert check.fix


def test_a_service_user_outside_render_fails(orin: Path) -> None:
    group = orin / "etc/group"
    group.write_text(
        group.read_text(encoding="utf-8").replace("render:x:109:headshot-kiosk", "render:x:109:"),
        encoding="utf-8",
    )
    unit = orin / UNIT
    unit.write_text(
        unit.read_text(encoding="utf-8").replace(
            "SupplementaryGroups=video render", "SupplementaryGroups=video"
        ),
        encoding="utf-8",
    )
    check = _doctor(orin)["gpu-access"]
    assert check.status is Status.FAIL and "not in group(s) render" in check.detail


def test_a_node_closed_to_the_service_user_fails(orin: Path) -> None:
    (orin / "dev/host1x-fence").chmod(0o600)  # root-only, as doctor (root) would not notice
    check = _doctor(orin)["gpu-access"]
    assert check.status is Status.FAIL and "may not open: /dev/host1x-fence (0600" in check.detail


def test_a_tensorrt_config_says_the_kiosk_will_not_start(orin: Path) -> None:
    config = orin / "etc/headshot-kiosk/kiosk.toml"
    data = device_config(detect_target(orin, kernel_release=JP6_KERNEL)).model_dump(
        mode="json", exclude_none=True
    )
    data["engine"]["backend"] = "tensorrt"
    config.write_text(render_config_toml(parse_config(data)), encoding="utf-8")
    (orin / "dev/nvmap").chmod(0o600)
    assert "fails to start" in _doctor(orin)["gpu-access"].detail


def _fake_venv_python(root: Path, gstreamer: str) -> None:
    python = root / "opt/headshot-kiosk/.venv/bin/python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(f"#!/bin/sh\nprintf '  Video I/O:\\n    GStreamer:                   {gstreamer}\\n'\n")
    python.chmod(0o755)


def _csi(root: Path) -> None:
    config = root / "etc/headshot-kiosk/kiosk.toml"
    data = device_config(detect_target(root, kernel_release=JP6_KERNEL)).model_dump(
        mode="json", exclude_none=True
    )
    data["camera"] = {"source": "csi"}
    config.write_text(render_config_toml(parse_config(data)), encoding="utf-8")


def test_opencv_without_gstreamer_fails_a_csi_kiosk(orin: Path) -> None:
    _csi(orin)
    _fake_venv_python(orin, "NO")
    check = _doctor(orin)["opencv-gstreamer"]
    assert check.status is Status.FAIL and "no GStreamer" in check.detail and "opencv-python" in check.fix
    _fake_venv_python(orin, "YES (1.20.3)")
    assert _doctor(orin)["opencv-gstreamer"].status is Status.OK


def test_opencv_is_skipped_where_the_venv_cannot_run(orin: Path) -> None:
    assert _doctor(orin)["opencv-gstreamer"].status is Status.SKIP


def _zram(root: Path, conf: str, packages: dict[str, str] | None) -> Check:
    path = root / "etc/systemd/zram-generator.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(conf, encoding="utf-8")
    if packages is not None:
        seed_dpkg(root, packages)
    return _doctor(root)["zram-generator"]


def test_zram_config_the_generator_cannot_read_fails(orin: Path) -> None:
    expression = "[zram0]\nzram-size = min(ram / 2, 4096)\n"
    fraction = "[zram0]\nzram-fraction = 0.5\nmax-zram-size = 4096\n"
    check = _zram(orin, expression, {"systemd-zram-generator": "0.3.2-1"})
    assert check.status is Status.FAIL and "0.3.2 ignores zram-size" in check.detail
    assert _zram(orin, fraction, {"systemd-zram-generator": "0.3.2-1"}).status is Status.OK
    assert _zram(orin, expression, {"systemd-zram-generator": "1.1.2-1"}).status is Status.OK
    missing = _zram(orin, fraction, {"systemd": "249.11"})
    assert missing.status is Status.FAIL and "apt-get install systemd-zram-generator" in missing.fix


def test_nvzramconfig_left_running_fails(tmp_path: Path) -> None:
    root = tmp_path / "root"
    seed_l4t(root)
    check = _doctor(root)["nvzramconfig"]
    assert check.status is Status.FAIL and "outside the kiosk's swap policy" in check.detail
    assert _doctor(tmp_path / "not-l4t")["nvzramconfig"].status is Status.SKIP


@pytest.mark.parametrize(
    ("library", "status", "text"),
    [
        ("libsystemd-shared-249.so", Status.OK, "offline analysis needs 250"),
        ("libsystemd-shared-255.so", Status.OK, "systemd 255"),
        ("libsystemd-shared-245.so", Status.FAIL, "cannot load the kiosk unit"),
    ],
)
def test_systemd_version_decides_what_can_be_checked(
    tmp_path: Path, library: str, status: Status, text: str
) -> None:
    lib = tmp_path / "usr/lib/systemd" / library
    lib.parent.mkdir(parents=True)
    lib.touch()
    check = _doctor(tmp_path)["systemd"]
    assert check.status is status and text in check.detail
    assert _doctor(tmp_path / "nothing")["systemd"].status is Status.SKIP
