"""``/metrics`` exports how many days the configured TLS certificates have left, read from the files (what
doctor reads too), so an alert fires before phones start refusing the delivery page."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import kiosk_config

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from appliance.tlscert import certificate_not_after, days_until_expiry
from kiosk_ui.metrics import certificate_expiry_family, metrics_text
from provisioning.tls import self_signed

HOST = "kiosk-7f3a.events.example.com"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def _certificate(directory: Path, *, days: int, now: dt.datetime = NOW) -> tuple[Path, Path]:
    bundle = self_signed(HOST, now=now, days=days)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "kiosk.pem", directory / "kiosk.key"
    cert.write_bytes(bundle.chain_pem)
    key.write_bytes(bundle.key_pem)
    key.chmod(0o600)
    return cert, key


def _tls(cert: Path, key: Path, **more: str) -> dict[str, object]:
    return {"tls_cert_path": str(cert), "tls_key_path": str(key), **more}


def _samples(cfg: KioskConfig, now: dt.datetime) -> dict[str, float]:
    family = certificate_expiry_family(cfg, now=now)
    return {s.labels["listener"]: s.value for s in family.samples}


def test_not_after_is_the_leafs(tmp_path: Path) -> None:
    cert, _ = _certificate(tmp_path, days=20)
    # The file holds the leaf, then the local CA (valid as long): the leaf's date counts.
    assert certificate_not_after(cert.read_bytes()) == NOW + dt.timedelta(days=20)
    assert days_until_expiry(cert, now=NOW) == pytest.approx(20.0)
    assert days_until_expiry(cert, now=NOW + dt.timedelta(days=21)) == pytest.approx(-1.0)


def test_days_left_per_configured_listener(tmp_path: Path) -> None:
    delivery = _certificate(tmp_path / "delivery", days=20)
    staff = _certificate(tmp_path / "staff", days=90)
    cfg = kiosk_config(tmp_path, delivery=_tls(*delivery, public_host=HOST), staff=_tls(*staff))
    assert _samples(cfg, NOW + dt.timedelta(days=7)) == {
        "delivery": pytest.approx(13.0),
        "staff": pytest.approx(83.0),
    }
    # Expired: negative, still exported (the alert must keep firing).
    assert _samples(cfg, NOW + dt.timedelta(days=25))["delivery"] == pytest.approx(-5.0)


def test_no_sample_without_a_readable_file(tmp_path: Path) -> None:
    assert _samples(kiosk_config(tmp_path), NOW) == {}  # self-signed at start: nothing to watch
    cert, key = _certificate(tmp_path / "tls", days=20)
    cfg = kiosk_config(tmp_path, delivery=_tls(cert, key, public_host=HOST))
    cert.write_text("not a certificate\n", encoding="utf-8")
    assert _samples(cfg, NOW) == {}
    cert.unlink()
    assert _samples(cfg, NOW) == {}


@pytest.fixture(scope="module")
def kiosk_with_certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    base = tmp_path_factory.mktemp("cert-expiry")
    now = dt.datetime.now(dt.timezone.utc)
    cert, key = _certificate(base / "tls", days=30, now=now)
    k = Kiosk(kiosk_config(base, delivery=_tls(cert, key, public_host=HOST)))
    k.start()
    yield k
    k.close()


def test_metrics_endpoint_text_carries_the_gauge(kiosk_with_certificate: Kiosk) -> None:
    text = metrics_text(kiosk_with_certificate).decode()
    assert "# TYPE headshot_kiosk_tls_certificate_expiry_days gauge" in text
    match = re.search(
        r'^headshot_kiosk_tls_certificate_expiry_days\{listener="delivery"\} (\S+)$', text, re.M
    )
    assert match is not None and 29.9 < float(match.group(1)) <= 30.0
    assert 'listener="staff"' not in text
