"""doctor on fake roots with good and bad posture: the right OK/WARN/FAIL lines and exit codes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from provisioning.apply import apply
from provisioning.cli import main
from provisioning.doctor import Check, Status, exit_code, format_text, run_doctor
from provisioning.runner import Runner
from provisioning.target import detect_target
from provisioning.tls import install, self_signed

GOOD_KERNEL = "6.8.12-tegra"
OLD_KERNEL = "5.15.148-tegra"
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def _proc(root: Path, *, kernel: str, core_pattern: str, swaps: str = "", cmdline: str = "quiet") -> None:
    sys_kernel = root / "proc/sys/kernel"
    sys_kernel.mkdir(parents=True, exist_ok=True)
    (sys_kernel / "core_pattern").write_text(core_pattern + "\n", encoding="utf-8")
    (sys_kernel / "osrelease").write_text(kernel + "\n", encoding="utf-8")
    (root / "proc/swaps").write_text(SWAPS_HEADER + swaps, encoding="utf-8")
    (root / "proc/cmdline").write_text(cmdline + "\n", encoding="utf-8")
    (root / "proc/meminfo").write_text("MemTotal: 16000000 kB\nMemAvailable: 8000000 kB\n", encoding="utf-8")


def _provisioned(root: Path, kernel: str) -> None:
    runner = Runner(execute=False)
    install(root, self_signed("kiosk-7f3a.example.net"), runner)
    apply(detect_target(root, kernel_release=kernel), None, runner, io.StringIO())


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_good_posture_passes(staged_root: Path) -> None:
    _provisioned(staged_root, GOOD_KERNEL)
    _proc(staged_root, kernel=GOOD_KERNEL, core_pattern="|/bin/false")
    checks = run_doctor(staged_root, Runner(execute=False))
    got = _by_name(checks)
    for name in (
        "config",
        "swap",
        "ram-store",
        "memfd-secret",
        "core-pattern",
        "coredump-storage",
        "journald",
        "unit-hardening",
        "camera",
        "free-ram",
        "versions",
    ):
        assert got[name].status is Status.OK, got[name]
    assert got["ram-store"].detail.endswith("with noswap")
    # A local CA works but phones will warn; TensorRT is absent on CI: CPU fallback.
    assert got["tls"].status is Status.WARN and "certificate warning" in got["tls"].detail
    assert got["tensorrt"].status in (Status.WARN, Status.OK)
    assert got["clock"].status is Status.SKIP and got["service-dumpable"].status is Status.SKIP
    if shutil.which("systemd-analyze"):
        assert got["unit-exposure"].status is Status.OK, got["unit-exposure"]
    assert exit_code(checks) == 0
    out = io.StringIO()
    assert main(["doctor", "--root", str(staged_root)], out=out) == 0
    assert "OK   swap" in out.getvalue()


def test_old_kernel_warns_with_the_reason(staged_root: Path) -> None:
    _provisioned(staged_root, OLD_KERNEL)
    _proc(staged_root, kernel=OLD_KERNEL, core_pattern="|/bin/false")
    got = _by_name(run_doctor(staged_root, Runner(execute=False)))
    assert got["memfd-secret"].status is Status.WARN
    assert "secretmem.enable=1 needed" in got["memfd-secret"].detail
    assert "extlinux.conf" in got["memfd-secret"].fix
    assert got["ram-store"].status is Status.WARN and "no tmpfs noswap" in got["ram-store"].detail
    _proc(staged_root, kernel=OLD_KERNEL, core_pattern="|/bin/false", cmdline="quiet secretmem.enable=1")
    assert _by_name(run_doctor(staged_root, Runner(execute=False)))["memfd-secret"].status is Status.OK


def test_bad_posture_fails_with_fixes(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    _proc(
        root, kernel=OLD_KERNEL, core_pattern="|/usr/share/apport/apport %p", swaps="/swap.img file 1 0 -2\n"
    )
    journald = root / "etc/systemd/journald.conf"
    journald.parent.mkdir(parents=True)
    journald.write_text("[Journal]\nStorage=persistent\n", encoding="utf-8")
    checks = run_doctor(root, Runner(execute=False))
    got = _by_name(checks)
    for name in ("core-pattern", "swap", "journald", "unit-hardening", "ram-store", "config"):
        assert got[name].status is Status.FAIL, got[name]
        assert got[name].fix, name
    assert "apport" in got["core-pattern"].detail
    assert "/swap.img (disk)" in got["swap"].detail
    assert exit_code(checks) == 1
    text = format_text(checks)
    assert "FAIL swap" in text and "fix: `swapoff --all`" in text
    assert main(["doctor", "--root", str(root)], out=io.StringIO()) == 1


@pytest.mark.parametrize(("backing", "status"), [("none", Status.OK), ("/dev/mmcblk0p3", Status.FAIL)])
def test_zram_is_fine_only_without_a_backing_device(tmp_path: Path, backing: str, status: Status) -> None:
    _proc(tmp_path, kernel=GOOD_KERNEL, core_pattern="|/bin/false", swaps="/dev/zram0 partition 1 0 5\n")
    block = tmp_path / "sys/block/zram0"
    block.mkdir(parents=True)
    (block / "backing_dev").write_text(backing + "\n", encoding="utf-8")
    assert _by_name(run_doctor(tmp_path, Runner(execute=False)))["swap"].status is status


def test_systemd_coredump_without_storage_none_fails(tmp_path: Path) -> None:
    _proc(
        tmp_path,
        kernel=GOOD_KERNEL,
        core_pattern="|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h",
    )
    got = _by_name(run_doctor(tmp_path, Runner(execute=False)))
    assert got["core-pattern"].status is Status.FAIL
    dropin = tmp_path / "etc/systemd/coredump.conf.d/60-headshot-kiosk.conf"
    dropin.parent.mkdir(parents=True)
    dropin.write_text("[Coredump]\nStorage=none\n", encoding="utf-8")
    got = _by_name(run_doctor(tmp_path, Runner(execute=False)))
    assert got["coredump-storage"].status is Status.OK
    assert got["core-pattern"].status is Status.WARN


def test_expired_certificate_fails(staged_root: Path) -> None:
    import datetime as dt

    _provisioned(staged_root, GOOD_KERNEL)
    _proc(staged_root, kernel=GOOD_KERNEL, core_pattern="|/bin/false")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    got = _by_name(run_doctor(staged_root, Runner(execute=False), now=later))
    assert got["tls"].status is Status.FAIL and "expired" in got["tls"].detail


def test_json_report_on_this_machine_is_well_formed() -> None:
    out = io.StringIO()
    code = main(["doctor", "--json"], out=out)
    report = json.loads(out.getvalue())
    assert code in (0, 1) and report["ok"] is (code == 0)
    names = [c["name"] for c in report["checks"]]
    assert {"swap", "core-pattern", "journald", "tls", "tensorrt", "versions"} <= set(names)
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] in ("OK", "WARN", "FAIL", "SKIP")
        if check["status"] in ("WARN", "FAIL"):
            assert check["fix"], check


def test_invalid_config_lists_its_first_three_problems(staged_root: Path) -> None:
    _provisioned(staged_root, GOOD_KERNEL)
    installed = staged_root / "etc/headshot-kiosk/kiosk.toml"
    installed.write_text(
        '[store]\nsize_mib = 1\n[camera]\nsource = "usb"\n[session]\nidle = 1\n[delivery]\nport = 0\n',
        encoding="utf-8",
    )
    got = _by_name(run_doctor(staged_root, Runner(execute=False)))
    check = got["config"]
    assert check.status is Status.FAIL
    # Straight from ConfigError.problems, one per dotted key, the fourth elided.
    assert check.detail.startswith("check-config: camera: Input tag 'usb'")
    assert check.detail.count("; ") == 2 and check.detail.endswith(" ...")
    assert "store.size_mib" in check.detail
    assert check.fix.startswith("fix /etc/headshot-kiosk/kiosk.toml")
