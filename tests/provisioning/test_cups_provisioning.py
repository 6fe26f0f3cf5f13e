"""CUPS as provisioning installs it for printing (issue 17): the rendered files against their golden copies,
``apply --root`` writing them with the privacy settings, the queue and packages when printing is on, and
``doctor``'s check of all of it."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from provisioning_helpers import ORIN_DEVICES, make_target

from appliance.config import KioskConfig, parse_config
from provisioning.apply import apply
from provisioning.cli import main
from provisioning.configfile import device_config, render_config_toml
from provisioning.cups import (
    CUPS_DROPIN,
    CUPS_FILES_CONF,
    CUPSD_CONF,
    PRIVACY_DIRECTIVES,
    render_cups_dropin,
    render_cups_files_conf,
    render_cupsd_conf,
)
from provisioning.doctor import Status, run_doctor
from provisioning.runner import Runner
from provisioning.target import detect_target

KERNEL = "6.8.12-tegra"
Golden = Callable[[str, str], None]


def test_cups_files_match_golden(golden: Golden) -> None:
    golden("cups/cupsd.conf", render_cupsd_conf())
    golden("cups/cups-files.conf", render_cups_files_conf())
    golden("cups/cups.service.d-60-headshot-kiosk.conf", render_cups_dropin(7, noswap=True))
    # JetPack 6's kernel 5.15 refuses noswap: the drop-in leaves it out there.
    assert ",noswap" not in render_cups_dropin(7, noswap=False)


def _directives(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", " ", "<")):
            name, _, value = line.partition(" ")
            values[name] = value
    return values


def test_apply_root_renders_cups_with_the_privacy_settings(staged_root: Path) -> None:
    """The pinned path: ``python -m provisioning apply --root DIR`` writes DIR/etc/cups/cupsd.conf and
    cups-files.conf, printing on or off (a CUPS installed later is private from its first start)."""
    out = io.StringIO()
    assert main(["apply", "--root", str(staged_root), "--kernel", KERNEL], out=out) == 0
    cupsd = _directives((staged_root / "etc/cups/cupsd.conf").read_text(encoding="utf-8"))
    files = _directives((staged_root / "etc/cups/cups-files.conf").read_text(encoding="utf-8"))
    for path, wanted in PRIVACY_DIRECTIVES.items():
        got = cupsd if path == CUPSD_CONF else files
        for name, value in wanted.items():
            assert got[name] == value, (path, name)
    assert cupsd["Listen"] == "/run/cups/cups.sock" and "Port" not in cupsd  # the local socket only
    spool = files["RequestRoot"]
    assert files["TempDir"].startswith(spool + "/") and files["CacheDir"].startswith(spool + "/")
    assert {files["ErrorLog"], files["AccessLog"], files["PageLog"]} == {"syslog"}
    dropin = (staged_root / str(CUPS_DROPIN).lstrip("/")).read_text(encoding="utf-8")
    assert f"TemporaryFileSystem={spool}:size=" in dropin and "noswap" in dropin  # kernel 6.8
    assert (staged_root / str(CUPS_FILES_CONF).lstrip("/")).stat().st_mode & 0o777 == 0o640
    # Printing is off: no queue, no cupsd restart, no CUPS packages.
    assert "lpadmin" not in out.getvalue() and "cups.service" not in out.getvalue().replace(
        str(CUPS_DROPIN), ""
    )
    checks = {c.name: c for c in run_doctor(staged_root, Runner(execute=False), kernel_release=KERNEL)}
    assert checks["cups"].status is Status.OK, checks["cups"]
    assert checks["cups"].detail.endswith("(printing off)")


def _print_config(tmp_path: Path, root: Path, **section: object) -> Path:
    target = make_target(root, KERNEL, ORIN_DEVICES)
    data = device_config(target).model_dump(mode="json", exclude_none=True)
    data["print"] = {"enabled": True, **section}
    path = tmp_path / "kiosk.toml"
    path.write_text(render_config_toml(parse_config(data)), encoding="utf-8")
    return path


def test_with_printing_on_apply_restarts_cups_and_makes_the_queue(staged_root: Path, tmp_path: Path) -> None:
    config = _print_config(
        tmp_path, staged_root, device_uri="gutenprint53+usb://dnp-ds620/DS6B12345", queue="booth"
    )
    runner = Runner(execute=False)
    out = io.StringIO()
    outcome = apply(detect_target(staged_root, kernel_release=KERNEL), config, runner, out)
    commands = [" ".join(c) for c in runner.commands]
    restart = commands.index("systemctl restart cups.service")
    queue = next(i for i, c in enumerate(commands) if c.startswith("lpadmin"))
    assert commands.index("systemctl daemon-reload") < restart < queue
    assert commands[queue] == (
        "lpadmin -h /run/cups/cups.sock -p booth -E -v gutenprint53+usb://dnp-ds620/DS6B12345 "
        "-m gutenprint.5.3://dnp-ds620/expert -o PageSize=w288h432 -o printer-error-policy=abort-job"
    )
    # A staging tree has no dpkg database: the plan lists what the device needs.
    assert any("printer-driver-gutenprint" in note for note in outcome.notes)
    # Nothing changed: nothing runs again.
    again = Runner(execute=False)
    apply(detect_target(staged_root, kernel_release=KERNEL), config, again, io.StringIO())
    assert again.commands == []


def test_without_a_device_uri_a_staged_apply_says_how_the_queue_will_be_made(
    staged_root: Path, tmp_path: Path
) -> None:
    out = io.StringIO()
    outcome = apply(
        detect_target(staged_root, kernel_release=KERNEL),
        _print_config(tmp_path, staged_root),
        Runner(execute=False),
        out,
    )
    assert any("no dnp-ds620 printer found" in note for note in outcome.notes)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("PreserveJobFiles No", "PreserveJobFiles Yes"), "PreserveJobFiles No"),
        (("PreserveJobHistory No", "PreserveJobHistory 1d"), "PreserveJobHistory No"),
        (("WebInterface No", "WebInterface Yes"), "WebInterface No"),
        (("LogLevel warn", "LogLevel debug"), "LogLevel warn"),
        (("Listen /run/cups/cups.sock", "Listen localhost:631"), "Listen on the local socket only"),
    ],
)
def test_doctor_fails_a_cups_that_keeps_or_shows_jobs(
    staged_root: Path, tmp_path: Path, edit: tuple[str, str], problem: str
) -> None:
    apply(
        detect_target(staged_root, kernel_release=KERNEL),
        _print_config(tmp_path, staged_root, device_uri="gutenprint53+usb://dnp-ds620/X"),
        Runner(execute=False),
        io.StringIO(),
    )
    conf = staged_root / str(CUPSD_CONF).lstrip("/")
    conf.write_text(conf.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    check = {c.name: c for c in run_doctor(staged_root, Runner(execute=False), kernel_release=KERNEL)}["cups"]
    assert check.status is Status.FAIL and problem in check.detail, check


def test_doctor_fails_a_spool_on_disk(staged_root: Path, tmp_path: Path) -> None:
    apply(
        detect_target(staged_root, kernel_release=KERNEL),
        _print_config(tmp_path, staged_root, device_uri="gutenprint53+usb://dnp-ds620/X"),
        Runner(execute=False),
        io.StringIO(),
    )
    (staged_root / str(CUPS_DROPIN).lstrip("/")).unlink()
    files = staged_root / str(CUPS_FILES_CONF).lstrip("/")
    files.write_text(
        files.read_text(encoding="utf-8").replace(
            "CacheDir /var/spool/cups/cache", "CacheDir /var/cache/cups"
        ),
        encoding="utf-8",
    )
    check = {c.name: c for c in run_doctor(staged_root, Runner(execute=False), kernel_release=KERNEL)}["cups"]
    assert check.status is Status.FAIL
    assert "size-capped tmpfs" in check.detail and "CacheDir /var/cache/cups" in check.detail


def test_doctor_skips_cups_where_nothing_prints(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    check = {c.name: c for c in run_doctor(root, Runner(execute=False), kernel_release=KERNEL)}["cups"]
    assert check.status is Status.SKIP
    assert KioskConfig().print.enabled is False
