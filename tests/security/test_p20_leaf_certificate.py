"""Issue 20.6: the certificate the kiosk generates for its delivery listener is a leaf, not a CA.

It was ``CA:TRUE, pathlen:0``: a phone or laptop that trusted it trusted anything its key signed. Checked on
the certificate (BasicConstraints CA:FALSE critical, KeyUsage digitalSignature only, serverAuth, the SAN)
and in effect: a certificate its key signs for another host is refused by a client that trusts it, while
the listener's own certificate is still accepted.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import tempfile
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import KioskConfig
from kiosk_ui.serve import delivery_tls, ephemeral_certificate

HOSTS = ["kiosk-7f3a.example", "localhost", "127.0.0.1", "::1"]


def test_the_generated_certificate_is_a_leaf_for_tls_servers() -> None:
    cert_pem, _ = ephemeral_certificate(HOSTS)
    cert = x509.load_pem_x509_certificate(cert_pem)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False and constraints.value.path_length is None
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kiosk-7f3a.example", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


def test_the_delivery_listeners_demo_certificate_is_that_leaf(tmp_path: Path) -> None:
    cfg = KioskConfig.model_validate(
        {"store": {"path": str(tmp_path / "store")}, "audit": {"path": str(tmp_path / "audit")}}
    )
    _, cert_pem = delivery_tls(cfg)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def _signed_by(issuer_pem: bytes, issuer_key_pem: bytes, host: str) -> tuple[bytes, bytes]:
    """A certificate for ``host`` signed by the generated certificate's key, as an attacker holding that key
    (a stolen kiosk) would make one: ``(chain_pem, key_pem)``."""
    issuer = x509.load_pem_x509_certificate(issuer_pem)
    issuer_key = serialization.load_pem_private_key(issuer_key_pem, password=None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM) + issuer_pem, key_pem


def _handshake(trusted_pem: bytes, served_chain: bytes, served_key: bytes, host: str) -> None:
    """A TLS handshake on loopback with ``served_chain``, from a client that trusts only ``trusted_pem``
    (as a laptop that installed it would). Raises ssl.SSLCertVerificationError if the client refuses."""
    with tempfile.TemporaryDirectory() as directory:
        chain_path, key_path = Path(directory, "chain.pem"), Path(directory, "key.pem")
        chain_path.write_bytes(served_chain)
        key_path.write_bytes(served_key)
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(chain_path, key_path)
    with socket.create_server(("127.0.0.1", 0)) as listening:

        def serve() -> None:
            conn, _ = listening.accept()
            # A client that refuses the certificate aborts the handshake: the server side's error is expected.
            with (
                conn,
                contextlib.suppress(OSError),
                server_context.wrap_socket(conn, server_side=True) as tls,
            ):
                tls.recv(1)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        client_context = ssl.create_default_context(cadata=trusted_pem.decode())
        try:
            with (
                socket.create_connection(listening.getsockname(), timeout=10) as raw,
                client_context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.sendall(b"x")
        finally:
            server.join(timeout=10)


def test_trusting_the_certificate_trusts_nothing_its_key_signs() -> None:
    cert_pem, key_pem = ephemeral_certificate(HOSTS)
    _handshake(cert_pem, cert_pem, key_pem, "localhost")  # the listener itself: accepted
    forged_chain, forged_key = _signed_by(cert_pem, key_pem, "bank.example")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert_pem, forged_chain, forged_key, "bank.example")
