"""The staff dashboard reports days to each certificate's end and warns below 14 (issue 15.1)."""

from __future__ import annotations

import datetime
from pathlib import Path

from appliance.config import KioskConfig
from appliance.tlscert import RENEW_WARN_DAYS
from kiosk_ui.metrics import certificate_expiry
from kiosk_ui.serve import EPHEMERAL_CERT_DAYS, ephemeral_certificate


def test_days_left_and_the_warning(tmp_path: Path) -> None:
    cert, key = ephemeral_certificate(["kiosk.example"])
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    cfg = KioskConfig.model_validate(
        {
            "delivery": {"tls_cert_path": str(tmp_path / "c.pem"), "tls_key_path": str(tmp_path / "k.pem")},
            "staff": {"tls_cert_path": str(tmp_path / "gone.pem"), "tls_key_path": str(tmp_path / "k.pem")},
        }
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    fresh = {c["listener"]: c for c in certificate_expiry(cfg, now=now)}
    assert fresh["delivery"]["days"] in (EPHEMERAL_CERT_DAYS - 1, EPHEMERAL_CERT_DAYS)
    assert fresh["delivery"]["warn"] is (EPHEMERAL_CERT_DAYS < RENEW_WARN_DAYS)
    assert fresh["staff"] == {"listener": "staff", "days": None, "warn": True}  # unreadable: warn
    late = {c["listener"]: c for c in certificate_expiry(cfg, now=now + datetime.timedelta(days=20))}
    assert late["delivery"]["warn"] and 0 <= late["delivery"]["days"] < RENEW_WARN_DAYS
    assert certificate_expiry(KioskConfig()) == []  # no configured file: nothing to report
