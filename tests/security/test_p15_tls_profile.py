"""Issue 15.5: Mozilla "intermediate" TLS on the phone-facing listeners. TLS 1.2 accepted CBC suites; now a
real client offering only CBC (or anything short of ECDHE with AES-GCM or ChaCha20-Poly1305) fails its
handshake, TLS 1.1 fails, and TLS 1.3 and TLS 1.2's AEAD suites succeed — on the delivery listener and the
same on the staff console's TLS listener, checked with Python's ssl client and, where installed, OpenSSL's
``s_client``.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui.serve import TLS12_CIPHERS, Listener, ephemeral_certificate, staff_listener
from tests.support import free_port, tls_delivery_listener

AEAD_TLS12 = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
]
REFUSED_TLS12 = [
    "ECDHE-ECDSA-AES128-SHA",  # CBC, SHA-1 MAC
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-ECDSA-AES128-SHA256",  # CBC, SHA-256 MAC
    "ECDHE-ECDSA-AES256-SHA384",
    "AES128-GCM-SHA256",  # RSA key transport, no forward secrecy (and an ECDSA certificate)
    "DHE-RSA-AES128-GCM-SHA256",
]


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    base: Path = tmp_path_factory.mktemp("p15-tls")
    cert_pem, key_pem = ephemeral_certificate(["localhost", "127.0.0.1"])
    (base / "staff.crt").write_bytes(cert_pem)
    (base / "staff.key").write_bytes(key_pem)
    (base / "staff.key").chmod(0o600)
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "staff": {
                "port": free_port(),
                "accounts_path": str(base / "staff.json"),
                "tls_cert_path": str(base / "staff.crt"),
                "tls_key_path": str(base / "staff.key"),
            },
        }
    )
    k = Kiosk(cfg)
    k.start(wait_for_worker=False)
    yield k
    k.close()


@pytest.fixture(scope="module", params=["delivery", "staff"])
def served(request: pytest.FixtureRequest, kiosk: Kiosk) -> Iterator[tuple[Listener, bytes]]:
    if request.param == "delivery":
        with tls_delivery_listener(kiosk) as (listener, _):
            assert listener.cert_pem is not None
            yield listener, listener.cert_pem
        return
    listener = staff_listener(kiosk, kiosk.cfg)
    listener.start()
    try:
        assert listener.tls and listener.cert_pem is not None
        yield listener, listener.cert_pem
    finally:
        listener.stop()


def _client(cert_pem: bytes, *, version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=cert_pem.decode())
    context.check_hostname = False
    context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        # Security level 0, or OpenSSL 3 would not even offer the old suites the server must refuse.
        context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return context


def _handshake(listener: Listener, context: ssl.SSLContext) -> tuple[str, str]:
    """(protocol version, cipher) of a completed handshake; raises ssl.SSLError when it fails."""
    with (
        socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return str(tls.version()), cipher[0]


def test_tls13_and_tls12_aead_suites_are_accepted(served: tuple[Listener, bytes]) -> None:
    listener, cert_pem = served
    assert _handshake(listener, _client(cert_pem, version=ssl.TLSVersion.TLSv1_3))[0] == "TLSv1.3"
    for suite in AEAD_TLS12:
        assert _handshake(listener, _client(cert_pem, version=ssl.TLSVersion.TLSv1_2, ciphers=suite)) == (
            "TLSv1.2",
            suite,
        )


@pytest.mark.parametrize("suite", REFUSED_TLS12)
def test_a_client_offering_only_cbc_or_static_suites_fails(
    served: tuple[Listener, bytes], suite: str
) -> None:
    listener, cert_pem = served
    context = _client(cert_pem, version=ssl.TLSVersion.TLSv1_2, ciphers=suite)
    if not context.get_ciphers():
        pytest.skip(f"this OpenSSL cannot offer {suite} at all")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(listener, context)


def test_tls11_fails(served: tuple[Listener, bytes]) -> None:
    listener, cert_pem = served
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the point is to try the deprecated version
        context = _client(cert_pem, version=ssl.TLSVersion.TLSv1_1, ciphers="ALL")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _handshake(listener, context)


def test_the_server_offers_exactly_the_profile() -> None:
    from kiosk_ui.serve import harden_tls

    context = harden_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == TLS12_CIPHERS.split(":")
    assert all(("GCM" in name or "CHACHA20" in name) and name.startswith("ECDHE-") for name in tls12)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_RENEGOTIATION and context.options & ssl.OP_NO_COMPRESSION


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_agrees(served: tuple[Listener, bytes]) -> None:
    listener, _ = served

    def s_client(*args: str) -> bool:
        done = subprocess.run(  # fixed arguments, a loopback port
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{listener.port}",
                "-servername",
                "localhost",
                *args,
            ],
            input=b"",
            capture_output=True,
            timeout=20,
            check=False,
        )
        return done.returncode == 0 and b"Cipher is (NONE)" not in done.stdout

    assert s_client("-tls1_3")
    assert s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert not s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256:@SECLEVEL=0")
    assert not s_client("-tls1_1", "-cipher", "ALL:@SECLEVEL=0")
