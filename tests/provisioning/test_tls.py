"""TLS: the local CA chain verifies for the host; imports refuse wrong keys and expired certificates."""

from __future__ import annotations

import datetime as dt
import io
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from provisioning.cli import main
from provisioning.runner import Runner
from provisioning.tls import (
    LEAF_VALIDITY_DAYS,
    TlsError,
    certificate_hosts,
    import_certificate,
    inspect_certificate,
    install,
    self_signed,
)

HOST = "kiosk-7f3a.example.net"
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def _verify(bundle_chain: bytes, ca_pem: bytes, host: str, when: dt.datetime) -> None:
    leaf, *rest = x509.load_pem_x509_certificates(bundle_chain)
    store = Store(x509.load_pem_x509_certificates(ca_pem))
    verifier = PolicyBuilder().store(store).time(when).build_server_verifier(x509.DNSName(host))
    verifier.verify(leaf, rest)


def test_self_signed_chain_verifies_for_the_host_only() -> None:
    bundle = self_signed(HOST, now=NOW)
    assert bundle.ca_pem is not None
    _verify(bundle.chain_pem, bundle.ca_pem, HOST, NOW + dt.timedelta(days=1))
    with pytest.raises(VerificationError):
        _verify(bundle.chain_pem, bundle.ca_pem, "other.example.net", NOW + dt.timedelta(days=1))
    leaf, ca = x509.load_pem_x509_certificates(bundle.chain_pem)
    leaf.verify_directly_issued_by(ca)
    assert certificate_hosts(bundle.chain_pem) == (HOST,)
    # The CA may only vouch for this host, and its key is gone (only the leaf key is returned).
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical and constraints.value.permitted_subtrees == [x509.DNSName(HOST)]
    lifetime = leaf.not_valid_after_utc - NOW
    assert dt.timedelta(days=LEAF_VALIDITY_DAYS - 1) < lifetime <= dt.timedelta(days=398)
    key = serialization.load_pem_private_key(bundle.key_pem, password=None)
    assert key.public_key() == leaf.public_key()


def test_self_signed_for_an_ip_address() -> None:
    bundle = self_signed("10.42.0.1", now=NOW)
    leaf = x509.load_pem_x509_certificates(bundle.chain_pem)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.42.0.1"]


def test_bad_host_is_refused() -> None:
    with pytest.raises(TlsError, match="bad host name"):
        self_signed("https://kiosk/")


def test_install_writes_key_0600_and_records_chown(tmp_path: Path) -> None:
    runner = Runner(execute=False)
    written = install(tmp_path, self_signed(HOST, now=NOW), runner)
    key = tmp_path / "etc/headshot-kiosk/tls/kiosk.key"
    assert key in written and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "etc/headshot-kiosk/tls/kiosk-ca.pem").is_file()
    assert runner.commands == [("chown", "headshot-kiosk:headshot-kiosk", str(key))]


def _public_style_cert(key: ec.EllipticCurvePrivateKey, *, not_after: dt.datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=90))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_import_accepts_a_matching_valid_pair() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _public_style_cert(key, not_after=NOW + dt.timedelta(days=60))
    bundle = import_certificate(cert, _pem(key), now=NOW)
    assert bundle.hosts == (HOST,) and bundle.ca_pem is None
    assert inspect_certificate(bundle.chain_pem, now=NOW).days_left == 60


def test_import_refuses_a_key_of_another_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    cert = _public_style_cert(key, not_after=NOW + dt.timedelta(days=60))
    with pytest.raises(TlsError, match="does not match the certificate"):
        import_certificate(cert, _pem(other), now=NOW)


def test_import_refuses_an_expired_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _public_style_cert(key, not_after=NOW - dt.timedelta(days=1))
    with pytest.raises(TlsError, match="expired on 2025-05-31"):
        import_certificate(cert, _pem(key), now=NOW)


def test_import_refuses_an_encrypted_key_and_garbage() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _public_style_cert(key, not_after=NOW + dt.timedelta(days=60))
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(TlsError, match="encrypted"):
        import_certificate(cert, encrypted, now=NOW)
    with pytest.raises(TlsError, match="no PEM certificate"):
        import_certificate(b"hello", _pem(key), now=NOW)


def test_cli_self_signed_warns_about_phones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main(["tls", "--root", str(tmp_path), "--self-signed", HOST], out=out) == 0
    assert "would run: chown headshot-kiosk:headshot-kiosk" in out.getvalue()
    assert "phones will show a full-page certificate warning" in capsys.readouterr().err


def test_cli_import_mismatch_exits_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = tmp_path / "cert.pem"
    cert.write_bytes(
        _public_style_cert(key, not_after=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30))
    )
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    root = tmp_path / "root"
    assert main(["tls", "--root", str(root), "--import", str(cert), str(wrong)], out=io.StringIO()) == 2
    assert "does not match" in capsys.readouterr().err
    assert not root.exists()
