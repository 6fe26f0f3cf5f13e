"""A real ACME DNS-01 flow on loopback: provisioning obtains a certificate from Debian's pebble (DNS-01
answered through pebble-challtestsrv by the operator-style DNS hook), installs it, the real delivery listener
serves it, and a client that trusts only pebble's issuing root verifies it for the kiosk's host name.
Renewal: not due with a month to go, due (and done, with a fresh key) once the clock says 10 days are left."""

from __future__ import annotations

import datetime as dt
import http.client
import io
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from pebble_helpers import MISSING, Pebble, free_port, running_pebble, write_hook

from appliance.config import KioskConfig, parse_config
from appliance.kiosk import Kiosk
from appliance.tlscert import certificate_not_after
from kiosk_ui.serve import delivery_listener
from provisioning.acme import load_settings, main, renew
from provisioning.runner import Runner

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

HOST = "kiosk-7f3a.events.example.com"


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with running_pebble(tmp_path_factory.mktemp("pebble")) as running:
        yield running


def _served_certificate(cfg: KioskConfig, root_pem: bytes, tmp_path: Path) -> x509.Certificate:
    """Start the real delivery listener on ``cfg``, connect as a phone that trusts only ``root_pem`` and
    checks the host name, GET an unknown link (plain 404), and return the certificate it was shown."""
    kiosk = Kiosk(cfg)
    listener = delivery_listener(kiosk, cfg)
    listener.start()
    try:
        context = ssl.create_default_context(cadata=root_pem.decode())  # no system roots: pebble's only
        with (
            socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            tls.sendall(f"GET /d/unknown HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            response = http.client.HTTPResponse(tls)  # type: ignore[arg-type, unused-ignore]
            response.begin()
            assert response.status == 404
            response.read()
        # The same listener refuses a client that checks for another name (the certificate is for HOST).
        with (
            socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            context.wrap_socket(raw, server_hostname="other.example.com")
    finally:
        listener.stop()
        kiosk.close()
    return x509.load_der_x509_certificate(der)


def _config(root: Path, state: Path) -> KioskConfig:
    return parse_config(
        {
            "store": {"path": str(state / "store")},
            "audit": {"path": str(state / "audit")},
            "delivery": {
                "host": "127.0.0.1",
                "port": free_port(),
                "public_host": HOST,
                "tls_cert_path": str(root / "etc/headshot-kiosk/tls/kiosk.pem"),
                "tls_key_path": str(root / "etc/headshot-kiosk/tls/kiosk.key"),
            },
        }
    )


def test_obtain_serve_and_renew_through_pebble(pebble: Pebble, tmp_path: Path) -> None:
    root = tmp_path / "root"
    hook = write_hook(tmp_path / "dns-hook", pebble.challtestsrv_url, pebble.hook_log)
    out = io.StringIO()
    argv = [
        "obtain",
        "--root",
        str(root),
        "--host",
        HOST,
        "--dns-hook",
        str(hook),
        "--directory",
        pebble.directory_url,
        "--ca-bundle",
        str(pebble.ca_bundle),
        "--propagation-seconds",
        "0",
        "--email",
        "ops@events.example.com",
        "--agree-tos",
    ]
    assert main(argv, out=out) == 0, out.getvalue()

    # The DNS hook presented the record pebble checked, and removed it afterwards.
    calls = pebble.hook_calls()
    assert [c[:2] for c in calls] == [
        ["present", f"_acme-challenge.{HOST}."],
        ["cleanup", f"_acme-challenge.{HOST}."],
    ]
    assert calls[0][2] == calls[1][2] and len(calls[0][2]) == 43  # base64url SHA-256, RFC 8555 §8.4

    # Files and modes: secrets owner-only, the key handed to the service user (recorded on a staged root).
    tls_dir = root / "etc/headshot-kiosk/tls"
    acme_dir = root / "etc/headshot-kiosk/acme"
    assert stat.S_IMODE(acme_dir.stat().st_mode) == 0o700
    for secret in (
        tls_dir / "kiosk.key",
        acme_dir / "account.key",
        acme_dir / "account.json",
        acme_dir / "acme.json",
    ):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert f"would run: chown headshot-kiosk:headshot-kiosk {tls_dir / 'kiosk.key'}" in out.getvalue()
    assert not (tls_dir / "kiosk-ca.pem").exists()
    units = root / "etc/systemd/system"
    assert (units / "headshot-kiosk-cert-renew.service").is_file()
    timer_link = units / "timers.target.wants/headshot-kiosk-cert-renew.timer"
    assert timer_link.is_symlink()
    assert "would run: systemctl start headshot-kiosk-cert-renew.timer" in out.getvalue()
    settings = load_settings(root)
    assert settings.host == HOST and settings.dns_hook == str(hook)

    # A phone that trusts pebble's issuing root (and nothing else) accepts the kiosk for HOST.
    root_pem = pebble.issuing_root()
    cfg = _config(root, tmp_path / "state")
    served = _served_certificate(cfg, root_pem, tmp_path)
    installed = x509.load_pem_x509_certificates((tls_dir / "kiosk.pem").read_bytes())
    assert served.serial_number == installed[0].serial_number
    assert len(installed) >= 2  # leaf, then pebble's intermediate: the listener sends the chain

    # Renewal: a month and more to go is not due (nothing is contacted, nothing changes) ...
    first_key = (tls_dir / "kiosk.key").read_bytes()
    not_after = certificate_not_after((tls_dir / "kiosk.pem").read_bytes())
    calm = io.StringIO()
    assert renew(root, Runner(execute=False), calm, now=not_after - dt.timedelta(days=31)) is None
    assert "good for 31 more days" in calm.getvalue()
    assert len(pebble.hook_calls()) == 2 and (tls_dir / "kiosk.key").read_bytes() == first_key

    # ... 10 days before expiry it is: a new certificate with a new key, and the listener serves it.
    due = io.StringIO()
    bundle = renew(root, Runner(execute=False), due, now=not_after - dt.timedelta(days=10))
    assert bundle is not None, due.getvalue()
    assert "10.0 days left, fewer than 30" in due.getvalue()
    assert len(pebble.hook_calls()) == 4
    assert (tls_dir / "kiosk.key").read_bytes() != first_key
    renewed = x509.load_pem_x509_certificates((tls_dir / "kiosk.pem").read_bytes())[0]
    assert renewed.serial_number != installed[0].serial_number
    assert _served_certificate(cfg, root_pem, tmp_path).serial_number == renewed.serial_number


def test_obtain_reports_a_ca_it_cannot_reach(
    pebble: Pebble, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline (here: a directory URL nobody listens on) the command fails with exit 2, says why, calls no
    hook and stores no settings."""
    root = tmp_path / "root"
    hook = write_hook(tmp_path / "dns-hook", pebble.challtestsrv_url, tmp_path / "hook.log")
    dead = f"https://127.0.0.1:{free_port()}/dir"
    out = io.StringIO()
    code = main(
        [
            "obtain",
            "--root",
            str(root),
            "--host",
            HOST,
            "--dns-hook",
            str(hook),
            "--directory",
            dead,
            "--ca-bundle",
            str(pebble.ca_bundle),
            "--agree-tos",
        ],
        out=out,
    )
    assert code == 2
    assert "cannot reach the ACME server" in capsys.readouterr().err
    assert not (root / "etc/headshot-kiosk/acme/acme.json").exists()
    assert not (tmp_path / "hook.log").exists()
