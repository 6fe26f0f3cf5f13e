"""``cert`` without a CA: settings refuse what cannot work, the DNS hook's failures are reported, renewal is
not due (and touches no network) while enough days are left, the renewal units render as golden and install
idempotently, and doctor's tls-renewal check tells the operator what is wrong."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from provisioning.acme import (
    AcmeError,
    AcmeSettings,
    HookPublisher,
    generate_host,
    install_renewal,
    main,
    renew,
    renewal_due,
    save_settings,
)
from provisioning.doctor import Status, run_doctor
from provisioning.render import render_cert_renew_service, render_cert_renew_timer
from provisioning.runner import Runner
from provisioning.tls import install, self_signed

HOST = "kiosk-7f3a.events.example.com"
NOW = dt.datetime.now(dt.timezone.utc)
# Nothing listens here: a test that reached the network would fail, not hang.
DEAD_CA = "https://127.0.0.1:9/dir"

Golden = Callable[[str, str], None]


def _hook(path: Path, script: str = "exit 0") -> Path:
    path.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    path.chmod(0o700)
    return path


def _settings(tmp_path: Path, **kwargs: object) -> AcmeSettings:
    values: dict[str, object] = {
        "host": HOST,
        "dns_hook": str(_hook(tmp_path / "hook")),
        "directory_url": DEAD_CA,
    }
    values.update(kwargs)
    return AcmeSettings(**values)  # type: ignore[arg-type]


def _installed(root: Path, host: str = HOST, days: int = 90) -> None:
    """A certificate for ``host`` valid ``days`` from now, installed as the delivery certificate."""
    install(root, self_signed(host, now=NOW, days=days), Runner(execute=False))


def test_renewal_units_match_golden(golden: Golden) -> None:
    golden(
        "acme/headshot-kiosk-cert-renew.service",
        render_cert_renew_service(PurePosixPath("/opt/headshot-kiosk/.venv/bin/python")),
    )
    golden("acme/headshot-kiosk-cert-renew.timer", render_cert_renew_timer())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "kiosk.lan"}, "at least three labels"),
        ({"host": "Kiosk-1.events.example.com"}, "lower-case"),
        ({"host": "kiosk_1.events.example.com"}, "DNS name"),
        ({"dns_hook": "hook.sh"}, "absolute path"),
        ({"directory_url": "http://ca.example/dir"}, "https://"),
        ({"renew_days": 0}, "renew_days"),
    ],
)
def test_settings_refuse_what_cannot_work(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AcmeError, match=message):
        _settings(tmp_path, **kwargs)


def test_generated_hosts_are_random_labels_under_the_domain() -> None:
    first, second = generate_host("Events.Example.com."), generate_host("events.example.com")
    assert re.fullmatch(r"kiosk-[0-9a-f]{8}\.events\.example\.com", first)
    assert first != second


def test_hook_failures_name_the_hook_and_its_last_words(tmp_path: Path) -> None:
    failing = HookPublisher(str(_hook(tmp_path / "bad", "echo 'API token rejected' >&2; exit 3")))
    with pytest.raises(AcmeError, match="failed with exit code 3: API token rejected"):
        failing.present(f"_acme-challenge.{HOST}.", "value")
    with pytest.raises(AcmeError, match="not found"):
        HookPublisher(str(tmp_path / "missing")).present("x.", "v")
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n", encoding="utf-8")
    plain.chmod(0o600)
    with pytest.raises(AcmeError, match="not executable"):
        HookPublisher(str(plain)).cleanup("x.", "v")
    slow = HookPublisher(str(_hook(tmp_path / "slow", "sleep 5")), timeout=0.2)
    with pytest.raises(AcmeError, match="did not finish"):
        slow.present("x.", "v")


def test_renew_without_obtain_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["renew", "--root", str(tmp_path / "root")], out=io.StringIO()) == 2
    assert "run `python -m provisioning cert obtain" in capsys.readouterr().err


def test_not_due_touches_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    save_settings(root, _settings(tmp_path))
    _installed(root, days=90)
    before = (root / "etc/headshot-kiosk/tls/kiosk.pem").read_bytes()
    out = io.StringIO()
    runner = Runner(execute=False)
    # The CA's address is dead: a renewal that tried would raise.
    assert renew(root, runner, out) is None
    assert re.search(r"good for (89|90) more days; renewal is due below 30", out.getvalue())
    assert runner.commands == [] and (root / "etc/headshot-kiosk/tls/kiosk.pem").read_bytes() == before
    assert main(["renew", "--root", str(root)], out=io.StringIO()) == 0


def test_renewal_is_due_for_the_wrong_name_a_missing_file_or_few_days(tmp_path: Path) -> None:
    root = tmp_path / "root"
    settings = _settings(tmp_path)
    assert renewal_due(root, settings) == "no certificate at /etc/headshot-kiosk/tls/kiosk.pem"
    _installed(root, host="kiosk-0000.events.example.com")
    assert "names kiosk-0000.events.example.com, not " + HOST in (renewal_due(root, settings) or "")
    _installed(root, days=20)
    assert re.fullmatch(r"(19\.9|20\.0) days left, fewer than 30", renewal_due(root, settings) or "")
    assert renewal_due(root, settings, now=NOW - dt.timedelta(days=20)) is None


def test_a_due_renewal_offline_fails_with_the_reason(tmp_path: Path) -> None:
    root = tmp_path / "root"
    save_settings(root, _settings(tmp_path))
    _installed(root, days=10)
    with pytest.raises(AcmeError, match=r"cannot reach the ACME server .* must be online"):
        renew(root, Runner(execute=False), io.StringIO())


def test_renewal_units_install_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    runner = Runner(execute=False)
    prefix = PurePosixPath("/opt/headshot-kiosk")
    assert install_renewal(root, prefix, runner, io.StringIO())
    assert runner.commands == [
        ("systemctl", "daemon-reload"),
        ("systemctl", "start", "headshot-kiosk-cert-renew.timer"),
    ]
    link = root / "etc/systemd/system/timers.target.wants/headshot-kiosk-cert-renew.timer"
    assert str(link.readlink()) == "/etc/systemd/system/headshot-kiosk-cert-renew.timer"
    again = Runner(execute=False)
    assert not install_renewal(root, prefix, again, io.StringIO())
    assert again.commands == []


def _doctor_renewal(root: Path, now: dt.datetime = NOW) -> tuple[Status, str]:
    check = next(
        c
        for c in run_doctor(root, Runner(execute=False), kernel_release="6.8.0", now=now)
        if c.name == "tls-renewal"
    )
    return check.status, check.detail


def _device(tmp_path: Path, days: int) -> Path:
    """A staged root after `cert obtain` and `apply`: settings, certificate, renewal units and kiosk.toml."""
    root = tmp_path / "root"
    tmp_path.mkdir(parents=True, exist_ok=True)
    save_settings(root, _settings(tmp_path))
    _installed(root, days=days)
    install_renewal(root, PurePosixPath("/opt/headshot-kiosk"), Runner(execute=False), io.StringIO())
    config = root / "etc/headshot-kiosk/kiosk.toml"
    config.write_text(
        f'[delivery]\nhost = "0.0.0.0"\npublic_host = "{HOST}"\n'
        'tls_cert_path = "/etc/headshot-kiosk/tls/kiosk.pem"\n'
        'tls_key_path = "/etc/headshot-kiosk/tls/kiosk.key"\n',
        encoding="utf-8",
    )
    return root


def test_doctor_skips_renewal_without_acme(tmp_path: Path) -> None:
    assert _doctor_renewal(tmp_path)[0] is Status.SKIP


def test_doctor_renewal_ok_then_overdue(tmp_path: Path) -> None:
    root = _device(tmp_path, days=60)
    status, detail = _doctor_renewal(root)
    assert status is Status.OK, detail
    assert re.search(r"(59|60) days left, renews below 30; headshot-kiosk-cert-renew.timer enabled", detail)
    # 20 days left: renewal should have happened 10 days ago (the kiosk was never online, or it fails).
    status, detail = _doctor_renewal(root, now=NOW + dt.timedelta(days=40))
    assert status is Status.WARN and "overdue by 10 days" in detail


def test_doctor_renewal_fails_without_hook_or_timer(tmp_path: Path) -> None:
    root = _device(tmp_path, days=60)
    (root / "etc/systemd/system/timers.target.wants/headshot-kiosk-cert-renew.timer").unlink()
    status, detail = _doctor_renewal(root)
    assert status is Status.FAIL and "not installed and enabled" in detail
    root2 = _device(tmp_path / "second", days=60)
    (tmp_path / "second" / "hook").unlink()
    status, detail = _doctor_renewal(root2)
    assert status is Status.FAIL and "missing or not executable" in detail
